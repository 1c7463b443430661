"""Property-based fuzz over every node's inputs (issue 7: bad input -> a clear error, never a crash).

For each class in ``llm_assist.NODE_CLASS_MAPPINGS`` we build valid, cheap inputs from its
INPUT_TYPES (custom sockets from real tiny models loaded through the loader nodes), then let
hypothesis replace one or two inputs with a bad value: wrong types, empty / huge / odd strings,
NaN / inf / off-range numbers, 1x1 / odd-sized / 1- or 4-channel / empty-batch / NaN images,
masks of the wrong size, rank or batch, another pack object on a socket, ... Every case must
either work (and return as many outputs as RETURN_TYPES) or raise a ValueError (or the host's
Interrupted) whose short message names the input. Runs are derandomized (same cases in CI).

Direct calls are what the node sees in ComfyUI for tensors, strings and linked values; the
widget checks ComfyUI itself does before calling a node (types, min/max, combos) are fuzzed
through the headless runner's validation in test_fuzz_workflows.py.
"""
from __future__ import annotations

import signal
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzz_support import (LOADERS, Fixtures, acceptable_error, bad_values, call_node, default_inputs,
                          describe, input_specs, rand_image, type_name)

import llm_assist

NODES = sorted(llm_assist.NODE_CLASS_MAPPINGS)
EXAMPLES = 40  # per node; 22 nodes -> 880 cases
CASE_SECONDS = 30
CASES: Counter = Counter()
KINDS: Counter = Counter()
OUTCOMES: Counter = Counter()
DONE: set = set()


@pytest.fixture(scope="module")
def fx(tiny_models, tmp_path_factory):
    """Real LLMA_* values (via the loader nodes) and an image folder for the io nodes."""
    from llm_assist.core import host
    from llm_assist.core.images import to_pil
    from llm_assist.core.sockets import Features, Keyword, Keywords, PromptSpec, WeightedTerm

    previous_root = host.set_models_root(tiny_models)
    base = tmp_path_factory.mktemp("fuzz-nodes")
    previous_out = host.set_output_directory(base / "output")
    image_dir = base / "images"
    image_dir.mkdir()
    paths = []
    for i in range(3):
        path = image_dir / f"img{i}.png"
        to_pil(rand_image(seed=i))[0].save(path)
        paths.append(path)
    fixtures = Fixtures(image_dir=image_dir, image_paths=paths, out_dir=base / "captions")
    for node, (socket, _) in LOADERS.items():
        cls = llm_assist.NODE_CLASS_MAPPINGS[node]
        fixtures.sockets[socket] = call_node(cls, default_inputs(node, cls, fixtures))[0]
    encoder = fixtures.sockets["LLMA_IMAGE_ENCODER"]
    fixtures.sockets["LLMA_FEATURES"] = Features(encoder.encode_images(rand_image()), encoder.name)
    fixtures.sockets["LLMA_KEYWORDS"] = Keywords(
        (Keyword("black cat", 0.9), Keyword("red sofa", 0.6), Keyword("sitting", 0.2)), "a black cat sitting on a red sofa")
    fixtures.sockets["LLMA_PROMPT"] = PromptSpec(positive=(WeightedTerm("black cat", 1.2), WeightedTerm("red sofa")),
                                                 negative=(WeightedTerm("blurry"),), token_budget=77)
    yield fixtures
    host.set_models_root(previous_root)
    host.set_output_directory(previous_out)


def _alarm(signum, frame):
    raise TimeoutError(f"a fuzz case ran longer than {CASE_SECONDS} s (a hang?)")


def _check_outputs(cls, result) -> None:
    if isinstance(result, dict):
        assert "result" in result or "ui" in result, f"node returned a dict without result/ui: {list(result)}"
        result = result.get("result", ())
        if not result:
            return
    assert isinstance(result, tuple), f"node returned {type(result).__name__}, not a tuple"
    assert len(result) == len(cls.RETURN_TYPES), f"node returned {len(result)} outputs for {cls.RETURN_TYPES}"


@pytest.mark.parametrize("node", NODES)
def test_bad_input_gives_a_clear_error_or_works(node, fx):
    from llm_assist.core import host

    cls = llm_assist.NODE_CLASS_MAPPINGS[node]
    specs = input_specs(cls)
    defaults = default_inputs(node, cls, fx)
    # the defaults themselves must work: otherwise every mutated case would "fail" for a dull reason
    _check_outputs(cls, call_node(cls, dict(defaults)))

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def case(data):
        count = data.draw(st.integers(1, min(2, len(specs))), label="how many inputs") if specs else 0
        names = data.draw(st.lists(st.sampled_from(sorted(specs)), min_size=count, max_size=count, unique=True),
                          label="inputs") if count else []
        kwargs = dict(defaults)
        mutated = {}
        for name in names:
            _, kind, options = specs[name]
            value = data.draw(bad_values(name, kind, options, fx), label=name)
            kwargs[name] = mutated[name] = value
            KINDS[type_name(kind)] += 1
        CASES[node] += 1
        host.clear_interrupt()
        previous = signal.signal(signal.SIGALRM, _alarm)
        signal.alarm(CASE_SECONDS)
        try:
            result = call_node(cls, kwargs)
        except TimeoutError:
            raise
        except BaseException as exc:  # noqa: BLE001 - judged below
            problem = acceptable_error(exc, mutated, specs)
            OUTCOMES["clear error"] += 1
            if problem:
                shown = {k: describe(v) for k, v in mutated.items()}
                raise AssertionError(f"{node} with {shown}: {problem}: {type(exc).__name__}: {str(exc)[:300]}") from exc
        else:
            OUTCOMES["worked"] += 1
            _check_outputs(cls, result)
        finally:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, previous)

    case()
    DONE.add(node)


def test_zz_fuzz_case_count():
    """The suite ran at least 500 generated cases over every node (run the whole file)."""
    if DONE != set(NODES):
        pytest.skip("run the whole file to count the cases")
    total = sum(CASES.values())
    print(f"\nnode fuzz: {total} cases over {len(CASES)} nodes; mutated inputs by type: {dict(KINDS)}; "
          f"outcomes: {dict(OUTCOMES)}")
    assert total >= 500, f"only {total} fuzz cases ran: raise EXAMPLES"
    assert all(CASES[n] >= 1 for n in NODES)

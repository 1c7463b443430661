"""Draw-stage benchmark (CPU): ratios measured side by side in one run.

    HF_HUB_OFFLINE=1 python bench/generate_bench.py [--repeats 5] [--mid-steps 6]

1. Generate node / raw diffusers __call__ on the same tiny pipeline (goal <= 1.03), the arms doing
   the same work: both encoding the prompts every call, and both reusing cached embeddings.
2. warm re-run / cold run of load + generate on the tiny pipeline, and of the whole variation
   workflow (goal <= 0.05): an identical re-run (nothing changed, nothing re-runs: ComfyUI's
   semantics) and a re-run with a new seed (models, captions and embeddings cached; only the
   sampling repeats, which is the real work left).
3. Each speed switch on / off on a mid-size random-weight SD-style UNet at 128 px
   (the tiny 64 px model is too small to tell), arms interleaved.
Prints one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


REPO = Path(__file__).resolve().parents[1]


def _pack():
    try:
        import llm_assist  # noqa: F401

        return "llm_assist"
    except ImportError:
        return None


def _time(fn, repeats):
    fn()  # warm-up
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return statistics.median(out)


def bench_overhead(root: Path, repeats: int) -> dict:
    """The Generate node's run() against diffusers' own __call__, each pair doing the same work.

    ``encode``: both arms encode the prompts on every call (the node's embedding cache is
    cleared before each of its calls). ``cached``: both arms reuse prompt embeddings computed
    once (the node through its embedding cache, as on a re-queue with the same prompt; raw
    diffusers through ``prompt_embeds=``). Arms interleaved, medians.
    """
    import torch

    from llm_assist.core.diffusion import prompt_embeds
    from llm_assist.core.diffusion.loading import load_pipeline
    from llm_assist.core.diffusion.run import GenerateRequest, run

    handle = load_pipeline("tiny-sd15")
    req = GenerateRequest(positive="a cat on a table", negative="blurry", seed=1, steps=4, width=64, height=64)
    common = dict(num_inference_steps=4, height=64, width=64, guidance_scale=7.0, output_type="pt")

    def node_encode():
        prompt_embeds.EMBEDDING_CACHE.clear()
        run(handle, "txt2img", req)

    def node_cached():
        run(handle, "txt2img", req)

    def raw_encode():
        handle.pipe(req.positive, negative_prompt=req.negative, generator=[torch.Generator().manual_seed(1)], **common)

    with torch.no_grad():
        pe, npe = handle.pipe.encode_prompt(req.positive, "cpu", 1, True, req.negative)

    def raw_cached():
        handle.pipe(prompt_embeds=pe, negative_prompt_embeds=npe, generator=[torch.Generator().manual_seed(1)], **common)

    arms = {"node_encode": node_encode, "raw_encode": raw_encode, "node_cached": node_cached, "raw_cached": raw_cached}
    times: dict[str, list[float]] = {name: [] for name in arms}
    for fn in arms.values():
        fn()  # warm-up
    for _ in range(repeats):  # interleaved
        for name, fn in arms.items():
            t = time.perf_counter(); fn(); times[name].append(time.perf_counter() - t)
    med = {name: statistics.median(v) for name, v in times.items()}
    return {**{f"{name}_s": v for name, v in med.items()},
            "node_over_raw": med["node_encode"] / med["raw_encode"],
            "node_over_raw_cached_embeddings": med["node_cached"] / med["raw_cached"]}


def bench_warm_cold(repeats: int) -> dict:
    from llm_assist.core.diffusion import prompt_embeds
    from llm_assist.core.diffusion.loading import load_pipeline
    from llm_assist.core.diffusion.run import GenerateRequest, run
    from llm_assist.core.model_cache import MODEL_CACHE

    req = GenerateRequest(positive="a cat on a table", steps=1, width=64, height=64)

    def once():
        run(load_pipeline("tiny-sd15"), "txt2img", req)

    cold = []
    for _ in range(max(2, repeats // 2)):
        MODEL_CACHE.clear(); prompt_embeds.EMBEDDING_CACHE.clear()
        t = time.perf_counter(); once(); cold.append(time.perf_counter() - t)
    warm = _time(once, repeats)
    return {"cold_s": statistics.median(cold), "warm_s": warm, "warm_over_cold": warm / statistics.median(cold)}


def bench_workflow_warm_cold(tmp: Path, repeats: int) -> dict:
    """The variation workflow headless: cold (empty caches) vs warm re-runs in the same process.

    ``identical``: the same workflow again (ComfyUI semantics: nothing changed, nothing re-runs).
    ``new_seed``: Generate's seed changed, so Generate and SaveImage run again while the models,
    captions, keywords and prompt embeddings come from the caches.
    """
    from llm_assist.core.diffusion import prompt_embeds
    from llm_assist.core.model_cache import MODEL_CACHE
    from llm_assist.core.sample_images import write_example_images
    from llm_assist.runner import clear_caches, run_workflow
    from llm_assist.runner.tiny_sets import tiny_model_sets

    workflow = REPO / "example_workflows" / "variation.json"
    sets = tiny_model_sets(workflow)
    generate = next(s.split(".")[0] for s in _generate_nodes(workflow))
    write_example_images(tmp / "input", size=64)
    kwargs = {"output_dir": tmp / "out", "input_dir": tmp / "input"}
    cold, identical, new_seed = [], [], []
    for i in range(max(2, repeats // 2)):
        MODEL_CACHE.clear(); prompt_embeds.EMBEDDING_CACHE.clear(); clear_caches()
        t = time.perf_counter(); run_workflow(workflow, sets=sets, **kwargs); cold.append(time.perf_counter() - t)
        t = time.perf_counter(); run_workflow(workflow, sets=sets, **kwargs); identical.append(time.perf_counter() - t)
        seeded = sets + [f"{generate}.seed={1000 + i}"]
        t = time.perf_counter(); run_workflow(workflow, sets=seeded, **kwargs); new_seed.append(time.perf_counter() - t)
    c = statistics.median(cold)
    return {"cold_s": c, "identical_s": statistics.median(identical), "new_seed_s": statistics.median(new_seed),
            "identical_over_cold": statistics.median(identical) / c, "new_seed_over_cold": statistics.median(new_seed) / c}


def _generate_nodes(workflow: Path) -> list[str]:
    data = json.loads(workflow.read_text(encoding="utf-8"))
    return [f"{n['id']}.seed" for n in data["nodes"] if n["type"] == "LLMAssistGenerate"]


def _mid_pipeline(tmp: Path):
    """SD-style pipeline: UNet 64/128/256 channels, 128 px images; reuses the tiny tokenizer/text encoder."""
    from diffusers import AutoencoderKL, StableDiffusionPipeline, UNet2DConditionModel

    from llm_assist.core import host

    base = StableDiffusionPipeline.from_pretrained(str(host.resolve_model("diffusers", "tiny-sd15")))
    import torch

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        block_out_channels=(64, 128, 256), layers_per_block=1, sample_size=16, in_channels=4, out_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=base.text_encoder.config.hidden_size, attention_head_dim=8, norm_num_groups=32,
    )
    vae = AutoencoderKL(block_out_channels=(32, 64, 64, 64), down_block_types=("DownEncoderBlock2D",) * 4,
                        up_block_types=("UpDecoderBlock2D",) * 4, latent_channels=4, norm_num_groups=32)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=base.text_encoder, tokenizer=base.tokenizer, unet=unet,
                                   scheduler=base.scheduler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    pipe.save_pretrained(tmp / "diffusers" / "mid-sd")


def bench_switches(tmp: Path, repeats: int, steps: int) -> dict:
    from llm_assist.core import host
    from llm_assist.core.diffusion.loading import load_pipeline
    from llm_assist.core.diffusion.run import GenerateRequest, run
    from llm_assist.core.diffusion.speed import SpeedOptions

    for sub in ("diffusers", "checkpoints"):
        (tmp / sub).mkdir(parents=True, exist_ok=True)
    _mid_pipeline(tmp)
    previous = host.set_models_root(tmp)
    req = GenerateRequest(positive="a cat on a table", steps=steps, width=128, height=128, batch_size=1)
    arms = {
        "attention_slicing": SpeedOptions(attention_slicing=True),
        "vae_slicing": SpeedOptions(vae_slicing=True),
        "vae_tiling": SpeedOptions(vae_tiling=True),
        "channels_last": SpeedOptions(channels_last=True),
    }
    try:
        import DeepCache  # noqa: F401

        arms["step_cache_3"] = SpeedOptions(step_cache_interval=3)
    except ImportError:
        pass
    results = {}
    try:
        off = load_pipeline("mid-sd")
        for name, speed in arms.items():
            try:
                on = load_pipeline("mid-sd", speed=speed)
                t_on, t_off = [], []
                run(on, "txt2img", req); run(off, "txt2img", req)
                for _ in range(repeats):
                    t = time.perf_counter(); run(on, "txt2img", req); t_on.append(time.perf_counter() - t)
                    t = time.perf_counter(); run(off, "txt2img", req); t_off.append(time.perf_counter() - t)
                print(name, statistics.median(t_on) / statistics.median(t_off), file=sys.stderr, flush=True)
                results[name] = {"on_s": statistics.median(t_on), "off_s": statistics.median(t_off),
                                 "on_over_off": statistics.median(t_on) / statistics.median(t_off)}
            except Exception as exc:  # noqa: BLE001 - one arm failing must not lose the others
                results[name] = {"error": f"{type(exc).__name__}: {exc}"}
    finally:
        host.set_models_root(previous)
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--mid-steps", type=int, default=4)
    parser.add_argument("--skip-switches", action="store_true", help="only the node/raw and warm/cold ratios")
    args = parser.parse_args(argv)
    import torch

    from llm_assist.core import host
    from llm_assist.core.tiny_models import build_tiny_models

    report = {"threads": torch.get_num_threads()}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "models"
        build_tiny_models(root)
        host.set_models_root(root)
        report["node_vs_raw"] = bench_overhead(root, 4 * args.repeats)
        print(json.dumps(report["node_vs_raw"]), file=sys.stderr, flush=True)
        report["warm_vs_cold"] = bench_warm_cold(args.repeats)
        print(json.dumps(report["warm_vs_cold"]), file=sys.stderr, flush=True)
        report["workflow_warm_vs_cold"] = bench_workflow_warm_cold(Path(tmp), args.repeats)
        print(json.dumps(report["workflow_warm_vs_cold"]), file=sys.stderr, flush=True)
        if not args.skip_switches:
            report["speed_switches_cpu"] = bench_switches(root, max(2, args.repeats // 2), args.mid_steps)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

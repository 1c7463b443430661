"""The dataset job on a real local Ray cluster (not Ray's local mode): the same captions as the
local engine, a killed worker retried, a killed driver resumed exactly once, manifests that
round-trip, and the message a user without the extra gets.

CI installs Ray (requirements-test.txt): there a missing Ray fails these tests instead of
skipping them.
"""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from llm_assist.core.captioning import CaptionSettings
from llm_assist.core.dataset_job import CaptionJob
from llm_assist.core.dataset_manifest import Manifest
from llm_assist.core.keywords.statistical import extract

if not os.environ.get("CI"):
    pytest.importorskip("ray", reason="the ray extra is not installed (pip install 'llm-assist[ray]')")

N_IMAGES = 14
SETTINGS = CaptionSettings(max_new_tokens=12, batch_size=4)


def _write_images(folder: Path, n: int = N_IMAGES) -> list[Path]:
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    paths = []
    for i in range(n):
        path = folder / f"img{i:02d}.png"
        Image.fromarray(rng.integers(0, 255, (40 + i, 56, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def ray_cluster():
    """A real local Ray cluster with 2 CPUs for this module (processes of its own, not local mode)."""
    import ray

    temp_dir = tempfile.mkdtemp(prefix="llma-ray-", dir="/tmp")  # Ray's socket paths must stay short
    context = ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _temp_dir=temp_dir,
                       runtime_env={"env_vars": {"HF_HUB_OFFLINE": "1"}})
    yield context.address_info["address"]
    ray.shutdown()


@pytest.fixture()
def job(tiny_models):
    return CaptionJob(model="tiny-blip", models_root=str(tiny_models), settings=SETTINGS)


def _local_captions(paths, tiny_models, out_dir):
    from llm_assist.core import captioning, host
    from llm_assist.core.captioning_folder import caption_files
    from llm_assist.core.hf_loading import LoadOptions

    previous = host.set_models_root(tiny_models)
    try:
        captioner = captioning.load_captioner("tiny-blip", LoadOptions(keep_loaded=True))
        caption_files(captioner, paths, SETTINGS, output_dir=str(out_dir))
    finally:
        host.set_models_root(previous)
    return {p.name: (out_dir / f"{p.stem}.txt").read_text(encoding="utf-8") for p in paths}


def test_ray_engine_equals_local_engine_and_manifests_round_trip(tmp_path, tiny_models, job, ray_cluster):
    from llm_assist.core.dataset_run import RayOptions, run

    paths = _write_images(tmp_path / "images")
    local = _local_captions(paths, tiny_models, tmp_path / "local")

    progress = []
    jsonl = Manifest(tmp_path / "m.jsonl")
    result = run(paths, job, RayOptions(workers=2, batch_size=4), manifest=jsonl, output_dir=str(tmp_path / "ray"),
                 on_progress=lambda done, total: progress.append((done, total)))
    assert result.captioned == N_IMAGES and result.already == 0
    assert progress[-1] == (N_IMAGES, N_IMAGES) and [d for d, _ in progress] == sorted(d for d, _ in progress)
    ray_captions = {p.name: (tmp_path / "ray" / f"{p.stem}.txt").read_text(encoding="utf-8") for p in paths}
    assert ray_captions == local

    rows = jsonl.rows()
    assert sorted(r["path"] for r in rows) == sorted(str(p) for p in paths)  # each image once
    for row in rows:
        name = Path(row["path"]).name
        assert row["caption"] == local[name]
        assert row["keywords"] == [[t, s] for t, s in extract(row["caption"], top_k=job.keywords_top_k)]
        assert row["model"] == "tiny-blip" and row["seed"] == 0 and row["seconds"] > 0

    # the Parquet manifest holds the same rows; with --no-sidecars it is the only output
    parquet = Manifest(tmp_path / "m.parquet")
    run(paths, job, RayOptions(workers=1, batch_size=8), manifest=parquet, sidecars=False)
    assert not any(p.with_suffix(".txt").exists() for p in paths)
    by_path = {r["path"]: r for r in rows}
    for row in parquet.rows():
        assert row["caption"] == by_path[row["path"]]["caption"]
        assert row["keywords"] == by_path[row["path"]]["keywords"]
    assert len(parquet.rows()) == N_IMAGES
    # a rerun finds everything done in the manifest
    again = run(paths, job, RayOptions(workers=1, batch_size=8), manifest=parquet, sidecars=False)
    assert again.captioned == 0 and again.already == N_IMAGES and len(parquet.rows()) == N_IMAGES


def _map_workers() -> list[int]:
    out = subprocess.run(["ps", "-eo", "pid=,args="], capture_output=True, text=True, check=True).stdout
    return [int(line.split(None, 1)[0]) for line in out.splitlines()
            if "ray::MapWorker(MapBatches(CaptionWorker))" in line]


def test_a_killed_worker_is_restarted_and_its_batch_retried(tmp_path, job, ray_cluster):
    from llm_assist.core.dataset_run import RayOptions, run

    paths = _write_images(tmp_path / "images")
    killed = []

    def kill_the_worker(done, total):
        if not killed:  # the one worker holds the next batches now: kill it mid-work
            pids = _map_workers()
            assert pids, "no Ray map worker process found"
            for pid in pids:
                os.kill(pid, signal.SIGKILL)
            killed.extend(pids)

    manifest = Manifest(tmp_path / "m.jsonl")
    result = run(paths, job, RayOptions(workers=1, batch_size=2), manifest=manifest, on_progress=kill_the_worker)
    assert killed
    assert result.captioned == N_IMAGES
    listed = [r["path"] for r in manifest.rows()]
    assert sorted(listed) == sorted(str(p) for p in paths)  # complete, and no image twice
    assert all(p.with_suffix(".txt").read_text(encoding="utf-8") for p in paths)


def _cli(*args, **kw):
    return subprocess.Popen([sys.executable, "-m", "llm_assist", "caption", *map(str, args)],
                            env=dict(os.environ, HF_HUB_OFFLINE="1"), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **kw)


def test_a_killed_driver_resumes_without_duplicates_or_partial_files(tmp_path, tiny_models, ray_cluster):
    n = 40
    paths = _write_images(tmp_path / "images", n=n)
    manifest_path = tmp_path / "m.jsonl"
    args = [tmp_path / "images", "--model", "tiny-blip", "--models", tiny_models, "--engine", "ray",
            "--address", ray_cluster, "--workers", "1", "--batch-size", "2", "--max-new-tokens", "12",
            "--manifest", manifest_path]
    driver = _cli(*args)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and driver.poll() is None:
        if manifest_path.exists() and manifest_path.read_text(encoding="utf-8").count("\n") >= 1:
            break
        time.sleep(0.02)
    # hold the worker so the job cannot finish before the kill, however fast the machine is
    stopped = _map_workers()
    for pid in stopped:
        os.kill(pid, signal.SIGSTOP)
    try:
        assert driver.poll() is None, driver.communicate()[0][-3000:]
        driver.send_signal(signal.SIGKILL)
        driver.wait(30)
    finally:
        for pid in stopped:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
    first = Manifest(manifest_path).rows()
    assert 1 <= len(first) < n

    rerun = _cli(*args)
    output = rerun.communicate(timeout=300)[0]
    assert rerun.returncode == 0, output[-3000:]
    assert f"{len(first)} skipped" in output
    rows = Manifest(manifest_path).rows()
    assert sorted(r["path"] for r in rows) == sorted(str(p) for p in paths)  # each image once
    for p in paths:
        assert p.with_suffix(".txt").read_text(encoding="utf-8").strip()
    leftovers = [f for f in (tmp_path / "images").iterdir() if f.name.startswith(".") or "tmp" in f.suffix]
    assert not leftovers


def test_without_ray_the_engine_says_how_to_install_it(tmp_path, tiny_models):
    _write_images(tmp_path / "images", n=2)
    code = ("import sys; sys.modules['ray'] = None; from llm_assist.cli import main; "
            f"sys.exit(main(['caption', {str(tmp_path / 'images')!r}, '--model', 'tiny-blip', "
            f"'--models', {str(tiny_models)!r}, '--engine', 'ray']))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            env=dict(os.environ, HF_HUB_OFFLINE="1"))
    assert result.returncode == 1
    assert "pip install 'llm-assist[ray]'" in result.stderr
    assert "Traceback" not in result.stderr
    assert not list((tmp_path / "images").glob("*.txt"))


def test_local_engine_with_a_manifest_matches_the_ray_rows(tmp_path, tiny_models, job):
    """--engine local --manifest runs the same driver in-process: same rows, no Ray needed."""
    from llm_assist.core.dataset_run import RayOptions, run

    paths = _write_images(tmp_path / "images", n=5)
    manifest = Manifest(tmp_path / "local.jsonl")
    result = run(paths, job, RayOptions(batch_size=4), engine="local", manifest=manifest)
    assert result.captioned == 5
    rows = manifest.rows()
    assert [r["path"] for r in rows] == [str(p) for p in paths]
    assert all(r["caption"] == Path(r["path"]).with_suffix(".txt").read_text(encoding="utf-8") for r in rows)


def test_manifest_repairs_a_torn_last_line(tmp_path):
    from llm_assist.core.dataset_manifest import ManifestRow

    manifest = Manifest(tmp_path / "m.jsonl")
    manifest.append([ManifestRow("a.png", "a cat", (("cat", 1.0),), "m", 0, 0.1)])
    with open(manifest.path, "a", encoding="utf-8") as handle:
        handle.write('{"path": "b.png", "capt')  # a kill in the middle of a write
    assert Manifest(manifest.path).done() == {"a.png"}
    assert manifest.path.read_text(encoding="utf-8").endswith("\n")
    manifest.append([ManifestRow("b.png", "a dog", (), "m", 0, 0.1)])
    assert [json.loads(line)["path"] for line in manifest.path.read_text(encoding="utf-8").splitlines()] == ["a.png", "b.png"]


def test_ray_workers_caption_through_a_model_server_like_the_local_engine(tmp_path, ray_cluster):
    """--engine ray --server: each worker rebuilds the server captioner from the job's settings."""
    from server_support import ImageServer

    from llm_assist.core.dataset_run import RayOptions, run
    from llm_assist.core.model_server import ServerOptions

    paths = _write_images(tmp_path / "images", n=6)
    server = ImageServer()
    try:
        job = CaptionJob(server=server.url, server_model="vision-test", settings=SETTINGS,
                         server_options=ServerOptions(max_side=32, timeout=60.0, max_retries=1))
        local = run(paths, job, RayOptions(batch_size=4), engine="local", manifest=Manifest(tmp_path / "local.jsonl"),
                    sidecars=False)
        remote = run(paths, job, RayOptions(workers=2, batch_size=2), manifest=Manifest(tmp_path / "ray.jsonl"),
                     sidecars=False)
    finally:
        server.close()
    assert local.captioned == remote.captioned == 6
    local_rows = {r["path"]: r["caption"] for r in Manifest(tmp_path / "local.jsonl").rows()}
    ray_rows = {r["path"]: r["caption"] for r in Manifest(tmp_path / "ray.jsonl").rows()}
    assert ray_rows == local_rows and all(c.startswith("image ") for c in ray_rows.values())
    assert len(server.requests) == 12  # one request per image per engine

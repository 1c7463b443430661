"""The dataset side of ``caption``: ``--engine ray`` and ``--manifest`` (see core/dataset_run.py).

    caption SOURCE --model NAME --engine ray [--address ADDR] [--workers N] [--gpus-per-worker G]
                   [--batch-size B] [--manifest out.jsonl|out.parquet] [--no-sidecars]

Without ``--address`` (or ``$RAY_ADDRESS``) a local Ray is started and stopped again; with it
the job joins that cluster. One progress bar covers the whole job.
"""
from __future__ import annotations

import logging
import sys

log = logging.getLogger(__name__)


def add_engine_arguments(p) -> None:
    p.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="local: this process (default); ray: a Ray actor pool, one captioner per worker "
                        "(needs the ray extra: pip install 'llm-assist[ray]')")
    p.add_argument("--address", default="",
                   help="Ray cluster to join (default: $RAY_ADDRESS, else start a local Ray)")
    p.add_argument("--workers", type=int, default=1, help="Ray workers, each loading the captioner once (default 1)")
    p.add_argument("--gpus-per-worker", type=float, default=0.0,
                   help="GPUs each Ray worker reserves (default 0; 1 = one worker per GPU, 0.5 = two per GPU)")
    p.add_argument("--cpus-per-worker", type=float, default=1.0, help="CPUs each Ray worker reserves (default 1)")
    p.add_argument("--manifest", default="",
                   help="also write one manifest of path, caption, keywords with scores, model, seed and seconds: "
                        "NAME.jsonl (a file) or NAME.parquet (a folder of parts); a rerun skips what it holds")
    p.add_argument("--no-sidecars", action="store_true",
                   help="write only the manifest, no .txt files (for images on storage this machine cannot write)")
    p.add_argument("--keywords-top-k", type=int, default=8, help="keywords per image in the manifest (default 8)")


def command(args, paths, options, settings) -> int:
    """Run the job through core.dataset_run and print its summary."""
    from ..core import host
    from ..core.dataset_job import CaptionJob
    from ..core.dataset_manifest import Manifest
    from ..core.dataset_run import RayOptions, require_ray

    if args.engine == "ray":
        require_ray()  # before anything else, so a missing extra is the first thing said
    server_options = None
    if args.server:
        from .caption_server import server_captioner, server_options as make_server_options

        server_options = make_server_options(args)
        server_captioner(args)  # reachable, key accepted, model served: checked once, before any worker starts
    job = CaptionJob(model="" if args.server else args.model, server=args.server,
                     server_model=args.model if args.server else "", server_options=server_options,
                     models_root=str(host.models_root().resolve()), device=options.device, dtype=options.dtype,
                     quantization=options.quantization, allow_download=options.allow_download, settings=settings,
                     keywords_top_k=args.keywords_top_k)
    ray_options = RayOptions(address=args.address, workers=args.workers, cpus_per_worker=args.cpus_per_worker,
                             gpus_per_worker=args.gpus_per_worker, batch_size=args.batch_size)
    manifest = Manifest(args.manifest) if args.manifest else None
    if args.server:
        from .caption_server import server_grant

        with server_grant(args.server):
            return _run(args, paths, job, ray_options, manifest)
    return _run(args, paths, job, ray_options, manifest)


def _run(args, paths, job, ray_options, manifest) -> int:
    from ..core import host
    from ..core.dataset_run import run
    from ..core.image_folder import normalize_mode
    from .caption import _Bar

    log.info("captioning %d images from %s with %s on the %s engine", len(paths), args.folder, job.label(), args.engine)
    if not logging.getLogger().isEnabledFor(logging.DEBUG):
        logging.getLogger(host.__name__).setLevel(logging.WARNING)
    try:
        result = run(paths, job, ray_options, engine=args.engine, manifest=manifest, sidecars=not args.no_sidecars,
                     mode=normalize_mode(args.mode), output_dir=args.output, prefix=args.prefix, suffix=args.suffix,
                     on_progress=_Bar())
    except (KeyboardInterrupt, *host.interrupt_exception_types()):
        sys.stderr.write("\n")
        print("interrupted: the workers are released and everything written is whole; "
              "run the same command again to resume")
        return 130
    print(result.summary())
    return 0

"""GPU benchmark of the draw stage's speed switches (one prepared script; not run in CI).

SD1.5-size pipeline built from its real architecture config with random weights (speed does not
depend on trained values; nothing is downloaded), 512x512, fp16, 20 steps, batch 1 and 4.
For each arm: seconds per image, steps/s, peak VRAM. Prints one JSON table.

    python bench/gpu.py [--steps 20] [--size 512] [--batches 1 4] [--arm-timeout 240]
    python bench/gpu.py --families [sd1 sdxl sd3 flux flux2 qwen-image z-image chroma sana]
        (every diffusion family at its native size and default steps: bench/gpu_families.py)

Needs only torch, diffusers, transformers. Uses the pack's switches when it is importable,
else applies them directly. Each arm runs in a try/except with a wall-clock budget.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

UNET = dict(
    sample_size=64, in_channels=4, out_channels=4, layers_per_block=2, block_out_channels=(320, 640, 1280, 1280),
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    cross_attention_dim=768, attention_head_dim=8, norm_num_groups=32,
)
VAE = dict(
    in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(128, 256, 512, 512), layers_per_block=2,
    down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4, sample_size=512,
    norm_num_groups=32, scaling_factor=0.18215,
)
CLIP = dict(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
            max_position_embeddings=77, hidden_act="quick_gelu", projection_dim=768)
SCHED = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
             steps_offset=1, prediction_type="epsilon", timestep_spacing="leading")


def build(dtype, device):
    import torch
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(0)
    with torch.device(device):
        unet = UNet2DConditionModel(**UNET).to(dtype)
        vae = AutoencoderKL(**VAE).to(dtype)
        te = CLIPTextModel(CLIPTextConfig(**CLIP)).to(dtype)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=te, tokenizer=None, unet=unet,
                                   scheduler=EulerDiscreteScheduler(**SCHED), safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def apply(pipe, arm, device):
    try:
        from llm_assist.core.diffusion.speed import SpeedOptions, apply_speed  # noqa: PLC0415

        if arm in SpeedOptions.__dataclass_fields__ and arm != "step_cache_interval":
            apply_speed(pipe, SpeedOptions(**{arm: True}), device)
            return
    except ImportError:
        pass
    import torch

    if arm == "attention_slicing":
        pipe.enable_attention_slicing()
    elif arm == "vae_slicing":
        pipe.vae.enable_slicing()
    elif arm == "vae_tiling":
        pipe.vae.enable_tiling()
    elif arm == "channels_last":
        pipe.unet.to(memory_format=torch.channels_last)
    elif arm == "torch_compile":
        pipe.unet.compile()
    elif arm == "cpu_offload":
        pipe.enable_model_cpu_offload(device=device)


def run_arm(arm, batch, args, dtype, device):
    import torch

    pipe = build(dtype, "cpu" if arm == "cpu_offload" else device)
    helper = None
    if arm.startswith("step_cache"):
        from DeepCache import DeepCacheSDHelper

        helper = DeepCacheSDHelper(pipe=pipe)
        helper.set_params(cache_interval=3, cache_branch_id=0)
        helper.enable()
    elif arm != "baseline":
        apply(pipe, arm, device)
    pe = torch.randn(batch, 77, 768, dtype=dtype, device=device)

    def call():
        return pipe(prompt_embeds=pe, negative_prompt_embeds=torch.zeros_like(pe), num_inference_steps=args.steps,
                    height=args.size, width=args.size, guidance_scale=7.0, output_type="np",
                    generator=torch.Generator("cpu").manual_seed(0))

    start = time.perf_counter()
    call()  # warm-up (compile happens here)
    warm_s = time.perf_counter() - start
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    times = []
    while len(times) < args.repeats and time.perf_counter() - start < args.arm_timeout:
        t = time.perf_counter()
        call()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    if helper is not None:
        helper.disable()
    best = min(times) if times else float("nan")
    result = {"arm": arm, "batch": batch, "s_per_image": best / batch, "steps_per_s": args.steps / best,
              "peak_vram_gib": torch.cuda.max_memory_allocated() / 2**30, "first_call_s": warm_s, "runs": len(times)}
    del pipe, pe
    gc.collect()
    torch.cuda.empty_cache()
    return result


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if "--families" in argv:  # every diffusion family at its native size (bench/gpu_families.py)
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from gpu_families import main as families_main

        return families_main(argv)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--arm-timeout", type=float, default=240.0)
    parser.add_argument("--arms", nargs="+", default=["baseline", "attention_slicing", "vae_slicing", "vae_tiling",
                                                      "channels_last", "torch_compile", "cpu_offload", "step_cache_3"])
    args = parser.parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        print(json.dumps({"error": "no CUDA device"}))
        return 1
    device, dtype = torch.device("cuda"), torch.float16
    table = []
    for batch in args.batches:
        for arm in args.arms:
            try:
                row = run_arm(arm, batch, args, dtype, device)
            except Exception as exc:  # noqa: BLE001 - one arm failing must not lose the table
                row = {"arm": arm, "batch": batch, "error": f"{type(exc).__name__}: {str(exc)[:300]}"}
                gc.collect()
                torch.cuda.empty_cache()
            table.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    print(json.dumps({"device": torch.cuda.get_device_name(0), "dtype": "fp16", "size": args.size,
                      "steps": args.steps, "table": table}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

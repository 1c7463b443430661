"""GPU benchmark of Generate for every diffusion family at its native resolution (not run in CI).

    python bench/gpu.py --families [sd1 sdxl sd3 flux flux2 qwen-image z-image chroma sana]
    python bench/gpu_families.py [--families ...] [--steps N] [--dtype bf16] [--model flux=/models/FLUX.1-dev]

Per family: the pack's Generate (core.diffusion.run) and the raw diffusers call, each timed warm
after one warm-up run, at the family's native size and default steps (``--steps`` overrides), batch
1; seconds per image, seconds per step, node/raw ratio, peak VRAM. Prints one JSON table.

Weights: ``--model FAMILY=FOLDER`` loads a real diffusers folder through the pack. Otherwise the
pipeline is built with random weights (speed does not depend on trained values; nothing is
downloaded): the denoiser and VAE at their real size (diffusers' class defaults, which are the
released configs, or the config written below), and the text encoders as 2-layer stand-ins of
the real width (the real T5-XXL / Qwen / Gemma encoders run once per image, not per step: their
time is not in these numbers). FLUX.2 is measured as Klein with a Klein-4B-like transformer
(the config below is an approximation, marked in the output). Tokenizers: the offline tiny ones.
Denoiser sizes built (checked on the meta device): SD 3.5 Large 8.06B, FLUX.1 [dev] 11.90B, FLUX.2
Klein-like 3.88B, Qwen-Image 20.43B, Z-Image 6.15B, Chroma 8.90B, Sana 1.60B parameters.
``--tiny`` runs the same loop on the tiny pipelines at 64 px (a CPU check of the script only).
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

FAMILIES = ("sd1", "sdxl", "sd3", "flux", "flux2", "qwen-image", "z-image", "chroma", "sana")
FLUX_VAE = dict(latent_channels=16, block_out_channels=(128, 256, 512, 512), layers_per_block=2,
                down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                use_quant_conv=False, use_post_quant_conv=False, shift_factor=0.1159, scaling_factor=0.3611)


def _clip(tok, hidden, proj=None, layers=2):
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    config = CLIPTextConfig(vocab_size=len(tok), hidden_size=hidden, intermediate_size=4 * hidden,
                            num_hidden_layers=layers, num_attention_heads=max(1, hidden // 64),
                            max_position_embeddings=77, projection_dim=proj or hidden,
                            bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    return (CLIPTextModelWithProjection if proj else CLIPTextModel)(config).eval()


def _t5(tok, d_model=4096):
    from transformers import T5Config, T5EncoderModel

    return T5EncoderModel(T5Config(vocab_size=len(tok), d_model=d_model, d_kv=64, d_ff=10240, num_layers=2,
                                   num_heads=64, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)).eval()


def _qwen3(tok, hidden, layers=2):
    from transformers import Qwen3Config, Qwen3ForCausalLM

    return Qwen3ForCausalLM(Qwen3Config(vocab_size=len(tok), hidden_size=hidden, intermediate_size=hidden,
                                        num_hidden_layers=layers, num_attention_heads=max(1, hidden // 128),
                                        num_key_value_heads=max(1, hidden // 128), head_dim=128,
                                        max_position_embeddings=4096)).eval()


def build(family: str):
    """(pipeline, variant, note) with random weights at real denoiser/VAE size."""
    import diffusers as d

    from llm_assist.core import tiny_families as tf
    from llm_assist.core import tiny_models as tm

    flow = d.FlowMatchEulerDiscreteScheduler(shift=3.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15)
    clip, t5 = tm.clip_tokenizer(), tf.t5_tokenizer()
    if family == "sd1":
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from gpu import CLIP, SCHED, UNET, VAE  # the SD1.5 architecture configs

        return d.StableDiffusionPipeline(
            vae=d.AutoencoderKL(**VAE), text_encoder=_clip(clip, CLIP["hidden_size"]), tokenizer=clip,
            unet=d.UNet2DConditionModel(**UNET), scheduler=d.EulerDiscreteScheduler(**SCHED), safety_checker=None,
            feature_extractor=None, requires_safety_checker=False), "standard", ""
    if family == "sdxl":
        unet = d.UNet2DConditionModel(
            sample_size=128, layers_per_block=2, block_out_channels=(320, 640, 1280),
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
            transformer_layers_per_block=(1, 2, 10), attention_head_dim=(5, 10, 20), use_linear_projection=True,
            cross_attention_dim=2048, addition_embed_type="text_time", addition_time_embed_dim=256,
            projection_class_embeddings_input_dim=2816)
        vae = d.AutoencoderKL(**{**FLUX_VAE, "latent_channels": 4, "use_quant_conv": True, "use_post_quant_conv": True,
                                 "shift_factor": None, "scaling_factor": 0.13025})
        return d.StableDiffusionXLPipeline(
            vae=vae, text_encoder=_clip(clip, 768), text_encoder_2=_clip(clip, 1280, proj=1280), tokenizer=clip,
            tokenizer_2=tm.clip_tokenizer(), unet=unet, add_watermarker=False,
            scheduler=d.EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                               steps_offset=1, timestep_spacing="leading")), "standard", ""
    if family == "sd3":
        transformer = d.SD3Transformer2DModel(num_layers=38, attention_head_dim=64, num_attention_heads=38,
                                              caption_projection_dim=2432, pos_embed_max_size=192)  # SD 3.5 Large
        return d.StableDiffusion3Pipeline(
            transformer=transformer, vae=d.AutoencoderKL(**{**FLUX_VAE, "shift_factor": 0.0609, "scaling_factor": 1.5305}),
            text_encoder=_clip(clip, 768, proj=768), tokenizer=clip, text_encoder_2=_clip(clip, 1280, proj=1280),
            tokenizer_2=tm.clip_tokenizer(), text_encoder_3=_t5(t5), tokenizer_3=t5,
            scheduler=d.FlowMatchEulerDiscreteScheduler(shift=3.0)), "standard", "SD 3.5 Large transformer"
    if family == "flux":
        return d.FluxPipeline(transformer=d.FluxTransformer2DModel(guidance_embeds=True), vae=d.AutoencoderKL(**FLUX_VAE),
                              text_encoder=_clip(clip, 768), tokenizer=clip, text_encoder_2=_t5(t5), tokenizer_2=t5,
                              scheduler=flow), "standard", "FLUX.1 [dev] transformer"
    if family == "chroma":
        return d.ChromaPipeline(transformer=d.ChromaTransformer2DModel(), vae=d.AutoencoderKL(**FLUX_VAE),
                                text_encoder=_t5(t5), tokenizer=t5, scheduler=flow), "standard", ""
    qwen = tf.qwen_tokenizer()
    if family == "flux2":
        transformer = d.Flux2Transformer2DModel(num_layers=5, num_single_layers=20, num_attention_heads=24,
                                                joint_attention_dim=3 * 2560, guidance_embeds=False)
        vae = d.AutoencoderKLFlux2()
        return d.Flux2KleinPipeline(scheduler=flow, vae=vae, text_encoder=_qwen3(qwen, 2560, layers=28), tokenizer=qwen,
                                    transformer=transformer, is_distilled=True), "klein", "Klein-4B-like config (approximate)"
    if family == "qwen-image":
        from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

        config = Qwen2_5_VLConfig(
            text_config=dict(hidden_size=3584, intermediate_size=3584, num_hidden_layers=2, num_attention_heads=28,
                             num_key_value_heads=4, vocab_size=len(qwen),
                             rope_scaling={"mrope_section": [16, 24, 24], "rope_type": "default", "type": "default"}),
            vision_config=dict(depth=1, hidden_size=64, intermediate_size=64, num_heads=2, out_hidden_size=3584),
            vocab_size=len(qwen))
        return d.QwenImagePipeline(transformer=d.QwenImageTransformer2DModel(), vae=d.AutoencoderKLQwenImage(),
                                   scheduler=flow, text_encoder=Qwen2_5_VLForConditionalGeneration(config).eval(),
                                   tokenizer=qwen), "standard", ""
    if family == "z-image":
        from transformers import Qwen3Model

        encoder = Qwen3Model(_qwen3(qwen, 2560).config)
        return d.ZImagePipeline(transformer=d.ZImageTransformer2DModel(), vae=d.AutoencoderKL(**FLUX_VAE),
                                scheduler=d.FlowMatchEulerDiscreteScheduler(shift=3.0), text_encoder=encoder.eval(),
                                tokenizer=qwen), "standard", ""
    if family == "sana":
        from transformers import Gemma2Config, Gemma2Model

        gemma = tf.gemma_tokenizer()
        encoder = Gemma2Model(Gemma2Config(vocab_size=len(gemma), hidden_size=2304, intermediate_size=2304,
                                           num_hidden_layers=2, num_attention_heads=8, num_key_value_heads=4,
                                           head_dim=256)).eval()
        return d.SanaPipeline(tokenizer=gemma, text_encoder=encoder, vae=d.AutoencoderDC(),
                              transformer=d.SanaTransformer2DModel(), scheduler=d.FlowMatchEulerDiscreteScheduler(shift=3.0)), \
            "standard", "Sana 1.6B transformer, DC-AE f32"
    raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")


def build_tiny(family: str):
    from llm_assist.core import tiny_families as tf
    from llm_assist.core import tiny_models as tm

    builders = {"sd1": lambda: tm.sd_pipelines()[0], "sdxl": tf.sdxl_pipeline, "sd3": tf.sd3_pipeline,
                "flux": lambda: tf.flux_pipelines()[0], "flux2": tf.flux2_klein_pipeline,
                "qwen-image": tf.qwen_image_pipeline, "z-image": tf.z_image_pipeline, "chroma": tf.chroma_pipeline,
                "sana": tf.sana_pipeline}
    return builders[family](), "klein" if family == "flux2" else "standard", "tiny"


def bench_family(family: str, args, device, dtype) -> dict:
    import torch

    from llm_assist.core.diffusion import families as F
    from llm_assist.core.diffusion.loading import PipelineHandle, load_pipeline
    from llm_assist.core.diffusion.run import GenerateRequest, family_kwargs, generators, run
    from llm_assist.core.hf_loading import LoadOptions

    row: dict = {"family": family}
    try:
        if family in args.model:
            handle = load_pipeline(args.model[family], options=LoadOptions(device=str(device), dtype=args.dtype))
            row["weights"] = args.model[family]
        else:
            previous = torch.get_default_dtype()
            torch.set_default_dtype(dtype)
            try:
                with torch.device(device):
                    pipe, variant, note = build_tiny(family) if args.tiny else build(family)
            finally:
                torch.set_default_dtype(previous)
            pipe.to(device, dtype)
            pipe.set_progress_bar_config(disable=True)
            handle = PipelineHandle(pipe=pipe, name=f"random-{family}", source="", device=device, dtype=dtype,
                                    family=F.family_of(pipe), variant=variant)
            row["weights"] = "random" + (f" ({note})" if note else "")
        steps = args.steps or F.defaults(handle.family, handle.variant)[0]
        width, height = (64, 64) if args.tiny else F.spec(handle.family).native
        req = GenerateRequest(positive="a photo of a red fox in the snow at golden hour, close-up", seed=0,
                              steps=steps, cfg=-1.0, width=width, height=height)
        row.update(size=f"{width}x{height}", steps=steps)
        timings = {}
        for arm in ("node", "raw"):
            for i in range(2):  # warm-up, then timed
                torch.cuda.synchronize() if device.type == "cuda" else None
                torch.cuda.reset_peak_memory_stats() if device.type == "cuda" else None
                start = time.perf_counter()
                if arm == "node":
                    run(handle, "txt2img", req)
                else:
                    from llm_assist.core.diffusion.run import resolve_defaults

                    r = resolve_defaults(handle, req)
                    kwargs = family_kwargs(handle, handle.pipe, r, float(r.cfg), height, width) \
                        if handle.family not in F.SD_FAMILIES else {"prompt": r.positive, "guidance_scale": r.cfg}
                    handle.pipe(**kwargs, height=height, width=width, num_inference_steps=steps,
                                generator=generators(0, 1), output_type="pt")
                torch.cuda.synchronize() if device.type == "cuda" else None
                timings[arm] = time.perf_counter() - start
                if i == 1 and arm == "node" and device.type == "cuda":
                    row["peak_vram_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        row.update(node_s=round(timings["node"], 3), raw_s=round(timings["raw"], 3),
                   s_per_step=round(timings["node"] / steps, 4), node_over_raw=round(timings["node"] / timings["raw"], 3))
    except Exception as exc:  # noqa: BLE001 - one family failing must not lose the others' numbers
        row["error"] = f"{type(exc).__name__}: {exc}"[:400]
    finally:
        handle = pipe = None
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return row


def main(argv=None) -> int:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", nargs="+", default=list(FAMILIES), choices=FAMILIES)
    parser.add_argument("--steps", type=int, default=0, help="0 = each family's default steps")
    parser.add_argument("--dtype", default="bf16", choices=("bf16", "fp16", "fp32"))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--tiny", action="store_true", help="the tiny random pipelines at 64 px: checks the script on a CPU")
    parser.add_argument("--model", action="append", default=[], metavar="FAMILY=FOLDER",
                        help="benchmark a real diffusers folder (name in models/diffusers or a path) for FAMILY")
    args = parser.parse_args(argv)
    args.model = dict(m.split("=", 1) for m in args.model)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[args.dtype]
    device = torch.device(args.device)
    rows = [bench_family(f, args, device, dtype) for f in args.families]
    print(json.dumps({"device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
                      "dtype": args.dtype, "families": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Tiny random-weight pipelines of each diffusion family (SD2, SDXL, SD3, FLUX.1 + Fill + Kontext,
FLUX.2 Klein, Qwen-Image + Edit, Z-Image, Chroma, Sana), offline and byte-reproducible.

Configs follow diffusers' own fast tests (tests/pipelines/<family>/test_*.py, ``get_dummy_components``)
with two changes: VAEs have 4 levels (the real 8x spatial factor, so the real resolution multiples
hold) and every tokenizer is built here from ``tiny_models.corpus()`` (no hub download): byte-level
BPE for CLIP/Qwen, a unigram vocabulary for T5, a character vocabulary with byte fallback for Gemma.
Each builder seeds torch before every module, so the saved bytes do not change between processes.
FLUX.2 is built as FLUX.2 Klein (Qwen3 encoder, 28 tiny layers so its default hidden-state layers
9/18/27 exist); the full FLUX.2 Mistral-3 encoder + Pixtral processor is not built.
"""
from __future__ import annotations

import inspect
import logging
import math
from collections import Counter
from pathlib import Path

from . import tiny_models as tm

log = logging.getLogger(__name__)
_CLIP_TEXT = dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4, projection_dim=32)
_VISION_TOKENS = ["<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]


# --- tokenizers ----------------------------------------------------------------------------
def t5_tokenizer():
    """Unigram T5 tokenizer: the 200 most frequent corpus words (as '▁word') plus single characters."""
    from transformers import T5TokenizerFast

    lines = tm.corpus()
    words = Counter(w for line in lines for w in line.lower().split())
    total = sum(words.values())
    chars = sorted({c for line in lines for c in line.lower() + line.upper()} - {" "})
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -8.0)]
    vocab += [("▁" + w, math.log(c / total)) for w, c in sorted(words.items(), key=lambda kv: (-kv[1], kv[0]))[:200]]
    vocab += [(c, -10.0) for c in chars]
    unique = list({piece: (piece, score) for piece, score in reversed(vocab)}.values())[::-1]
    if "vocab_file" not in inspect.signature(T5TokenizerFast.__init__).parameters:  # transformers 5
        from transformers import T5Tokenizer

        return T5Tokenizer(vocab=unique, extra_ids=0, model_max_length=512)
    # transformers 4.x: the slow T5Tokenizer reads a sentencepiece file; the fast one takes the
    # same unigram model as a tokenizers object (metaspace words, "</s>" appended like T5's)
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors

    backend = Tokenizer(models.Unigram(unique, unk_id=2))
    backend.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁")
    backend.decoder = decoders.Metaspace(replacement="▁")
    backend.post_processor = processors.TemplateProcessing(single="$A </s>", pair="$A </s> $B </s>",
                                                           special_tokens=[("</s>", 1)])
    return T5TokenizerFast(tokenizer_object=backend, extra_ids=0, model_max_length=512)


def gemma_tokenizer():
    """Gemma tokenizer over single characters with byte fallback (no merges)."""
    from transformers import GemmaTokenizer

    vocab = {t: i for i, t in enumerate(["<pad>", "<eos>", "<bos>", "<unk>", "<mask>"])}
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    for c in ["▁"] + sorted({c for line in tm.corpus() for c in line.lower() + line.upper()} - {" "}):
        vocab.setdefault(c, len(vocab))
    return GemmaTokenizer(vocab=vocab, merges=[], model_max_length=8192)


def qwen_tokenizer():
    """tiny_models' Qwen2 tokenizer plus the vision special tokens Qwen-VL encoders name."""
    from transformers import Qwen2Tokenizer

    merges = list(tm._train_merges(340))
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", *_VISION_TOKENS]
    tok = tm.make_tokenizer(Qwen2Tokenizer, tm._bpe_vocab(merges, specials), merges, model_max_length=4096,
                            eos_token="<|im_end|>", pad_token="<|endoftext|>", additional_special_tokens=specials[1:])
    tok.chat_template = tm.CHATML
    return tok


# --- shared modules ------------------------------------------------------------------------
def _vae(seed, latent_channels, cls_name="AutoencoderKL", **kw):
    """4-level (8x) KL VAE with 8 channels per level."""
    import torch
    import diffusers

    torch.manual_seed(seed)
    return getattr(diffusers, cls_name)(
        in_channels=3, out_channels=3, latent_channels=latent_channels, layers_per_block=1,
        block_out_channels=(8, 8, 8, 8), norm_num_groups=4, down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4, sample_size=64, **kw)


def _clip(seed, tok, with_projection=False):
    import torch
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    config = CLIPTextConfig(**_CLIP_TEXT, vocab_size=len(tok), max_position_embeddings=77, bos_token_id=tok.bos_token_id,
                            eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    torch.manual_seed(seed)
    return (CLIPTextModelWithProjection if with_projection else CLIPTextModel)(config).eval()


def _t5(seed, tok, d_model=32):
    import torch
    from transformers import T5Config, T5EncoderModel

    config = T5Config(vocab_size=len(tok), d_model=d_model, d_kv=8, d_ff=37, num_layers=2, num_heads=4,
                      relative_attention_num_buckets=8, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
                      decoder_start_token_id=tok.pad_token_id)
    torch.manual_seed(seed)
    return T5EncoderModel(config).eval()


def _flow_scheduler(**kw):
    from diffusers import FlowMatchEulerDiscreteScheduler

    return FlowMatchEulerDiscreteScheduler(**kw)


# --- builders ------------------------------------------------------------------------------
def sd2_pipeline():
    """SD 2.x layout: linear projections in the UNet, v-prediction scheduler."""
    import torch
    from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline, UNet2DConditionModel

    t2i, _ = tm.sd_pipelines()
    torch.manual_seed(20)
    unet = UNet2DConditionModel(**dict(t2i.unet.config, attention_head_dim=(2, 4), use_linear_projection=True))
    scheduler = EulerDiscreteScheduler.from_config(t2i.scheduler.config, prediction_type="v_prediction")
    return StableDiffusionPipeline(unet=unet, vae=t2i.vae, text_encoder=t2i.text_encoder, tokenizer=t2i.tokenizer,
                                   scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)


def sdxl_pipeline():
    import torch
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel

    tok = tm.clip_tokenizer()
    torch.manual_seed(11)
    unet = UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 64),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4), use_linear_projection=True, addition_embed_type="text_time",
        addition_time_embed_dim=8, transformer_layers_per_block=(1, 1),
        projection_class_embeddings_input_dim=6 * 8 + 32, cross_attention_dim=32 + 32)
    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                       num_train_timesteps=1000, steps_offset=1, timestep_spacing="leading")
    return StableDiffusionXLPipeline(vae=_vae(12, 4), text_encoder=_clip(13, tok), text_encoder_2=_clip(14, tok, True),
                                     tokenizer=tok, tokenizer_2=tm.clip_tokenizer(), unet=unet, scheduler=scheduler,
                                     add_watermarker=False)


def sd3_pipeline():
    import torch
    from diffusers import SD3Transformer2DModel, StableDiffusion3Pipeline

    tok, t5_tok = tm.clip_tokenizer(), t5_tokenizer()
    torch.manual_seed(21)
    transformer = SD3Transformer2DModel(sample_size=8, patch_size=2, in_channels=16, out_channels=16, num_layers=1,
                                        attention_head_dim=8, num_attention_heads=4, caption_projection_dim=32,
                                        joint_attention_dim=64, pooled_projection_dim=64)
    return StableDiffusion3Pipeline(
        transformer=transformer, vae=_vae(22, 16, shift_factor=0.0609, scaling_factor=1.5035),
        text_encoder=_clip(23, tok, True), tokenizer=tok, text_encoder_2=_clip(24, tok, True),
        tokenizer_2=tm.clip_tokenizer(), text_encoder_3=_t5(25, t5_tok, d_model=64), tokenizer_3=t5_tok,
        scheduler=_flow_scheduler(shift=3.0))


def _flux_transformer(seed, in_channels=16, out_channels=None):
    import torch
    from diffusers import FluxTransformer2DModel

    torch.manual_seed(seed)
    out = {} if out_channels is None else {"out_channels": out_channels}  # (no such argument before diffusers 0.32)
    return FluxTransformer2DModel(patch_size=1, in_channels=in_channels, num_layers=1, num_single_layers=1,
                                  attention_head_dim=16, num_attention_heads=2, joint_attention_dim=32,
                                  pooled_projection_dim=32, axes_dims_rope=[4, 4, 8], **out)


def flux_pipelines():
    """(FLUX.1, FLUX.1 Fill, FLUX.1 Kontext) sharing text encoders, tokenizers and VAE; None for a
    variant the installed diffusers lacks (Fill from 0.32, Kontext from 0.35)."""
    import diffusers
    from diffusers import FluxPipeline

    fill, kontext = getattr(diffusers, "FluxFillPipeline", None), getattr(diffusers, "FluxKontextPipeline", None)

    tok, t5_tok = tm.clip_tokenizer(), t5_tokenizer()
    parts = dict(vae=_vae(30, 4, shift_factor=0.1159, scaling_factor=0.3611, use_quant_conv=False,
                          use_post_quant_conv=False),
                 text_encoder=_clip(31, tok), tokenizer=tok, text_encoder_2=_t5(32, t5_tok), tokenizer_2=t5_tok,
                 scheduler=_flow_scheduler(shift=3.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15))
    # Fill: packed latents (4x4) + packed masked-image latents (4x4) + packed 8x8 mask (64x4).
    return (FluxPipeline(transformer=_flux_transformer(33), **parts),
            fill and fill(transformer=_flux_transformer(34, in_channels=16 + 16 + 256, out_channels=16), **parts),
            kontext and kontext(transformer=_flux_transformer(35), **parts))


def flux2_klein_pipeline():
    import torch
    from diffusers import Flux2KleinPipeline, Flux2Transformer2DModel
    from transformers import Qwen3Config, Qwen3ForCausalLM

    tok = qwen_tokenizer()
    torch.manual_seed(40)
    transformer = Flux2Transformer2DModel(patch_size=1, in_channels=16, num_layers=1, num_single_layers=1,
                                          attention_head_dim=16, num_attention_heads=2, joint_attention_dim=48,
                                          timestep_guidance_channels=256, axes_dims_rope=[4, 4, 4, 4],
                                          guidance_embeds=False)
    config = Qwen3Config(hidden_size=16, intermediate_size=16, num_hidden_layers=28, num_attention_heads=2,
                         num_key_value_heads=2, head_dim=8, vocab_size=len(tok), max_position_embeddings=1024,
                         tie_word_embeddings=True, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
    torch.manual_seed(41)
    text_encoder = Qwen3ForCausalLM(config).eval()
    vae = _vae(42, 4, cls_name="AutoencoderKLFlux2", use_quant_conv=False, use_post_quant_conv=False)
    return Flux2KleinPipeline(scheduler=_flow_scheduler(shift=3.0, use_dynamic_shifting=True), vae=vae,
                              text_encoder=text_encoder, tokenizer=tok, transformer=transformer, is_distilled=True)


def qwen_image_pipeline():
    import torch
    from diffusers import AutoencoderKLQwenImage, QwenImagePipeline, QwenImageTransformer2DModel
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    tok = qwen_tokenizer()
    torch.manual_seed(50)
    transformer = QwenImageTransformer2DModel(patch_size=2, in_channels=16, out_channels=4, num_layers=2,
                                              attention_head_dim=16, num_attention_heads=3, joint_attention_dim=16,
                                              guidance_embeds=False, axes_dims_rope=(8, 4, 4))
    torch.manual_seed(51)
    vae = AutoencoderKLQwenImage(base_dim=8, z_dim=4, dim_mult=[1, 2, 2, 2], num_res_blocks=1,
                                 temperal_downsample=[False, True, True], latents_mean=[0.0] * 4, latents_std=[1.0] * 4)
    ids = {name: tok.convert_tokens_to_ids(t) for name, t in (
        ("vision_start_token_id", "<|vision_start|>"), ("vision_end_token_id", "<|vision_end|>"),
        ("image_token_id", "<|image_pad|>"), ("video_token_id", "<|video_pad|>"))}
    config = Qwen2_5_VLConfig(
        text_config=dict(hidden_size=16, intermediate_size=16, num_hidden_layers=2, num_attention_heads=2,
                         num_key_value_heads=2, vocab_size=len(tok), max_position_embeddings=1024,
                         rope_scaling={"mrope_section": [1, 1, 2], "rope_type": "default", "type": "default"},
                         rope_theta=1000000.0, bos_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
                         pad_token_id=tok.pad_token_id),
        vision_config=dict(depth=2, hidden_size=16, intermediate_size=16, num_heads=2, out_hidden_size=16),
        hidden_size=16, vocab_size=len(tok), bos_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, **ids)
    torch.manual_seed(52)
    text_encoder = Qwen2_5_VLForConditionalGeneration(config).eval()
    return QwenImagePipeline(transformer=transformer, vae=vae, scheduler=_flow_scheduler(shift=3.0),
                             text_encoder=text_encoder, tokenizer=tok)


def qwen_image_edit_pipeline():
    """Qwen-Image-Edit on the tiny Qwen-Image modules plus a Qwen2-VL processor (PIL image backend, small
    pixel budget). Built without its video processor (needs torchvision); saved as a Qwen2VLProcessor."""
    from diffusers import QwenImageEditPipeline

    from .diffusion import qwen_processor

    base = qwen_image_pipeline()
    image_processor = qwen_processor.pil_image_processor_class()(min_pixels=56 * 56, max_pixels=112 * 112)
    processor = qwen_processor.image_only(image_processor, base.tokenizer)
    return QwenImageEditPipeline(processor=processor, **base.components)


def _save_qwen_image_edit(folder: Path) -> None:
    """Save the tiny Qwen-Image-Edit with its processor named as the real one's (Qwen2VLProcessor)."""
    import json

    from .diffusion import qwen_processor

    if _save(qwen_image_edit_pipeline, folder) is None:
        return
    index = folder / "model_index.json"
    data = json.loads(index.read_text())
    data["processor"] = qwen_processor.SAVED_CLASS
    index.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    for path in sorted((folder / "processor").glob("*.json")):
        path.write_text(path.read_text().replace('"Qwen2VLImageOnlyProcessor"', '"Qwen2VLProcessor"'))
    # a real folder's video processor config: where torchvision is installed (ComfyUI), transformers
    # loads Qwen2VLProcessor with it and refuses a folder without one (written by hand: building the
    # video processor itself needs torchvision)
    video = {"do_convert_rgb": True, "do_normalize": True, "do_rescale": True, "do_resize": True,
             "do_sample_frames": False, "image_mean": [0.48145466, 0.4578275, 0.40821073],
             "image_std": [0.26862954, 0.26130258, 0.27577711], "max_frames": 768, "max_video_tokens": 128000,
             "merge_size": 2, "min_frames": 4, "patch_size": 14, "resample": 3,
             "rescale_factor": 0.00392156862745098, "return_metadata": False,
             "size": {"longest_edge": 112 * 112, "shortest_edge": 56 * 56}, "temporal_patch_size": 2,
             "video_processor_type": "Qwen2VLVideoProcessor"}
    (folder / "processor" / "video_preprocessor_config.json").write_text(json.dumps(video, indent=2, sort_keys=True) + "\n")


def z_image_pipeline():
    import torch
    from diffusers import ZImagePipeline, ZImageTransformer2DModel
    from transformers import Qwen3Config, Qwen3Model

    tok = qwen_tokenizer()
    torch.manual_seed(60)
    transformer = ZImageTransformer2DModel(
        all_patch_size=(2,), all_f_patch_size=(1,), in_channels=16, dim=32, n_layers=2, n_refiner_layers=1,
        n_heads=2, n_kv_heads=2, norm_eps=1e-5, qk_norm=True, cap_feat_dim=16, rope_theta=256.0, t_scale=1000.0,
        axes_dims=[8, 4, 4], axes_lens=[256, 32, 32])
    with torch.no_grad():  # created with torch.empty: fix them (as diffusers' tests do)
        transformer.x_pad_token.copy_(torch.ones_like(transformer.x_pad_token))
        transformer.cap_pad_token.copy_(torch.ones_like(transformer.cap_pad_token))
    config = Qwen3Config(hidden_size=16, intermediate_size=16, num_hidden_layers=2, num_attention_heads=2,
                         num_key_value_heads=2, head_dim=8, vocab_size=len(tok), max_position_embeddings=1024,
                         pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
    torch.manual_seed(61)
    text_encoder = Qwen3Model(config).eval()
    return ZImagePipeline(transformer=transformer, vae=_vae(62, 16, shift_factor=0.1159, scaling_factor=0.3611),
                          scheduler=_flow_scheduler(shift=3.0), text_encoder=text_encoder, tokenizer=tok)


def chroma_pipeline():
    import torch
    from diffusers import ChromaPipeline, ChromaTransformer2DModel

    t5_tok = t5_tokenizer()
    torch.manual_seed(70)
    transformer = ChromaTransformer2DModel(patch_size=1, in_channels=16, num_layers=1, num_single_layers=1,
                                           attention_head_dim=16, num_attention_heads=2, joint_attention_dim=32,
                                           axes_dims_rope=[4, 4, 8], approximator_hidden_dim=32,
                                           approximator_layers=1, approximator_num_channels=16)
    return ChromaPipeline(scheduler=_flow_scheduler(shift=3.0), vae=_vae(71, 4, shift_factor=0.1159, scaling_factor=0.3611),
                          text_encoder=_t5(72, t5_tok), tokenizer=t5_tok, transformer=transformer)


def sana_pipeline():
    import torch
    from diffusers import AutoencoderDC, SanaPipeline, SanaTransformer2DModel
    from transformers import Gemma2Config, Gemma2Model

    tok = gemma_tokenizer()
    torch.manual_seed(80)
    transformer = SanaTransformer2DModel(patch_size=1, in_channels=4, out_channels=4, num_layers=1,
                                         num_attention_heads=2, attention_head_dim=4, num_cross_attention_heads=2,
                                         cross_attention_head_dim=4, cross_attention_dim=8, caption_channels=8,
                                         sample_size=8)
    torch.manual_seed(81)
    vae = AutoencoderDC(in_channels=3, latent_channels=4, attention_head_dim=2,
                        encoder_block_types=("ResBlock", "EfficientViTBlock"),
                        decoder_block_types=("ResBlock", "EfficientViTBlock"),
                        encoder_block_out_channels=(8, 8), decoder_block_out_channels=(8, 8),
                        encoder_qkv_multiscales=((), (5,)), decoder_qkv_multiscales=((), (5,)),
                        encoder_layers_per_block=(1, 1), decoder_layers_per_block=[1, 1], downsample_block_type="conv",
                        upsample_block_type="interpolate", decoder_norm_types="rms_norm", decoder_act_fns="silu",
                        scaling_factor=0.41407)
    config = Gemma2Config(head_dim=16, hidden_size=8, intermediate_size=64, max_position_embeddings=8192,
                          num_attention_heads=2, num_hidden_layers=1, num_key_value_heads=2, vocab_size=len(tok),
                          pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, bos_token_id=tok.bos_token_id,
                          attn_implementation="eager")
    torch.manual_seed(82)
    text_encoder = Gemma2Model(config).eval()
    return SanaPipeline(tokenizer=tok, text_encoder=text_encoder, vae=vae, transformer=transformer,
                        scheduler=_flow_scheduler(shift=3.0))


# the diffusers pipeline class each tiny family folder is saved as (absent from older diffusers:
# the folder is then not built, and its tests skip naming the class)
PIPELINE_CLASSES = {
    "tiny-sd2": "StableDiffusionPipeline", "tiny-sdxl": "StableDiffusionXLPipeline",
    "tiny-sd3": "StableDiffusion3Pipeline", "tiny-flux": "FluxPipeline", "tiny-flux-fill": "FluxFillPipeline",
    "tiny-flux-kontext": "FluxKontextPipeline", "tiny-flux2-klein": "Flux2KleinPipeline",
    "tiny-qwen-image": "QwenImagePipeline", "tiny-qwen-image-edit": "QwenImageEditPipeline",
    "tiny-z-image": "ZImagePipeline", "tiny-chroma": "ChromaPipeline", "tiny-sana": "SanaPipeline",
}


def missing_class(name: str) -> str:
    """The pipeline class of tiny folder ``name`` when the installed diffusers lacks it, else ""."""
    import diffusers

    cls = PIPELINE_CLASSES.get(name, "")
    return "" if not cls or hasattr(diffusers, cls) else cls


def build_families(out: Path, wanted: set[str]) -> None:
    """Save the wanted ``tiny_models.FAMILY_PARTS`` under ``out/diffusers``.

    A family the installed diffusers/transformers cannot build (older versions: no FLUX.2,
    Qwen-Image, Z-Image... classes, or tokenizers that need files) is skipped with a warning.
    """
    single = {"tiny-sd2": sd2_pipeline, "tiny-sdxl": sdxl_pipeline, "tiny-sd3": sd3_pipeline,
              "tiny-flux2-klein": flux2_klein_pipeline, "tiny-qwen-image": qwen_image_pipeline,
              "tiny-z-image": z_image_pipeline, "tiny-chroma": chroma_pipeline, "tiny-sana": sana_pipeline}
    for name, build in single.items():
        if name in wanted:
            _save(build, out / "diffusers" / name)
    if "tiny-qwen-image-edit" in wanted:
        _save_qwen_image_edit(out / "diffusers" / "tiny-qwen-image-edit")
    flux = ("tiny-flux", "tiny-flux-fill", "tiny-flux-kontext")
    if wanted & set(flux):
        for name, pipe in zip(flux, _save(flux_pipelines, None) or ()):
            if name in wanted and pipe is None:
                log.warning("tiny models: skipping %s: the installed diffusers has no pipeline for it", name)
            elif name in wanted:
                pipe.save_pretrained(out / "diffusers" / name)


def _save(build, folder):
    try:
        pipes = build()
    except (ImportError, AttributeError, TypeError) as exc:
        log.warning("tiny models: skipping %s: the installed diffusers/transformers cannot build it (%s)",
                    build.__name__, exc)
        return None
    if folder is not None:
        pipes.save_pretrained(folder)
    return pipes

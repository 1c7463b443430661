"""Diffusers Stable Diffusion 1.x weights -> one original-LDM single-file state dict.

The layout of SD1.x files in ComfyUI's ``models/checkpoints``: ``model.diffusion_model.*`` (UNet),
``first_stage_model.*`` (VAE) and ``cond_stage_model.transformer.text_model.*`` (CLIP text
encoder). diffusers ships only the other direction, so this inverts its
``convert_ldm_unet_checkpoint`` / ``convert_ldm_vae_checkpoint`` / ``convert_ldm_clip_checkpoint``
(diffusers/loaders/single_file_utils.py); tests/test_tiny_models.py checks the round trip.
Pure key mapping: no torch import here.
"""
from __future__ import annotations

_UNET_RESNET = (("norm1", "in_layers.0"), ("conv1", "in_layers.2"), ("norm2", "out_layers.0"),
                ("conv2", "out_layers.3"), ("time_emb_proj", "emb_layers.1"), ("conv_shortcut", "skip_connection"))
_UNET_FIXED = {"time_embedding.linear_1": "time_embed.0", "time_embedding.linear_2": "time_embed.2",
               "conv_in": "input_blocks.0.0", "conv_norm_out": "out.0", "conv_out": "out.2"}
_VAE_ATTN = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}


def _resnet_leaf(leaf: str) -> str:
    for new, old in _UNET_RESNET:
        if leaf.startswith(new + "."):
            return old + leaf[len(new):]
    return leaf


def unet_to_ldm(state: dict, layers_per_block: int) -> dict:
    """Diffusers UNet2DConditionModel state dict -> LDM ``model.diffusion_model.*`` keys."""
    n, out = layers_per_block + 1, {}
    attn_up = {k.split(".")[1] for k in state if k.startswith("up_blocks.") and ".attentions." in k}
    for key, value in state.items():
        p = key.split(".")
        stem = ".".join(p[:-1])
        if stem in _UNET_FIXED:
            name = f"{_UNET_FIXED[stem]}.{p[-1]}"
        elif p[0] in ("down_blocks", "up_blocks"):
            b, kind, j, leaf = int(p[1]), p[2], int(p[3]), ".".join(p[4:])
            if kind == "downsamplers":
                name = f"input_blocks.{1 + b * n + layers_per_block}.0.op.{p[-1]}"
            elif kind == "upsamplers":
                name = f"output_blocks.{b * n + layers_per_block}.{2 if p[1] in attn_up else 1}.conv.{p[-1]}"
            else:
                block = f"input_blocks.{1 + b * n + j}" if p[0] == "down_blocks" else f"output_blocks.{b * n + j}"
                name = f"{block}.0.{_resnet_leaf(leaf)}" if kind == "resnets" else f"{block}.1.{leaf}"
        elif p[0] == "mid_block":
            kind, j, leaf = p[1], int(p[2]), ".".join(p[3:])
            name = f"middle_block.{2 * j}.{_resnet_leaf(leaf)}" if kind == "resnets" else f"middle_block.1.{leaf}"
        else:
            raise ValueError(f"unet_to_ldm: no LDM name for UNet key {key!r}; only SD1.x-style UNets convert")
        out["model.diffusion_model." + name] = value
    return out


def vae_to_ldm(state: dict, num_levels: int) -> dict:
    """Diffusers AutoencoderKL state dict -> LDM ``first_stage_model.*`` keys."""
    out = {}
    for key, value in state.items():
        p = key.split(".")
        part, rest = p[0], p[1:]
        if part in ("encoder", "decoder") and rest[0] in ("down_blocks", "up_blocks"):
            i = int(rest[1]) if part == "encoder" else num_levels - 1 - int(rest[1])
            level = f"{part}.{'down' if part == 'encoder' else 'up'}.{i}"
            if rest[2] == "resnets":
                name = f"{level}.block.{rest[3]}." + ".".join(rest[4:]).replace("conv_shortcut", "nin_shortcut")
            else:  # downsamplers.0.conv.* / upsamplers.0.conv.*
                name = f"{level}.{'downsample' if part == 'encoder' else 'upsample'}.conv.{rest[-1]}"
        elif part in ("encoder", "decoder") and rest[0] == "mid_block":
            if rest[1] == "resnets":
                name = f"{part}.mid.block_{int(rest[2]) + 1}." + ".".join(rest[3:]).replace(
                    "conv_shortcut", "nin_shortcut")
            else:
                leaf = ".".join(rest[3:-1])
                name = f"{part}.mid.attn_1.{_VAE_ATTN[leaf]}.{rest[-1]}"
                if value.ndim == 2:  # LDM keeps attention projections as 1x1 convs
                    value = value[:, :, None, None]
        else:
            name = key.replace("conv_norm_out", "norm_out")
        out["first_stage_model." + name] = value
    return out


def text_encoder_to_ldm(state: dict) -> dict:
    """CLIPTextModel state dict (flattened in transformers >= 5.6, or not) -> LDM keys."""
    return {"cond_stage_model.transformer.text_model." + k.removeprefix("text_model."): v
            for k, v in state.items() if not k.endswith("position_ids")}


def pipeline_to_ldm(pipe) -> dict:
    """A StableDiffusion(Inpaint)Pipeline as one original-LDM SD1.x state dict."""
    state = unet_to_ldm(pipe.unet.state_dict(), pipe.unet.config.layers_per_block)
    state.update(vae_to_ldm(pipe.vae.state_dict(), len(pipe.vae.config.block_out_channels)))
    state.update(text_encoder_to_ldm(pipe.text_encoder.state_dict()))
    return {k: v.detach().contiguous() for k, v in sorted(state.items())}

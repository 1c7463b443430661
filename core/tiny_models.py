"""Offline tiny random-weight models, laid out like ComfyUI's ``models/`` folder.

``build_tiny_models(DIR)`` (and ``python -m llm_assist make-tiny-models DIR``) writes a few MB
of random-weight models that load through the same public APIs as the real ones (see
docs/ARCHITECTURE.md, "Tiny models layout"). Tokenizers are trained on a small built-in English
corpus, every model is seeded, and the output is byte-identical from run to run. Nothing is
downloaded: heavy imports happen inside the functions, so importing this module is cheap.
"""
from __future__ import annotations

import functools
import hashlib
import json
import logging
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger(__name__)

SD_REPO = "stable-diffusion-v1-5/stable-diffusion-v1-5"
SD_INPAINT_REPO = "stable-diffusion-v1-5/stable-diffusion-inpainting"
# one tiny pipeline per diffusion family (core/tiny_families.py)
FAMILY_PARTS = ("tiny-sd2", "tiny-sdxl", "tiny-sd3", "tiny-flux", "tiny-flux-fill", "tiny-flux-kontext",
                "tiny-flux2-klein", "tiny-qwen-image", "tiny-qwen-image-edit", "tiny-z-image", "tiny-chroma",
                "tiny-sana")
PARTS = ("tiny-blip", "tiny-vit-gpt2", "tiny-qwen2-chat", "tiny-gpt2", "tiny-clip", "tiny-sd15",
         "tiny-sd15-inpaint", "tiny-sd15-pix2pix", "tiny-taesd", "checkpoints", "hf-cache") + FAMILY_PARTS
CHATML = ("{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content']"
          " + '<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}"
          "{{ '<|im_start|>assistant\n' }}{% endif %}")
README = """Random-weight TEST models written by `python -m llm_assist make-tiny-models`.
They load like real models (same classes, configs and file layout as ComfyUI's models/
folder) but produce meaningless captions, text and images. Use them for tests only.
"""

# --- built-in corpus -----------------------------------------------------------------------
_STYLES = ("a photo of ", "a painting of ", "a close up of ", "", "a black and white photo of ",
           "an illustration of ", "a drawing of ")
_SUBJECTS = ("a cat", "a dog", "a small bird", "a red car", "an old man", "a young woman",
             "two children", "a brown horse", "a fox", "a white boat", "a wooden house",
             "a tall tree", "a blue bicycle", "a group of people", "a little girl", "a boy",
             "a mountain", "a yellow flower", "a black cat", "a man in a hat", "a woman with an umbrella",
             "a train", "a street lamp", "a plate of food", "a cup of coffee")
_ACTIONS = ("sitting on", "standing near", "running across", "lying on", "walking along",
            "looking at", "playing in", "parked beside", "floating on", "jumping over", "in front of")
_PLACES = ("a wooden table", "the green grass", "a sandy beach", "a busy street", "a snowy field",
           "the river", "a quiet park", "a stone wall", "the kitchen floor", "a city square",
           "a dark forest", "the blue sky")
_MODS = ("", " at night", " in the rain", " at sunset", " on a sunny day", " in the fog",
         " in winter", ", highly detailed", ", soft light, sharp focus", ", 4k, dramatic lighting")
_EXTRA = ("describe the image in one sentence.", "keywords: cat, table, wood, indoor, cozy",
          "write a detailed prompt for an image generator.", "you are a helpful assistant.",
          "system", "user", "assistant", "blurry, low quality, watermark, text, ugly",
          "the quick brown fox jumps over the lazy dog. 0123456789 (1.2) [x] {y} \"q\" 'a'!?")


def corpus() -> list[str]:
    """A few hundred generic image-caption-like sentences (deterministic)."""
    lines = []
    for i in range(420):
        lines.append(_STYLES[i % len(_STYLES)] + _SUBJECTS[i % len(_SUBJECTS)] + " "
                     + _ACTIONS[(i * 7) % len(_ACTIONS)] + " " + _PLACES[(i * 5) % len(_PLACES)]
                     + _MODS[(i * 3) % len(_MODS)])
    return lines + list(_EXTRA) * 3


# --- tokenizers ----------------------------------------------------------------------------
def _byte_chars() -> list[str]:
    """GPT-2's byte -> printable unicode table, in its canonical order."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for c in cs]


@functools.lru_cache(maxsize=None)
def _train_merges(num_merges: int, clip: bool = False) -> tuple[tuple[str, str], ...]:
    """Byte-level BPE merges learned from ``corpus()``.

    A small pure-Python trainer with a fixed tie-break (count, then the pair itself): the
    ``tokenizers`` trainer breaks ties in hash-map order, so its CLIP-style merges differ from
    process to process.
    """
    from tokenizers import Regex, normalizers, pre_tokenizers

    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False)
    norm = normalizers.Sequence([normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "),
                                 normalizers.Lowercase()])
    split = pre_tokenizers.Split(Regex(r"""'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""),
                                 behavior="removed", invert=True)
    words: Counter[tuple[str, ...]] = Counter()
    for line in corpus():
        if clip:
            pieces = [w for piece, _ in split.pre_tokenize_str(norm.normalize_str(line))
                      for w, _ in byte_level.pre_tokenize_str(piece)]
            words.update(tuple(w[:-1]) + (w[-1] + "</w>",) for w in pieces)
        else:
            words.update(tuple(w) for w, _ in byte_level.pre_tokenize_str(line))
    merges: list[tuple[str, str]] = []
    while len(merges) < num_merges:
        pairs: Counter[tuple[str, str]] = Counter()
        for word, count in words.items():
            for pair in zip(word, word[1:]):
                pairs[pair] += count
        best = min(pairs, key=lambda p: (-pairs[p], p), default=None)
        if best is None or pairs[best] < 2:
            break
        merges.append(best)
        words = Counter({_merge(word, best): count for word, count in words.items()})
    return tuple(merges)


def _merge(word: tuple[str, ...], pair: tuple[str, str]) -> tuple[str, ...]:
    out, i = [], 0
    while i < len(word):
        if word[i:i + 2] == pair:
            out.append(pair[0] + pair[1])
            i += 2
        else:
            out.append(word[i])
            i += 1
    return tuple(out)


def _bpe_vocab(merges, specials, suffix: str = "") -> dict[str, int]:
    tokens = _byte_chars() + ([c + suffix for c in _byte_chars()] if suffix else [])
    tokens += ["".join(m) for m in merges] + list(specials)
    vocab: dict[str, int] = {}
    for t in tokens:
        vocab.setdefault(t, len(vocab))
    return vocab


def make_tokenizer(cls, vocab: dict[str, int], merges, **kwargs):
    """``cls`` built from a vocabulary (and BPE merges): transformers 5 takes them directly,
    transformers 4.x reads them from files (``vocab_file`` / ``merges_file``), written here to a
    temporary folder and read once."""
    import inspect
    import tempfile

    if "vocab_file" not in inspect.signature(cls.__init__).parameters:
        return cls(vocab=vocab, **({} if merges is None else {"merges": list(merges)}), **kwargs)
    with tempfile.TemporaryDirectory() as tmp:
        if merges is None:  # WordPiece: one token per line, in id order
            vocab_file = Path(tmp, "vocab.txt")
            vocab_file.write_text("\n".join(sorted(vocab, key=vocab.get)) + "\n", encoding="utf-8")
            return cls(str(vocab_file), **kwargs)
        vocab_file, merges_file = Path(tmp, "vocab.json"), Path(tmp, "merges.txt")
        vocab_file.write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
        merges_file.write_text("#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n", encoding="utf-8")
        return cls(str(vocab_file), str(merges_file), **kwargs)


def gpt2_tokenizer():
    from transformers import GPT2Tokenizer

    merges = list(_train_merges(340))
    return make_tokenizer(GPT2Tokenizer, _bpe_vocab(merges, ["<|endoftext|>"]), merges, model_max_length=64)


def qwen2_tokenizer():
    from transformers import Qwen2Tokenizer

    merges = list(_train_merges(340))
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tok = make_tokenizer(Qwen2Tokenizer, _bpe_vocab(merges, specials), merges, model_max_length=256,
                     eos_token="<|im_end|>", pad_token="<|endoftext|>", additional_special_tokens=specials[1:])
    tok.chat_template = CHATML
    return tok


def clip_tokenizer():
    from transformers import CLIPTokenizer

    merges = list(_train_merges(400, clip=True))
    vocab = _bpe_vocab(merges, ["<|startoftext|>", "<|endoftext|>"], suffix="</w>")
    return make_tokenizer(CLIPTokenizer, vocab, merges, model_max_length=77)


def bert_tokenizer():
    """WordPiece vocab built directly (the tokenizers WordPiece trainer is not reproducible)."""
    import string

    from transformers import BertTokenizer

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]"]
    chars = string.ascii_lowercase + string.digits + string.punctuation
    words = Counter(w for line in corpus() for w in
                    "".join(c if c.isalnum() else " " for c in line.lower()).split())
    frequent = [w for w, _ in sorted(words.items(), key=lambda kv: (-kv[1], kv[0])) if len(w) > 1]
    tokens = specials + list(chars) + ["##" + c for c in chars] + frequent[:300]
    return make_tokenizer(BertTokenizer, {t: i for i, t in enumerate(dict.fromkeys(tokens))}, None,
                      bos_token="[DEC]", model_max_length=64)


def write_classic_bpe_files(tok, folder: Path) -> None:
    """Also write vocab.json + merges.txt (what hub SD repos ship; transformers 4.x needs them)."""
    if not hasattr(tok, "backend_tokenizer"):  # transformers 4.x slow tokenizer: it has them already
        tok.save_vocabulary(str(folder))
        return
    model = json.loads(tok.backend_tokenizer.to_str())["model"]
    vocab = dict(sorted(model["vocab"].items(), key=lambda kv: kv[1]))
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    merges = [" ".join(m) if isinstance(m, list) else m for m in model["merges"]]
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")


# --- transformers models -------------------------------------------------------------------
_TEXT = dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4)
_VISION = dict(_TEXT, image_size=32, patch_size=8)


def _caption_generation_config(**ids):
    from transformers import GenerationConfig

    # min_new_tokens: a random decoder often emits EOS first, which would give empty captions.
    return GenerationConfig(min_new_tokens=4, max_new_tokens=12, **ids)


def _save(model, tokenizer_or_processor, folder: Path) -> None:
    model.save_pretrained(folder)
    tokenizer_or_processor.save_pretrained(folder)


def build_blip(folder: Path) -> None:
    import torch
    from transformers import BlipConfig, BlipForConditionalGeneration, BlipImageProcessor, BlipProcessor

    tok = bert_tokenizer()
    ids = dict(bos_token_id=tok.convert_tokens_to_ids("[DEC]"), eos_token_id=tok.sep_token_id,
               sep_token_id=tok.sep_token_id, pad_token_id=tok.pad_token_id)
    # BLIP's generate() runs its text decoder, whose generation config comes from text_config.
    text = dict(_TEXT, vocab_size=len(tok), max_position_embeddings=64, min_new_tokens=4, max_new_tokens=12, **ids)
    config = BlipConfig(text_config=text, vision_config=dict(_VISION), projection_dim=16)
    torch.manual_seed(0)
    model = BlipForConditionalGeneration(config).eval()
    model.generation_config = _caption_generation_config(
        bos_token_id=ids["bos_token_id"], eos_token_id=ids["sep_token_id"], pad_token_id=ids["pad_token_id"])
    image_processor = BlipImageProcessor(size={"height": 32, "width": 32})
    _save(model, BlipProcessor(image_processor=image_processor, tokenizer=tok), folder)


def build_vit_gpt2(folder: Path) -> None:
    import torch
    from transformers import (GPT2Config, ViTConfig, ViTImageProcessor, VisionEncoderDecoderConfig,
                              VisionEncoderDecoderModel)

    tok = gpt2_tokenizer()
    eos = tok.eos_token_id
    decoder = GPT2Config(vocab_size=len(tok), n_embd=32, n_layer=2, n_head=4, n_positions=64,
                         add_cross_attention=True, is_decoder=True, bos_token_id=eos, eos_token_id=eos)
    config = VisionEncoderDecoderConfig.from_encoder_decoder_configs(ViTConfig(**_VISION), decoder)
    config.decoder_start_token_id = config.pad_token_id = config.eos_token_id = eos
    torch.manual_seed(1)
    model = VisionEncoderDecoderModel(config=config).eval()
    model.generation_config = _caption_generation_config(
        decoder_start_token_id=eos, bos_token_id=eos, eos_token_id=eos, pad_token_id=eos)
    _save(model, tok, folder)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)


def build_qwen2(folder: Path) -> None:
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    tok = qwen2_tokenizer()
    config = Qwen2Config(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                         tie_word_embeddings=True, bos_token_id=tok.pad_token_id,
                         eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    torch.manual_seed(2)
    model = Qwen2ForCausalLM(config).eval()
    model.generation_config = GenerationConfig(
        bos_token_id=tok.pad_token_id, eos_token_id=[tok.eos_token_id, tok.pad_token_id],
        pad_token_id=tok.pad_token_id, max_new_tokens=32)
    _save(model, tok, folder)


def build_gpt2(folder: Path) -> None:
    import torch
    from transformers import GenerationConfig, GPT2Config, GPT2LMHeadModel

    tok = gpt2_tokenizer()
    eos = tok.eos_token_id
    config = GPT2Config(vocab_size=len(tok), n_embd=32, n_layer=2, n_head=4, n_positions=128,
                        bos_token_id=eos, eos_token_id=eos)
    torch.manual_seed(3)
    model = GPT2LMHeadModel(config).eval()
    model.generation_config = GenerationConfig(bos_token_id=eos, eos_token_id=eos, pad_token_id=eos,
                                               max_new_tokens=32)
    _save(model, tok, folder)


def build_clip(folder: Path) -> None:
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    tok = clip_tokenizer()
    text = dict(_TEXT, vocab_size=len(tok), max_position_embeddings=77, bos_token_id=tok.bos_token_id,
                eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    config = CLIPConfig(text_config=text, vision_config=dict(_VISION), projection_dim=16)
    torch.manual_seed(4)
    model = CLIPModel(config).eval()
    image_processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    _save(model, CLIPProcessor(image_processor=image_processor, tokenizer=tok), folder)
    write_classic_bpe_files(tok, folder)


# --- diffusers models ----------------------------------------------------------------------
def sd_pipelines():
    """(text2img, inpaint) pipelines sharing the VAE, text encoder, tokenizer and scheduler."""
    import torch
    from diffusers import (AutoencoderKL, EulerDiscreteScheduler, StableDiffusionInpaintPipeline,
                           StableDiffusionPipeline, UNet2DConditionModel)
    from transformers import CLIPTextConfig, CLIPTextModel

    tok = clip_tokenizer()
    unet_config = dict(sample_size=8, in_channels=4, out_channels=4, layers_per_block=1,
                       block_out_channels=(32, 64), down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                       up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=32,
                       attention_head_dim=8)
    torch.manual_seed(5)
    unet = UNet2DConditionModel(**unet_config)
    torch.manual_seed(6)
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, layers_per_block=1,
                        block_out_channels=(32, 32, 32, 32), down_block_types=("DownEncoderBlock2D",) * 4,
                        up_block_types=("UpDecoderBlock2D",) * 4, sample_size=64)
    torch.manual_seed(7)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        **_TEXT, vocab_size=len(tok), max_position_embeddings=77, bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id))
    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                       num_train_timesteps=1000, steps_offset=1, timestep_spacing="leading")
    parts = dict(vae=vae, text_encoder=text_encoder, tokenizer=tok, scheduler=scheduler, safety_checker=None,
                 feature_extractor=None, requires_safety_checker=False)
    torch.manual_seed(8)
    inpaint_unet = UNet2DConditionModel(**dict(unet_config, in_channels=9))
    return (StableDiffusionPipeline(unet=unet, **parts),
            StableDiffusionInpaintPipeline(unet=inpaint_unet, **parts))


def sd_pix2pix_pipeline():
    """InstructPix2Pix-type pipeline (8-channel UNet: latents + image latents), same parts as sd_pipelines."""
    import torch
    from diffusers import StableDiffusionInstructPix2PixPipeline, UNet2DConditionModel

    t2i, _ = sd_pipelines()
    torch.manual_seed(9)
    unet = UNet2DConditionModel(**dict(t2i.unet.config, in_channels=8))
    return StableDiffusionInstructPix2PixPipeline(
        vae=t2i.vae, text_encoder=t2i.text_encoder, tokenizer=t2i.tokenizer, unet=unet, scheduler=t2i.scheduler,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False)


def save_sd(pipe, folder: Path) -> None:
    pipe.save_pretrained(folder)
    write_classic_bpe_files(pipe.tokenizer, folder / "tokenizer")


def build_taesd(folder: Path) -> None:
    import torch
    from diffusers import AutoencoderTiny

    torch.manual_seed(9)
    AutoencoderTiny(encoder_block_out_channels=(8, 8, 8, 8), decoder_block_out_channels=(8, 8, 8, 8),
                    num_encoder_blocks=(1, 1, 1, 1), num_decoder_blocks=(1, 1, 1, 1)).save_pretrained(folder)


# --- HF cache snapshots + the public entry point -------------------------------------------
def write_hf_cache(hub: Path, repo_id: str, pipe) -> Path:
    """A config-only HF hub cache snapshot of ``repo_id`` (what ``from_single_file`` infers)."""
    commit = hashlib.sha1(f"llm-assist tiny {repo_id}".encode()).hexdigest()
    repo = hub / ("models--" + repo_id.replace("/", "--"))
    snap = repo / "snapshots" / commit
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(commit, encoding="utf-8")
    pipe.save_config(snap)
    for name in ("unet", "vae", "scheduler"):
        getattr(pipe, name).save_config(snap / name)
    pipe.text_encoder.config.save_pretrained(snap / "text_encoder")
    pipe.tokenizer.save_pretrained(snap / "tokenizer")
    write_classic_bpe_files(pipe.tokenizer, snap / "tokenizer")
    return snap


def _wanted(only: Iterable[str] | None) -> set[str]:
    if only is None:
        return set(PARTS)
    if isinstance(only, str):
        only = [only]
    wanted = set(only)
    unknown = sorted(wanted - set(PARTS))
    if unknown:
        raise ValueError(f"only: unknown tiny model name(s) {unknown}; choose from {list(PARTS)}")
    return wanted


def build_tiny_models(out_dir: str | Path, *, only: Iterable[str] | None = None) -> Path:
    """Write the tiny random-weight models under ``out_dir`` (see docs/ARCHITECTURE.md).

    ``only`` restricts the build to some of ``PARTS`` (e.g. ``["tiny-blip"]``); ``checkpoints``
    and ``hf-cache`` need no other part. Returns ``out_dir`` as a Path.
    """
    wanted = _wanted(only)
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # no "Writing model shards" bar per model
    try:
        return _build(Path(out_dir), wanted)
    finally:
        if bars:
            hf_logging.enable_progress_bar()


def _build(out: Path, wanted: set[str]) -> Path:
    start = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    (out / "README.txt").write_text(README, encoding="utf-8")
    for name, builder, kind in (("tiny-blip", build_blip, "LLM"), ("tiny-vit-gpt2", build_vit_gpt2, "LLM"),
                                ("tiny-qwen2-chat", build_qwen2, "LLM"), ("tiny-gpt2", build_gpt2, "LLM"),
                                ("tiny-clip", build_clip, "clip_vision"), ("tiny-taesd", build_taesd, "vae_approx")):
        if name in wanted:
            builder(out / kind / name)
    if wanted & {"tiny-sd15", "tiny-sd15-inpaint", "checkpoints", "hf-cache"}:
        from safetensors.torch import save_file

        from .ldm_checkpoint import pipeline_to_ldm

        t2i, inpaint = sd_pipelines()
        for name, pipe, repo in (("tiny-sd15", t2i, SD_REPO), ("tiny-sd15-inpaint", inpaint, SD_INPAINT_REPO)):
            if name in wanted:
                save_sd(pipe, out / "diffusers" / name)
            if "checkpoints" in wanted:
                (out / "checkpoints").mkdir(exist_ok=True)
                file = "tiny-sd15.safetensors" if pipe is t2i else "tiny-sd15-inpainting.safetensors"
                save_file(pipeline_to_ldm(pipe), out / "checkpoints" / file, metadata={"format": "pt"})
            if "hf-cache" in wanted:
                write_hf_cache(out / "hf-cache" / "hub", repo, pipe)
    if "tiny-sd15-pix2pix" in wanted:
        save_sd(sd_pix2pix_pipeline(), out / "diffusers" / "tiny-sd15-pix2pix")
    if wanted & set(FAMILY_PARTS):
        from .tiny_families import build_families

        build_families(out, wanted)
    files = [p for p in out.rglob("*") if p.is_file()]
    size = sum(p.stat().st_size for p in files) / 2**20
    log.info("tiny models: %d files, %.1f MB in %s (%.2f s)", len(files), size, out,
             time.perf_counter() - start)
    return out


def tree_digest(folder: str | Path) -> dict[str, str]:
    """sha256 of every file under ``folder`` keyed by its relative POSIX path (determinism checks)."""
    root = Path(folder)
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}

"""Rebuild example_workflows/*.json (the editor's UI format) from the descriptions below.

    python -m llm_assist.tools.build_workflows [--check]

A developer tool: deterministic, it rewrites the committed files (``--check`` only reports
which differ). Thumbnails (same-name .jpg) come from ``tools/editor_check.py``, which opens each
workflow in a real ComfyUI editor. Model combos hold the recommended real model folder names;
tests and the demo switch them to the tiny models with ``runner.tiny_sets.tiny_model_sets``.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from .workflow_graph import Graph

REPO = Path(__file__).resolve().parent.parent
OUT_DIR = REPO / "example_workflows"

CAPTIONER = "blip-image-captioning-large"  # Salesforce/blip-image-captioning-large in models/LLM
PIPELINE = "stable-diffusion-v1-5"  # stable-diffusion-v1-5/stable-diffusion-v1-5 in models/diffusers
INPAINT_PIPELINE = "stable-diffusion-inpainting"  # stable-diffusion-v1-5/stable-diffusion-inpainting
ENCODER = "clip-vit-large-patch14"  # openai/clip-vit-large-patch14 in models/clip_vision
LANGUAGE_MODEL = "Qwen2.5-1.5B-Instruct"  # Qwen/Qwen2.5-1.5B-Instruct in models/LLM
CHECKPOINT = "v1-5-pruned-emaonly-fp16.safetensors"  # ComfyUI's usual SD 1.5 single file
FLUX_PIPELINE = "FLUX.1-schnell"  # black-forest-labs/FLUX.1-schnell in models/diffusers
FLUX_CHECKPOINT = "flux1-schnell-fp8.safetensors"  # Comfy-Org/flux1-schnell: UNet + CLIP-L + T5 + VAE in one file
FLUX_STEPS = 4  # schnell is distilled for 1-4 steps and ignores guidance (cfg 1 in KSampler)
SIZE = 512  # native_bridge (ComfyUI's own sampler)
# Generate's size in the workflows the test suite runs headless: 512 px makes the tiny-model run of
# evaluation_loop (4 images) take about a minute on 2 CPU cores; set 512 in the editor for SD 1.5.
GENERATE_SIZE = 256
STEPS = 20
CFG = 7.0
SEED = 42
NEGATIVE = "blurry, lowres, jpeg artifacts, watermark, text"

MODELS_NOTE = (
    "**Models** (folders under ComfyUI/models): captioner `LLM/{cap}`, diffusion `diffusers/{pipe}`{extra}. "
    "Download them once, e.g. `hf download Salesforce/{cap} --local-dir models/LLM/{cap}`, or type a repo id "
    "in the loader's repo_id and switch allow_download on. Generate draws 256 px so the example runs fast; "
    "SD 1.5 looks best at 512."
)


def _note(g: Graph, title: str, body: str, extra: str = "", pipe: str = PIPELINE) -> None:
    g.note(f"## {title}\n\n{body}\n\n" + MODELS_NOTE.format(cap=CAPTIONER, pipe=pipe, extra=extra))


def _describe(g: Graph, image_name: str = "example.png"):
    """LoadImage -> Load Captioner + Caption Image -> Extract Keywords."""
    image = g.add("LoadImage", image=image_name)
    captioner = g.add("LLMAssistLoadCaptioner", model=CAPTIONER)
    caption = g.add("LLMAssistCaptionImage", captioner=captioner, image=image["IMAGE"], instruction="detailed",
                    max_new_tokens=60, seed=SEED)
    keywords = g.add("LLMAssistExtractKeywords", caption=caption["caption"], top_k=10)
    return image, captioner, caption, keywords


def _prompt(g: Graph, keywords, pipeline=None, template="a photo of {keywords}, highly detailed"):
    extra = {"pipeline": pipeline} if pipeline is not None else {}
    return g.add("LLMAssistBuildPrompt", keywords=keywords["keywords"], template=template, negative=NEGATIVE,
                 negative_preset="photo defaults", **extra)


def _pipeline(g: Graph, model: str = PIPELINE):
    return g.add("LLMAssistLoadPipeline", model=model, scheduler="euler")


def variation(g: Graph) -> None:
    _note(g, "Variation", "Describe an image (caption -> keywords), build a weighted prompt from its keywords and "
          "draw new images from it. The Expand Prompt branch shows what a language model makes of the same "
          "keywords: wire its output into Generate's positive input to use it.",
          extra=f", language model `LLM/{LANGUAGE_MODEL}`")
    image, captioner, caption, keywords = _describe(g)
    pipeline = _pipeline(g)
    prompt = _prompt(g, keywords, pipeline)
    images = g.add("LLMAssistGenerate", pipeline=pipeline, prompt=prompt["prompt"], seed=SEED, steps=STEPS, cfg=CFG,
                   width=GENERATE_SIZE, height=GENERATE_SIZE, batch_size=1)
    g.add("SaveImage", images=images["images"], filename_prefix="llm-assist/variation")
    llm = g.add("LLMAssistLoadLanguageModel", model=LANGUAGE_MODEL)
    expanded = g.add("LLMAssistExpandPrompt", language_model=llm, keywords=keywords["keywords"], seed=SEED,
                     max_new_tokens=60)
    g.add("PreviewAny", title="Caption", source=caption["caption"])
    g.add("PreviewAny", title="Keywords", source=keywords["keywords_text"])
    g.add("PreviewAny", title="Prompt", source=prompt["positive"])
    g.add("PreviewAny", title="LLM-expanded prompt", source=expanded["prompt"])


def enhancement(g: Graph) -> None:
    _note(g, "Enhancement", "Image to image guided by the image's own description: caption -> keywords -> prompt -> "
          "Enhance (strength 0.4 keeps the layout). Compare Images measures how far the result moved from the "
          "source (MSE / PSNR / SSIM).")
    image, captioner, caption, keywords = _describe(g)
    pipeline = _pipeline(g)
    prompt = _prompt(g, keywords, pipeline, template="{keywords}, sharp focus, high quality, detailed")
    images = g.add("LLMAssistEnhance", pipeline=pipeline, image=image["IMAGE"], prompt=prompt["prompt"], seed=SEED,
                   steps=STEPS, cfg=CFG, strength=0.4)
    compare = g.add("LLMAssistCompareImages", image_a=image["IMAGE"], image_b=images["images"])
    g.add("SaveImage", images=images["images"], filename_prefix="llm-assist/enhancement")
    g.add("PreviewAny", title="Prompt", source=prompt["positive"])
    g.add("PreviewAny", title="Metrics (source vs enhanced)", source=compare["report"])


def repair(g: Graph) -> None:
    _note(g, "Repair", "Inpaint the masked region guided by the image's description. example_mask.png is RGBA: "
          "its transparent area becomes the MASK (1 = repaint); paint your own mask with right-click > Open in "
          "MaskEditor. Compare Images measures the area outside the mask, which should stay untouched.",
          pipe=INPAINT_PIPELINE)
    image, captioner, caption, keywords = _describe(g, "example_mask.png")
    pipeline = _pipeline(g, INPAINT_PIPELINE)
    prompt = _prompt(g, keywords, pipeline)
    images = g.add("LLMAssistRepair", pipeline=pipeline, image=image["IMAGE"], mask=image["MASK"],
                   prompt=prompt["prompt"], seed=SEED, steps=STEPS, cfg=CFG, strength=1.0, feather=4)
    compare = g.add("LLMAssistCompareImages", image_a=image["IMAGE"], image_b=images["images"],
                    mask=image["MASK"], region="outside mask")
    g.add("SaveImage", images=images["images"], filename_prefix="llm-assist/repair")
    g.add("PreviewAny", title="Prompt", source=prompt["positive"])
    g.add("PreviewAny", title="Metrics outside the mask", source=compare["report"])


def editing(g: Graph) -> None:
    _note(g, "Editing", "Change what the image is about by editing its keywords, then regenerate it image to "
          "image. Edit Keywords syntax: `OLD=>NEW` replaces, `+TERM` (or `+TERM:1.2`) adds, `-TERM` removes, "
          "`TERM:W` reweights; items separated by commas or new lines. Connect a MASK to Edit to change only "
          "a region.")
    image, captioner, caption, keywords = _describe(g)
    edited = g.add("LLMAssistEditKeywords", keywords=keywords["keywords"],
                   edits="house=>castle, +at night:1.2, +stars, -sun")
    pipeline = _pipeline(g)
    prompt = _prompt(g, edited, pipeline)
    images = g.add("LLMAssistEdit", pipeline=pipeline, image=image["IMAGE"], prompt=prompt["prompt"], seed=SEED,
                   steps=STEPS, cfg=CFG, strength=0.7)
    g.add("SaveImage", images=images["images"], filename_prefix="llm-assist/editing")
    g.add("PreviewAny", title="Keywords before", source=keywords["keywords_text"])
    g.add("PreviewAny", title="Edit report", source=edited["report"])
    g.add("PreviewAny", title="Edited prompt", source=prompt["positive"])


def evaluation_loop(g: Graph) -> None:
    _note(g, "Evaluation loop", "Generate a batch of 4 seeds from the image's keywords and judge it: Diversity "
          "(Vendi score on CLIP features and pixels), CLIP Score (text-image agreement), and Keyword Fidelity "
          "(keywords of a re-caption of each generated image against the source keywords). Metrics Report "
          "collects everything with the seed and the models.", extra=f", image encoder `clip_vision/{ENCODER}`")
    image, captioner, caption, keywords = _describe(g)
    pipeline = _pipeline(g)
    prompt = _prompt(g, keywords, pipeline)
    images = g.add("LLMAssistGenerate", pipeline=pipeline, prompt=prompt["prompt"], seed=SEED, steps=STEPS, cfg=CFG,
                   width=GENERATE_SIZE, height=GENERATE_SIZE, batch_size=4)
    encoder = g.add("LLMAssistLoadImageEncoder", model=ENCODER)
    features = g.add("LLMAssistEncodeImage", image_encoder=encoder, image=images["images"])
    diversity = g.add("LLMAssistDiversity", images=images["images"], features=features)
    clip_score = g.add("LLMAssistCLIPScore", image_encoder=encoder, image=images["images"], text=prompt["positive"])
    recaption = g.add("LLMAssistCaptionImage", title="Re-caption generated images", captioner=captioner,
                      image=images["images"], instruction="detailed", max_new_tokens=60, seed=SEED)
    rekeywords = g.add("LLMAssistExtractKeywords", caption=recaption["caption"], top_k=10)
    fidelity = g.add("LLMAssistKeywordFidelity", source_keywords=keywords["keywords"],
                     caption_keywords=rekeywords["keywords"])
    report = g.add("LLMAssistMetricsReport", metrics_1=diversity["report"], metrics_2=clip_score["report"],
                   metrics_3=fidelity["report"], labels="diversity, clip score, keyword fidelity",
                   seed=images["seed"], pipeline=pipeline, captioner=captioner, image_encoder=encoder)
    g.add("SaveImage", images=images["images"], filename_prefix="llm-assist/evaluation")
    g.add("PreviewAny", title="Metrics report", source=report["report"])


def dataset_captioning(g: Graph) -> None:
    g.note("## Dataset captioning\n\nCaption every image of a folder (`path`: absolute, or relative to ComfyUI's "
           "input folder; put your images in input/dataset) and write `<image>.txt` beside each image; the keyword "
           "tags go to output/dataset_tags. mode `skip existing` resumes an interrupted run.\n\n"
           "Any number of photos: Load Image Folder decodes nothing (`load_images` off) and hands the `files` to "
           "Caption Image, which reads `batch_size` images at a time, downscaled on load to `max_side` 1024 px.\n\n"
           f"**Models**: captioner `LLM/{CAPTIONER}` (ComfyUI/models).")
    folder = g.add("LLMAssistLoadImageFolder", path="dataset", max_side=1024, load_images=False)
    captioner = g.add("LLMAssistLoadCaptioner", model=CAPTIONER)
    caption = g.add("LLMAssistCaptionImage", captioner=captioner, image_files=folder["files"],
                    instruction="detailed", max_new_tokens=60, seed=SEED)
    keywords = g.add("LLMAssistExtractKeywords", caption=caption["caption"], top_k=12)
    captions = g.add("LLMAssistSaveCaptions", title="Save captions", captions=caption["caption"],
                     image_paths=folder["paths"])
    tags = g.add("LLMAssistSaveCaptions", title="Save keyword tags", captions=keywords["keywords_text"],
                 image_paths=folder["paths"], output_folder="dataset_tags")
    g.add("PreviewAny", title="Captions written", source=captions["summary"])
    g.add("PreviewAny", title="Tags written", source=tags["summary"])


def native_bridge(g: Graph) -> None:
    g.note("## Native bridge\n\nThe pack's prompt as plain text into ComfyUI's own sampler: Build Prompt's positive "
           "and negative STRING outputs feed CLIP Text Encode's text input (ComfyUI weight syntax `(term:1.2)` "
           "is kept), and KSampler draws with a checkpoint from models/checkpoints.\n\n"
           f"**Models**: captioner `LLM/{CAPTIONER}`, checkpoint `checkpoints/{CHECKPOINT}`.")
    image, captioner, caption, keywords = _describe(g)
    prompt = _prompt(g, keywords)
    checkpoint = g.add("CheckpointLoaderSimple", ckpt_name=CHECKPOINT)
    positive = g.add("CLIPTextEncode", title="CLIP Text Encode (positive)", text=prompt["positive"],
                     clip=checkpoint["CLIP"])
    negative = g.add("CLIPTextEncode", title="CLIP Text Encode (negative)", text=prompt["negative"],
                     clip=checkpoint["CLIP"])
    latent = g.add("EmptyLatentImage", width=SIZE, height=SIZE, batch_size=1)
    samples = g.add("KSampler", model=checkpoint["MODEL"], positive=positive, negative=negative, latent_image=latent,
                    seed=SEED, steps=STEPS, cfg=CFG, sampler_name="euler", scheduler="normal", denoise=1.0)
    decoded = g.add("VAEDecode", samples=samples, vae=checkpoint["VAE"])
    g.add("SaveImage", images=decoded, filename_prefix="llm-assist/native")
    g.add("PreviewAny", title="Prompt", source=prompt["positive"])


def natural_prompt(g: Graph) -> None:
    g.note("## Natural-language prompt (FLUX)\n\nFLUX, SD3, Qwen-Image and Z-Image read sentences through T5 / Qwen "
           "encoders, not CLIP tags with `(term:1.2)` weights. Build Prompt's target `auto` follows the connected "
           "pipeline: for FLUX it writes sentences, subject first, with weights said by order and emphasis words "
           "(token_budget 0 = the encoder's 512 T5 tokens, counted with the pipeline's T5 tokenizer); its report says "
           "which target it chose and what it converted. The same text also goes into ComfyUI's own FLUX sampler "
           "beside it (CLIP Text Encode -> KSampler, cfg 1). For a native sampler alone, set Build Prompt's target "
           "by hand (natural for FLUX / SD3 / Qwen-Image / Z-Image, json for FLUX.2, tags for SD).\n\n"
           f"**Models** (folders under ComfyUI/models): captioner `LLM/{CAPTIONER}`, diffusion "
           f"`diffusers/{FLUX_PIPELINE}`, checkpoint `checkpoints/{FLUX_CHECKPOINT}` for the native branch. Generate "
           "draws 256 px so the example runs fast; FLUX looks best at 1024.")
    image, captioner, caption, keywords = _describe(g)
    pipeline = g.add("LLMAssistLoadPipeline", model=FLUX_PIPELINE)
    prompt = g.add("LLMAssistBuildPrompt", keywords=keywords["keywords"], template="{keywords}, a photograph",
                   pipeline=pipeline, token_budget=0, target="auto", language="auto")
    images = g.add("LLMAssistGenerate", pipeline=pipeline, prompt=prompt["prompt"], seed=SEED, steps=FLUX_STEPS,
                   cfg=0.0, width=GENERATE_SIZE, height=GENERATE_SIZE, batch_size=1)
    g.add("SaveImage", images=images["images"], filename_prefix="llm-assist/natural")
    checkpoint = g.add("CheckpointLoaderSimple", ckpt_name=FLUX_CHECKPOINT)
    positive = g.add("CLIPTextEncode", title="CLIP Text Encode (same prompt)", text=prompt["positive"],
                     clip=checkpoint["CLIP"])
    negative = g.add("CLIPTextEncode", title="CLIP Text Encode (empty negative)", text="", clip=checkpoint["CLIP"])
    latent = g.add("EmptyLatentImage", width=GENERATE_SIZE, height=GENERATE_SIZE, batch_size=1)
    samples = g.add("KSampler", model=checkpoint["MODEL"], positive=positive, negative=negative, latent_image=latent,
                    seed=SEED, steps=FLUX_STEPS, cfg=1.0, sampler_name="euler", scheduler="simple", denoise=1.0)
    decoded = g.add("VAEDecode", samples=samples, vae=checkpoint["VAE"])
    g.add("SaveImage", title="Save Image (native sampler)", images=decoded, filename_prefix="llm-assist/natural-native")
    g.add("PreviewAny", title="Keywords", source=keywords["keywords_text"])
    g.add("PreviewAny", title="Natural-language prompt", source=prompt["positive"])
    g.add("PreviewAny", title="Build Prompt report", source=prompt["report"])


SERVER_URL = "http://127.0.0.1:8000/v1"  # vLLM / transformers serve; tests switch it to their own server


def model_server(g: Graph) -> None:
    g.note("## Model server\n\nCaption and expand with models running in an OpenAI-compatible server instead of "
           "in ComfyUI: Connect Model Server gives a captioner and a language model, wired like the in-process "
           "loaders' into Caption Image -> Extract Keywords -> Build Prompt and Expand Prompt.\n\n"
           "**base_url** per server (this machine): Ollama `http://127.0.0.1:11434/v1`, llama.cpp llama-server "
           "`http://127.0.0.1:8080/v1`, LM Studio `http://127.0.0.1:1234/v1`, vLLM and `transformers serve` "
           "`http://127.0.0.1:8000/v1`. **model** empty uses the first model the server lists (the `models` output "
           "shows them all after a run); captioning needs a vision model (e.g. `llava`, `qwen2.5vl` on Ollama).\n\n"
           "**Other hosts**: only loopback works until the ComfyUI server's owner lists the host in "
           "`LLM_ASSIST_SERVER_HOSTS` (README, Owner settings): a shared workflow cannot make ComfyUI call "
           "arbitrary URLs.\n\n**API keys** come only from the owner's settings, `LLM_ASSIST_API_KEY_ENV` (the name "
           "of an environment variable) or `LLM_ASSIST_API_KEY_FILE` (a file): never from a widget, so a key is "
           "never saved in a workflow or an image.")
    image = g.add("LoadImage", image="example.png")
    server = g.add("LLMAssistConnectModelServer", base_url=SERVER_URL, model="")
    caption = g.add("LLMAssistCaptionImage", captioner=server["captioner"], image=image["IMAGE"],
                    instruction="detailed", max_new_tokens=60, seed=SEED)
    keywords = g.add("LLMAssistExtractKeywords", caption=caption["caption"], top_k=10)
    prompt = _prompt(g, keywords)
    expanded = g.add("LLMAssistExpandPrompt", language_model=server["language_model"], keywords=keywords["keywords"],
                     seed=SEED, max_new_tokens=60)
    g.add("PreviewAny", title="Server models", source=server["models"])
    g.add("PreviewAny", title="Caption", source=caption["caption"])
    g.add("PreviewAny", title="Prompt", source=prompt["positive"])
    g.add("PreviewAny", title="LLM-expanded prompt", source=expanded["prompt"])


WORKFLOWS = {f.__name__: f for f in (variation, enhancement, repair, editing, evaluation_loop,
                                     dataset_captioning, native_bridge, natural_prompt, model_server)}


def build(name: str) -> dict:
    """The UI-format JSON of one example workflow (model combos read with no models folder: deterministic)."""
    from ..core import host

    with tempfile.TemporaryDirectory() as empty:
        previous = host.set_models_root(empty)
        try:
            graph = Graph()
            WORKFLOWS[name](graph)
            return graph.to_ui()
        finally:
            host.set_models_root(previous)


def render(data: dict) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only report files that differ from the descriptions")
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="output folder (default: example_workflows/)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    stale = []
    for name in WORKFLOWS:
        path = args.out / f"{name}.json"
        text = render(build(name))
        current = path.read_text(encoding="utf-8") if path.is_file() else None
        if current != text:
            stale.append(path.name)
            if not args.check:
                path.write_text(text, encoding="utf-8")
    verb = "differ" if args.check else "rewritten"
    print(f"{len(stale)} of {len(WORKFLOWS)} workflows {verb}: {', '.join(stale) or '-'}")
    return 1 if (args.check and stale) else 0


if __name__ == "__main__":
    sys.exit(main())

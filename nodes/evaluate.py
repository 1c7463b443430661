"""Evaluate nodes: Compare Images, Diversity, Stability, CLIP Score, Keyword Fidelity, Metrics Report.

Thin adapters over core.metrics, core.fidelity and core.report. JSON outputs are strict JSON
(PSNR of identical images is ``"inf"`` there, ``float('inf')`` on the FLOAT socket).
"""
from __future__ import annotations

from ..core.constants import COMPARE_REGIONS as REGIONS
from ._common import category, first

CATEGORY = category("evaluate")
METRIC_SLOTS = 6


class _AnyType(str):
    """ComfyUI's "*" input type: equal to every type in the backend's link validation."""

    def __ne__(self, other):  # noqa: D105 - ComfyUI compares with `!=`
        return False

    __hash__ = str.__hash__


ANY = _AnyType("*")


def _tip(text: str, **options) -> dict:
    return {"tooltip": text, **options}


def _json(data) -> str:
    from ..core.report import to_json

    return to_json(data)


class CompareImages:
    DESCRIPTION = ("MSE, PSNR and SSIM between two image batches (a single image is compared with every image "
                   "of the other batch), over the whole image or inside / outside a mask. For repair, "
                   "'outside mask' shows how well the untouched area was preserved. SSIM matches scikit-image "
                   "(Gaussian window, sigma 1.5) and needs images of at least 11x11 px.")
    CATEGORY = CATEGORY
    FUNCTION = "compare"
    RETURN_TYPES = ("FLOAT", "FLOAT", "FLOAT", "STRING")
    RETURN_NAMES = ("mse", "psnr", "ssim", "report")
    OUTPUT_TOOLTIPS = (
        "Mean squared error (0..1 scale), mean over the batch.",
        "Peak signal-to-noise ratio in dB (data range 1), mean of the per-image values; inf when identical.",
        "Structural similarity (1 = identical), mean over the batch.",
        "Per-image values as JSON (PSNR of identical images is the string \"inf\").",
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "image_a": ("IMAGE", _tip("Reference images, e.g. the source image.")),
                "image_b": ("IMAGE", _tip("Images to compare, e.g. the generated ones. Same size as image_a; "
                                          "batch of the same length, or either side a single image.")),
                "region": (REGIONS, _tip("Where to measure: the whole image, only the masked area (what was "
                                         "repainted) or only outside it (what should be preserved).",
                                         default="whole image")),
            },
            "optional": {
                "mask": ("MASK", _tip("Mask (1 = repaint), needed for the inside/outside regions; a pixel is "
                                      "inside when its value is >= 0.5.")),
            },
        }

    def compare(self, image_a, image_b, region="whole image", mask=None):
        from ..core.metrics import compare_images

        result = compare_images(image_a, image_b, mask=mask, region=region)
        means = result.means()
        return (means["mse"], means["psnr"], means["ssim"], _json(result.as_dict()))


class Diversity:
    DESCRIPTION = ("How different the images of a batch (or of a list of batches, e.g. one per seed) are: Vendi "
                   "score (effective number of distinct images) on encoder features and in pixel space, mean "
                   "pairwise cosine distance of the features, mean pairwise pixel RMSE and the colour-histogram "
                   "entropy. Works without an encoder (feature values are then 0).")
    CATEGORY = CATEGORY
    FUNCTION = "measure"
    INPUT_IS_LIST = True
    RETURN_TYPES = ("FLOAT", "FLOAT", "FLOAT", "FLOAT", "FLOAT", "STRING")
    RETURN_NAMES = ("vendi", "mean_cosine_distance", "pixel_vendi", "mean_pixel_rmse", "histogram_entropy", "report")
    OUTPUT_TOOLTIPS = (
        "Vendi score of the features (1 = all the same, N = all different); 0 without features.",
        "Mean pairwise cosine distance (1 - cos) of the features; 0 without features.",
        "Vendi score in pixel space (Gaussian kernel on the RMSE of 32 px thumbnails).",
        "Mean root-mean-square pixel difference over all pairs of images (0..1).",
        "Entropy in bits (max 9) of the joint 8x8x8-bin RGB histogram of the whole batch.",
        "All values, per-image histogram entropies and notes as JSON.",
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "images": ("IMAGE", _tip("The images to compare with each other, e.g. one prompt rendered "
                                         "with several seeds. A list of batches is joined into one.")),
            },
            "optional": {
                "features": ("LLMA_FEATURES", _tip("Features of the same images from Encode Image, for the "
                                                   "feature Vendi score and the cosine distance.")),
                "pixel_bandwidth": ("FLOAT", _tip("Kernel width for the pixel Vendi score in RMSE units: images "
                                                  "closer than this count as similar.",
                                                  default=0.1, min=0.001, max=1.0, step=0.001)),
            },
        }

    def measure(self, images, features=None, pixel_bandwidth=None):
        from ..core.batch_metrics import diversity
        from ..core.metrics import concat_features, concat_images

        out = diversity(concat_images(images, "images"), concat_features(features), float(first(pixel_bandwidth)))
        return (out.feature_vendi, out.mean_cosine_distance, out.pixel_vendi, out.mean_pixel_rmse,
                out.histogram_entropy_bits, _json(out.as_dict()))


class Stability:
    DESCRIPTION = ("Checks that two runs meant to be equal (same seed, same settings) give the same images: "
                   "max and mean absolute pixel difference and an 'identical' flag; with features of several "
                   "seeds, their variance.")
    CATEGORY = CATEGORY
    FUNCTION = "measure"
    INPUT_IS_LIST = True
    RETURN_TYPES = ("FLOAT", "FLOAT", "BOOLEAN", "FLOAT", "STRING")
    RETURN_NAMES = ("max_abs_diff", "mean_abs_diff", "identical", "feature_variance", "report")
    OUTPUT_TOOLTIPS = (
        "Largest absolute pixel difference (0..1) between the two runs.",
        "Mean absolute pixel difference (0..1).",
        "True when the largest difference is within the tolerance.",
        "Mean per-dimension variance of the features across rows (e.g. seeds); 0 without features.",
        "All values and per-image maxima as JSON.",
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "image_a": ("IMAGE", _tip("Images of the first run.")),
                "image_b": ("IMAGE", _tip("Images of the second run with the same seed and settings.")),
                "tolerance": ("FLOAT", _tip("Largest pixel difference still counted as identical (0 = "
                                            "bit-identical; 1/255 = same 8-bit image).",
                                            default=0.0, min=0.0, max=1.0, step=0.0001)),
            },
            "optional": {
                "features": ("LLMA_FEATURES", _tip("Features of images from several seeds, for their variance.")),
            },
        }

    def measure(self, image_a, image_b, tolerance=None, features=None):
        from ..core.batch_metrics import stability
        from ..core.metrics import concat_features, concat_images

        out = stability(concat_images(image_a, "image_a"), concat_images(image_b, "image_b"),
                        float(first(tolerance)), concat_features(features))
        return (out.max_abs_diff, out.mean_abs_diff, out.identical, out.feature_variance, _json(out.as_dict()))


class CLIPScore:
    DESCRIPTION = ("CLIP score of images against a text: 100 x max(cosine similarity, 0) per image (the "
                   "torchmetrics definition). One text scores every image; a list of texts (one per image, "
                   "e.g. per-image prompts) is paired with the images in order.")
    CATEGORY = CATEGORY
    FUNCTION = "score"
    INPUT_IS_LIST = True
    RETURN_TYPES = ("FLOAT", "STRING")
    RETURN_NAMES = ("clip_score", "report")
    OUTPUT_TOOLTIPS = ("Mean CLIP score over the images (0..100).", "Per-image scores and texts as JSON.")

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "image_encoder": ("LLMA_IMAGE_ENCODER", _tip("A CLIP or SigLIP model from Load Image Encoder.")),
                "image": ("IMAGE", _tip("The images to score; a list of batches is joined in order.")),
                "text": ("STRING", _tip("The prompt or caption to score against: one text for all images, "
                                        "or one per image when a list arrives.", multiline=True, default="")),
            },
        }

    def score(self, image_encoder, image, text):
        from ..core.batch_metrics import clip_score
        from ..core.metrics import concat_images

        out = clip_score(first(image_encoder), concat_images(image, "image"), text if isinstance(text, list) else [text])
        return (out.mean, _json(out.as_dict()))


class KeywordFidelity:
    DESCRIPTION = ("How faithfully a generated image kept the source's keywords: compare the source keywords "
                   "with the keywords of a re-caption of the generated image. Precision, recall and F1 on "
                   "content-word stems, plus the matched, missing and extra words.")
    CATEGORY = CATEGORY
    FUNCTION = "measure"
    RETURN_TYPES = ("FLOAT", "FLOAT", "FLOAT", "STRING")
    RETURN_NAMES = ("precision", "recall", "f1", "report")
    OUTPUT_TOOLTIPS = (
        "Share of the re-caption's words that were in the source keywords.",
        "Share of the source keywords' words that came back in the re-caption.",
        "Harmonic mean of precision and recall.",
        "Matched / missing / extra words and per-keyword coverage as JSON.",
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "source_keywords": ("LLMA_KEYWORDS", _tip("Keywords the image was generated from.")),
                "caption_keywords": ("LLMA_KEYWORDS", _tip("Keywords extracted from a caption of the "
                                                           "generated image.")),
            },
        }

    def measure(self, source_keywords, caption_keywords):
        from ..core.fidelity import keyword_fidelity

        out = keyword_fidelity(source_keywords, caption_keywords)
        return (out.precision, out.recall, out.f1, _json(out.as_dict()))


class MetricsReport:
    DESCRIPTION = ("Gathers any metrics (numbers, flags, the JSON reports of the other evaluate nodes) with the "
                   "models, seed and notes into one deterministic JSON report, shown on the node. A list of "
                   "values (e.g. one F1 per image) is summarised with mean / min / max.")
    CATEGORY = CATEGORY
    FUNCTION = "report"
    OUTPUT_NODE = True
    INPUT_IS_LIST = True
    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("report",)
    OUTPUT_TOOLTIPS = ("The report as strict JSON (sorted keys, no timestamps, inf as \"inf\").",)

    @classmethod
    def INPUT_TYPES(cls):
        metrics = {f"metrics_{i}": (ANY, _tip("Any metric output: a FLOAT, INT, BOOLEAN or a JSON report "
                                               "STRING. Several values (a list) are summarised."))
                   for i in range(1, METRIC_SLOTS + 1)}
        return {
            "required": {},
            "optional": {
                **metrics,
                "labels": ("STRING", _tip("Names for metrics_1..6, comma separated (e.g. 'psnr, ssim'); "
                                          "empty slots keep their metrics_N name.", default="")),
                "seed": ("INT", _tip("The seed used for the run, recorded in the report (connect the same "
                                     "value that feeds the generator).", default=0, min=0,
                                     max=0xffffffffffffffff, forceInput=True)),
                "notes": ("STRING", _tip("Free text stored with the report (settings, what was tried).",
                                         multiline=True, default="")),
                "pipeline": ("LLMA_PIPELINE", _tip("The diffusion pipeline used, to record its name and device.")),
                "captioner": ("LLMA_CAPTIONER", _tip("The captioner used, to record its name.")),
                "image_encoder": ("LLMA_IMAGE_ENCODER", _tip("The image encoder used, to record its name.")),
            },
        }

    def report(self, metrics_1=None, metrics_2=None, metrics_3=None, metrics_4=None, metrics_5=None,
               metrics_6=None, labels=None, seed=None, notes=None, pipeline=None, captioner=None,
               image_encoder=None):
        from ..core.report import metrics_report

        text = metrics_report([metrics_1, metrics_2, metrics_3, metrics_4, metrics_5, metrics_6],
                              labels=first(labels) or "", seeds=seed if isinstance(seed, list) else [seed],
                              notes=str(first(notes) or ""),
                              models={"pipeline": first(pipeline), "captioner": first(captioner),
                                      "image_encoder": first(image_encoder)})
        return {"ui": {"text": [text]}, "result": (text,)}


NODE_CLASS_MAPPINGS = {
    "LLMAssistCompareImages": CompareImages,
    "LLMAssistDiversity": Diversity,
    "LLMAssistStability": Stability,
    "LLMAssistCLIPScore": CLIPScore,
    "LLMAssistKeywordFidelity": KeywordFidelity,
    "LLMAssistMetricsReport": MetricsReport,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "LLMAssistCompareImages": "Compare Images",
    "LLMAssistDiversity": "Diversity",
    "LLMAssistStability": "Stability",
    "LLMAssistCLIPScore": "CLIP Score",
    "LLMAssistKeywordFidelity": "Keyword Fidelity",
    "LLMAssistMetricsReport": "Metrics Report",
}

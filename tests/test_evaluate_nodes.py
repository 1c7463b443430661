"""The evaluate nodes called through their classes with tiny inputs (and the tiny CLIP)."""
import json
import math
from types import SimpleNamespace

import pytest
import torch

from llm_assist.core.sockets import Features, Keyword, Keywords
from llm_assist.nodes.evaluate import (ANY, CLIPScore, CompareImages, Diversity, KeywordFidelity, MetricsReport,
                                       Stability)


def strict_loads(text):
    def bad(name):
        raise AssertionError(f"non-strict JSON constant {name}")
    return json.loads(text, parse_constant=bad)


def _images(batch, size=32, seed=0):
    return torch.rand(batch, size, size, 3, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def clip_dir(tiny_models):
    return tiny_models / "clip_vision" / "tiny-clip"


@pytest.fixture()
def encoder(models_root):
    from llm_assist.core.hf_loading import LoadOptions
    from llm_assist.core.image_encoder import load_image_encoder

    return load_image_encoder("tiny-clip", LoadOptions(device="cpu", dtype="fp32", keep_loaded=False))


def test_any_type_matches_every_type():
    assert ANY == "*" and not ("FLOAT" != ANY) and not ("STRING" != ANY)
    from llm_assist.core.report import json_safe
    assert json.dumps(json_safe({"t": ANY})) == '{"t": "*"}'


def test_compare_images_node():
    a, b = _images(3, seed=1), _images(1, seed=2)
    mse, psnr, ssim, report = CompareImages().compare(a, b)
    data = strict_loads(report)
    assert data["count"] == 3 and data["region"] == "whole image"
    assert mse == pytest.approx(data["mean"]["mse"]) and ssim == pytest.approx(data["mean"]["ssim"])
    assert 0 < mse < 1 and psnr > 0 and -1 <= ssim < 1
    mask = torch.zeros(32, 32)
    mask[8:24, 8:24] = 1
    edited = a.clone()
    edited[:, 8:24, 8:24] = 0.0
    out_mse, out_psnr, out_ssim, out_report = CompareImages().compare(a, edited, "outside mask", mask)
    assert out_mse == 0.0 and out_psnr == math.inf
    assert strict_loads(out_report)["mean"]["psnr"] == "inf"
    in_mse = CompareImages().compare(a, edited, "inside mask", mask)[0]
    assert in_mse == pytest.approx(float((a[:, 8:24, 8:24] ** 2).mean()))
    with pytest.raises(ValueError, match="3 images and image_b has 2"):
        CompareImages().compare(a, _images(2))


def test_diversity_node_joins_lists():
    imgs = [_images(2, seed=3), _images(1, seed=4)]
    feats = [Features(torch.eye(3, 8), "enc")]
    vendi, cos_d, pix_vendi, rmse, entropy, report = Diversity().measure(imgs, feats, [0.1])
    data = strict_loads(report)
    assert data["count"] == 3 and data["feature_model"] == "enc"
    assert vendi == pytest.approx(3.0) and cos_d == pytest.approx(1.0)
    assert 1.0 <= pix_vendi <= 3.0 and rmse > 0 and 0 < entropy <= 9
    vendi0, cos0, *_ = Diversity().measure([_images(2)])
    assert vendi0 == 0.0 and cos0 == 0.0
    with pytest.raises(ValueError, match="different sizes"):
        Diversity().measure([_images(1, 32), _images(1, 16)])


def test_stability_node():
    a = _images(2, seed=5)
    mx, mean, identical, var, report = Stability().measure([a], [a.clone()], [0.0])
    assert mx == 0.0 and mean == 0.0 and identical is True and var == 0.0
    b = a.clone()
    b[0, 0, 0, 0] = 1.0 - b[0, 0, 0, 0]
    mx, _, identical, _, report = Stability().measure([a], [b], [0.0], [Features(torch.eye(2, 4), "enc")])
    assert mx > 0 and identical is False
    assert strict_loads(report)["feature_variance"] == pytest.approx(0.125)
    assert Stability().measure([a], [b], [1.0])[2] is True


def test_keyword_fidelity_node():
    src = Keywords((Keyword("black dog", 0.9), Keyword("snow", 0.5)), "a black dog in the snow")
    cap = Keywords((Keyword("dog", 0.8), Keyword("white snow", 0.7), Keyword("ball", 0.3)), "")
    p, r, f1, report = KeywordFidelity().measure(src, cap)
    assert (p, r) == pytest.approx((0.5, 2 / 3)) and f1 == pytest.approx(4 / 7)
    data = strict_loads(report)
    assert data["missing"] == ["black"] and data["extra"] == ["white", "ball"]


def test_clip_score_matches_direct_computation(encoder, clip_dir):
    from transformers import CLIPModel, CLIPProcessor

    from llm_assist.core.images import to_pil

    images = _images(3, seed=6)
    texts = ["a photo of a dog", "red car on a street", "snow"]
    model = CLIPModel.from_pretrained(clip_dir).eval()
    processor = CLIPProcessor.from_pretrained(clip_dir)
    with torch.no_grad():
        out = model(**processor(text=texts, images=to_pil(images), return_tensors="pt", padding=True))
    img = out.image_embeds / out.image_embeds.norm(dim=-1, keepdim=True)
    txt = out.text_embeds / out.text_embeds.norm(dim=-1, keepdim=True)
    cos = img @ txt.T  # [image, text]
    assert (cos > 0).any(), "random tiny CLIP gave no positive similarity; the check below would be vacuous"

    # one text for all images
    for t, text in enumerate(texts):
        mean, report = CLIPScore().score([encoder], [images], [text])
        expected = (100 * cos[:, t].clamp_min(0)).tolist()
        got = [row["score"] for row in strict_loads(report)["images"]]
        assert got == pytest.approx(expected, abs=1e-4)
        assert mean == pytest.approx(sum(expected) / 3, abs=1e-4)
    # one text per image (a list arriving through list mapping), images as a list of batches too
    mean, report = CLIPScore().score([encoder], [images[:1], images[1:]], texts)
    data = strict_loads(report)
    assert [row["text"] for row in data["images"]] == texts and data["model"] == "tiny-clip"
    assert [row["score"] for row in data["images"]] == pytest.approx(
        (100 * cos.diagonal().clamp_min(0)).tolist(), abs=1e-4)
    with pytest.raises(ValueError, match="2 texts for 3 images"):
        CLIPScore().score([encoder], [images], texts[:2])
    with pytest.raises(ValueError, match="text is empty"):
        CLIPScore().score([encoder], [images], [""])


def test_metrics_report_node_gathers_everything():
    a = _images(1, seed=7)
    compare_json = CompareImages().compare(a, a)[3]
    handle = SimpleNamespace(name="tiny-sd15", device=torch.device("cpu"), dtype=torch.float32, model=object())
    kwargs = dict(metrics_1=[compare_json], metrics_2=[0.5, 1.0, 0.25], metrics_3=[True], metrics_4=[float("inf")],
                  labels=["compare, f1, identical"], seed=[42], notes=["two steps"], pipeline=[handle],
                  captioner=[SimpleNamespace(name="tiny-blip")], image_encoder=None)
    out = MetricsReport().report(**kwargs)
    text = out["result"][0]
    assert out["ui"]["text"] == [text]
    data = strict_loads(text)
    assert data["schema"].startswith("llm-assist/metrics-report/")
    assert data["metrics"]["compare"]["mean"]["psnr"] == "inf"
    assert data["metrics"]["f1"]["mean"] == pytest.approx(0.5833333333) and data["metrics"]["f1"]["count"] == 3
    assert data["metrics"]["identical"] is True and data["metrics"]["metrics_4"] == "inf"
    assert data["seed"] == 42 and data["notes"] == "two steps"
    assert data["models"]["pipeline"] == {"type": "SimpleNamespace", "name": "tiny-sd15", "device": "cpu",
                                          "dtype": "torch.float32"}
    assert data["models"]["captioner"]["name"] == "tiny-blip" and "image_encoder" not in data["models"]
    assert MetricsReport().report(**kwargs)["result"][0] == text  # deterministic
    assert text == json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False)
    empty = strict_loads(MetricsReport().report()["result"][0])
    assert empty["metrics"] == {} and "seed" not in empty

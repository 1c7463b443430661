"""core.metrics / core.fidelity / core.report against scikit-image, numpy and hand examples."""
import json
import math

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from llm_assist.core import batch_metrics, metrics
from llm_assist.core.fidelity import keyword_fidelity, stem
from llm_assist.core.report import build_report, json_safe, summarise, to_json

R = metrics.SSIM_RADIUS


def _pair(batch, height, width, seed=0, noise=0.25):
    g = torch.Generator().manual_seed(seed)
    a = torch.rand(batch, height, width, 3, generator=g)
    b = (a + noise * (torch.rand(batch, height, width, 3, generator=g) - 0.5)).clamp(0, 1)
    return a, b


def _mask(batch, height, width, seed=1):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(batch, height, width, generator=g) > 0.6).float()


def _sk_ssim(a, b):
    return structural_similarity(a, b, data_range=1.0, channel_axis=-1, gaussian_weights=True, sigma=1.5,
                                 use_sample_covariance=False, full=True)


def strict_loads(text):
    def bad(name):
        raise AssertionError(f"non-strict JSON constant {name}")
    return json.loads(text, parse_constant=bad)


@pytest.mark.parametrize("size", [(64, 64), (33, 47), (11, 19)])
def test_whole_image_matches_skimage(size):
    a, b = _pair(3, *size)
    result = metrics.compare_images(a, b)
    for i in range(3):
        x, y = a[i].double().numpy(), b[i].double().numpy()
        ssim_sk, _ = _sk_ssim(x, y)
        assert result.ssim[i] == pytest.approx(ssim_sk, abs=1e-5)
        assert result.psnr[i] == pytest.approx(peak_signal_noise_ratio(x, y, data_range=1.0), abs=1e-5)
        assert result.mse[i] == pytest.approx(float(np.mean((x - y) ** 2)), abs=1e-10)
    assert result.means()["ssim"] == pytest.approx(sum(result.ssim) / 3)


@pytest.mark.parametrize("size", [(64, 64), (33, 47)])
@pytest.mark.parametrize("region", ["inside mask", "outside mask"])
def test_masked_metrics_match_skimage_map(size, region):
    a, b = _pair(3, *size, seed=3)
    mask = _mask(3, *size)
    result = metrics.compare_images(a, b, mask=mask, region=region)
    for i in range(3):
        x, y = a[i].double().numpy(), b[i].double().numpy()
        inside = mask[i].numpy() >= 0.5
        sel = inside if region == "inside mask" else ~inside
        _, full = _sk_ssim(x, y)
        crop_sel = sel[R:-R, R:-R]
        expected_ssim = full[R:-R, R:-R][crop_sel].mean()
        expected_mse = ((x - y) ** 2)[sel].mean()
        assert result.ssim[i] == pytest.approx(expected_ssim, abs=1e-5)
        assert result.mse[i] == pytest.approx(expected_mse, abs=1e-10)
        assert result.psnr[i] == pytest.approx(10 * math.log10(1.0 / expected_mse), abs=1e-5)


def test_ssim_map_equals_skimage_full():
    a, b = _pair(1, 23, 31, seed=7)
    _, full = _sk_ssim(a[0].double().numpy(), b[0].double().numpy())
    assert np.abs(metrics.ssim_map(a.double(), b.double())[0].numpy() - full).max() < 1e-10


def test_identical_images():
    a, _ = _pair(2, 32, 32)
    result = metrics.compare_images(a, a.clone())
    assert result.mse == (0.0, 0.0)
    assert result.ssim == pytest.approx((1.0, 1.0), abs=1e-12)
    assert result.psnr == (math.inf, math.inf) and result.means()["psnr"] == math.inf
    data = strict_loads(to_json(result.as_dict()))
    assert data["mean"]["psnr"] == "inf" and data["images"][1]["psnr"] == "inf"
    assert data["mean"]["mse"] == 0.0


def test_broadcast_one_against_many():
    a, b = _pair(3, 40, 40, seed=5)
    one = metrics.compare_images(a[:1], b)
    other_side = metrics.compare_images(b, a[:1])
    for i in range(3):
        x, y = a[0].double().numpy(), b[i].double().numpy()
        assert one.ssim[i] == pytest.approx(_sk_ssim(x, y)[0], abs=1e-5)
        assert other_side.mse[i] == pytest.approx(one.mse[i], abs=1e-12)
    assert len(one.ssim) == 3


def test_mismatches_are_clear_errors():
    a, b = _pair(3, 32, 32)
    with pytest.raises(ValueError, match="3 images and .* has 2"):
        metrics.compare_images(a, b[:2])
    with pytest.raises(ValueError, match="resize"):
        metrics.compare_images(a, torch.rand(3, 32, 40, 3))
    with pytest.raises(ValueError, match="no mask is connected"):
        metrics.compare_images(a, b, region="inside mask")
    with pytest.raises(ValueError, match="region must be one of"):
        metrics.compare_images(a, b, mask=torch.ones(32, 32), region="inside")
    with pytest.raises(ValueError, match="no pixels"):
        metrics.compare_images(a, b, mask=torch.zeros(32, 32), region="inside mask")
    with pytest.raises(ValueError, match="at least 11x11 px.*got 9x10"):
        metrics.compare_images(torch.rand(1, 10, 9, 3), torch.rand(1, 10, 9, 3))


def test_vendi_identical_orthogonal_between():
    eye = torch.eye(5, 12)
    assert metrics.vendi_score(eye) == pytest.approx(5.0, abs=1e-9)
    same = torch.ones(4, 8)
    assert metrics.vendi_score(same) == pytest.approx(1.0, abs=1e-9)
    two_groups = torch.cat([eye[:1].repeat(3, 1), eye[1:2].repeat(3, 1)])
    assert metrics.vendi_score(two_groups) == pytest.approx(2.0, abs=1e-9)
    g = torch.Generator().manual_seed(0)
    noisy = eye[:1].repeat(4, 1) + 0.3 * torch.randn(4, 12, generator=g)
    assert 1.0 < metrics.vendi_score(noisy) < 4.0
    assert metrics.mean_pairwise_cosine_distance(eye) == pytest.approx(1.0)
    assert metrics.mean_pairwise_cosine_distance(same) == pytest.approx(0.0, abs=1e-12)


def test_pixel_diversity():
    flat = torch.stack([torch.full((48, 48, 3), v) for v in (0.0, 0.5, 1.0)])
    out = batch_metrics.diversity(flat)
    assert out.pixel_vendi == pytest.approx(3.0, abs=1e-3)
    assert out.mean_pixel_rmse == pytest.approx((0.5 + 0.5 + 1.0) / 3)
    assert out.histogram_entropy_bits == pytest.approx(math.log2(3))
    assert out.per_image_histogram_entropy_bits == (0.0, 0.0, 0.0)
    assert out.feature_vendi == 0.0 and any("no features" in n for n in out.notes)
    same = batch_metrics.diversity(flat[1:2].repeat(3, 1, 1, 1))
    assert same.pixel_vendi == pytest.approx(1.0, abs=1e-9) and same.mean_pixel_rmse == 0.0
    noise = torch.rand(1, 64, 64, 3, generator=torch.Generator().manual_seed(0))
    assert batch_metrics.diversity(noise).histogram_entropy_bits > 8.5


def test_stability():
    a, b = _pair(2, 16, 16)
    same = batch_metrics.stability(a, a.clone())
    assert same.identical and same.max_abs_diff == 0.0
    diff = batch_metrics.stability(a, b, tolerance=0.0)
    assert not diff.identical and diff.max_abs_diff == pytest.approx(float((a - b).abs().max()))
    assert batch_metrics.stability(a, b, tolerance=1.0).identical
    feats = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert batch_metrics.stability(a, a, features=feats).feature_variance == pytest.approx(0.25)
    with pytest.raises(ValueError, match="tolerance"):
        batch_metrics.stability(a, a, tolerance=-1)


def test_stemmer():
    pairs = {"dogs": "dog", "puppies": "puppy", "boxes": "box", "glasses": "glass", "running": "run",
             "walked": "walk", "carried": "carry", "grass": "grass", "bus": "bus"}
    for word, expected in pairs.items():
        assert stem(word) == expected, word
    assert stem("making") == stem("make") and stem("horses") == stem("horse")


def test_keyword_fidelity_hand_examples():
    out = keyword_fidelity(["black dog", "snow"], ["dog", "white snow", "ball"])
    assert out.precision == pytest.approx(2 / 4) and out.recall == pytest.approx(2 / 3)
    assert out.f1 == pytest.approx(4 / 7)
    assert out.matched == ("dog", "snow") and out.missing == ("black",) and out.extra == ("white", "ball")
    perfect = keyword_fidelity(["Dogs running!", "the snow"], ["dog runs", "snow"])
    assert perfect.precision == perfect.recall == perfect.f1 == 1.0
    none = keyword_fidelity(["cat"], ["car"])
    assert none.f1 == 0.0 and none.missing == ("cat",)
    assert keyword_fidelity([], []).f1 == 1.0 and keyword_fidelity(["cat"], []).recall == 0.0


def test_report_json_is_strict_and_deterministic():
    values = {"psnr": [float("inf")], "f1": [0.5, 1.0, 0.0], "bad": [float("nan")],
              "compare": ['{"psnr": Infinity, "ssim": 1.0}'], "flag": [True], "tensor": [torch.tensor(2.5)]}
    report = build_report(values, seed=7, notes="n", models={"pipeline": {"name": "tiny"}})
    text = to_json(report)
    assert text == to_json(build_report(values, seed=7, notes="n", models={"pipeline": {"name": "tiny"}}))
    data = strict_loads(text)
    assert data["schema"] and data["seed"] == 7 and data["notes"] == "n"
    assert data["metrics"]["psnr"] == "inf" and data["metrics"]["bad"] is None
    assert data["metrics"]["f1"] == {"values": [0.5, 1.0, 0.0], "count": 3, "mean": 0.5, "min": 0.0, "max": 1.0}
    assert data["metrics"]["compare"] == {"psnr": "inf", "ssim": 1.0}
    assert data["metrics"]["flag"] is True and data["metrics"]["tensor"] == 2.5
    assert json_safe([float("-inf")]) == ["-inf"]
    assert summarise(["inf", 1.0])["mean"] == "inf"


# --------------------------------------------------------------------------- strip-wise Compare Images
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=25, deadline=None)
@given(height=st.integers(11, 200), width=st.integers(11, 90),
       batch=st.integers(1, 2), seed=st.integers(0, 2**31 - 1), masked=st.sampled_from([None, "inside mask", "outside mask"]))
def test_compare_equals_skimage_on_random_images(height, width, batch, seed, masked):
    """Equal to scikit-image's float64 values (to rounding) for any size, across strip edges."""
    a, b = _pair(batch, height, width, seed=seed)
    mask = (_mask(batch, height, width, seed=seed + 1) if masked else None)
    region = masked or "whole image"
    if mask is not None:  # keep the region non-empty for SSIM's cropped map
        mask[:, R:R + 1, R:R + 1] = 1.0 if masked == "inside mask" else 0.0
        mask[:, 0, 0] = 1.0 if masked == "inside mask" else 0.0
    result = metrics.compare_images(a, b, mask=mask, region=region)
    for i in range(batch):
        x, y = a[i].double().numpy(), b[i].double().numpy()
        _, full = _sk_ssim(x, y)
        if mask is None:
            sel = np.ones((height, width), dtype=bool)
        else:
            inside = mask[i].numpy() >= 0.5
            sel = inside if masked == "inside mask" else ~inside
        expected_ssim = full[R:-R, R:-R][sel[R:-R, R:-R]].mean()
        expected_mse = ((x - y) ** 2)[sel].mean()
        assert abs(result.ssim[i] - expected_ssim) < 1e-12
        assert abs(result.mse[i] - expected_mse) < 1e-15
        if mask is None:
            assert abs(result.ssim[i] - structural_similarity(
                x, y, data_range=1.0, channel_axis=-1, gaussian_weights=True, sigma=1.5,
                use_sample_covariance=False)) < 1e-12


def test_compare_checks_values_without_copying():
    a, b = _pair(1, 40, 40)
    bad = a.clone()
    bad[0, 39, 39, 2] = float("nan")
    with pytest.raises(ValueError, match="image_b contains NaN"):
        metrics.compare_images(a, bad)
    over = a.clone() * 1.5  # out of range: clamped like check_image does
    assert metrics.compare_images(over, b).ssim == metrics.compare_images(over.clamp(0, 1), b).ssim


def test_compare_peak_memory_stays_within_three_times_the_input():
    """Peak RSS growth of one 1024x1024 comparison (a fresh process, peak counter reset) <= 3x
    the two input images; the float64 full-image version needed about 25x."""
    import subprocess
    import sys
    from pathlib import Path

    if not Path("/proc/self/clear_refs").exists():
        pytest.skip("needs Linux /proc to reset the peak RSS")
    code = r"""
import json, torch
torch.set_num_threads(1)
from llm_assist.core import metrics
def hwm(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
g = torch.Generator().manual_seed(0)
a = torch.rand(1, 1024, 1024, 3, generator=g)
b = torch.rand(1, 1024, 1024, 3, generator=g).mul_(0.2).add_(a, alpha=0.8)
metrics.compare_images(a[:, :64, :64], b[:, :64, :64])  # import / first-call costs outside the peak
open("/proc/self/clear_refs", "w").write("5")
base = hwm("VmRSS")
metrics.compare_images(a, b)
print(json.dumps({"peak": hwm("VmHWM") - base, "input": 2 * a.numel() * 4}))
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, check=True)
    data = json.loads(res.stdout.strip().splitlines()[-1])
    assert data["peak"] <= 3 * data["input"], f"peak {data['peak'] / 2**20:.0f} MB for {data['input'] / 2**20:.0f} MB of input"

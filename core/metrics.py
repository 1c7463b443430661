"""Image metrics for the evaluate stage: MSE / PSNR / SSIM (whole image or a mask region),
diversity (Vendi score, pairwise distances, colour-histogram entropy), stability, CLIP score.

Conventions (documented here once, used by the nodes and the report):

* Images are ComfyUI IMAGE tensors ``[B,H,W,3]`` in 0..1; all numerics run in float64.
* PSNR uses ``data_range = 1``; identical images give ``float('inf')`` (JSON renders it as the
  string ``"inf"``, see ``core.report.json_safe``). The batch PSNR is the mean of per-image PSNRs.
* SSIM matches ``skimage.metrics.structural_similarity(a, b, data_range=1.0, channel_axis=-1,
  gaussian_weights=True, sigma=1.5, use_sample_covariance=False)``: an 11-tap Gaussian window
  (truncate 3.5), scipy ``reflect`` (= symmetric) borders, the 5-px border of the SSIM map
  cropped before the mean. Images need at least 11 px on each side (as in scikit-image).
* Regions: a mask pixel is *inside* when its value is >= 0.5 (MASK: 1 = repaint). Masked MSE /
  PSNR average over the region's pixels x channels; masked SSIM averages the full SSIM map over
  the region's pixels x channels after the same 5-px border crop (the SSIM values themselves are
  computed from the whole image, so the window sees context across the mask edge).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from .constants import COMPARE_REGIONS

REGIONS = tuple(COMPARE_REGIONS)
SSIM_SIGMA = 1.5
SSIM_TRUNCATE = 3.5
SSIM_RADIUS = int(SSIM_TRUNCATE * SSIM_SIGMA + 0.5)  # 5, as scipy.ndimage computes it
SSIM_WINDOW = 2 * SSIM_RADIUS + 1  # 11
PIXEL_SIDE = 32  # images are area-downsampled to this side for pixel-space Vendi
HIST_BINS = 8  # per channel; the colour histogram is joint (8x8x8 = 512 bins)


def broadcast_pair(a, b, names=("image_a", "image_b"), copy: bool = True):
    """Check two IMAGE batches and broadcast a batch of 1 against a batch of N.

    ``copy=False``: no full-size copy is made (float32 views, values neither clamped nor checked
    for NaN: the caller does that strip by strip, see ``compare_images``); else float64 copies."""
    from .images import check_image

    if copy:
        a, b = check_image(a, names[0]).double(), check_image(b, names[1]).double()
    else:
        a, b = check_image(a, names[0], values=False), check_image(b, names[1], values=False)
    if a.shape[1:3] != b.shape[1:3]:
        raise ValueError(
            f"{names[0]} is {a.shape[2]}x{a.shape[1]} but {names[1]} is {b.shape[2]}x{b.shape[1]}: "
            "resize one of them (e.g. ImageScale) so both have the same size"
        )
    na, nb = a.shape[0], b.shape[0]
    if na != nb:
        if na != 1 and nb != 1:
            raise ValueError(
                f"{names[0]} has {na} images and {names[1]} has {nb}: give batches of the same size, "
                "or a single image to compare against every image of the other batch"
            )
        n = max(na, nb)
        a, b = a.expand(n, -1, -1, -1), b.expand(n, -1, -1, -1)
    return a, b


def concat_images(items, name: str = "images"):
    """One IMAGE batch from a list of batches (ComfyUI list mapping); all must share a size."""
    import torch

    from .images import check_image

    items = [i for i in (items if isinstance(items, (list, tuple)) else [items]) if i is not None]
    if not items:
        raise ValueError(f"{name}: no images arrived: connect an IMAGE output")
    batches = [check_image(i, name) for i in items]
    sizes = sorted({(b.shape[2], b.shape[1]) for b in batches})
    if len(sizes) > 1:
        raise ValueError(f"{name}: the images have different sizes {sizes}: resize them to one size first")
    return torch.cat(batches)


def concat_features(items):
    """One ``Features`` from a Features, a list of them or raw ``[N,D]`` rows (None when nothing arrived)."""
    import torch

    from .sockets import Features

    items = [i for i in (items if isinstance(items, (list, tuple)) else [items]) if i is not None]
    if not items:
        return None
    rows = []
    for item in items:
        emb = torch.as_tensor(getattr(item, "embeddings", item)).float()
        rows.append(emb.flatten(1) if emb.ndim > 1 else emb[None])
    dims = {r.shape[1] for r in rows}
    if len(dims) > 1:
        raise ValueError(f"features come from encoders of different widths {sorted(dims)}: use one image encoder")
    model = ", ".join(dict.fromkeys(str(getattr(i, "model", "")) for i in items if getattr(i, "model", "")))
    return Features(torch.cat(rows), model)


def region_weights(mask, region: str, height: int, width: int, batch: int):
    """Boolean ``[B,H,W]`` selecting the region's pixels, or None for the whole image."""
    from .images import check_mask

    if region not in REGIONS:
        raise ValueError(f"region must be one of {list(REGIONS)}, got {region!r}")
    if region == "whole image":
        return None
    if mask is None:
        raise ValueError(f"region is {region!r} but no mask is connected: connect a MASK or choose 'whole image'")
    inside = check_mask(mask, height, width, batch) >= 0.5
    return inside if region == "inside mask" else ~inside


def _region_mean(values, weights, what: str):
    """Per-image mean of ``values [B,H,W,C]`` over ``weights [B,H,W]`` (None = everything)."""
    if weights is None:
        return values.flatten(1).mean(dim=1)
    w = weights.to(values.dtype).unsqueeze(-1).expand_as(values)
    count = w.flatten(1).sum(dim=1)
    empty = (count == 0).nonzero().flatten().tolist()
    if empty:
        raise ValueError(
            f"the region has no pixels for {what} in image(s) {empty}: draw a mask that covers "
            "part of the image (SSIM ignores a 5-px border), or choose region 'whole image'"
        )
    return (values * w).flatten(1).sum(dim=1) / count


def mse(a, b, weights=None):
    """Per-image mean squared error ``[B]`` (float64) over the region's pixels x channels."""
    return _region_mean((a.double() - b.double()) ** 2, weights, "MSE")


def psnr_from_mse(values, data_range: float = 1.0) -> list[float]:
    """PSNR in dB per value; ``inf`` where the MSE is 0."""
    out = []
    for v in (float(x) for x in values):
        out.append(math.inf if v == 0.0 else 10.0 * math.log10(data_range ** 2 / v))
    return out


def _gaussian_kernel(dtype):
    import torch

    x = torch.arange(-SSIM_RADIUS, SSIM_RADIUS + 1, dtype=dtype)
    k = torch.exp(-0.5 / SSIM_SIGMA ** 2 * x ** 2)
    return k / k.sum()


def _symmetric_pad(x, r: int):
    """scipy.ndimage mode='reflect' (d c b a | a b c d | d c b a) on the last two dims."""
    import torch

    x = torch.cat([x[..., :r].flip(-1), x, x[..., -r:].flip(-1)], dim=-1)
    return torch.cat([x[..., :r, :].flip(-2), x, x[..., -r:, :].flip(-2)], dim=-2)


def _gaussian_filter(x):
    """Separable Gaussian filter of ``x [N,K,H,W]`` per channel, scipy-compatible."""
    import torch.nn.functional as F

    k = _gaussian_kernel(x.dtype)
    channels = x.shape[1]
    x = _symmetric_pad(x, SSIM_RADIUS)
    x = F.conv2d(x, k.view(1, 1, 1, -1).repeat(channels, 1, 1, 1), groups=channels)
    return F.conv2d(x, k.view(1, 1, -1, 1).repeat(channels, 1, 1, 1), groups=channels)


def check_ssim_size(height: int, width: int) -> None:
    if min(height, width) < SSIM_WINDOW:
        raise ValueError(
            f"SSIM needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW} px (Gaussian window "
            f"sigma {SSIM_SIGMA}, as scikit-image), got {width}x{height}: upscale both images "
            "(e.g. ImageScale) before comparing"
        )


def ssim_map(a, b, data_range: float = 1.0, k1: float = 0.01, k2: float = 0.03):
    """The full SSIM map ``[B,H,W,C]`` (float64), identical to scikit-image's ``full=True`` S."""
    import torch

    height, width = a.shape[1], a.shape[2]
    check_ssim_size(height, width)
    x = a.double().permute(0, 3, 1, 2).reshape(-1, 1, height, width)
    y = b.double().permute(0, 3, 1, 2).reshape(-1, 1, height, width)
    stats = _gaussian_filter(torch.cat([x, y, x * x, y * y, x * y], dim=1))
    ux, uy, uxx, uyy, uxy = stats.unbind(dim=1)
    vx, vy, vxy = uxx - ux * ux, uyy - uy * uy, uxy - ux * uy
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux ** 2 + uy ** 2 + c1) * (vx + vy + c2))
    return s.reshape(a.shape[0], a.shape[3], height, width).permute(0, 2, 3, 1)


def ssim(a, b, weights=None):
    """Per-image SSIM ``[B]``: mean of the cropped SSIM map over the region (pixels x channels)."""
    r = SSIM_RADIUS
    s = ssim_map(a, b)[:, r:-r, r:-r, :]
    crop = None if weights is None else weights[:, r:-r, r:-r]
    return _region_mean(s, crop, "SSIM")


@dataclass(frozen=True)
class Comparison:
    """Per-image MSE / PSNR / SSIM of two batches over one region."""

    mse: tuple[float, ...]
    psnr: tuple[float, ...]
    ssim: tuple[float, ...]
    region: str
    size: tuple[int, int]  # (width, height)

    @staticmethod
    def _mean(values) -> float:
        return math.fsum(values) / len(values) if values else 0.0

    def means(self) -> dict:
        return {"mse": self._mean(self.mse), "psnr": self._mean(self.psnr), "ssim": self._mean(self.ssim)}

    def as_dict(self) -> dict:
        images = [{"index": i, "mse": m, "psnr": p, "ssim": s}
                  for i, (m, p, s) in enumerate(zip(self.mse, self.psnr, self.ssim))]
        return {"metric": "compare", "region": self.region, "width": self.size[0], "height": self.size[1],
                "count": len(images), "mean": self.means(), "images": images,
                "notes": ["psnr 'inf' means identical pixels in the region; data_range 1.0",
                          "ssim: Gaussian sigma 1.5 window, 5-px border excluded (scikit-image)"]}


def compare_images(image_a, image_b, mask=None, region: str = "whole image") -> Comparison:
    """MSE / PSNR / SSIM of two IMAGE batches (1 broadcasts to N) over the chosen region.

    Image by image and ``STRIP_ROWS`` rows at a time (float64 inside a strip), so the extra memory
    is a few strips, not several float64 copies of the images: the same values as ``mse`` /
    ``ssim`` (and scikit-image) to rounding, about 1e-15."""
    names = ("image_a", "image_b")
    a, b = broadcast_pair(image_a, image_b, names, copy=False)
    batch, height, width = a.shape[0], a.shape[1], a.shape[2]
    check_ssim_size(height, width)
    weights = region_weights(mask, region, height, width, batch)
    _check_region_counts(weights)
    errors, ssims = [], []
    for i in range(batch):
        inside = None if weights is None else weights[i]
        errors.append(_strip_mse(a[i], b[i], inside, names))
        ssims.append(_strip_ssim(a[i], b[i], inside))
    return Comparison(tuple(errors), tuple(psnr_from_mse(errors)), tuple(ssims), region, (width, height))


STRIP_ROWS = 64  # rows per strip in compare_images (64 x 4096 px x 5 statistics ~ 10 MB float64)


def _check_region_counts(weights) -> None:
    """The errors of ``_region_mean`` for an empty region, before any work."""
    if weights is None:
        return
    r = SSIM_RADIUS
    for what, w in (("MSE", weights), ("SSIM", weights[:, r:-r, r:-r])):
        empty = (w.flatten(1).sum(dim=1) == 0).nonzero().flatten().tolist()
        if empty:
            raise ValueError(
                f"the region has no pixels for {what} in image(s) {empty}: draw a mask that covers "
                "part of the image (SSIM ignores a 5-px border), or choose region 'whole image'"
            )


def _strip(x, y0: int, y1: int, name: str):
    """Rows y0..y1 of one ``[H,W,3]`` image as a float64 copy, checked and clamped to 0..1."""
    import torch

    part = x[y0:y1].double()
    if not torch.isfinite(part).all():
        raise ValueError(f"{name} contains NaN or infinite values: fix the node that produced it")
    return part.clamp_(0.0, 1.0)


def _strip_mse(x, y, inside, names) -> float:
    """Mean squared error of one image pair over the region (pixels x channels), strip by strip."""
    total, count = [], 0
    for y0 in range(0, x.shape[0], STRIP_ROWS):
        y1 = min(y0 + STRIP_ROWS, x.shape[0])
        d = _strip(x, y0, y1, names[0]).sub_(_strip(y, y0, y1, names[1]))
        d.mul_(d)
        if inside is None:
            total.append(float(d.sum()))
            count += d.numel()
        else:
            sel = inside[y0:y1]
            total.append(float(d[sel].sum()))
            count += int(sel.sum()) * d.shape[-1]
    return math.fsum(total) / count


def _filter_valid(src, out, tmp, axis: int, taps: list) -> None:
    """``out`` = the Gaussian of ``src`` along ``axis`` (-1 or -2), valid part only (no border):
    out has 2 * SSIM_RADIUS fewer entries along ``axis``. Symmetric taps, in place."""
    r, n = SSIM_RADIUS, out.shape[axis]

    def part(start):
        return src.narrow(axis, start, n)

    import torch

    torch.mul(part(r), taps[r], out=out)
    for j in range(r):
        torch.add(part(j), part(2 * r - j), out=tmp)
        out.add_(tmp, alpha=taps[j])


def _strip_ssim(x, y, inside, data_range: float = 1.0, k1: float = 0.01, k2: float = 0.03) -> float:
    """SSIM of one image pair: the mean of scikit-image's SSIM map over the cropped region.

    The cropped map (5-px border dropped) only needs the Gaussian window inside the image, so the
    filter runs without padding on strips of rows with a 5-row halo, one channel at a time."""
    import torch

    r = SSIM_RADIUS
    height, width = x.shape[0], x.shape[1]
    taps = _gaussian_kernel(torch.float64).tolist()
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    sums, count = [], 0
    inner = width - 2 * r
    for y0 in range(r, height - r, STRIP_ROWS):
        y1 = min(y0 + STRIP_ROWS, height - r)
        rows = y1 - y0
        stats = torch.empty(5, rows + 2 * r, width, dtype=torch.float64)
        across = torch.empty(5, rows + 2 * r, inner, dtype=torch.float64)
        tmp_across = torch.empty_like(across)
        mean = torch.empty(5, rows, inner, dtype=torch.float64)
        tmp_mean = torch.empty_like(mean)
        sel = None if inside is None else inside[y0:y1, r:width - r]
        for c in range(x.shape[-1]):
            xa = x[y0 - r:y1 + r, :, c].double().clamp_(0.0, 1.0)
            xb = y[y0 - r:y1 + r, :, c].double().clamp_(0.0, 1.0)
            stats[0].copy_(xa)
            stats[1].copy_(xb)
            torch.mul(xa, xa, out=stats[2])
            torch.mul(xb, xb, out=stats[3])
            torch.mul(xa, xb, out=stats[4])
            _filter_valid(stats, across, tmp_across, -1, taps)
            _filter_valid(across, mean, tmp_mean, -2, taps)
            ux, uy, uxx, uyy, uxy = mean.unbind(0)
            # scikit-image's formula and order: vx, vy, vxy; A1 A2 / (B1 B2)
            vx = uxx.sub_(ux * ux)
            vy = uyy.sub_(uy * uy)
            a2 = uxy.sub_(ux * uy).mul_(2).add_(c2)
            b2 = vx.add_(vy).add_(c2)
            a1 = (2 * ux * uy).add_(c1)
            b1 = ux.mul_(ux).add_(uy.mul_(uy)).add_(c1)
            s = a1.mul_(a2).div_(b1.mul_(b2))
            if sel is None:
                sums.append(float(s.sum()))
                count += s.numel()
            else:
                sums.append(float(s[sel].sum()))
                count += int(sel.sum())
    return math.fsum(sums) / count


# --------------------------------------------------------------------------- diversity


def vendi_from_kernel(kernel) -> float:
    """exp(Shannon entropy of the eigenvalues of K/n); K must have a unit diagonal."""
    import torch

    k = kernel.double()
    n = k.shape[0]
    if n == 0:
        return 0.0
    eig = torch.linalg.eigvalsh((k + k.T) / (2 * n)).clamp_min(0.0)
    eig = eig[eig > 1e-12]
    eig = eig / eig.sum()
    return float(torch.exp(-(eig * eig.log()).sum()))


def vendi_score(features) -> float:
    """Vendi score of feature rows with the cosine-similarity kernel: 1 for N identical rows,
    N for N orthogonal ones."""
    import torch

    x = torch.nn.functional.normalize(torch.as_tensor(features).double().flatten(1), dim=-1)
    return vendi_from_kernel(x @ x.T)


def mean_pairwise_cosine_distance(features) -> float:
    """Mean of 1 - cos over all pairs i < j (0 for fewer than two rows)."""
    import torch

    x = torch.nn.functional.normalize(torch.as_tensor(features).double().flatten(1), dim=-1)
    n = x.shape[0]
    if n < 2:
        return 0.0
    i, j = torch.triu_indices(n, n, offset=1)
    return float((1.0 - (x[i] * x[j]).sum(-1)).mean())


def pairwise_rmse(images):
    """``[B,B]`` root-mean-square pixel distances of an IMAGE batch (float64)."""
    import torch

    flat = images.double().flatten(1)
    d2 = torch.cdist(flat, flat) ** 2 / flat.shape[1]
    return d2.clamp_min(0.0).sqrt()


def downsample(images, side: int = PIXEL_SIDE):
    """Area-average an IMAGE batch to at most ``side`` px per side -> ``[B,side,side,3]``."""
    import torch.nn.functional as F

    x = images.double().permute(0, 3, 1, 2)
    if max(x.shape[-2:]) > side:
        x = F.adaptive_avg_pool2d(x, (min(side, x.shape[-2]), min(side, x.shape[-1])))
    return x.permute(0, 2, 3, 1)


def pixel_vendi(images, bandwidth: float = 0.1, side: int = PIXEL_SIDE) -> float:
    """Vendi score in pixel space with a Gaussian kernel exp(-RMSE^2 / (2 h^2)) on images
    area-downsampled to ``side`` px (a Gaussian rather than cosine kernel, so that a black and a
    white image count as different)."""
    import torch

    if bandwidth <= 0:
        raise ValueError(f"pixel bandwidth must be > 0, got {bandwidth}: try 0.1")
    d = pairwise_rmse(downsample(images, side))
    return vendi_from_kernel(torch.exp(-(d ** 2) / (2 * bandwidth ** 2)))


def colour_histogram(images, bins: int = HIST_BINS):
    """Joint RGB histogram counts ``[B, bins**3]`` (values quantised to ``bins`` per channel)."""
    import torch

    q = (images.double() * bins).floor().clamp(0, bins - 1).long()
    index = (q[..., 0] * bins + q[..., 1]) * bins + q[..., 2]
    flat = index.flatten(1)
    counts = torch.zeros(flat.shape[0], bins ** 3, dtype=torch.float64)
    return counts.scatter_add_(1, flat, torch.ones_like(flat, dtype=torch.float64))


def entropy_bits(counts) -> float:
    p = counts.double().flatten()
    p = p[p > 0] / p.sum()
    return float(-(p * p.log2()).sum()) if p.numel() else 0.0

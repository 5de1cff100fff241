"""Image augmentation in torch ops, no torchvision: random resized crop, horizontal flip, colour jitter and
per-channel normalisation of a batch [N, C, H, W] of pixels in [0, 1], on whatever device it lives.

Each op is a small callable `op(x, generator) -> x` and `chain(*ops)` composes them. The random parameters
(one crop box, flip and jitter factor per image) are drawn from a CPU `torch.Generator` the caller owns, always the
same count of numbers for a batch shape, so a training stream that checkpoints that generator's state draws the
same augmented images after a resume; the pixel work runs on the batch's device.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

#: ITU-R BT.601 luma weights (R, G, B), as torchvision and Pillow's "L" conversion use
GREY_WEIGHTS = (0.299, 0.587, 0.114)
#: the largest jitter strength: factors are drawn in fp32, and 1 + a larger strength is infinite there
JITTER_MAX = float(torch.finfo(torch.float32).max) / 2


class Augment(Protocol):
    """A batch transform drawing its randomness from `generator`."""

    def __call__(self, x: Tensor, generator: torch.Generator) -> Tensor: ...


def _uniform(generator: torch.Generator, shape: tuple[int, ...], low: float, high: float) -> Tensor:
    """CPU float32 numbers uniform in [low, high)."""
    return torch.rand(shape, generator=generator).mul_(high - low).add_(low)


def _per_image(values: Tensor, x: Tensor) -> Tensor:
    """[N] values as [N, 1, 1, 1] on x's device and dtype, to scale images."""
    return values.to(device=x.device, dtype=x.dtype).view(-1, 1, 1, 1)


def grey(x: Tensor) -> Tensor:
    """[N, 3, H, W] -> [N, 1, H, W] luma with the ITU-R 601 weights (grey images [N, 1, H, W] pass through)."""
    if x.shape[1] == 1:
        return x
    r, g, b = GREY_WEIGHTS
    return (x[:, 0:1] * r).add_(x[:, 1:2], alpha=g).add_(x[:, 2:3], alpha=b)


def _blend(x: Tensor, other: Tensor, factor: Tensor) -> Tensor:
    """factor * x + (1 - factor) * other, clipped to [0, 1] (the form of every jitter below)."""
    return torch.lerp(other.expand_as(x), x, _per_image(factor, x).expand_as(x)).clamp_(0.0, 1.0)


def adjust_brightness(x: Tensor, factor: Tensor) -> Tensor:
    """Pixels times each image's factor [N], clipped to [0, 1]."""
    return (x * _per_image(factor, x)).clamp_(0.0, 1.0)


def adjust_contrast(x: Tensor, factor: Tensor) -> Tensor:
    """Each image blended with the mean of its grey image by its factor [N] (0: flat grey, 1: unchanged)."""
    return _blend(x, grey(x).mean(dim=(1, 2, 3), keepdim=True), factor)


def adjust_saturation(x: Tensor, factor: Tensor) -> Tensor:
    """Each image blended with its grey image by its factor [N] (0: grey, 1: unchanged, >1: more saturated)."""
    return _blend(x, grey(x), factor)


def rgb_to_hsv(x: Tensor) -> Tensor:
    """[N, 3, H, W] RGB in [0, 1] -> HSV, hue in [0, 1) (0 where the pixel is grey)."""
    high, argmax = x.max(dim=1)
    delta = high - x.min(dim=1).values
    saturation = delta / torch.where(high > 0, high, torch.ones_like(high))
    safe = torch.where(delta > 0, delta, torch.ones_like(delta))
    r, g, b = ((high - c) / safe for c in x.unbind(1))
    hue = torch.stack([b - g, 2.0 + r - b, 4.0 + g - r], 1).gather(1, argmax.unsqueeze(1)).squeeze(1)
    hue = torch.where(delta > 0, (hue / 6.0) % 1.0, torch.zeros_like(hue))
    return torch.stack([hue, saturation, high], 1)


def hsv_to_rgb(x: Tensor) -> Tensor:
    """[N, 3, H, W] HSV (hue in [0, 1)) -> RGB."""
    hue, saturation, value = x.unbind(1)
    sector = torch.floor(hue * 6.0)
    frac = hue * 6.0 - sector
    sector = sector.long() % 6
    p = value * (1 - saturation)
    q = value * (1 - saturation * frac)
    t = value * (1 - saturation * (1 - frac))
    table = torch.stack([value, q, p, p, t, value, t, value, value, q, p, p, p, p, t, value, value, q], 1)
    index = (torch.arange(3, device=x.device).view(1, 3, 1, 1) * 6 + sector.unsqueeze(1)).expand(-1, 3, -1, -1)
    return table.gather(1, index)


def adjust_hue(x: Tensor, shift: Tensor) -> Tensor:
    """Each image's hue turned by its shift [N] (a fraction of the colour circle, in [-0.5, 0.5])."""
    if x.shape[1] != 3:
        raise ValueError(f"a hue turn needs RGB images [N, 3, H, W], got {tuple(x.shape)}")
    hsv = rgb_to_hsv(x)
    hue = (hsv[:, 0] + shift.to(device=x.device, dtype=x.dtype).view(-1, 1, 1)) % 1.0
    return hsv_to_rgb(torch.stack([hue, hsv[:, 1], hsv[:, 2]], 1)).clamp_(0.0, 1.0)


def flip(x: Tensor, mask: Tensor) -> Tensor:
    """The images where `mask` [N] is true mirrored left to right (a new tensor; x is left as it was)."""
    out = x.clone()
    chosen = torch.nonzero(mask.to(x.device)).flatten()
    out[chosen] = x[chosen].flip(-1)
    return out


def crop_resize(x: Tensor, boxes: Tensor, size: tuple[int, int]) -> Tensor:
    """Each image's box [N, 4] (top, left, height, width in pixels) resampled bilinearly to `size` (H, W).

    One batched `grid_sample`: output pixel centres are mapped into the box (as `interpolate` with
    align_corners=False maps them into a cut-out box), sampling beyond the image edge repeats the edge."""
    n, _, height, width = x.shape
    top, left, h, w = boxes.to(dtype=torch.float64).unbind(1)
    theta = torch.zeros(n, 2, 3, dtype=torch.float64)
    theta[:, 0, 0] = w / width
    theta[:, 0, 2] = (2 * left + w) / width - 1
    theta[:, 1, 1] = h / height
    theta[:, 1, 2] = (2 * top + h) / height - 1
    grid = F.affine_grid(theta.to(device=x.device, dtype=x.dtype), [n, x.shape[1], *size], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def normalize(x: Tensor, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """(x - mean) / std per channel."""
    m = torch.tensor(mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    return (x - m) / s


def _pair(values: Sequence[float], name: str, low: float = 0.0) -> tuple[float, float]:
    pair = tuple(float(v) for v in values)
    if len(pair) != 2 or not low <= pair[0] <= pair[1] or not all(math.isfinite(v) for v in pair):
        raise ValueError(f"{name} must be a range [low, high] with {low} <= low <= high, got {list(values)}")
    return pair[0], pair[1]


#: torchvision's aspect-ratio range of a random resized crop, the default of `data.augment.crop_ratio`
CROP_RATIO = (3 / 4, 4 / 3)


@dataclass(frozen=True)
class RandomResizedCrop:
    """A box of `scale` times the image's area and aspect ratio (width / height) log-uniform in `ratio`, at a
    uniform position, resized to `size` (default: the input size). As torchvision draws it: up to `attempts`
    tries per image, then the whole image cut to the nearest allowed ratio."""

    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = CROP_RATIO
    size: tuple[int, int] | None = None
    attempts: int = 10

    def __post_init__(self) -> None:
        if not 0.0 < _pair(self.scale, "crop_scale")[1] <= 1.0:
            raise ValueError(f"crop_scale must lie in (0, 1], got {list(self.scale)}")
        _pair(self.ratio, "crop_ratio", low=1e-6)

    def boxes(self, n: int, height: int, width: int, generator: torch.Generator) -> Tensor:
        """[n, 4] integer boxes (top, left, height, width)."""
        area = height * width
        target = _uniform(generator, (n, self.attempts), *self.scale).double() * area
        log_ratio = _uniform(generator, (n, self.attempts), math.log(self.ratio[0]), math.log(self.ratio[1]))
        aspect = log_ratio.double().exp()
        w = (target * aspect).sqrt().round()
        h = (target / aspect).sqrt().round()
        ok = (w > 0) & (w <= width) & (h > 0) & (h <= height)
        first = ok.to(torch.int8).argmax(1, keepdim=True)
        w, h = w.gather(1, first).squeeze(1), h.gather(1, first).squeeze(1)
        found = ok.any(1)
        fallback_w, fallback_h = self._whole(height, width)
        w = torch.where(found, w, torch.full_like(w, fallback_w))
        h = torch.where(found, h, torch.full_like(h, fallback_h))
        where = torch.rand(n, 2, generator=generator, dtype=torch.float64)
        top = (where[:, 0] * (height - h + 1)).floor()
        left = (where[:, 1] * (width - w + 1)).floor()
        return torch.stack([top, left, h, w], 1)

    def _whole(self, height: int, width: int) -> tuple[float, float]:
        """The whole image cut to the nearest aspect ratio in range, at least a pixel wide and high: (width, height)."""
        aspect = width / height
        if aspect < self.ratio[0]:
            return float(width), float(max(1, round(width / self.ratio[0])))
        if aspect > self.ratio[1]:
            return float(max(1, round(height * self.ratio[1]))), float(height)
        return float(width), float(height)

    def __call__(self, x: Tensor, generator: torch.Generator) -> Tensor:
        height, width = x.shape[-2:]
        return crop_resize(x, self.boxes(len(x), height, width, generator), self.size or (height, width))


@dataclass(frozen=True)
class HorizontalFlip:
    """Each image mirrored left to right with probability `p`."""

    p: float = 0.5

    def __post_init__(self) -> None:
        if not 0.0 <= self.p <= 1.0:
            raise ValueError(f"flip probability must be in [0, 1], got {self.p}")

    def __call__(self, x: Tensor, generator: torch.Generator) -> Tensor:
        return flip(x, torch.rand(len(x), generator=generator) < self.p)


@dataclass(frozen=True)
class ColourJitter:
    """Brightness, contrast and saturation factors uniform in [max(0, 1 - s), 1 + s] for strength s, and a hue
    turn uniform in [-hue, hue], per image, applied in that fixed order (torchvision shuffles the order per call);
    a strength of 0 leaves that property alone and draws nothing."""

    brightness: float = 0.0
    contrast: float = 0.0
    saturation: float = 0.0
    hue: float = 0.0

    def __post_init__(self) -> None:
        for name in ("brightness", "contrast", "saturation", "hue"):
            value = getattr(self, name)
            if not 0 <= value <= JITTER_MAX:
                raise ValueError(f"jitter {name} must be a number in [0, {JITTER_MAX:.3g}], got {value}")
        if self.hue > 0.5:
            raise ValueError(f"jitter hue must be <= 0.5 (half the colour circle), got {self.hue}")

    def __call__(self, x: Tensor, generator: torch.Generator) -> Tensor:
        n = len(x)
        for strength, adjust in (
            (self.brightness, adjust_brightness),
            (self.contrast, adjust_contrast),
            (self.saturation, adjust_saturation),
        ):
            if strength > 0:
                x = adjust(x, _uniform(generator, (n,), max(0.0, 1.0 - strength), 1.0 + strength))
        if self.hue > 0:
            x = adjust_hue(x, _uniform(generator, (n,), -self.hue, self.hue))
        return x


@dataclass(frozen=True)
class Normalize:
    """(x - mean) / std per channel; draws nothing. Whatever normalises training images must normalise every
    image the model sees, so it belongs in the model's input, not in a training-only pipeline."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.mean) != len(self.std) or not all(s > 0 for s in self.std):
            raise ValueError(f"normalise needs one mean and one std > 0 per channel, got {self.mean}, {self.std}")

    def __call__(self, x: Tensor, generator: torch.Generator) -> Tensor:
        return normalize(x, self.mean, self.std)


@dataclass(frozen=True)
class Chain:
    """Ops applied in order, each drawing from the same generator."""

    ops: tuple[Augment, ...]

    def __call__(self, x: Tensor, generator: torch.Generator) -> Tensor:
        for op in self.ops:
            x = op(x, generator)
        return x


def chain(*ops: Augment) -> Chain:
    """The ops composed into one, applied left to right."""
    return Chain(tuple(ops))


def augment_images(augment: Augment, x: Tensor, generator: torch.Generator) -> Tensor:
    """`augment` applied to images of any leading shape [..., C, H, W] (a task batch's [B, N*K, C, H, W])."""
    out = augment(x.reshape(-1, *x.shape[-3:]), generator)
    return out.reshape(*x.shape[:-3], *out.shape[1:])


@dataclass
class AugmentSpec:
    """A recipe's training-time augmentation (`data.augment`): a random resized crop when `crop_scale` is set
    ([low, high] fraction of the image's area, aspect ratio log-uniform in `crop_ratio`), a horizontal flip with
    probability 0.5, and colour jitter strengths. Everything is off by default. Saturation leaves a grey image
    as it is (its grey version is itself) but still draws its factors, so `standard` runs the same on grey
    and colour sets and a run resumes identically; hue, which would need colour, is refused for grey images."""

    crop_scale: list[float] | None = None
    crop_ratio: list[float] = field(default_factory=lambda: list(CROP_RATIO))
    flip: bool = False
    brightness: float = 0.0
    contrast: float = 0.0
    saturation: float = 0.0
    hue: float = 0.0

    def __post_init__(self) -> None:
        ratio = _pair(self.crop_ratio, "crop_ratio", low=1e-6)  # checked even when nothing is cropped
        if self.crop_scale is None and ratio != CROP_RATIO:
            raise ValueError(
                f"crop_ratio {list(self.crop_ratio)} shapes the random crop, which is off: set crop_scale as well"
            )
        self.pipeline()  # every setting checked where the recipe is read

    def pipeline(self) -> Augment | None:
        """The ops these settings describe, in the order crop, flip, jitter; None when all are off."""
        ops: list[Augment] = []
        if self.crop_scale is not None:
            ops.append(RandomResizedCrop(_pair(self.crop_scale, "crop_scale"), _pair(self.crop_ratio, "crop_ratio")))
        if self.flip:
            ops.append(HorizontalFlip())
        jitter = ColourJitter(self.brightness, self.contrast, self.saturation, self.hue)
        if jitter != ColourJitter():
            ops.append(jitter)
        return chain(*ops) if ops else None


#: named settings a recipe may give instead of a mapping: `standard` is torchvision's RandomResizedCrop ranges,
#: a flip and the 0.4 colour jitter of the few-shot papers that augment (e.g. Tian et al. 2020)
AUGMENT_PRESETS: dict[str, AugmentSpec] = {
    "none": AugmentSpec(),
    "standard": AugmentSpec(crop_scale=[0.08, 1.0], flip=True, brightness=0.4, contrast=0.4, saturation=0.4),
}

"""Image transforms driven by a recipe's `preprocess` (evaluation) and `train.augment` (training).

Everything works on PIL images and returns float32 numpy arrays, so the same code feeds the
Paddle Inference predictor, static-graph calibration and dygraph training.

Conventions follow the published recipes (PaddleClas / PaddleSlim readers):
- short-side resize: the short side becomes `resize_short`, the long side is scaled and rounded;
- center crop: offsets `(w - crop) // 2`, `(h - crop) // 2`;
- square resize (detection): both sides become `resize`, aspect ratio not kept;
- normalize: `(x / 255 - mean) / std` when `scale`, else `(x - mean) / std` on 0..255 pixels.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

from zoo.schema import Augment, Interpolation, Preprocess

Transform = Callable[[Image.Image], np.ndarray]

_PIL_INTERPOLATION = {
    Interpolation.nearest: Image.NEAREST,
    Interpolation.bilinear: Image.BILINEAR,
    Interpolation.bicubic: Image.BICUBIC,
    Interpolation.lanczos: Image.LANCZOS,
}

# Default preprocessing of a plain inference model folder (the ImageNet evaluation convention).
DEFAULT_PREPROCESS = Preprocess(resize_short=256, crop=224)


def pil_interpolation(interp: Interpolation) -> int:
    """The PIL resampling filter of a recipe interpolation."""
    return _PIL_INTERPOLATION[Interpolation(interp)]


def resize_short(img: Image.Image, size: int, interp: Interpolation = Interpolation.bilinear) -> Image.Image:
    """Resize so the short side is `size`, keeping the aspect ratio."""
    w, h = img.size
    ratio = float(size) / min(w, h)
    new = (max(1, int(round(w * ratio))), max(1, int(round(h * ratio))))
    if new == (w, h):
        return img
    return img.resize(new, pil_interpolation(interp))


def center_crop(img: Image.Image, size: int) -> Image.Image:
    """Crop the central `size` x `size` square (pads with black first if the image is smaller)."""
    img = _pad_to(img, size)
    w, h = img.size
    left, top = (w - size) // 2, (h - size) // 2
    return img.crop((left, top, left + size, top + size))


def _pad_to(img: Image.Image, size: int) -> Image.Image:
    w, h = img.size
    if w >= size and h >= size:
        return img
    canvas = Image.new(img.mode, (max(w, size), max(h, size)))
    canvas.paste(img, ((canvas.size[0] - w) // 2, (canvas.size[1] - h) // 2))
    return canvas


@dataclass(frozen=True)
class Normalize:
    """PIL image -> normalized float32 array in the recipe's channel order and layout."""

    mean: Tuple[float, float, float]
    std: Tuple[float, float, float]
    scale: bool = True
    channels: str = "RGB"
    layout: str = "CHW"

    def __call__(self, img: Image.Image) -> np.ndarray:
        if self.channels == "L":
            arr = np.asarray(img.convert("L"), dtype=np.float32)[:, :, None]
            mean, std = np.float32(self.mean[0]), np.float32(self.std[0])
        else:
            arr = np.asarray(img.convert("RGB"), dtype=np.float32)
            mean = np.asarray(self.mean, dtype=np.float32)
            std = np.asarray(self.std, dtype=np.float32)
            if self.channels == "BGR":
                arr = arr[:, :, ::-1]
        if self.scale:
            arr = arr / np.float32(255.0)
        arr = (arr - mean) / std
        if self.layout == "CHW":
            arr = arr.transpose(2, 0, 1)
        return np.ascontiguousarray(arr, dtype=np.float32)


def _normalizer(pre: Preprocess) -> Normalize:
    return Normalize(tuple(pre.mean), tuple(pre.std), pre.scale, pre.channels, pre.layout)


class Compose:
    """Apply PIL steps in order, then the final array step."""

    def __init__(self, steps: Sequence[Callable[[Image.Image], Image.Image]], final: Normalize) -> None:
        self.steps = list(steps)
        self.final = final

    def __call__(self, img: Image.Image) -> np.ndarray:
        if img.mode not in ("RGB", "L"):
            img = img.convert("RGB")
        for step in self.steps:
            img = step(img)
        return self.final(img)


def effective_preprocess(pre: Preprocess, input_size: Optional[int] = None) -> Preprocess:
    """The preprocessing for another evaluation size.

    Square-resize recipes (detection) resize to `input_size`; crop recipes crop `input_size` and
    scale the short-side resize by the same ratio (256/224 stays 256/224).
    """
    if input_size is None:
        return pre
    if pre.resize is not None:
        return pre.model_copy(update={"resize": input_size})
    if pre.crop is not None:
        short = None
        if pre.resize_short is not None:
            short = int(round(pre.resize_short * input_size / pre.crop))
        return pre.model_copy(update={"crop": input_size, "resize_short": short})
    return pre.model_copy(update={"resize_short": input_size})


def eval_transform(pre: Preprocess, input_size: Optional[int] = None) -> Transform:
    """The evaluation transform of a recipe: PIL image -> float32 array (CHW unless the recipe says HWC)."""
    pre = effective_preprocess(pre, input_size)
    interp = pre.interpolation
    steps: List[Callable[[Image.Image], Image.Image]] = []
    if pre.resize is not None:
        side = pre.resize
        steps.append(lambda img: img.resize((side, side), pil_interpolation(interp)))
    elif pre.resize_short is not None:
        short = pre.resize_short
        steps.append(lambda img: resize_short(img, short, interp))
    if pre.crop is not None:
        crop = pre.crop
        steps.append(lambda img: center_crop(img, crop))
    return Compose(steps, _normalizer(pre))


class RandomResizedCrop:
    """Crop a random area (fraction in `scale`) and aspect ratio, resize to `size` (Inception-style)."""

    def __init__(self, size: int, scale: Tuple[float, float] = (0.08, 1.0),
                 ratio: Tuple[float, float] = (3.0 / 4.0, 4.0 / 3.0),
                 interp: Interpolation = Interpolation.bilinear) -> None:
        self.size, self.scale, self.ratio, self.interp = size, scale, ratio, interp

    def box(self, w: int, h: int, rng: random.Random) -> Tuple[int, int, int, int]:
        area = w * h
        log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(10):
            target = area * rng.uniform(*self.scale)
            aspect = math.exp(rng.uniform(*log_ratio))
            cw = int(round(math.sqrt(target * aspect)))
            ch = int(round(math.sqrt(target / aspect)))
            if 0 < cw <= w and 0 < ch <= h:
                left, top = rng.randint(0, w - cw), rng.randint(0, h - ch)
                return left, top, left + cw, top + ch
        side = min(w, h)  # fallback: the central square
        left, top = (w - side) // 2, (h - side) // 2
        return left, top, left + side, top + side

    def __call__(self, img: Image.Image) -> Image.Image:
        box = self.box(img.size[0], img.size[1], random)  # type: ignore[arg-type]
        return img.resize((self.size, self.size), pil_interpolation(self.interp), box=box)


class RandomCrop:
    """A random `size` x `size` crop (the image is padded first if smaller)."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __call__(self, img: Image.Image) -> Image.Image:
        img = _pad_to(img, self.size)
        w, h = img.size
        left, top = random.randint(0, w - self.size), random.randint(0, h - self.size)
        return img.crop((left, top, left + self.size, top + self.size))


def _hflip(img: Image.Image) -> Image.Image:
    return img.transpose(Image.FLIP_LEFT_RIGHT) if random.random() < 0.5 else img


def train_transform(pre: Preprocess, augment: Optional[Augment]) -> Transform:
    """The training transform of a QAT/ACT recipe.

    - `random_resized_crop`: random area in `crop_scale`, aspect in [3/4, 4/3], resized with the
      recipe's interpolation;
    - `random_crop`: short-side resize to the recipe's `resize_short` (if any), then a random crop;
    - `horizontal_flip`: p = 0.5; `auto_augment`: see `AutoAugment`.
    Without an `augment` section the evaluation transform is used.
    """
    if augment is None:
        return eval_transform(pre)
    steps: List[Callable[[Image.Image], Image.Image]] = []
    if augment.random_resized_crop is not None:
        steps.append(RandomResizedCrop(augment.random_resized_crop, tuple(augment.crop_scale),
                                       interp=pre.interpolation))
    elif augment.random_crop is not None:
        if pre.resize_short is not None:
            short, interp = pre.resize_short, pre.interpolation
            steps.append(lambda img: resize_short(img, short, interp))
        steps.append(RandomCrop(augment.random_crop))
    else:
        if pre.resize is not None:
            side, interp = pre.resize, pre.interpolation
            steps.append(lambda img: img.resize((side, side), pil_interpolation(interp)))
        elif pre.resize_short is not None:
            short, interp = pre.resize_short, pre.interpolation
            steps.append(lambda img: resize_short(img, short, interp))
        if pre.crop is not None:
            crop = pre.crop
            steps.append(lambda img: center_crop(img, crop))
    if augment.horizontal_flip:
        steps.append(_hflip)
    if augment.auto_augment:
        steps.append(AutoAugment())
    return Compose(steps, _normalizer(pre))


# --- AutoAugment -----------------------------------------------------------------------------
# The ImageNet policy of Cubuk et al. (2019), as 25 sub-policies of two (op, probability,
# magnitude 0..10) steps; one sub-policy is drawn per image. Implemented with PIL (paddle 2.6 has
# no AutoAugment transform). Simplification: geometric ops fill with black.

def _level(mag: int, top: float) -> float:
    return mag / 10.0 * top


def _signed(value: float) -> float:
    return value if random.random() < 0.5 else -value


def _op(name: str, img: Image.Image, mag: int) -> Image.Image:
    if name == "posterize":
        return ImageOps.posterize(img, max(1, 8 - int(_level(mag, 4))))
    if name == "rotate":
        return img.rotate(_signed(_level(mag, 30)))
    if name == "solarize":
        return ImageOps.solarize(img, 256 - int(_level(mag, 256)))
    if name == "autocontrast":
        return ImageOps.autocontrast(img)
    if name == "equalize":
        return ImageOps.equalize(img)
    if name == "invert":
        return ImageOps.invert(img)
    if name == "color":
        return ImageEnhance.Color(img).enhance(1.0 + _signed(_level(mag, 0.9)))
    if name == "contrast":
        return ImageEnhance.Contrast(img).enhance(1.0 + _signed(_level(mag, 0.9)))
    if name == "brightness":
        return ImageEnhance.Brightness(img).enhance(1.0 + _signed(_level(mag, 0.9)))
    if name == "sharpness":
        return ImageEnhance.Sharpness(img).enhance(1.0 + _signed(_level(mag, 0.9)))
    if name == "shearX":
        return img.transform(img.size, Image.AFFINE, (1, _signed(_level(mag, 0.3)), 0, 0, 1, 0))
    if name == "shearY":
        return img.transform(img.size, Image.AFFINE, (1, 0, 0, _signed(_level(mag, 0.3)), 1, 0))
    raise ValueError(f"unknown AutoAugment op {name!r}")


_IMAGENET_POLICY = [
    (("posterize", 0.4, 8), ("rotate", 0.6, 9)),
    (("solarize", 0.6, 5), ("autocontrast", 0.6, 5)),
    (("equalize", 0.8, 8), ("equalize", 0.6, 3)),
    (("posterize", 0.6, 7), ("posterize", 0.6, 6)),
    (("equalize", 0.4, 7), ("solarize", 0.2, 4)),
    (("equalize", 0.4, 4), ("rotate", 0.8, 8)),
    (("solarize", 0.6, 3), ("equalize", 0.6, 7)),
    (("posterize", 0.8, 5), ("equalize", 1.0, 2)),
    (("rotate", 0.2, 3), ("solarize", 0.6, 8)),
    (("equalize", 0.6, 8), ("posterize", 0.4, 6)),
    (("rotate", 0.8, 8), ("color", 0.4, 0)),
    (("rotate", 0.4, 9), ("equalize", 0.6, 2)),
    (("equalize", 0.0, 7), ("equalize", 0.8, 8)),
    (("invert", 0.6, 4), ("equalize", 1.0, 8)),
    (("color", 0.6, 4), ("contrast", 1.0, 8)),
    (("rotate", 0.8, 8), ("color", 1.0, 2)),
    (("color", 0.8, 8), ("solarize", 0.8, 7)),
    (("sharpness", 0.4, 7), ("invert", 0.6, 8)),
    (("shearX", 0.6, 5), ("equalize", 1.0, 9)),
    (("color", 0.4, 0), ("equalize", 0.6, 3)),
    (("equalize", 0.4, 7), ("solarize", 0.2, 4)),
    (("solarize", 0.6, 5), ("autocontrast", 0.6, 5)),
    (("invert", 0.6, 4), ("equalize", 1.0, 8)),
    (("color", 0.6, 4), ("contrast", 1.0, 8)),
    (("equalize", 0.8, 8), ("equalize", 0.6, 3)),
]


class AutoAugment:
    """The ImageNet AutoAugment policy on PIL images (RGB)."""

    def __call__(self, img: Image.Image) -> Image.Image:
        img = img.convert("RGB")
        for name, prob, mag in random.choice(_IMAGENET_POLICY):
            if random.random() < prob:
                img = _op(name, img, mag)
        return img

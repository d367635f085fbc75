"""Image transforms driven by a recipe's `preprocess` (evaluation) and `train.augment` (training).

`preprocess.backend` names the image library of the reader that produced the published numbers,
and each path follows that reader step by step:

- `cv2`, PaddleClas's readers (ppcls/data/preprocess/ops/operators.py: DecodeImage, ResizeImage,
  CropImage, NormalizeImage) and PaddleDetection 0.x's: the image as `cv2.imdecode` returns it
  (EXIF orientation applied) with its channels reversed to RGB; `cv2.resize` with the recipe's
  interpolation (bilinear is INTER_LINEAR, PaddleClas's default) through OpenCV's scalar kernels
  (`cv2_resize`: opencv-python 4.2.0.32's pixels); array slicing for the crop;
  `(x * float32(1/255) - mean) / std` in float32 on HWC, then CHW.
- `pil`, PaddleSlim's demo readers (demo/imagenet_reader.py), paddle.vision-style transforms and
  the zoo's own data: PIL's decode (no EXIF rotation), `Image.resize` with the recipe's filter,
  `Image.crop`, `x / 255` then mean and std.

`preprocess.sizing` names the rounding: `paddle` (long side `round(long * short_target / short)`,
crop offsets `(w - crop) // 2`), `paddleslim` (long side rounded, offsets `(w - crop) / 2` as
Pillow's crop rounds them: half to even; and the image stays in the mode it was decoded in, a
palette image resized with NEAREST, until it is converted to RGB after the crop) or
`torchvision` (long side truncated, offsets rounded half to even). A square `resize` (detection)
ignores the aspect ratio.

Images come from `zoo.data.imagenet.load_image(path, backend)`: OpenCV's decode for `cv2`,
PIL's (mode kept) for `pil`.

Transforms take what the datasets decode (a PIL image) or an RGB uint8 HWC array, and return
float32 arrays, so the same code feeds Paddle Inference, static-graph calibration and training.
"""
from __future__ import annotations

import math
import random
import threading
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
import PIL
from PIL import Image, ImageEnhance, ImageOps

from pydantic import ValidationError as PydanticValidationError

from zoo.errors import UsageError
from zoo.schema import Augment, Backend, CropSampler, Interpolation, Preprocess, Sizing, validation_messages

ImageLike = Union[Image.Image, np.ndarray]
Transform = Callable[[ImageLike], np.ndarray]
Step = Callable[[ImageLike], ImageLike]
Box = Tuple[int, int, int, int]

_PIL_INTERPOLATION = {
    Interpolation.nearest: Image.NEAREST,
    Interpolation.bilinear: Image.BILINEAR,
    Interpolation.bicubic: Image.BICUBIC,
    Interpolation.lanczos: Image.LANCZOS,
}

_CV2_INTERPOLATION = {
    Interpolation.nearest: cv2.INTER_NEAREST,
    Interpolation.bilinear: cv2.INTER_LINEAR,
    Interpolation.bicubic: cv2.INTER_CUBIC,
    Interpolation.lanczos: cv2.INTER_LANCZOS4,
}

# Default preprocessing of a plain inference model folder (the ImageNet evaluation convention).
DEFAULT_PREPROCESS = Preprocess(backend=Backend.pil, resize_short=256, crop=224)
# PaddleDetection 0.x's YOLOv3 eval reader: cv2 decode, bicubic square resize (608 by default), /255, ImageNet mean/std
DETECTION_PREPROCESS = Preprocess(backend=Backend.cv2, resize=608, interpolation=Interpolation.bicubic)


def pil_interpolation(interp: Interpolation) -> int:
    """The PIL resampling filter of a recipe interpolation."""
    return _PIL_INTERPOLATION[Interpolation(interp)]


def cv2_interpolation(interp: Interpolation) -> int:
    """The OpenCV interpolation flag of a recipe interpolation (PaddleClas's UnifiedResize table)."""
    return _CV2_INTERPOLATION[Interpolation(interp)]


_SCALAR_KERNELS = threading.Lock()


def cv2_resize(img: np.ndarray, size: Tuple[int, int], interp: Interpolation) -> np.ndarray:
    """`cv2.resize` through OpenCV's scalar (non-SIMD) kernels, the one place the zoo resizes with OpenCV.

    The SIMD bicubic that OpenCV gained after 4.2 rounds differently: on real photos 2.2 % of the
    values of opencv-python 4.5.5 to 4.11 (4.6.0.66 here) are one level off 4.2.0.32's, the build
    paddlepaddle 1.8.5 pinned for PaddleDetection 0.x. With the optimized paths off, every one of
    those builds gives 4.2.0.32's pixels exactly, bicubic and bilinear (scripts/opencv_builds.py).
    The switch is process-wide in OpenCV, so it is held under a lock and restored at once.
    """
    with _SCALAR_KERNELS:
        optimized = cv2.useOptimized()
        cv2.setUseOptimized(False)
        try:
            return cv2.resize(img, size, interpolation=cv2_interpolation(interp))
        finally:
            cv2.setUseOptimized(optimized)


def opencv_build() -> str:
    """The OpenCV build the cv2 backend runs, and how it resizes (reported with every evaluation)."""
    return f"opencv {cv2.__version__} (scalar resize kernels)"


def image_library(pre: Preprocess) -> str:
    """The image library and build that decode and resize the images for `pre`."""
    if Backend(pre.backend) is Backend.cv2:
        return opencv_build()
    return f"Pillow {PIL.__version__}"


# --- geometry shared by both backends --------------------------------------------------------

def short_side_size(w: int, h: int, size: int, sizing: Sizing = Sizing.paddle) -> Tuple[int, int]:
    """(width, height) once the short side of a `w` x `h` image is resized to `size`."""
    if Sizing(sizing) is Sizing.torchvision:
        if w <= h:
            return size, int(size * h / w)
        return int(size * w / h), size
    percent = float(size) / min(w, h)
    return max(1, int(round(w * percent))), max(1, int(round(h * percent)))


def center_box(w: int, h: int, size: int, sizing: Sizing = Sizing.paddle) -> Box:
    """(left, top, right, bottom) of the central `size` x `size` square of a `w` x `h` image."""
    if Sizing(sizing) in (Sizing.torchvision, Sizing.paddleslim):  # Python's round: halves to even, as Pillow's crop
        left, top = int(round((w - size) / 2.0)), int(round((h - size) / 2.0))
    else:
        left, top = (w - size) // 2, (h - size) // 2
    return left, top, left + size, top + size


def image_size(img: ImageLike) -> Tuple[int, int]:
    """(width, height) of a PIL image or an HWC array."""
    if isinstance(img, np.ndarray):
        return img.shape[1], img.shape[0]
    return img.size


def _resize_to(img: ImageLike, size: Tuple[int, int], interp: Interpolation) -> ImageLike:
    if isinstance(img, np.ndarray):
        # upstream calls cv2.resize even at the same size; OpenCV copies then
        return cv2_resize(img, size, interp)
    if img.size == size:
        return img
    return img.resize(size, pil_interpolation(interp))


def _crop(img: ImageLike, box: Box) -> ImageLike:
    if isinstance(img, np.ndarray):
        left, top, right, bottom = box
        return img[top:bottom, left:right]
    return img.crop(box)


def _pad_to(img: ImageLike, size: int) -> ImageLike:
    """Center the image on a black canvas at least `size` on each side (upstream readers never
    crop past the edge: their short side is resized to at least the crop first)."""
    w, h = image_size(img)
    if w >= size and h >= size:
        return img
    cw, ch = max(w, size), max(h, size)
    left, top = (cw - w) // 2, (ch - h) // 2
    if isinstance(img, np.ndarray):
        canvas = np.zeros((ch, cw) + img.shape[2:], dtype=img.dtype)
        canvas[top:top + h, left:left + w] = img
        return canvas
    canvas = Image.new(img.mode, (cw, ch))
    canvas.paste(img, (left, top))
    return canvas


def resize_short(img: ImageLike, size: int, interp: Interpolation = Interpolation.bilinear,
                 sizing: Sizing = Sizing.paddle) -> ImageLike:
    """Resize so the short side is `size`, keeping the aspect ratio (PIL image or cv2 array)."""
    w, h = image_size(img)
    return _resize_to(img, short_side_size(w, h, size, sizing), interp)


def center_crop(img: ImageLike, size: int, sizing: Sizing = Sizing.paddle) -> ImageLike:
    """Crop the central `size` x `size` square (pads with black first if the image is smaller)."""
    img = _pad_to(img, size)
    return _crop(img, center_box(*image_size(img), size, sizing))


def rgb_array(img: ImageLike) -> np.ndarray:
    """An RGB uint8 HWC array from an image handed in by a caller (the datasets decode with OpenCV).

    For a PIL image this is PaddleClas's `cv2.imdecode(data, 1)` on 8-bit files (EXIF orientation
    applied); 16-bit and CMYK files decode differently in PIL, which is why the datasets do not use it.
    """
    if isinstance(img, np.ndarray):
        if img.ndim == 2:
            return np.repeat(img[:, :, None], 3, axis=2)
        return img
    return np.asarray(ImageOps.exif_transpose(img).convert("RGB"))


def _as_backend(img: ImageLike, backend: Backend, keep_mode: bool = False) -> ImageLike:
    """The image as the backend's steps take it: an RGB array (cv2), or a PIL image in RGB or L, or in
    its decoded mode when `keep_mode` (PaddleSlim's reader converts only after the crop)."""
    if backend is Backend.cv2:
        return rgb_array(img)
    if isinstance(img, np.ndarray):
        img = Image.fromarray(img)
    return img if keep_mode or img.mode in ("RGB", "L") else img.convert("RGB")


# --- normalization -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Normalize:
    """Image -> normalized float32 array in the recipe's channel order and layout.

    `cv2` follows PaddleClas's NormalizeImage: `(x * float32(1/255) - mean) / std` in float32.
    `pil` divides by 255 as PaddleSlim's reader does (which then applies mean and std in float64;
    this float32 arithmetic is kept so the bundled digits numbers stay measured). Measured against
    step-by-step copies of the readers (tests/test_preprocess_fidelity.py, real photos included):
    PaddleClas and paddle.vision exactly; PaddleSlim's reader to 4.8e-7; PaddleDetection 0.x's
    (float64 mean/std) to 7.2e-7 with `scale`, to 1.2e-7 relative (1.2e-4 absolute) without.
    """

    mean: Tuple[float, float, float]
    std: Tuple[float, float, float]
    scale: bool = True
    channels: str = "RGB"
    layout: str = "CHW"
    backend: Backend = Backend.pil

    def __call__(self, img: ImageLike) -> np.ndarray:
        if self.backend is Backend.cv2:
            arr = self._cv2(rgb_array(img))
        else:
            arr = self._pil(_as_backend(img, Backend.pil))
        if self.layout == "CHW":
            arr = arr.transpose(2, 0, 1)
        return np.ascontiguousarray(arr, dtype=np.float32)

    def _stats(self, n: int) -> Tuple[np.ndarray, np.ndarray]:
        return np.asarray(self.mean[:n], dtype=np.float32), np.asarray(self.std[:n], dtype=np.float32)

    def _cv2(self, arr: np.ndarray) -> np.ndarray:
        if self.channels == "L":
            arr = cv2.cvtColor(arr, cv2.COLOR_RGB2GRAY)[:, :, None]
        elif self.channels == "BGR":
            arr = arr[:, :, ::-1]
        mean, std = self._stats(arr.shape[2])
        factor = np.float32(1.0 / 255.0 if self.scale else 1.0)
        return (arr.astype(np.float32) * factor - mean) / std

    def _pil(self, img: Image.Image) -> np.ndarray:
        if self.channels == "L":
            arr = np.asarray(img.convert("L"), dtype=np.float32)[:, :, None]
        else:
            arr = np.asarray(img.convert("RGB"), dtype=np.float32)
            if self.channels == "BGR":
                arr = arr[:, :, ::-1]
        mean, std = self._stats(arr.shape[2])
        if self.scale:
            arr = arr / np.float32(255.0)
        return (arr - mean) / std


def _normalizer(pre: Preprocess) -> Normalize:
    return Normalize(tuple(pre.mean), tuple(pre.std), pre.scale, pre.channels, pre.layout, Backend(pre.backend))


def _compose(pre: Preprocess, steps: Sequence[Step]) -> Compose:
    return Compose(steps, _normalizer(pre), keep_mode=Sizing(pre.sizing) is Sizing.paddleslim,
                   pad_width=pre.resize_pad[1] if pre.resize_pad else None)


class Compose:
    """Bring the input to the backend's image type, apply the steps in order, normalize, then pad the
    width with zeros to `pad_width` (after normalization, so the padding is the mean pixel)."""

    def __init__(self, steps: Sequence[Step], final: Normalize, keep_mode: bool = False,
                 pad_width: Optional[int] = None) -> None:
        self.steps = list(steps)
        self.final = final
        self.keep_mode = keep_mode
        self.pad_width = pad_width

    @property
    def backend(self) -> Backend:
        """The image library this transform follows."""
        return self.final.backend

    def __call__(self, img: ImageLike) -> np.ndarray:
        img = _as_backend(img, self.backend, self.keep_mode)
        for step in self.steps:
            img = step(img)
        arr = self.final(img)
        if self.pad_width is None:
            return arr
        axis = 2 if self.final.layout == "CHW" else 1
        missing = self.pad_width - arr.shape[axis]
        if missing <= 0:
            return arr
        pad = [(0, 0)] * arr.ndim
        pad[axis] = (0, missing)
        return np.pad(arr, pad)


InputSize = Union[int, Tuple[int, int]]  # a square side, or (height, width)


def effective_preprocess(pre: Preprocess, input_size: Optional[InputSize] = None) -> Preprocess:
    """The preprocessing for another evaluation size: a side, or (height, width).

    Square-resize recipes (detection) resize to `input_size`; crop recipes crop `input_size` and
    scale the short-side resize by the same ratio (256/224 stays 256/224); `resize_hw` and
    `resize_pad` take the (height, width). A non-square size needs one of the last two.
    """
    if input_size is None:
        return pre
    if isinstance(input_size, tuple):
        h, w = input_size
        if pre.resize_hw is not None:
            return pre.model_copy(update={"resize_hw": (h, w)})
        if pre.resize_pad is not None:
            return pre.model_copy(update={"resize_pad": (h, w)})
        if h != w:
            raise UsageError(f"a {h}x{w} input needs a resize that makes non-square inputs; this preprocessing "
                             "makes square ones", hint="Pass --resize direct or --resize height-pad.")
        input_size = h
    if pre.resize_hw is not None or pre.resize_pad is not None:
        field = "resize_hw" if pre.resize_hw is not None else "resize_pad"
        return pre.model_copy(update={field: (input_size, input_size)})
    if pre.resize is not None:
        return pre.model_copy(update={"resize": input_size})
    if pre.crop is not None:
        short = None
        if pre.resize_short is not None:
            short = int(round(pre.resize_short * input_size / pre.crop))
        return pre.model_copy(update={"crop": input_size, "resize_short": short})
    return pre.model_copy(update={"resize_short": input_size})


def _resize_steps(pre: Preprocess) -> List[Step]:
    interp, sizing = Interpolation(pre.interpolation), Sizing(pre.sizing)
    if pre.resize is not None:
        # PaddleDetection 0.x passes fx = side / w, fy = side / h; OpenCV derives the same scale
        # from dsize, so both give the same pixels
        side = (pre.resize, pre.resize)
        return [lambda img: _resize_to(img, side, interp)]
    if pre.resize_hw is not None:
        size = (pre.resize_hw[1], pre.resize_hw[0])  # the image libraries take (width, height)
        return [lambda img: _resize_to(img, size, interp)]
    if pre.resize_pad is not None:
        height, width = pre.resize_pad
        return [lambda img: _resize_to(img, height_fit(*image_size(img), height, width), interp)]
    if pre.resize_short is not None:
        short = pre.resize_short
        return [lambda img: resize_short(img, short, interp, sizing)]
    return []


def height_fit(w: int, h: int, height: int, max_width: int) -> Tuple[int, int]:
    """(width, height) of a `w` x `h` image resized to `height` with its aspect kept, the width rounded up
    and capped at `max_width` (the text-line convention: the rest of the width is padded)."""
    return min(max_width, max(1, math.ceil(height * w / h))), height


def eval_transform(pre: Preprocess, input_size: Optional[InputSize] = None) -> Transform:
    """The evaluation transform of a recipe: image -> float32 array (CHW unless the recipe says HWC)."""
    pre = effective_preprocess(pre, input_size)
    steps = _resize_steps(pre)
    if pre.crop is not None:
        crop, sizing = pre.crop, Sizing(pre.sizing)
        steps.append(lambda img: center_crop(img, crop, sizing))
    return _compose(pre, steps)


# --- training ----------------------------------------------------------------------------------

class RandomResizedCrop:
    """Crop a random area (fraction in `scale`) and aspect ratio, resize to `size` x `size`.

    `inception` (the zoo's own sampler): up to 10 draws of a log-uniform aspect and an area,
    sides rounded, else the central square; a PIL image is resampled straight from the source box.
    `paddle` (PaddleClas RandCropImage, PaddleSlim demo/imagenet_reader.py random_crop): one draw
    of sqrt(uniform(ratio)) as the aspect, the area range capped so the box fits, sides
    truncated; the box is cut out, then resized.
    """

    def __init__(self, size: int, scale: Tuple[float, float] = (0.08, 1.0),
                 ratio: Tuple[float, float] = (3.0 / 4.0, 4.0 / 3.0),
                 interp: Interpolation = Interpolation.bilinear,
                 sampler: CropSampler = CropSampler.inception) -> None:
        self.size, self.scale, self.ratio = size, scale, ratio
        self.interp, self.sampler = Interpolation(interp), CropSampler(sampler)

    def box(self, w: int, h: int, rng: random.Random) -> Box:
        """The crop box (left, top, right, bottom) for a `w` x `h` image."""
        if self.sampler is CropSampler.paddle:
            return self._paddle_box(w, h, rng)
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

    def _paddle_box(self, w: int, h: int, rng: random.Random) -> Box:
        aspect = math.sqrt(rng.uniform(*self.ratio))
        bw, bh = aspect, 1.0 / aspect
        bound = min((float(w) / h) / (bw ** 2), (float(h) / w) / (bh ** 2))
        high, low = min(self.scale[1], bound), min(self.scale[0], bound)
        side = math.sqrt(w * h * rng.uniform(low, high))
        # the cap keeps the box inside the image; max(1, ...) only guards images a few pixels wide
        cw, ch = min(w, max(1, int(side * bw))), min(h, max(1, int(side * bh)))
        left, top = rng.randint(0, w - cw), rng.randint(0, h - ch)
        return left, top, left + cw, top + ch

    def __call__(self, img: ImageLike) -> ImageLike:
        box = self.box(*image_size(img), random)  # type: ignore[arg-type]
        out = (self.size, self.size)
        if self.sampler is CropSampler.inception and not isinstance(img, np.ndarray):
            return img.resize(out, pil_interpolation(self.interp), box=box)
        return _resize_to(_crop(img, box), out, self.interp)


class RandomCrop:
    """A random `size` x `size` crop (the image is padded first if smaller)."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __call__(self, img: ImageLike) -> ImageLike:
        img = _pad_to(img, self.size)
        w, h = image_size(img)
        left, top = random.randint(0, w - self.size), random.randint(0, h - self.size)
        return _crop(img, (left, top, left + self.size, top + self.size))


def _hflip(img: ImageLike) -> ImageLike:
    if random.random() >= 0.5:
        return img
    if isinstance(img, np.ndarray):
        return cv2.flip(img, 1)  # RandFlipImage(flip_code=1)
    return img.transpose(Image.FLIP_LEFT_RIGHT)


def train_transform(pre: Preprocess, augment: Optional[Augment]) -> Transform:
    """The training transform of a QAT/ACT recipe, in the recipe's backend.

    - `random_resized_crop`: area in `crop_scale`, aspect in [3/4, 4/3], drawn by `crop_sampler`,
      resized with the recipe's interpolation;
    - `random_crop`: short-side resize to the recipe's `resize_short` (if any), then a random crop;
    - `horizontal_flip`: p = 0.5; `auto_augment`: see `AutoAugment` (after the flip, as PaddleClas).
    Without an `augment` section the evaluation transform is used.
    """
    if augment is None:
        return eval_transform(pre)
    steps: List[Step] = []
    if augment.random_resized_crop is not None:
        steps.append(RandomResizedCrop(augment.random_resized_crop, tuple(augment.crop_scale),
                                       interp=pre.interpolation, sampler=augment.crop_sampler))
    elif augment.random_crop is not None:
        if pre.resize_short is not None:
            steps += _resize_steps(pre)
        steps.append(RandomCrop(augment.random_crop))
    else:
        steps += _resize_steps(pre)
        if pre.crop is not None:
            crop, sizing = pre.crop, Sizing(pre.sizing)
            steps.append(lambda img: center_crop(img, crop, sizing))
    if augment.horizontal_flip:
        steps.append(_hflip)
    if augment.auto_augment:
        steps.append(AutoAugment())
    return _compose(pre, steps)


# --- AutoAugment -------------------------------------------------------------------------------
# The ImageNet policy of Cubuk et al. (2019) as PaddleClas applies it (ImageNetPolicy in
# ppcls/data/preprocess/ops/autoaugment.py): 25 sub-policies of two (op, probability, level 0..9)
# steps, one sub-policy drawn per image. A level picks one of 10 evenly spaced magnitudes from 0
# to the op's maximum; shears, colour and contrast-like ops take a random sign, rotation does not;
# geometric ops fill with grey 128.

_FILL = (128, 128, 128)
_MAGNITUDES = {
    "shearX": np.linspace(0, 0.3, 10),
    "shearY": np.linspace(0, 0.3, 10),
    "rotate": np.linspace(0, 30, 10),
    "color": np.linspace(0.0, 0.9, 10),
    "contrast": np.linspace(0.0, 0.9, 10),
    "sharpness": np.linspace(0.0, 0.9, 10),
    "brightness": np.linspace(0.0, 0.9, 10),
    "posterize": np.round(np.linspace(8, 4, 10), 0).astype(np.int64),
    "solarize": np.linspace(256, 0, 10),
}
_ENHANCERS = {"color": ImageEnhance.Color, "contrast": ImageEnhance.Contrast,
              "sharpness": ImageEnhance.Sharpness, "brightness": ImageEnhance.Brightness}


def _sign() -> int:
    return random.choice([-1, 1])


def _op(name: str, img: Image.Image, level: int) -> Image.Image:
    mag = _MAGNITUDES[name][level] if name in _MAGNITUDES else 0
    if name in ("shearX", "shearY"):
        shear = float(mag) * _sign()
        coeffs = (1, shear, 0, 0, 1, 0) if name == "shearX" else (1, 0, 0, shear, 1, 0)
        return img.transform(img.size, Image.AFFINE, coeffs, Image.BICUBIC, fillcolor=_FILL)
    if name == "rotate":
        return img.rotate(float(mag), fillcolor=_FILL)
    if name in _ENHANCERS:
        return _ENHANCERS[name](img).enhance(1 + float(mag) * _sign())
    if name == "posterize":
        return ImageOps.posterize(img, int(mag))
    if name == "solarize":
        return ImageOps.solarize(img, float(mag))
    if name == "autocontrast":
        return ImageOps.autocontrast(img)
    if name == "equalize":
        return ImageOps.equalize(img)
    if name == "invert":
        return ImageOps.invert(img)
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
    """The ImageNet AutoAugment policy on RGB images (a cv2 array goes through PIL and back)."""

    def __call__(self, img: ImageLike) -> ImageLike:
        array_in = isinstance(img, np.ndarray)
        pil = Image.fromarray(np.ascontiguousarray(img)) if array_in else img.convert("RGB")
        for name, prob, level in random.choice(_IMAGENET_POLICY):
            if random.random() < prob:
                pil = _op(name, pil, level)
        return np.asarray(pil) if array_in else pil


def apply_overrides(pre: Preprocess, overrides: Dict[str, Any]) -> Preprocess:
    """The preprocessing with command-line overrides, validated like a recipe's."""
    given = {k: v for k, v in overrides.items() if v is not None}
    if not given:
        return pre
    data = pre.model_dump()
    mode = given.pop("resize_mode", None)
    if mode is not None:
        data.update(resize_mode_fields(pre, mode))
    if "resize_short" in given:
        data.update(resize=None, resize_hw=None, resize_pad=None)
    data.update(given)
    try:
        return Preprocess.model_validate(data)
    except PydanticValidationError as exc:  # a usage problem: name the flag's field and what is wrong
        raise UsageError(f"invalid preprocessing flags: {'; '.join(validation_messages(exc))}",
                         hint="See `zoo eval --help`.") from None


# --resize: the resize a deployment uses, named as the command line names it
RESIZE_MODES = ("short-crop", "direct", "height-pad")


def resize_mode_fields(pre: Preprocess, mode: str) -> Dict[str, Any]:
    """The Preprocess fields of resize `mode` at `pre`'s current output size (the model's size replaces it later):
    short-crop (short side to size / 0.875, center crop), direct (resize to H x W), height-pad (resize to H, pad
    the width)."""
    h, w = pre.output_hw() or (pre.resize_short or 224,) * 2
    cleared: Dict[str, Any] = dict.fromkeys(("resize_short", "resize", "resize_hw", "resize_pad", "crop"))
    if mode == "short-crop":
        return {**cleared, "resize_short": int(round(h / 0.875)), "crop": h}
    if mode == "direct":
        return {**cleared, "resize_hw": (h, w)}
    if mode == "height-pad":
        return {**cleared, "resize_pad": (h, w)}
    raise UsageError(f"unknown --resize {mode!r}", hint=f"Use one of {', '.join(RESIZE_MODES)}.")

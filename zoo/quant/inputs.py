"""Calibration inputs for `zoo quantize`: an ImageNet-layout folder or a .npy/.npz array, checked against the model."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator, List, Optional, Tuple, Union

import numpy as np

from zoo.errors import DataError, ModelError
from zoo.modelfiles import ModelFiles
from zoo.schema import Preprocess
from zoo.predictor import Predictor

Calib = Union[np.ndarray, Callable[[], Iterator[np.ndarray]]]
CROP_RATIO = 0.875  # ImageNet eval: resize the short side to crop / 0.875, then center crop


def imagenet_preprocess(side: int) -> Preprocess:
    """The default ImageNet eval preprocessing for a square input of `side`."""
    return Preprocess(resize_short=int(round(side / CROP_RATIO)), crop=side, interpolation="bilinear")


def _declared(shape: List[int]) -> Tuple[Optional[int], Optional[int], Optional[int]]:
    if len(shape) != 4:
        raise ModelError(f"the model's input has shape {shape}; `zoo quantize` handles image models (N, C, H, W)")
    c, h, w = (int(d) if d and int(d) > 0 else None for d in shape[1:])
    return c, h, w


def load_array(path: Path, declared: List[int]) -> np.ndarray:
    """(N, C, H, W) float32 inputs from a .npy, or the only (or `x`/`images`) array of a .npz."""
    try:
        loaded = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read {path}: {exc}", hint="Pass a .npy or .npz file written by numpy.") from None
    if isinstance(loaded, np.lib.npyio.NpzFile):
        with loaded:
            keys = list(loaded.keys())
            key = next((k for k in ("x", "images", "inputs") if k in keys), keys[0] if len(keys) == 1 else None)
            if key is None:
                raise DataError(f"{path} holds several arrays {keys}", hint="Name the input array `x`, or keep one array.")
            array = loaded[key]
    else:
        array = loaded
    c, h, w = _declared(declared)
    want = f"(N, {c or 'C'}, {h or 'H'}, {w or 'W'})"
    if array.ndim != 4:
        raise DataError(f"{path}: inputs of shape {array.shape}; the model takes {want}", hint="Save a batch of images as (N, C, H, W).")
    for got, need, name in zip(array.shape[1:], (c, h, w), "CHW"):
        if need is not None and got != need:
            raise DataError(
                f"{path}: inputs of shape {tuple(array.shape)} do not fit the model's input {want} ({name} is {got}, not {need})",
                hint="Preprocess the calibration images to the model's input size and channel count.",
            )
    if len(array) == 0:
        raise DataError(f"{path} holds no samples")
    array = np.ascontiguousarray(array, dtype=np.float32)
    finite = np.isfinite(array.reshape(len(array), -1)).all(axis=1)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise DataError(
            f"{path}: {len(bad)} of {len(array)} samples hold NaN or infinite values (first: sample {int(bad[0])})",
            hint="Calibration on non-finite inputs gives scales that make the INT8 model output NaN; fix or drop those samples.",
        )
    return array


def folder_batches(root: Path, declared: List[int], split: str, batch_size: int, batch_nums: int) -> Callable[[], Iterator[np.ndarray]]:
    """Calibration batches from an ImageNet-layout folder with the default ImageNet eval transform."""
    from zoo.data.imagenet import ImageListDataset, image_batches
    from zoo.data.transforms import eval_transform

    c, h, w = _declared(declared)
    if c not in (None, 3):
        raise DataError(f"the model takes {c}-channel inputs; an image folder gives RGB", hint="Pass a .npy/.npz of ready inputs instead.")
    if h is not None and w is not None and h != w:
        raise DataError(f"the model takes {h}x{w} inputs; the ImageNet transform makes square crops", hint="Pass a .npy/.npz of ready inputs instead.")
    side = h or w or 224
    dataset = ImageListDataset(Path(root), split, eval_transform(imagenet_preprocess(side)), batch_size * batch_nums)
    batches = image_batches(dataset, batch_size)
    batches.samples = len(dataset)  # type: ignore[attr-defined]  # what calibration_input reports
    return batches


def calibration_input(data: Path, model: ModelFiles, split: str, batch_size: int, batch_nums: int) -> Tuple[Calib, int]:
    """(an array or a batch callable for zoo.quant.ptq.quantize_static, the number of samples it gives, at most
    batch_size x batch_nums); one batch is run through the model first."""
    from zoo.quant.base import model_input

    data = Path(data).expanduser()
    if not data.exists():
        raise DataError(f"calibration data {data} does not exist")
    _, declared = model_input(model)
    if data.is_file():
        if data.suffix not in (".npy", ".npz"):
            raise DataError(f"{data} is neither a folder nor a .npy/.npz file")
        calib: Calib = load_array(data, declared)
        probe = calib[: min(len(calib), 2)]
    else:
        calib = folder_batches(data, declared, split, batch_size, batch_nums)
        probe = next(iter(calib()))[:2]
    Predictor(model).run(probe)  # a shape the model rejects fails here with a clear ModelError
    samples = len(calib) if isinstance(calib, np.ndarray) else int(getattr(calib, "samples"))
    return calib, min(samples, batch_size * batch_nums)


def short_calibration(samples: int, batch_size: int, batch_nums: int) -> Optional[str]:
    """The warning for calibration data smaller than batch_size x batch_nums (None when there is enough)."""
    wanted = batch_size * batch_nums
    if samples >= wanted:
        return None
    return (f"calibrating on {samples} samples, fewer than --batch-size x --batch-nums = {batch_size} x {batch_nums} = "
            f"{wanted}: the thresholds are searched on less data than asked")

"""Calibration inputs for `zoo quantize`: an ImageNet-layout folder or a .npy/.npz array, checked against the model."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple, Union

import numpy as np

from zoo.contracts import detection_contract, feeds_for
from zoo.data.folder_inputs import ImageChoices
from zoo.errors import DataError, ModelError, UsageError
from zoo.modelfiles import ModelFiles
from zoo.predictor import Predictor
from zoo.program import read_program

Calib = Union[np.ndarray, Callable[[], Iterator[np.ndarray]]]


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


def folder_dataset(root: Path, model: ModelFiles, images: ImageChoices, split: str, max_samples: Optional[int]) -> Any:
    """An ImageNet-layout folder's `split`, preprocessed as `zoo eval` would feed this model (its exported
    preprocessing or the ImageNet default, the image flags, the declared input size)."""
    from zoo.data.imagenet import ImageListDataset
    from zoo.data.transforms import eval_transform

    channels = _declared(read_program_input(model))[0]
    if channels not in (None, 3, 1):
        raise DataError(f"the model takes {channels}-channel inputs; an image folder gives RGB",
                        hint="Pass a .npy/.npz of ready inputs instead.")
    pre, size = images.resolve(model)
    return ImageListDataset(Path(root), split, eval_transform(pre, size), max_samples)


def folder_batches(root: Path, model: ModelFiles, images: ImageChoices, split: str, batch_size: int,
                   batch_nums: int) -> Callable[[], Iterator[np.ndarray]]:
    """Calibration batches from an ImageNet-layout folder (see `folder_dataset`)."""
    from zoo.data.imagenet import image_batches

    dataset = folder_dataset(root, model, images, split, batch_size * batch_nums)
    batches = image_batches(dataset, batch_size)
    batches.samples = len(dataset)  # type: ignore[attr-defined]  # what calibration_input reports
    return batches


def read_program_input(model: ModelFiles) -> List[int]:
    """The declared shape of the model's image input: its only feed, or a detector's `image` (its size feeds are
    derived from the images, see `with_image_sizes`)."""
    from zoo.quant.base import model_input

    contract = detector_contract(model)
    if contract is None:
        return model_input(model)[1]
    return [int(d) for d in next(s.shape for s in read_program(model).inputs if s.name == "image")]


def detector_contract(model: ModelFiles) -> Optional[Any]:
    """The detection contract (legacy image + im_size, or 2.x image + im_shape + scale_factor) of a model with
    several feeds that decodes boxes; None for a one-input model."""
    info = read_program(model)
    return None if len(info.inputs) < 2 else detection_contract(info, where=model.folder)


def with_image_sizes(calib: Calib, model: ModelFiles, batch_size: int) -> Callable[[], Iterator[Dict[str, np.ndarray]]]:
    """A detector's calibration batches: each batch of images with the size feeds of its contract, the images
    taken as the originals (their own size: im_size = (H, W); im_shape = (H, W), scale_factor = 1)."""
    contract = detector_contract(model)
    chunks = (lambda: (calib[i:i + batch_size] for i in range(0, len(calib), batch_size))) \
        if isinstance(calib, np.ndarray) else calib

    def batches() -> Iterator[Dict[str, np.ndarray]]:
        for images in chunks():
            yield feeds_for(contract, images, [tuple(images.shape[2:4])] * len(images))
    batches.samples = len(calib) if isinstance(calib, np.ndarray) else getattr(calib, "samples", 0)  # type: ignore[attr-defined]
    return batches


def sized(declared: List[int], images: ImageChoices) -> List[int]:
    """The declared input shape with --input-size filling (and checked against) its height and width."""
    if images.size is None or len(declared) != 4:
        return declared
    h, w = images.size if isinstance(images.size, tuple) else (images.size, images.size)
    for got, need, name in ((h, declared[2], "height"), (w, declared[3], "width")):
        if need and int(need) > 0 and int(need) != got:
            raise UsageError(f"--input-size {h}x{w} contradicts the model's declared input {list(declared)} ({name})",
                             hint="Drop --input-size: the declared size is used.")
    return [declared[0], declared[1], h, w]


def calibration_input(data: Path, model: ModelFiles, split: str, batch_size: int, batch_nums: int,
                      images: ImageChoices = ImageChoices()) -> Tuple[Calib, int]:
    """(an array or a batch callable for zoo.quant.ptq.quantize_static, the number of samples it gives, at most
    batch_size x batch_nums); one batch is run through the model first. `images` says how a folder's images
    become inputs (and --input-size checks an array's)."""
    data = Path(data).expanduser()
    if not data.exists():
        raise DataError(f"calibration data {data} does not exist")
    declared = sized(read_program_input(model), images)
    if data.is_file():
        if data.suffix not in (".npy", ".npz"):
            raise DataError(f"{data} is neither a folder nor a .npy/.npz file")
        calib: Calib = load_array(data, declared)
        probe = calib[: min(len(calib), 2)]
    else:
        calib = folder_batches(data, model, images, split, batch_size, batch_nums)
        probe = next(iter(calib()))[:2]
    samples = len(calib) if isinstance(calib, np.ndarray) else int(getattr(calib, "samples"))
    if detector_contract(model) is not None:
        calib = with_image_sizes(calib, model, batch_size)
        feeds = next(iter(calib()))
        probe = [feeds[s.name][:2] for s in read_program(model).inputs]
    else:
        probe = [probe]
    Predictor(model).run(probe)  # a shape the model rejects fails here with a clear ModelError
    return calib, min(samples, batch_size * batch_nums)


def short_calibration(samples: int, batch_size: int, batch_nums: int) -> Optional[str]:
    """The warning for calibration data smaller than batch_size x batch_nums (None when there is enough)."""
    wanted = batch_size * batch_nums
    if samples >= wanted:
        return None
    return (f"calibrating on {samples} samples, fewer than --batch-size x --batch-nums = {batch_size} x {batch_nums} = "
            f"{wanted}: the thresholds are searched on less data than asked")


def with_progress(calib: Calib, batch_size: int, batch_nums: int, log: Callable[[str], None]) -> Calib:
    """`calib` that reports each calibration batch as it is read ("calibration batch i/n, Ns"); Paddle reads the
    data twice for KL and hist, so a second pass is reported as such."""
    import time

    passes = [0]
    started = time.perf_counter()

    def batches() -> Iterator[np.ndarray]:
        passes[0] += 1
        source = ([calib[s:s + batch_size] for s in range(0, len(calib), batch_size)]
                  if isinstance(calib, np.ndarray) else calib())
        total = batch_nums if not isinstance(calib, np.ndarray) else min(batch_nums, -(-len(calib) // batch_size))
        for index, batch in enumerate(source, start=1):
            yield batch
            label = f"pass {passes[0]}, " if passes[0] > 1 else ""
            log(f"calibration {label}batch {min(index, total)}/{total}, {time.perf_counter() - started:.1f} s")

    return batches

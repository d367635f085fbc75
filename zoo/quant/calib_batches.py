"""Calibration batches and the inputs they feed: the plumbing shared by PTQ, the accuracy search,
`analyze` and the benchmarks.

`calibration_batches` turns an (N, C, H, W) array or a callable yielding batches into re-iterable
batches checked against the model's inputs (`model_inputs`); `static_loader` wraps them in the
static-mode DataLoader Paddle's post-training quantization reads; `resolve_skip_patterns` turns
shell-style patterns into the tensor names they match.
"""
from __future__ import annotations

import fnmatch
from typing import Callable, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from zoo.errors import QuantizeError, paddle_message
from zoo.modelfiles import ModelFiles
from zoo.program import InputSpec, read_program

Batch = Union[np.ndarray, Mapping[str, np.ndarray]]
Calib = Union[np.ndarray, Callable[[], Iterable[Batch]]]


def model_inputs(files: ModelFiles) -> Tuple[List[InputSpec], List[str]]:
    """The model's inputs (in feed order) and the names of the variables its ops use, from the program file alone."""
    info = read_program(files)
    names = sorted({v for op in info.ops for v in (*op.input_vars(), *op.output_vars())})
    return info.inputs, names


class CalibBatches:
    """Re-iterable calibration batches as tuples in feed order (Paddle reads the data twice for KL/hist)."""

    def __init__(self, make: Callable[[], Iterable[Batch]], feeds: List[InputSpec]) -> None:
        self._make = make
        self.feeds = feeds
        self.error: Optional[QuantizeError] = None

    def __iter__(self) -> Iterator[Tuple[np.ndarray, ...]]:
        # Paddle's static DataLoader reads this in a thread that hangs the caller if it raises,
        # so a failure ends the iteration and is kept in `error` for the caller to raise.
        try:
            count = 0
            for index, batch in enumerate(self._make()):
                item = self._as_tuple(batch, index)
                count += 1
                yield item
            if count == 0:
                raise QuantizeError(
                    "the calibration data gave no calibration batch",
                    hint="Pass at least one batch of (B, C, H, W) images.",
                )
        except QuantizeError as exc:
            self.error = self.error or exc
        except Exception as exc:
            self.error = self.error or QuantizeError(
                f"reading the calibration data failed: {type(exc).__name__}: {paddle_message(exc)}",
                hint="The callable must return an iterable of (B, C, H, W) float32 arrays.",
            )

    def first(self) -> None:
        """Check the first batch now (arrays only: cheap), so shape errors surface before Paddle starts."""
        for _ in self:
            break
        if self.error is not None:
            raise self.error

    def _as_tuple(self, batch: Batch, index: int) -> Tuple[np.ndarray, ...]:
        if isinstance(batch, Mapping):
            missing = [f.name for f in self.feeds if f.name not in batch]
            if missing:
                raise QuantizeError(
                    f"calibration batch {index} lacks model input(s) {missing}",
                    hint=f"The model takes {[f.name for f in self.feeds]}.",
                )
            arrays = [batch[f.name] for f in self.feeds]
        else:
            if len(self.feeds) != 1:
                raise QuantizeError(
                    f"the model takes {len(self.feeds)} inputs {[f.name for f in self.feeds]}, "
                    f"calibration batch {index} is a single array",
                    hint="Yield a {input name: array} dict per batch for multi-input models.",
                )
            arrays = [batch]
        return tuple(checked_array(a, f, index) for a, f in zip(arrays, self.feeds))


def checked_array(array: object, feed: InputSpec, index: int) -> np.ndarray:
    """Batch `index` for `feed` as a contiguous array of the feed's dtype; QuantizeError when its shape cannot feed it."""
    array = np.asarray(array)
    if array.ndim != len(feed.shape):
        raise QuantizeError(
            f"calibration batch {index} for input {feed.name!r} has shape {array.shape}, "
            f"the model expects {len(feed.shape)} dimensions {list(feed.shape)}",
            hint="Pass (N, C, H, W) images, preprocessed as for evaluation.",
        )
    for got, want in zip(array.shape[1:], feed.shape[1:]):
        if want > 0 and got != want:
            raise QuantizeError(
                f"calibration batch {index} for input {feed.name!r} has shape {array.shape}, "
                f"the model expects {list(feed.shape)}",
                hint="Check the calibration image size and channel order.",
            )
    if array.shape[0] == 0:
        raise QuantizeError(f"calibration batch {index} is empty", hint="Every batch needs at least one image.")
    return np.ascontiguousarray(array, dtype=np.dtype(feed.dtype))


def calibration_batches(calib: Calib, feeds: List[InputSpec], batch_size: int) -> CalibBatches:
    """Re-iterable batches from an (N, C, H, W) array (cut into `batch_size`, first batch checked now)
    or from a callable returning an iterable of batches (checked as they are read)."""
    if isinstance(calib, np.ndarray):
        if calib.ndim == 0 or calib.shape[0] == 0:
            raise QuantizeError("the calibration array is empty", hint="Pass at least one (C, H, W) image.")
        data = calib

        def make() -> Iterator[np.ndarray]:
            for start in range(0, data.shape[0], batch_size):
                yield data[start : start + batch_size]

        batches = CalibBatches(make, feeds)
        batches.first()
        return batches
    if callable(calib):
        return CalibBatches(calib, feeds)
    raise QuantizeError(
        f"calibration data must be an array or a callable, got {type(calib).__name__}",
        hint="Pass an (N, C, H, W) float32 array or a function returning an iterable of batches.",
    )


def resolve_skip_patterns(patterns: Sequence[str], var_names: List[str]) -> List[str]:
    """The tensor names the shell-style `patterns` match; QuantizeError for a pattern that matches none."""
    if isinstance(patterns, str):
        patterns = [patterns]
    chosen: List[str] = []
    for pattern in patterns:
        hits = [n for n in var_names if fnmatch.fnmatchcase(n, pattern)]
        if not hits:
            raise QuantizeError(
                f"skip pattern {pattern!r} matches no tensor of the model",
                hint="Patterns are shell-style globs over tensor names, e.g. 'conv2d_0.*' or '*fc*'.",
            )
        chosen.extend(h for h in hits if h not in chosen)
    return chosen


def static_loader(batches: CalibBatches, feeds: List[InputSpec], place: object) -> object:
    """A static-mode paddle.io.DataLoader over `batches` feeding `place` (the only kind Paddle 2.6's PTQ accepts)."""
    import paddle

    class _Dataset(paddle.io.IterableDataset):
        def __iter__(self) -> Iterator[Tuple[np.ndarray, ...]]:
            return iter(batches)

    program = paddle.static.Program()
    with paddle.static.program_guard(program, paddle.static.Program()):
        feed_vars = [paddle.static.data(f.name, [-1 if d < 0 else d for d in f.shape], f.dtype) for f in feeds]
    return paddle.io.DataLoader(
        _Dataset(), feed_list=feed_vars, places=place, return_list=False, batch_size=None
    )

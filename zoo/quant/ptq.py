"""Post-training static quantization (PTQ) of a Paddle inference model.

Two engines compute the same INT8 model: "paddleslim" runs PaddleSlim's `quant_post_static`
unchanged; "fast" (the default) runs the same Paddle calibration pipeline with the threshold
searches and histogram sampling replaced by vectorized versions (zoo.quant.calibration) that
pick the same thresholds many times faster.
"""
from __future__ import annotations

import fnmatch
import time
from pathlib import Path
from typing import Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from zoo.fsutil import StagedDir
from zoo.device import Device, DeviceLike, require_device
from zoo.errors import QuantizeError, paddle_message
from zoo.modelcheck import check_model, verify_saved, writing_model
from zoo.modelfiles import ModelFiles, find_model_files
from zoo.program import InputSpec, read_program, static_mode
from zoo.schema import ACTIVATION_QUANTIZE_TYPES, CALIB_ALGOS, WEIGHT_QUANTIZE_TYPES
from zoo.quiet import silenced

ALGOS = CALIB_ALGOS
ENGINES = ("fast", "paddleslim")
ROUNDINGS = ("round", "adaround")
MODEL_FILENAME = "inference.pdmodel"
PARAMS_FILENAME = "inference.pdiparams"

Batch = Union[np.ndarray, Mapping[str, np.ndarray]]
Calib = Union[np.ndarray, Callable[[], Iterable[Batch]]]


def quantize_static(
    model: Union[ModelFiles, Path],
    out_dir: Path,
    calib: Calib,
    *,
    algo: str = "KL",
    batch_size: int = 32,
    batch_nums: int = 10,
    hist_percent: float = 0.9999,
    quantizable_op_type: Sequence[str] = ("conv2d", "depthwise_conv2d", "mul"),
    weight_quantize_type: str = "channel_wise_abs_max",
    activation_quantize_type: str = "range_abs_max",
    onnx_format: bool = False,
    skip_patterns: Sequence[str] = (),
    rounding: str = "round",
    bias_correction: bool = False,
    engine: str = "fast",
    timings: Optional[Dict[str, float]] = None,
    device: DeviceLike = "cpu",
    replace: bool = False,
) -> ModelFiles:
    """Quantize `model` to INT8 with calibration data; write out_dir/inference.pdmodel + .pdiparams.

    The model is staged beside `out_dir` and moves in only once verified: with `replace` it becomes
    `out_dir` as a whole, otherwise its two files join whatever `out_dir` already holds.

    calib: an (N, C, H, W) array, cut into batches of `batch_size`, or a callable returning an
    iterable of batches (an array for the model's only input, or a {feed name: array} dict).
    At most `batch_nums` batches are used. `skip_patterns` are shell-style patterns of tensor
    names (weights or activations) whose consuming ops stay in FP32. `rounding` is how weights are
    rounded ("round" to nearest, or PaddleSlim's "adaround"); `bias_correction` applies PaddleSlim's
    weight bias correction (mean/std of each quantized weight channel matched to the float one). `timings`, if given, receives
    the seconds spent per phase ("total", and for engine "fast" also "sampling" and "threshold").
    The calibration forward passes run on `device` ("cpu", "gpu", "gpu:N").
    """
    # long by its signature only (every option is declared there); the body is one job under 60 lines
    _check_settings(algo, batch_size, batch_nums, hist_percent, weight_quantize_type, engine)
    if activation_quantize_type not in ACTIVATION_QUANTIZE_TYPES:
        raise QuantizeError(f"unknown activation quantize type {activation_quantize_type!r} for post-training "
                            "quantization", hint=f"Use one of: {', '.join(ACTIVATION_QUANTIZE_TYPES)}.")
    if rounding not in ROUNDINGS:
        raise QuantizeError(f"unknown weight rounding {rounding!r}", hint=f"Use one of: {', '.join(ROUNDINGS)}.")
    target = require_device(device)
    files = model if isinstance(model, ModelFiles) else _find_model(Path(model))
    check_model(files)  # before Paddle parses or runs it: corrupt files crash Paddle natively
    feeds, var_names = _read_program(files)
    batches = _batch_source(calib, feeds, batch_size)
    skip = _resolve_skip_patterns(skip_patterns, var_names)
    out_dir = Path(out_dir).expanduser()
    settings = dict(
        algo=algo,
        batch_size=batch_size,
        batch_nums=batch_nums,
        hist_percent=hist_percent,
        quantizable_op_type=list(quantizable_op_type),
        weight_quantize_type=weight_quantize_type,
        activation_quantize_type=activation_quantize_type,
        onnx_format=onnx_format,
        skip_tensor_list=skip or None,
        round_type=rounding,
        bias_correction=bool(bias_correction),
    )
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with StagedDir(out_dir) as stage, writing_model(out_dir, QuantizeError):  # Paddle reports a full disk as a RuntimeError, if at all
        work = stage.path
        _run_engine(engine, files, feeds, batches, work, settings, timings, target)
        saved = ModelFiles(work, work / MODEL_FILENAME, work / PARAMS_FILENAME)
        if not saved.model_file.is_file() or not saved.params_file.is_file():
            raise QuantizeError(
                f"the quantizer wrote no {MODEL_FILENAME} + {PARAMS_FILENAME}",
                hint="Rerun with --verbose to see the quantizer's log.",
            )
        verify_saved(saved, out_dir, QuantizeError)
        _check_quantized(saved, algo, settings["quantizable_op_type"])
        if replace:
            stage.commit()
        else:  # the model file last: it marks the folder as holding a complete model
            stage.merge(last=[PARAMS_FILENAME, MODEL_FILENAME])
    if timings is not None:
        timings["total"] = time.perf_counter() - started
    return ModelFiles(out_dir, out_dir / MODEL_FILENAME, out_dir / PARAMS_FILENAME)


def _check_quantized(files: ModelFiles, algo: str, op_types: Sequence[str]) -> None:
    """Refuse a result without quantize ops: Paddle writes one silently when no op type matches."""
    from zoo.program import read_program

    if algo == "min_max":  # by design: Paddle stores min_max thresholds as op attributes, with no quantize ops
        return
    info = read_program(files)
    if not info.is_int8:
        raise QuantizeError(
            f"nothing was quantized: none of the op types {list(op_types)} is in the model "
            f"(its ops: {', '.join(t for t in info.op_types if t not in ('feed', 'fetch'))})",
            hint="Name op types the model has (e.g. conv2d, depthwise_conv2d, mul, matmul_v2).",
        )


def _check_settings(
    algo: str, batch_size: int, batch_nums: int, hist_percent: float, weight_quantize_type: str, engine: str
) -> None:
    if algo not in ALGOS:
        raise QuantizeError(f"unknown calibration algorithm {algo!r}", hint=f"Use one of: {', '.join(ALGOS)}.")
    if engine not in ENGINES:
        raise QuantizeError(f"unknown PTQ engine {engine!r}", hint=f"Use one of: {', '.join(ENGINES)}.")
    if engine == "paddleslim" and algo == "KL_paddle1":
        raise QuantizeError("algo KL_paddle1 (Paddle 1.x's KL rule) runs on the fast engine only: PaddleSlim 2.6 "
                            "computes Paddle 2.x's KL", hint="Use --engine fast, or --algo KL for Paddle 2.x's rule.")
    if weight_quantize_type not in WEIGHT_QUANTIZE_TYPES:
        raise QuantizeError(
            f"unknown weight quantize type {weight_quantize_type!r}",
            hint=f"Use one of: {', '.join(WEIGHT_QUANTIZE_TYPES)}.",
        )
    if int(batch_size) < 1 or int(batch_nums) < 1:
        raise QuantizeError(
            f"batch_size and batch_nums must be positive (got {batch_size} and {batch_nums})",
            hint="Calibration needs at least one batch of at least one image.",
        )
    if not 0.0 < float(hist_percent) <= 1.0:
        raise QuantizeError(f"hist_percent must be in (0, 1], got {hist_percent}", hint="Typical values: 0.999, 0.9999.")


def _find_model(path: Path) -> ModelFiles:
    try:
        return find_model_files(path)
    except QuantizeError:
        raise
    except Exception as exc:  # ModelError carries its own hint; keep it
        hint = getattr(exc, "hint", None)
        raise QuantizeError(f"cannot quantize {path}: {exc}", hint=hint) from exc


def _read_program(files: ModelFiles) -> Tuple[List[InputSpec], List[str]]:
    """The model's inputs (in feed order) and the names of the variables its ops use, from the program file alone."""
    info = read_program(files)
    names = sorted({v for op in info.ops for v in (*op.input_vars(), *op.output_vars())})
    return info.inputs, names


class _Batches:
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
        return tuple(_checked_array(a, f, index) for a, f in zip(arrays, self.feeds))


def _checked_array(array: object, feed: InputSpec, index: int) -> np.ndarray:
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


def _batch_source(calib: Calib, feeds: List[InputSpec], batch_size: int) -> _Batches:
    if isinstance(calib, np.ndarray):
        if calib.ndim == 0 or calib.shape[0] == 0:
            raise QuantizeError("the calibration array is empty", hint="Pass at least one (C, H, W) image.")
        data = calib

        def make() -> Iterator[np.ndarray]:
            for start in range(0, data.shape[0], batch_size):
                yield data[start : start + batch_size]

        batches = _Batches(make, feeds)
        batches.first()
        return batches
    if callable(calib):
        return _Batches(calib, feeds)
    raise QuantizeError(
        f"calibration data must be an array or a callable, got {type(calib).__name__}",
        hint="Pass an (N, C, H, W) float32 array or a function returning an iterable of batches.",
    )


def _resolve_skip_patterns(patterns: Sequence[str], var_names: List[str]) -> List[str]:
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


def _make_loader(batches: _Batches, feeds: List[InputSpec], place: object) -> object:
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


def _run_engine(
    engine: str,
    files: ModelFiles,
    feeds: List[InputSpec],
    batches: _Batches,
    work: Path,
    settings: dict,
    timings: Optional[Dict[str, float]],
    device: Device,
) -> None:
    # long by its signature only (every option is declared there); the body is one job under 60 lines
    import paddle

    model_dir = str(files.folder)
    model_filename = files.model_file.name
    params_filename = files.params_filename
    try:
        with silenced(), static_mode():
            scope = paddle.static.Scope()
            # a fresh name generator per call: the same input gives the same saved model
            with paddle.static.scope_guard(scope), paddle.utils.unique_name.guard():
                place = device.place()
                executor = paddle.static.Executor(place)
                loader = _make_loader(batches, feeds, place)
                if engine == "paddleslim":
                    from paddleslim.quant import quant_post_static

                    quant_post_static(
                        executor=executor,
                        model_dir=model_dir,
                        quantize_model_path=str(work),
                        data_loader=loader,
                        model_filename=model_filename,
                        params_filename=params_filename,
                        save_model_filename=MODEL_FILENAME,
                        save_params_filename=PARAMS_FILENAME,
                        scope=scope,
                        **settings,
                    )
                else:
                    from zoo.quant.fast_ptq import FastPostTrainingQuantization

                    ptq = FastPostTrainingQuantization(
                        executor=executor,
                        model_dir=model_dir,
                        model_filename=model_filename,
                        params_filename=params_filename,
                        data_loader=loader,
                        scope=scope,
                        **settings,
                    )
                    ptq.quantize()
                    ptq.save_quantized_model(str(work), model_filename=MODEL_FILENAME)
                    if timings is not None:
                        timings.update(ptq.phase_seconds)
    except QuantizeError:
        raise
    except Exception as exc:
        if batches.error is not None:
            raise batches.error from exc
        raise QuantizeError(
            f"post-training quantization of {files.folder} failed: {paddle_message(exc)}",
            hint=_hint_for(exc),
        ) from exc
    if batches.error is not None:
        raise batches.error


def _hint_for(exc: BaseException) -> str:
    text = str(exc)
    if "not supported for quantization" in text:
        return "Remove the op type from quantizable_op_type (the recipe's quant.ops)."
    if "does not have threshold" in text or "zero-size" in text:
        return "Calibration saw no data for some tensors: check that the calibration batches reach every layer."
    return "Rerun with --verbose (or ZOO_DEBUG=1) to see Paddle's log; check the model and the calibration data."

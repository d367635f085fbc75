"""Post-training static quantization (PTQ) of a Paddle inference model.

Two engines compute the same INT8 model: "paddleslim" runs PaddleSlim's `quant_post_static`
unchanged; "fast" (the default) runs the same Paddle calibration pipeline with the threshold
searches and histogram sampling replaced by vectorized versions (zoo.quant.calibration) that
pick the same thresholds many times faster.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

from zoo.device import Device, DeviceLike, require_device
from zoo.errors import QuantizeError, paddle_message
from zoo.fsutil import StagedDir
from zoo.modelcheck import check_model, verify_saved, writing_model
from zoo.modelfiles import ModelFiles, find_model_files
from zoo.program import InputSpec, read_program, static_mode
from zoo.quant.calib_batches import Calib, CalibBatches, calibration_batches, model_inputs, resolve_skip_patterns, static_loader
from zoo.quant.settings import PTQSettings
from zoo.quiet import silenced

MODEL_FILENAME = "inference.pdmodel"
PARAMS_FILENAME = "inference.pdiparams"


def quantize_static(
    model: Union[ModelFiles, Path],
    out_dir: Path,
    calib: Calib,
    settings: PTQSettings = PTQSettings(),
    *,
    timings: Optional[Dict[str, float]] = None,
    device: DeviceLike = "cpu",
    replace: bool = False,
) -> ModelFiles:
    """Quantize `model` to INT8 with calibration data; write out_dir/inference.pdmodel + .pdiparams.

    The model is staged beside `out_dir` and moves in only once verified: with `replace` it becomes
    `out_dir` as a whole, otherwise its two files join whatever `out_dir` already holds.

    calib: an (N, C, H, W) array, cut into batches of `settings.batch_size`, or a callable returning
    an iterable of batches (an array for the model's only input, or a {feed name: array} dict). At
    most `settings.batch_nums` batches are used; `settings` (checked when it was built) says how the
    thresholds are searched and what is quantized. `timings`, if given, receives the seconds spent
    per phase ("total", and for engine "fast" also "sampling" and "threshold"). The calibration
    forward passes run on `device` ("cpu", "gpu", "gpu:N").
    """
    target = require_device(device)
    files = model if isinstance(model, ModelFiles) else _find_model(Path(model))
    check_model(files)  # before Paddle parses or runs it: corrupt files crash Paddle natively
    feeds, var_names = model_inputs(files)
    batches = calibration_batches(calib, feeds, settings.batch_size)
    paddle_settings = settings.paddle_kwargs(resolve_skip_patterns(settings.skip, var_names))
    out_dir = Path(out_dir).expanduser()
    if out_dir.resolve() == files.folder.resolve():
        raise QuantizeError(f"{out_dir} is the folder of the model being quantized: writing there would replace it",
                            hint="Write the INT8 model into another folder.")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    # merged into out_dir: staged inside it, so out_dir may be a mount point or sit in a folder we cannot write
    with StagedDir(out_dir, inside=not replace) as stage, writing_model(out_dir, QuantizeError):  # Paddle reports a full disk as a RuntimeError, if at all
        work = stage.path
        _run_engine(settings.engine, files, feeds, batches, work, paddle_settings, timings, target)
        saved = ModelFiles(work, work / MODEL_FILENAME, work / PARAMS_FILENAME)
        if not saved.model_file.is_file() or not saved.params_file.is_file():
            raise QuantizeError(
                f"the quantizer wrote no {MODEL_FILENAME} + {PARAMS_FILENAME}",
                hint="Rerun with --verbose to see the quantizer's log.",
            )
        verify_saved(saved, out_dir, QuantizeError)
        _check_quantized(saved, settings.algo, settings.ops)
        if replace:
            stage.commit()
        else:  # the model file last: it marks the folder as holding a complete model
            stage.merge(last=[PARAMS_FILENAME, MODEL_FILENAME])
    if timings is not None:
        timings["total"] = time.perf_counter() - started
    return ModelFiles(out_dir, out_dir / MODEL_FILENAME, out_dir / PARAMS_FILENAME)


def _check_quantized(files: ModelFiles, algo: str, op_types: Sequence[str]) -> None:
    """Refuse a result without quantize ops: Paddle writes one silently when no op type matches."""
    if algo == "min_max":  # by design: Paddle stores min_max thresholds as op attributes, with no quantize ops
        return
    info = read_program(files)
    if not info.is_int8:
        raise QuantizeError(
            f"nothing was quantized: none of the op types {list(op_types)} is in the model "
            f"(its ops: {', '.join(t for t in info.op_types if t not in ('feed', 'fetch'))})",
            hint="Name op types the model has (e.g. conv2d, depthwise_conv2d, mul, matmul_v2).",
        )


def _find_model(path: Path) -> ModelFiles:
    try:
        return find_model_files(path)
    except QuantizeError:
        raise
    except Exception as exc:  # ModelError carries its own hint; keep it
        hint = getattr(exc, "hint", None)
        raise QuantizeError(f"cannot quantize {path}: {exc}", hint=hint) from exc


def _run_engine(engine: str, files: ModelFiles, feeds: List[InputSpec], batches: CalibBatches, work: Path,
                settings: dict, timings: Optional[Dict[str, float]], device: Device) -> None:
    """Run `engine`'s calibration with Paddle's keyword `settings`, writing the INT8 model into `work`."""
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
                loader = static_loader(batches, feeds, place)
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
    if isinstance(exc, IndexError) or "Cannot cast ufunc" in text:
        # PaddleSlim's avg reads shape[0] of 0-d tensors and its mse clips integer tensors in place
        return ("PaddleSlim's own search fails on a 0-d or integer tensor among the quantized ones: --engine fast "
                "(the same thresholds) measures them, or leave those ops out with --skip / --ops.")
    return "Rerun with --verbose (or ZOO_DEBUG=1) to see Paddle's log; check the model and the calibration data."

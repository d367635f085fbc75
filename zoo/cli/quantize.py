"""`zoo quantize MODEL_DIR`: post-training INT8 quantization of any Paddle inference model."""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple

import typer
from rich.markup import escape

from zoo.cli.common import console, err_console, handle_errors, interrupt_on_sigterm, print_json, progress_log
from zoo.cli.image_flags import CHANNELS, FOLDER_INPUT_SIZE, MEAN, RESIZE, STD, image_choices
from zoo.device import Device, require_device
from zoo.errors import QuantizeError, UsageError
from zoo.fsutil import atomic_write_text
from zoo.modelfiles import ModelFiles, find_model_files, model_sha256
from zoo.outdir import prepare_out, record_written
from zoo.program import is_quant_op, read_program
from zoo.quant.inputs import with_progress, calibration_input, short_calibration
from zoo.quant.settings import PTQSettings, SearchTarget
from zoo.quant.ptq import quantize_static
from zoo.quant.search import EvalData, load_eval_data, search

EXIT_MISSED = 3  # the search finished but missed its target (the best model is still written)


def usage_checked(build, *args, **kwargs):  # type: ignore[no-untyped-def]
    """Build a settings object from command-line values: an invalid one is a usage error (exit 2)."""
    try:
        return build(*args, **kwargs)
    except QuantizeError as exc:
        raise UsageError(exc.message, hint=exc.hint) from None


@handle_errors
def quantize_cmd(
    model_dir: Path = typer.Argument(..., help="Folder of a Paddle inference model (or its .pdmodel file)."),
    calib_data: Path = typer.Option(..., "--calib-data", help="ImageNet-layout folder, or .npy/.npz of (N, C, H, W) inputs."),
    algo: Optional[str] = typer.Option(None, "--algo",
                                       help="Threshold search: KL (Paddle 2.x), KL_paddle1 (Paddle 1.x), hist, mse, avg, abs_max (default KL; with --max-drop, "
                                            "a comma list to search, default hist,mse,KL,avg,abs_max)."),
    batch_size: int = typer.Option(32, "--batch-size", min=1, help="Calibration batch size."),
    batch_nums: int = typer.Option(10, "--batch-nums", min=1, help="Number of calibration batches."),
    out: Path = typer.Option(..., "--out", help="Output folder for the INT8 inference model."),
    engine: str = typer.Option("fast", "--engine", help="fast (vectorized search) or paddleslim (plain quant_post_static)."),
    split: str = typer.Option("val", "--split", help="Split of an image folder to calibrate on: val or train."),
    hist_percent: float = typer.Option(0.9999, "--hist-percent", help="Percentile of the hist algo."),
    onnx_format: bool = typer.Option(False, "--onnx-format", help="Write quantize_linear/dequantize_linear ops."),
    ops: str = typer.Option("conv2d,depthwise_conv2d,mul", "--ops",
                            help="Comma-separated op types to quantize (e.g. add matmul_v2 for Linear layers)."),
    rounding: str = typer.Option("round", "--rounding", help="Weight rounding: round or adaround (PaddleSlim's)."),
    bias_correction: bool = typer.Option(False, "--bias-correction", help="PaddleSlim's weight bias correction."),
    skip: Optional[str] = typer.Option(None, "--skip", help="Comma-separated tensor name patterns whose ops stay float."),
    eval_data: Optional[Path] = typer.Option(None, "--eval-data",
                                             help="Held-out data for --max-drop: ImageNet-layout folder (val split) or "
                                                  ".npz with x (N, C, H, W) float32 and y (N,) int labels."),
    max_drop: Optional[float] = typer.Option(None, "--max-drop", min=0.0,
                                             help="Search for the model with the fewest float layers within this many "
                                                  "points of FP32 on --eval-data."),
    metric: str = typer.Option("top1", "--metric", help="With --max-drop: top1 (labelled data) or cosine (outputs vs FP32, %)."),
    max_float: Optional[int] = typer.Option(None, "--max-float", min=0,
                                            help="With --max-drop: at most this many layers in float (default: half)."),
    eval_samples: Optional[int] = typer.Option(None, "--eval-samples", min=1, help="Use N evenly spaced --eval-data inputs."),
    input_size: Optional[str] = FOLDER_INPUT_SIZE,
    channels: Optional[str] = CHANNELS,
    resize: Optional[str] = RESIZE,
    mean: Optional[str] = MEAN,
    std: Optional[str] = STD,
    device: str = typer.Option("cpu", "--device", metavar="cpu|gpu|gpu:N", help="Where the calibration runs."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace same-named files in --out that the zoo did not write."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress lines on stderr (calibration batches, search trials)."),
) -> None:
    """Post-training (static) INT8 quantization of any Paddle inference model.

    With --eval-data and --max-drop X: search calibration algorithm x rounding x bias correction x
    per-layer float fallback for the fewest float layers within X points of FP32; writes the best
    model and quantize-report.json. Exit 0: target met; 3: not met (the best model is still written).
    """
    target_device = require_device(device)  # a misspelt or absent device is refused before any work
    if (max_drop is None) != (eval_data is None):
        raise UsageError("--max-drop and --eval-data go together",
                         hint="Give both to search for an accuracy target, or neither for one plain PTQ run.")
    algos = [a.strip() for a in (algo or "").split(",") if a.strip()]
    if max_drop is None and len(algos) > 1:
        raise UsageError("several --algo values are searched only with --max-drop", hint="Give one algo.")
    if max_drop is not None and (skip or rounding != "round" or bias_correction):
        raise UsageError("--skip, --rounding and --bias-correction set one plain PTQ run; --max-drop searches them",
                         hint="Drop them, or drop --max-drop.")
    settings = usage_checked(PTQSettings, algo=algos[0] if len(algos) == 1 else "KL", batch_size=batch_size,
                             batch_nums=batch_nums, hist_percent=hist_percent, ops=ops, onnx_format=onnx_format,
                             skip=skip or (), rounding=rounding, bias_correction=bias_correction, engine=engine)
    target = None if max_drop is None else usage_checked(SearchTarget, max_drop, metric, tuple(algos),
                                                          max_float=max_float)
    images = image_choices(input_size, channels, resize, mean, std)
    interrupt_on_sigterm()  # stopped like Ctrl-C: nothing half-written, no native traceback
    model = find_model_files(model_dir)
    require_float_model(model, "quantize")
    names = WRITTEN + ((REPORT_NAME,) if target is not None else ())
    out = prepare_out(out, sources=[model.folder], names=names, overwrite=overwrite)  # before any long work
    began = time.time()
    calib, samples = calibration_input(calib_data, model, split, batch_size, batch_nums, images)
    calib = with_progress(calib, batch_size, batch_nums, progress_log(not (as_json or quiet)))
    warn_short_calibration(samples, batch_size, batch_nums)
    left = left_out_ops(model, settings.ops)
    if left:
        err_console.print("[yellow]note:[/] --ops leaves these quantizable layers in float: "
                          + escape(", ".join(f"{k} x{n}" for k, n in left.items())) + " (add them to --ops to quantize them)")
    if target is None:
        _plain_ptq(model, out, (calib, samples), settings, target_device, began, as_json)
        _record(out, model, settings, samples, None)
        record_written(out, names)
        return
    met = _search(model, calib, load_eval_data(eval_data, model, "val", eval_samples, images), out, target, settings,
                  target_device, as_json, quiet)
    _record(out, model, settings, samples, target)
    record_written(out, names)  # a missed target still writes the best model
    if not met:
        raise typer.Exit(EXIT_MISSED)


WRITTEN = ("inference.pdmodel", "inference.pdiparams", "zoo-quantize.json")
REPORT_NAME = "quantize-report.json"


def _record(out: Path, model: ModelFiles, settings: PTQSettings, samples: int, target: Optional[SearchTarget]) -> None:
    """zoo-quantize.json: the FP32 source and the settings of the model in `out` (bench and export pair them)."""
    record = {"model": str(model.folder.resolve()), "model_sha256": model_sha256(model), "settings": settings.as_dict(),
              "calib_samples": samples, "search": None if target is None else dataclasses.asdict(target)}
    atomic_write_text(out / "zoo-quantize.json", json.dumps(record, indent=2, default=str) + "\n")


# op types with weights that Paddle's post-training quantization can quantize
WEIGHTED_OPS = ("conv2d", "depthwise_conv2d", "conv2d_transpose", "mul", "matmul", "matmul_v2")


def left_out_ops(model: ModelFiles, ops: Sequence[str]) -> Dict[str, int]:
    """Quantizable op types the model has that `ops` leaves in float, with their counts."""
    counts: Dict[str, int] = {}
    for op in read_program(model).ops:
        if op.type in WEIGHTED_OPS and op.type not in ops:
            counts[op.type] = counts.get(op.type, 0) + 1
    return counts


def require_float_model(model: ModelFiles, command: str) -> None:
    """UsageError for a model that is already quantized: its fake-quant ops would be quantized again (Paddle
    fails deep inside) and its numbers are not FP32 ones."""
    info = read_program(model)
    if info.is_int8:
        ops = sorted({op.type for op in info.ops if is_quant_op(op.type)})
        raise UsageError(f"{model.folder} is already quantized (it holds {', '.join(ops)}); `zoo {command}` takes an FP32 model",
                         hint="Pass the FP32 model it was quantized from.")


def warn_short_calibration(samples: int, batch_size: int, batch_nums: int) -> None:
    """Say so on stderr when the calibration data is smaller than --batch-size x --batch-nums."""
    short = short_calibration(samples, batch_size, batch_nums)
    if short:
        err_console.print(f"[yellow]warning:[/] {escape(short)}")


def _plain_ptq(model: ModelFiles, out: Path, calib_samples: Tuple[object, int], settings: PTQSettings, device: Device,
               began: float, as_json: bool) -> None:
    """`zoo quantize` without --max-drop: one PTQ run with the settings given, and what it wrote."""

    calib, samples = calib_samples
    timings: dict = {}
    files = quantize_static(model, out, calib, settings, timings=timings, device=device)
    result = {
        "model": str(model.folder),
        "out": str(files.folder),
        "model_file": str(files.model_file),
        "params_file": str(files.params_file) if files.params_file else None,
        "algo": settings.algo,
        "engine": settings.engine,
        "device": str(device),
        "ops": list(settings.ops),
        "rounding": settings.rounding,
        "bias_correction": settings.bias_correction,
        "skip": list(settings.skip),
        "batch_size": settings.batch_size,
        "batch_nums": settings.batch_nums,
        "calib_samples": samples,  # what the calibration saw: at most batch_size x batch_nums
        "batches_used": -(-samples // settings.batch_size),
        "seconds": round(time.time() - began, 2),
        "timings": timings,
    }
    if as_json:
        print_json(result)
    else:
        console.print(f"INT8 model written to [bold]{escape(str(files.folder))}[/] ({settings.algo}, {settings.engine} "
                      f"engine, {result['seconds']:.1f} s)")


def _search(model: ModelFiles, calib: object, data: EvalData, out: Path, target: SearchTarget, settings: PTQSettings,
            device: Device, as_json: bool, quiet: bool) -> bool:
    """`zoo quantize --max-drop`: run the search, print what it chose; return whether the target was met."""

    log = progress_log(not (as_json or quiet))
    result = search(model, calib, data, out, target, settings, device=device, log=log)
    r = result.report
    if as_json:
        print_json(r)
    else:
        s = r["settings"]
        verdict = "[green]met[/]" if r["met"] else "[red]NOT met[/]"
        console.print(f"target drop <= {target.max_drop:g}: {verdict}: {r['metric']} {r['int8']:.2f} vs FP32 {r['fp32']:.2f} "
                      f"(drop {r['drop']:.2f}) with {s['algo']}, {s['rounding']}"
                      f"{', bias correction' if s['bias_correction'] else ''}")
        console.print(f"{r['int8_layers']} of {r['quantizable_layers']} quantizable layers INT8 "
                      f"({100 * r['int8_share']:.0f}%), {len(r['trials'])} trials in {r['timings']['total']:.1f} s")
        if r["float_layers"]:
            console.print("left in float: " + escape(", ".join(f"{f['name']} ({f['op_type']})" for f in r["float_layers"])))
        console.print(f"model and quantize-report.json written to [bold]{escape(r['out'])}[/]")
    return result.met


def register(app: typer.Typer) -> None:
    app.command("quantize")(quantize_cmd)

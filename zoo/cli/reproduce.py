"""`zoo reproduce NAME` and `zoo quantize MODEL_DIR`."""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table

from zoo.cli.common import console, err_console, handle_errors, print_json
from zoo.errors import UsageError

EXIT_MISSED = 3  # the run finished but a metric missed its tolerance


def _table(report: dict) -> Table:
    from zoo.report import fmt_points

    table = Table(title=f"{report['name']} ({report['strategy']}): {report['status']}")
    for col in ("setting", "metric", "INT8 measured", "INT8 published", "diff", "tolerance", "FP32 measured", "result"):
        table.add_column(col, justify="left" if col in ("metric", "result") else "right")
    for s in report["settings"]:
        for name, m in s["metrics"].items():
            f = s["fp32"].get(name, {})
            table.add_row(
                str(s["input_size"]), name, fmt_points(m["measured"]), fmt_points(m["published"]), fmt_points(m["diff"], True),
                f"{m['tolerance']:.2f}", fmt_points(f.get("measured")), "[green]pass[/]" if m["pass"] else "[red]MISS[/]",
            )
    return table


def _relaunch(gpus: Optional[str], nproc: Optional[int], log_dir: Path) -> int:
    """Run this same command under paddle.distributed.launch (each rank sees ZOO_DIST_CHILD=1)."""
    import subprocess

    args = [a for a in sys.argv[1:]]
    cleaned: List[str] = []
    skip = False
    for a in args:
        if skip:
            skip = False
            continue
        if a in ("--gpus", "--nproc"):
            skip = True
            continue
        if a.startswith(("--gpus=", "--nproc=")):
            continue
        cleaned.append(a)
    import zoo

    # paddle.distributed.launch runs a script path (it has no `-m`): zoo/__main__.py is the CLI's entry.
    cmd = [sys.executable, "-m", "paddle.distributed.launch", "--log_dir", str(log_dir)]
    if gpus:
        cmd += ["--gpus", gpus]
    if nproc:
        cmd += ["--nproc_per_node", str(nproc)]
    cmd += [str(Path(zoo.__file__).with_name("__main__.py")), *cleaned]
    env = dict(os.environ, ZOO_DIST_CHILD="1")
    log_dir.mkdir(parents=True, exist_ok=True)
    err_console.print(f"running {nproc or len((gpus or '').split(','))} rank(s) through paddle.distributed.launch; "
                      f"logs in {log_dir}")
    # the launcher echoes rank 0's output and its own banners: keep them in a log so stdout stays ours
    with open(log_dir / "launcher.log", "wb") as log:
        return subprocess.call(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)


@handle_errors
def reproduce_cmd(
    name: str = typer.Argument(..., help="Entry name or alias (see `zoo list`)."),
    data: Optional[Path] = typer.Option(None, "--data", help="ImageNet-layout data folder (digits entries need none)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output folder (default: ./zoo-out/NAME)."),
    device: str = typer.Option("cpu", "--device", help="cpu or gpu."),
    max_samples: Optional[int] = typer.Option(None, "--max-samples", min=1, help="Evaluate (and train on) at most N images."),
    resume: bool = typer.Option(False, "--resume", help="Reuse finished stages (FP32 export, QAT epochs) of an earlier run."),
    epochs: Optional[int] = typer.Option(None, "--epochs", min=1, help="Shorten QAT/ACT training to N epochs."),
    iterations: Optional[int] = typer.Option(None, "--iterations", min=1, help="Stop QAT/ACT training after N iterations."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", min=1, help="Training batch size override."),
    engine: str = typer.Option("fast", "--engine", help="PTQ threshold search: fast (vectorized) or paddleslim."),
    mirror: Optional[str] = typer.Option(None, "--mirror", help="Mirror host for downloads (like ZOO_MIRROR)."),
    gpus: Optional[str] = typer.Option(None, "--gpus", help="Run on these GPUs through paddle.distributed.launch, e.g. 0,1."),
    nproc: Optional[int] = typer.Option(None, "--nproc", min=1, help="Processes per node through paddle.distributed.launch."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Reproduce a quantized model from FP32 and compare it with the published numbers.

    Exit code 0: PASS; 3: ran, but a metric missed its tolerance; 1: error.
    """
    from zoo.reproduce import ReproduceOptions, default_out, reproduce

    if (gpus or nproc) and not os.environ.get("ZOO_DIST_CHILD"):
        from zoo.registry import get_recipe
        from zoo.schema import Strategy

        recipe = get_recipe(name)
        if recipe.strategy is not Strategy.qat:
            raise UsageError(
                f"--gpus/--nproc run data-parallel quant-aware training; {recipe.name} uses {recipe.strategy.value}",
                hint="Run it without --gpus/--nproc (one process).",
            )
        target = out or default_out(recipe.name)
        started = time.time()
        code = _relaunch(gpus, nproc, target / "launch-logs")
        report_file = target / "report.json"
        if code not in (0, EXIT_MISSED) or not report_file.is_file() or report_file.stat().st_mtime < started:
            raise UsageError(f"the distributed run failed (exit {code})",
                             hint=f"Each rank's log is in {target / 'launch-logs'}.")
        report = json.loads(report_file.read_text(encoding="utf-8"))
        report.setdefault("report_files", {"markdown": str(target / "report.md")})
        _render(report, as_json)
        return

    if device not in ("cpu", "gpu"):
        raise UsageError(f"unknown device {device!r}", hint="Use --device cpu or --device gpu.")
    if engine not in ("fast", "paddleslim"):
        raise UsageError(f"unknown engine {engine!r}", hint="Use --engine fast or --engine paddleslim.")
    rank = int(os.environ.get("PADDLE_TRAINER_ID", "0") or 0)
    verbose_log = (lambda msg: err_console.print(f"[dim]{msg}[/]")) if not as_json and rank == 0 else (lambda msg: None)
    opts = ReproduceOptions(
        data=data, out=out, device=device, max_samples=max_samples, resume=resume, epochs=epochs,
        iterations=iterations, batch_size=batch_size, engine=engine, mirror=mirror, write=rank == 0, log=verbose_log,
    )
    report = reproduce(name, opts)
    if os.environ.get("ZOO_DIST_CHILD"):  # a rank under paddle.distributed.launch: the launching command renders
        if rank == 0 and report["status"] != "PASS":
            raise typer.Exit(EXIT_MISSED)
        return
    _render(report, as_json)


def _render(report: dict, as_json: bool) -> None:
    """Print the report (table or JSON); exit 3 when a metric missed its tolerance."""
    if as_json:
        print_json(report)
    else:
        console.print(_table(report))
        console.print(f"report: {report.get('report_files', {}).get('markdown', '')}  (total {report['timings']['total']:.1f} s)")
    if report["status"] != "PASS":
        raise typer.Exit(EXIT_MISSED)


@handle_errors
def quantize_cmd(
    model_dir: Path = typer.Argument(..., help="Folder of a Paddle inference model (or its .pdmodel file)."),
    calib_data: Path = typer.Option(..., "--calib-data", help="ImageNet-layout folder, or .npy/.npz of (N, C, H, W) inputs."),
    algo: str = typer.Option("KL", "--algo", help="Threshold search: KL, hist, mse, avg, abs_max."),
    batch_size: int = typer.Option(32, "--batch-size", min=1, help="Calibration batch size."),
    batch_nums: int = typer.Option(10, "--batch-nums", min=1, help="Number of calibration batches."),
    out: Path = typer.Option(..., "--out", help="Output folder for the INT8 inference model."),
    engine: str = typer.Option("fast", "--engine", help="fast (vectorized search) or paddleslim (plain quant_post_static)."),
    split: str = typer.Option("val", "--split", help="Split of an image folder to calibrate on: val or train."),
    hist_percent: float = typer.Option(0.9999, "--hist-percent", help="Percentile of the hist algo."),
    onnx_format: bool = typer.Option(False, "--onnx-format", help="Write quantize_linear/dequantize_linear ops."),
    ops: str = typer.Option("conv2d,depthwise_conv2d,mul", "--ops",
                            help="Comma-separated op types to quantize (e.g. add matmul_v2 for Linear layers)."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Post-training (static) INT8 quantization of any Paddle inference model."""
    from zoo.modelfiles import find_model_files
    from zoo.quant.inputs import calibration_input
    from zoo.quant.ptq import quantize_static

    algos = ("KL", "hist", "mse", "avg", "abs_max")  # min_max writes thresholds as attributes, no INT8 ops
    if algo not in algos:
        raise UsageError(f"unknown algo {algo!r}", hint=f"Use one of {', '.join(algos)}.")
    op_types = [o.strip() for o in ops.split(",") if o.strip()]
    if not op_types:
        raise UsageError("--ops names no op type", hint="e.g. --ops conv2d,depthwise_conv2d,mul")
    if engine not in ("fast", "paddleslim"):
        raise UsageError(f"unknown engine {engine!r}", hint="Use --engine fast or --engine paddleslim.")
    model = find_model_files(model_dir)
    began = time.time()
    calib = calibration_input(calib_data, model, split, batch_size, batch_nums)
    timings: dict = {}
    files = quantize_static(
        model, out, calib, algo=algo, batch_size=batch_size, batch_nums=batch_nums, hist_percent=hist_percent,
        onnx_format=onnx_format, engine=engine, timings=timings, quantizable_op_type=op_types,
    )
    result = {
        "model": str(model.folder),
        "out": str(files.folder),
        "model_file": str(files.model_file),
        "params_file": str(files.params_file) if files.params_file else None,
        "algo": algo,
        "engine": engine,
        "ops": op_types,
        "batch_size": batch_size,
        "batch_nums": batch_nums,
        "seconds": round(time.time() - began, 2),
        "timings": timings,
    }
    if as_json:
        print_json(result)
    else:
        console.print(f"INT8 model written to [bold]{files.folder}[/] ({algo}, {engine} engine, {result['seconds']:.1f} s)")


def register(app: typer.Typer) -> None:
    app.command("reproduce")(reproduce_cmd)
    app.command("quantize")(quantize_cmd)

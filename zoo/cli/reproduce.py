"""`zoo reproduce NAME`."""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import List, Optional

import typer
from rich.markup import escape

from zoo.cli.common import console, err_console, handle_errors, interrupt_on_sigterm, print_json
from zoo.cli.tables import CompactTable, compact_table, print_table
from zoo.device import Device, parse_device
from zoo.errors import TrainError, UsageError
from zoo.runfolder import reserve
from zoo.quant.base import get_strategy
from zoo.registry import get_recipe

EXIT_MISSED = 3  # the run finished but a metric missed its tolerance
EXIT_PARTIAL = 4  # the run finished but did not follow the recipe's protocol (indicative comparison)
EXIT_CODES = {"PASS": 0, "FAIL": EXIT_MISSED, "PARTIAL": EXIT_PARTIAL}


def _table(report: dict, wide: bool = False) -> CompactTable:
    """Measured vs published; compact enough for 80 columns unless `wide`."""
    from zoo.report import fmt_points

    columns = ["size", "metric", "INT8", "published", "diff", "tol", "FP32", "result"]
    if wide:
        columns = ["setting", "metric", "INT8 measured", "INT8 published", "diff", "tolerance", "FP32 measured",
                   "FP32 published", "result"]
    numeric = set(columns) - {"metric", "result"}
    table = compact_table(columns, title=f"{report['name']} ({report['strategy']}): {report['status']}", numeric=numeric)
    partial = report["status"] == "PARTIAL"
    for s in report["settings"]:
        for name, m in s["metrics"].items():
            f = s["fp32"].get(name, {})
            verdict = "[green]pass[/]" if m["pass"] else "[red]MISS[/]"
            if partial:
                verdict = "[yellow]within[/]" if m["pass"] else "[yellow]outside[/]"
            if m["published"] is None:
                verdict = "[yellow]unpublished[/]"
            row = [str(s["input_size"]), name, fmt_points(m["measured"]), fmt_points(m["published"]),
                   fmt_points(m["diff"], True), f"{m['tolerance']:.2f}", fmt_points(f.get("measured"))]
            if wide:
                row.append(fmt_points(f.get("published")))
            table.add_row(*row, verdict)
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
    # the launcher's logs dump every rank's environment (tokens and proxy credentials included): owner-only
    os.chmod(log_dir, 0o700)
    err_console.print(f"running {nproc or len((gpus or '').split(','))} rank(s) through paddle.distributed.launch; "
                      f"logs in {log_dir}")
    # the launcher echoes rank 0's output and its own banners: keep them in a log so stdout stays ours
    with open(log_dir / "launcher.log", "wb") as log:
        return subprocess.call(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)


def check_gpus(gpus: str) -> None:
    """--gpus names GPUs that exist, before any rank starts (a rank would fail late and leave files behind)."""
    ids = [part.strip() for part in gpus.split(",")]
    if not all(i.isdigit() for i in ids) or len(set(ids)) != len(ids):
        raise UsageError(f"--gpus {gpus!r} is not a comma-separated list of distinct GPU ids",
                         hint="Write it like --gpus 0,1.")
    try:
        parse_device(f"gpu:{max(int(i) for i in ids)}").check()
    except UsageError as exc:
        raise UsageError(f"--gpus {gpus}: {exc.message.replace('--device ', '')}",
                         hint=f"{exc.hint} Without GPUs, --nproc N trains in N CPU processes.") from None


def device_of(device: Optional[str], gpus: Optional[str]) -> Device:
    """--device; without it a GPU under --gpus, and in the ranks paddle.distributed.launch put on GPUs."""
    if device is None:
        on_gpus = bool(gpus) or bool(os.environ.get("ZOO_DIST_CHILD") and os.environ.get("FLAGS_selected_gpus"))
        return parse_device("gpu" if on_gpus else "cpu")
    chosen = parse_device(device)
    if gpus and not chosen.is_gpu:
        raise UsageError(f"--gpus trains on GPUs, but --device {chosen} was given",
                         hint="Drop --device, or use --nproc N to train in N CPU processes.")
    return chosen


@handle_errors
def reproduce_cmd(
    name: str = typer.Argument(..., help="Entry name or alias (see `zoo list`)."),
    data: Optional[Path] = typer.Option(None, "--data", help="ImageNet-layout (classification) or COCO-layout (detection) "
                                                             "data folder; digits entries need none."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output folder (default: ./zoo-out/NAME)."),
    device: Optional[str] = typer.Option(None, "--device", metavar="cpu|gpu|gpu:N",
                                         help="Where training and evaluation run (default: cpu; gpu with --gpus)."),
    max_samples: Optional[int] = typer.Option(None, "--max-samples", min=1, help="Evaluate (and train on) at most N images."),
    resume: bool = typer.Option(False, "--resume", help="Reuse finished stages (FP32 export, QAT epochs) of an earlier run."),
    epochs: Optional[int] = typer.Option(None, "--epochs", min=1, help="Shorten QAT/ACT training to N epochs."),
    iterations: Optional[int] = typer.Option(None, "--iterations", min=1, help="Stop QAT/ACT training after N iterations."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", min=1, help="Training batch size override."),
    engine: str = typer.Option("fast", "--engine", help="PTQ threshold search: fast (vectorized) or paddleslim."),
    mirror: Optional[str] = typer.Option(None, "--mirror", help="Mirror host for downloads (like ZOO_MIRROR)."),
    gpus: Optional[str] = typer.Option(None, "--gpus", help="Run on these GPUs through paddle.distributed.launch, e.g. 0,1."),
    nproc: Optional[int] = typer.Option(None, "--nproc", min=1, help="Processes per node through paddle.distributed.launch."),
    calib_on_eval: bool = typer.Option(False, "--calib-on-eval",
                                       help="PTQ: calibrate on the evaluation split when the data has no train split (PARTIAL)."),
    overwrite: bool = typer.Option(False, "--overwrite",
                                   help="Write into an --out folder holding other files or another entry's run."),
    wide: bool = typer.Option(False, "--wide", help="Show every column of the result table."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No training progress or stage messages on stderr."),
) -> None:
    """Reproduce a quantized model from FP32 and compare it with the published numbers.

    Exit code 0: PASS; 3: ran, but a metric missed its tolerance; 4: PARTIAL (a shortened or altered
    run, compared only as an indication); 1: error; 2: bad usage; 130: interrupted (--resume continues).
    """
    # long by its signature only (every option is declared there); the body is one job under 60 lines
    from zoo.cli.progress import training_progress
    from zoo.reproduce import ReproduceOptions, default_out, reproduce

    target_device = device_of(device, gpus)  # a misspelt device is refused before any work
    if (gpus or nproc) and not os.environ.get("ZOO_DIST_CHILD"):
        if gpus:
            check_gpus(gpus)

        recipe = get_recipe(name)
        if not get_strategy(recipe.strategy).needs.ranks:
            raise UsageError(
                f"--gpus/--nproc run data-parallel training; {recipe.name}'s strategy {recipe.strategy!r} "
                "runs in one process",
                hint="Run it without --gpus/--nproc (one process).",
            )
        target = out or default_out(recipe.name)
        reserve(target, recipe.name, overwrite)  # refused before any rank starts
        started = time.time()
        code = _relaunch(gpus, nproc, target / "launch-logs")
        report_file = target / "report.json"
        if code not in EXIT_CODES.values() or not report_file.is_file() or report_file.stat().st_mtime < started:
            raise TrainError(f"the distributed run failed (exit {code})",
                             hint=f"Each rank's log is in {target / 'launch-logs'}.")
        report = json.loads(report_file.read_text(encoding="utf-8"))
        report.setdefault("report_files", {"markdown": str(target / "report.md")})
        _render(report, as_json, wide)
        return

    if engine not in ("fast", "paddleslim"):
        raise UsageError(f"unknown engine {engine!r}", hint="Use --engine fast or --engine paddleslim.")
    rank = int(os.environ.get("PADDLE_TRAINER_ID", "0") or 0)
    verbose_log = ((lambda msg: err_console.print(f"[dim]{escape(msg)}[/]")) if not as_json and not quiet and rank == 0
                   else (lambda msg: None))
    opts = ReproduceOptions(
        data=data, out=out, device=str(target_device), max_samples=max_samples, resume=resume, epochs=epochs,
        iterations=iterations, batch_size=batch_size, engine=engine, mirror=mirror, calib_on_eval=calib_on_eval,
        overwrite=overwrite, write=rank == 0, log=verbose_log,
    )
    interrupt_on_sigterm()  # a stopped run keeps its stages and says how to resume, like Ctrl-C
    with training_progress(err_console, quiet=quiet or rank != 0) as progress:  # stderr: --json stays clean
        opts.progress = progress
        report = reproduce(name, opts)
    if os.environ.get("ZOO_DIST_CHILD"):  # a rank under paddle.distributed.launch: the launching command renders
        if rank == 0 and EXIT_CODES[report["status"]]:
            raise typer.Exit(EXIT_CODES[report["status"]])
        return
    _render(report, as_json, wide)


def _render(report: dict, as_json: bool, wide: bool = False) -> None:
    """Print the report (table or JSON); exit 3 when a metric missed its tolerance, 4 for a PARTIAL run."""

    if as_json:
        print_json(report)
    else:
        print_table(console, _table(report, wide))
        found = report.get("protocol", {}).get("deviations") or []
        if found:
            console.print("[yellow]PARTIAL[/]: not the recipe's protocol, so the comparison is only indicative:")
            for d in found:
                console.print(escape(f"  - {d['setting']}: {d['run']} (recipe: {d['recipe']})"))
        if str(report.get("compared_with", "")).startswith("nothing"):
            console.print("[yellow]PARTIAL[/]: compared with " + escape(str(report["compared_with"])))
        console.print(f"report: {report.get('report_files', {}).get('markdown', '')}  (total {report['timings']['total']:.1f} s)", markup=False)
    code = EXIT_CODES[report["status"]]
    if code:
        raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    app.command("reproduce")(reproduce_cmd)

"""`zoo matrix NAME|PATH...`: each entry's FP32 and INT8 accuracy and latency on every runtime that would serve it."""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import List, Optional

import typer
from rich.markup import escape

from zoo.cli.common import console, handle_errors, interrupt_on_sigterm, print_json, progress_log
from zoo.cli.tables import compact_table, print_table
from zoo.errors import UsageError
from zoo.fsutil import atomic_write_text

RECEIPT_NAME = "matrix-receipt.json"


def _runtimes(text: Optional[str]) -> List[str]:
    from zoo.deploy.matrix import MATRIX_RUNTIMES

    if text is None:
        return list(MATRIX_RUNTIMES)
    asked = [r.strip() for r in text.split(",") if r.strip()]
    unknown = [r for r in asked if r not in MATRIX_RUNTIMES]
    if unknown or not asked:
        raise UsageError(f"unknown --runtimes {', '.join(unknown) or text!r}", hint=f"Use some of {', '.join(MATRIX_RUNTIMES)}.")
    if "paddle" not in asked:
        asked.insert(0, "paddle")  # the reference every other cell is compared with
    return asked


def _num(value: Optional[float], fmt: str) -> str:
    return "–" if value is None else fmt.format(value)


@handle_errors
def matrix_cmd(
    models: List[str] = typer.Argument(..., help="Zoo entry names (reproduced into --out first when no run is there) "
                                                  "or `zoo reproduce` folders."),
    data: Optional[Path] = typer.Option(None, "--data", help="The entries' evaluation data (digits entries: bundled)."),
    runtimes: Optional[str] = typer.Option(None, "--runtimes", help="Comma list of paddle, paddle-int8, onnxruntime, "
                                                                  "openvino, lite, paddle3 (default: all)."),
    threads: int = typer.Option(1, "--threads", min=1, help="CPU threads of every runtime."),
    repeats: int = typer.Option(3, "--repeats", min=1, help="Timed runs per cell, each in a fresh process (the spread)."),
    max_samples: Optional[int] = typer.Option(None, "--max-samples", min=1,
                                              help="Score N evenly spaced images (the accuracy is then indicative)."),
    no_timing: bool = typer.Option(False, "--no-timing", help="Accuracy only."),
    out: Path = typer.Option(Path("zoo-matrix"), "--out", help="Folder for the reproductions and matrix-receipt.json."),
    wide: bool = typer.Option(False, "--wide", help="Every column (reference, spread) on one line per cell."),
    as_json: bool = typer.Option(False, "--json", help="Print the receipt as JSON."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress lines on stderr."),
) -> None:
    """Deployed accuracy: each entry measured on every runtime, from the files the zoo writes.

    Per precision x runtime: the recipe's metric and its difference from the reference (INT8: Paddle's fake-quant
    graph; FP32: Paddle FP32), batch-1 latency (median p50 of --repeats runs, and their spread), the speed-up over
    Paddle Inference FP32, and a verdict. Writes matrix-receipt.json (versions, CPU, threads, command, time) to --out.
    """
    from zoo.deploy.matrix import entry_matrix, receipt

    chosen = _runtimes(runtimes)
    interrupt_on_sigterm()
    began = time.time()
    log = progress_log(not (as_json or quiet))
    entries = [entry_matrix(m, out=out, data=data, runtimes=chosen, threads=threads, repeats=repeats,
                            max_samples=max_samples, timing=not no_timing, log=log) for m in models]
    result = receipt(entries, threads, time.time() - began, ["matrix", *sys.argv[2:]] if sys.argv[1:2] == ["matrix"]
                     else ["matrix", *models])
    result["max_samples"] = max_samples
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / RECEIPT_NAME, json.dumps(result, indent=2) + "\n")
    if as_json:
        print_json(result)
        return
    for entry in entries:
        _render(entry, wide)
    console.print(escape(f"{result['cpu']} ({', '.join(result['cpu_int8_flags']) or 'no INT8 instructions'}), "
                         f"{threads} thread(s); receipt: {out / RECEIPT_NAME}"))


def _render(entry, wide: bool) -> None:  # type: ignore[no-untyped-def]
    from zoo.deploy.matrix import RUNTIME_LABELS

    metric = {"top1": "top-1", "box_ap": "box AP"}.get(entry.metric, entry.metric)
    headers = (["prec", "runtime", metric, "diff", "p50 ms", "±", "vs FP32", "verdict"] if wide else
               ["prec", "runtime", metric, "diff", "p50 ms", "vs FP32", "verdict"])
    table = compact_table(headers, numeric={metric, "diff", "p50 ms", "±", "vs FP32"},
                          title=f"{entry.entry}: {metric} on {entry.images} images at {entry.input_size}")
    reasons: List[str] = []
    for cell in entry.cells:
        verdict = cell.verdict
        if cell.reason:
            reasons.append(f"{cell.precision} / {RUNTIME_LABELS[cell.runtime]}: {cell.reason}")
            verdict = f"could not run [{len(reasons)}]"
        row = [cell.precision, RUNTIME_LABELS[cell.runtime], _num(cell.accuracy, "{:.2f}"), _num(cell.diff, "{:+.2f}"),
               _num(cell.p50_ms, "{:.2f}")] + ([_num(cell.spread_ms, "{:.2f}")] if wide else []) + [
               _num(cell.speedup, "{:.2f}x"), verdict]
        table.add_row(*row)
    print_table(console, table)
    for index, reason in enumerate(reasons, start=1):
        console.print(escape(f"[{index}] {reason}"))


def register(app: typer.Typer) -> None:
    app.command("matrix")(matrix_cmd)

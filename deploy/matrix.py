"""The deployed-accuracy matrix: each entry's FP32 and INT8 models measured on every runtime that would serve them.

For an entry (a recipe name, reproduced into `out/NAME` when no run is there yet, or a `zoo reproduce` folder), and
each precision x runtime (Paddle Inference with plain kernels: the fake-quant graph for INT8; its oneDNN INT8
kernels; the ONNX export on ONNX Runtime and OpenVINO; the Lite x86 .nb; Paddle Inference 3.x):

- accuracy: the recipe's headline metric on its evaluation data and preprocessing, scored by that runtime
  (zoo.tasks: top-1, or box AP at the headline size), and its difference from the reference (INT8: the
  fake-quant graph on Paddle Inference; FP32: Paddle Inference FP32);
- latency: batch 1, `repeats` timed runs of `repeat` calls each, each in a fresh worker process; the median of
  their p50s and the spread (largest minus smallest p50), and the speed-up over Paddle Inference FP32 (oneDNN);
- a verdict: ok, accuracy off by X (further from the reference than the recipe's reproduce tolerance: a
  deployed file must be as close to the fake-quant graph as a reproduction must be to the published number),
  not faster than FP32, or could not run (and why).

The receipt (`receipt()`) records the versions of every runtime and converter, the CPU and its INT8 instruction
sets, the threads, the command and the seconds taken, so a latency column can be quoted with its machine.
"""
from __future__ import annotations

import platform
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np

from zoo.errors import UsageError, ZooError
from zoo.modelfiles import ModelFiles
from zoo.program import read_program
from zoo.runtime import RUNTIME_NAMES
from zoo.schema import Recipe

MATRIX_RUNTIMES = RUNTIME_NAMES  # every runtime the core knows, in report order
RUNTIME_LABELS = {"paddle": "Paddle", "paddle-int8": "oneDNN INT8", "onnxruntime": "ONNX Runtime",
                  "openvino": "OpenVINO", "lite": "Lite x86", "paddle3": "Paddle 3.x"}
WARMUP, REPEAT = 5, 30  # per timed run


@dataclass
class Cell:
    """One precision on one runtime."""

    precision: str
    runtime: str
    accuracy: Optional[float] = None
    reference: Optional[float] = None
    diff: Optional[float] = None
    p50_ms: Optional[float] = None
    spread_ms: Optional[float] = None
    speedup: Optional[float] = None
    verdict: str = ""
    reason: Optional[str] = None


@dataclass
class EntryMatrix:
    """The cells of one entry, with what was measured."""

    entry: str
    folder: str
    metric: str
    input_size: int
    images: int
    cells: List[Cell] = field(default_factory=list)

    def cell(self, precision: str, runtime: str) -> Optional[Cell]:
        return next((c for c in self.cells if c.precision == precision and c.runtime == runtime), None)

    def as_dict(self) -> Dict[str, Any]:
        data = asdict(self)
        data["cells"] = [asdict(c) for c in self.cells]
        return data


def _why(exc: BaseException) -> str:
    """The first line of a failure, and its last when it has more (a converter's error is there)."""
    message = exc.message if isinstance(exc, ZooError) else f"{type(exc).__name__}: {exc}"
    lines = [ln.strip() for ln in message.strip().splitlines() if ln.strip()]
    text = lines[0] if len(lines) < 2 else f"{lines[0]}: {lines[-1]}"
    return text[:400]


def not_applicable(precision: str, runtime: str) -> Optional[str]:
    """Why a precision does not run on a runtime at all (None: it does)."""
    if precision == "fp32" and runtime == "paddle-int8":
        return "INT8 kernels need an INT8 model (the FP32 model on oneDNN is Paddle FP32)"
    if precision == "int8" and runtime == "lite":
        return "Paddle Lite's x86 backend does not run INT8 models (its INT8 .nb is for arm)"
    return None


def _accuracy(task: Any, recipe: Any, files: ModelFiles, dataset: Any, size: int, runtime: str, threads: int) -> float:
    from zoo.tasks.base import ScoreOptions

    task.check_runtime(runtime)
    row = task.score(files, dataset, recipe.preprocess, size, ScoreOptions(batch_size=8, threads=threads,
                                                                          runtime=runtime))
    value = row[task.metrics[0]]
    return float(value[str(size)] if isinstance(value, dict) else value)


def _time_once(files: ModelFiles, runtime: str, inputs: Sequence[np.ndarray], threads: int, workdir: Path) -> float:
    """The p50 (ms) of one timed run of `files` on `runtime` in a fresh worker process."""
    from zoo.deploy.bench import bench_onnx, bench_paddle, bench_paddle3
    from zoo.deploy.lite import bench_nb, convert
    from zoo.deploy.onnx import export_onnx
    from zoo.deploy.toolchain import find_converter

    if runtime in ("paddle", "paddle-int8"):
        raw = bench_paddle(files, inputs, int8=runtime == "paddle-int8", threads=threads, warmup=WARMUP, repeat=REPEAT)
    elif runtime in ("onnxruntime", "openvino"):
        onnx = workdir / "model.onnx"
        if not onnx.is_file():
            export_onnx(files, onnx, workdir / "onnx-work")
        raw = bench_onnx(onnx, inputs, runtime, threads=threads, warmup=WARMUP, repeat=REPEAT)
    elif runtime == "lite":
        nb = workdir / "model.nb"
        if not nb.is_file():
            convert(files, workdir / "model", "x86", find_converter("x86"))
        raw = bench_nb(nb, inputs, WARMUP, REPEAT)
    else:
        raw = bench_paddle3(files, inputs, threads=threads, warmup=WARMUP, repeat=REPEAT)
    return float(np.percentile(np.asarray(raw["latencies_ms"], dtype=np.float64), 50))


def _latency(files: ModelFiles, runtime: str, inputs: Sequence[np.ndarray], threads: int, repeats: int,
             workdir: Path) -> tuple:
    p50s = [_time_once(files, runtime, inputs, threads, workdir) for _ in range(repeats)]
    return round(statistics.median(p50s), 4), round(max(p50s) - min(p50s), 4)


def _verdict(cell: Cell, baseline_ms: Optional[float], tolerance: float) -> None:
    if cell.reason is not None:
        cell.verdict = "could not run"
        return
    if cell.runtime == "paddle":  # what the others are judged against
        cell.verdict = "baseline" if cell.precision == "fp32" else "reference"
        return
    if cell.diff is not None and abs(cell.diff) > tolerance:
        cell.verdict = f"accuracy off by {cell.diff:+.2f}"
    elif cell.precision == "int8" and cell.p50_ms is not None and baseline_ms is not None and cell.p50_ms >= baseline_ms:
        cell.verdict = "not faster than FP32"
    else:
        cell.verdict = "ok"


def entry_matrix(target: str, *, out: Path, data: Optional[Path] = None, runtimes: Sequence[str] = MATRIX_RUNTIMES,
                 threads: int = 1, repeats: int = 3, max_samples: Optional[int] = None, timing: bool = True,
                 log: Callable[[str], None] = lambda message: None) -> EntryMatrix:
    """Measure every precision x runtime cell of `target` (a recipe name or a `zoo reproduce` folder)."""
    from zoo.deploy.resolve import resolve_source
    from zoo.deploy.validate import make_inputs
    from zoo.registry import get_recipe
    from zoo.tasks import get_task

    folder = reproduced(target, out, data, log)
    source = resolve_source(str(folder))
    # the recipe the run recorded (what was run), else the registry's
    recipe = Recipe.model_validate(source.recipe) if isinstance(source.recipe, dict) else get_recipe(str(source.recipe))
    task = get_task(recipe.task)
    size = recipe.headline().input_size
    root = task.resolve_data(recipe, data)
    dataset = task.eval_dataset(root, recipe.dataset.split, recipe.preprocess, size, max_samples)
    result = EntryMatrix(recipe.name, str(folder), task.metrics[0], size, len(dataset))
    models = [("fp32", source.fp32), ("int8", source.int8)]
    for precision, files in models:
        for runtime in runtimes:
            cell = Cell(precision, runtime)
            result.cells.append(cell)
            cell.reason = "no such model in the run" if files is None else not_applicable(precision, runtime)
            if cell.reason is not None:
                continue
            log(f"{recipe.name}: {precision} on {runtime}")
            try:
                cell.accuracy = round(_accuracy(task, recipe, files, dataset, size, runtime, threads), 4)
            except ZooError as exc:
                cell.reason = _why(exc)
                continue
            if timing:
                inputs = make_inputs(read_program(files), batch=1, size=size, seed=0)
                with tempfile.TemporaryDirectory(prefix="zoo-matrix-") as tmp:
                    try:
                        cell.p50_ms, cell.spread_ms = _latency(files, runtime, inputs, threads, repeats, Path(tmp))
                    except ZooError as exc:
                        cell.reason = f"accuracy measured; timing failed: {_why(exc)}"
    _compare(result, timing, recipe.tolerance.reproduce)
    return result


def _compare(result: EntryMatrix, timing: bool, tolerance: float) -> None:
    """Differences from the references, speed-ups over Paddle FP32, verdicts."""
    baseline = result.cell("fp32", "paddle")
    baseline_ms = baseline.p50_ms if baseline is not None else None
    for cell in result.cells:
        ref = result.cell(cell.precision, "paddle")
        if ref is not None and ref.accuracy is not None and cell.accuracy is not None:
            cell.reference = ref.accuracy
            cell.diff = round(cell.accuracy - ref.accuracy, 4)
        if timing and cell.p50_ms and baseline_ms:
            cell.speedup = round(baseline_ms / cell.p50_ms, 3)
        _verdict(cell, baseline_ms, tolerance)


def reproduced(target: str, out: Path, data: Optional[Path], log: Callable[[str], None]) -> Path:
    """A `zoo reproduce` folder of `target`: the folder itself, `out/NAME` when a run is there, else a new run."""
    from zoo.deploy.resolve import is_reproduce_folder
    from zoo.reproduce import ReproduceOptions, reproduce

    path = Path(target).expanduser()
    if path.is_dir():
        if not is_reproduce_folder(path):
            raise UsageError(f"{path} is not a `zoo reproduce` folder",
                             hint="Pass an entry name or the folder `zoo reproduce NAME --out DIR` wrote.")
        return path
    folder = Path(out) / target
    if is_reproduce_folder(folder):
        return folder
    log(f"{target}: no run in {folder}; reproducing it there first")
    reproduce(target, ReproduceOptions(out=folder, data=data, log=log))
    return folder


def receipt(entries: Sequence[EntryMatrix], threads: int, seconds: float, argv: Sequence[str]) -> Dict[str, Any]:
    """What was measured, with what, on which machine."""
    from zoo.deploy.bench import cpu_flags
    from zoo.deploy.inference import produced_by
    from zoo.deploy.onnx import versions

    return {"entries": [e.as_dict() for e in entries], "threads": threads, "seconds": round(seconds, 1),
            "command": " ".join(["zoo", *argv]), "cpu": cpu_model(), "cpu_int8_flags": cpu_flags(),
            "machine": f"{platform.system()} {platform.machine()}, {_cores()} cores, Python {sys.version.split()[0]}",
            "versions": {**produced_by(), **versions(), **_side_versions()},
            "measured": time.strftime("%Y-%m-%d %H:%M:%S %Z")}


def cpu_model() -> str:
    """The CPU's model name as /proc/cpuinfo gives it."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _cores() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _side_versions() -> Dict[str, str]:
    """The Lite x86 toolchain's and Paddle 3.x's versions, where `make setup` built them."""
    found: Dict[str, str] = {}
    try:
        from zoo.deploy.lite import x86_runtime_version

        found["paddlelite-x86"] = x86_runtime_version()
    except ZooError:
        pass
    import subprocess

    from zoo.deploy.toolchain import paddle3_python

    python = paddle3_python(required=False)
    if python is not None:
        proc = subprocess.run([str(python), "-c", "import paddle; print(paddle.__version__)"], capture_output=True,
                              text=True, timeout=120)
        if proc.returncode == 0:
            found["paddlepaddle-3"] = proc.stdout.strip().splitlines()[-1]
    return found

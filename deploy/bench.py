"""`zoo bench`: latency (p50/p90), throughput, peak memory and file size, FP32 and INT8 side by side.

Each measurement runs in its own process (Paddle Inference: deploy/paddle_worker.py in this
environment; Paddle Lite x86: deploy/lite_worker.py in the x86 toolchain; ONNX Runtime and OpenVINO:
deploy/onnx_worker.py on the ONNX file `zoo export --target onnx` writes) so its peak RSS is its own.
Every INT8 path is checked against Paddle's fake-quant graph on the bench inputs (and scored on
`data` when given); the fastest INT8 path that passes is named with its speed-up over Paddle
Inference FP32.
On CPU, Paddle Inference runs INT8 models through oneDNN's INT8 kernels; the optimized program is
inspected to say whether they were really used. On a GPU (`device="gpu:N"`) it runs Paddle Inference's
GPU kernels, or TensorRT with `tensorrt=True`; each row's backend names the device it ran on.
"""
from __future__ import annotations

import dataclasses
import gc

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from zoo.deploy.lite import bench_nb, convert
from zoo.program import ProgramInfo, image_shapes, read_program
from zoo.deploy.resolve import Source, resolve_source
from zoo.modelcheck import check_model
from zoo.deploy.toolchain import find_converter
from zoo.contracts import detection_contract
from zoo.deploy.validate import make_inputs
from zoo.device import Device, DeviceLike, require_device
from zoo.errors import ExportError, UsageError, ZooError
from zoo.modelfiles import ModelFiles
from zoo.deploy.paddle_worker import MARKER
from zoo.deploy.onnx import export_onnx
from zoo.runtime import open_runtime
from zoo.schema import Preprocess
from zoo.data.folder_inputs import ImageChoices, folder_preprocess
from zoo.data.transforms import InputSize

BACKENDS = ("paddle", "lite", "onnxruntime", "openvino", "paddle3", "all")
ONNX_BACKENDS = ("onnxruntime", "openvino")


@dataclass
class BenchRow:
    variant: str  # "fp32" | "int8"
    backend: str  # "paddle-cpu (oneDNN)" ...
    p50_ms: Optional[float] = None
    p90_ms: Optional[float] = None
    mean_ms: Optional[float] = None
    throughput: Optional[float] = None  # samples per second
    peak_rss_mb: Optional[float] = None
    model_rss_mb: Optional[float] = None  # peak RSS above the loaded runtime
    file_size: Optional[int] = None
    kernels: Optional[Dict[str, Any]] = None
    note: Optional[str] = None
    runtime: Optional[str] = None  # the zoo.deploy.runtimes name of what ran (scores it with `zoo eval --runtime`)
    check: Optional[Dict[str, Any]] = None  # INT8: agreement with Paddle's fake-quant graph (bench inputs, data)
    top1: Optional[float] = None  # on `data`, when given

    def as_dict(self) -> Dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class BenchResult:
    model: str
    batch: int
    threads: int
    warmup: int
    repeat: int
    device: str = "cpu"
    rows: List[BenchRow] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)
    data: Optional[str] = None
    reference_top1: Optional[float] = None  # Paddle's fake-quant INT8 graph on `data`
    fastest: Optional[Dict[str, Any]] = None
    on_row: Optional[Callable[["BenchRow"], None]] = field(default=None, repr=False)  # each row as it is measured

    def add(self, row: "BenchRow") -> None:
        """Keep a measured row and report it now, so that a later failure loses nothing already measured."""
        self.rows.append(row)
        if self.on_row is not None:
            self.on_row(row)

    def as_dict(self) -> Dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if k not in ("rows", "on_row")}
        data["rows"] = [r.as_dict() for r in self.rows]
        return data


def _stats(row: BenchRow, raw: Dict[str, Any], batch: int) -> None:
    times = np.asarray(raw["latencies_ms"], dtype=np.float64)
    row.p50_ms = round(float(np.percentile(times, 50)), 4)
    row.p90_ms = round(float(np.percentile(times, 90)), 4)
    # 1 ns: the throughput is derived from it, and tiny models run in a few hundredths of a ms
    row.mean_ms = round(float(times.mean()), 6)
    row.throughput = round(batch * 1000.0 / float(times.mean()), 2)
    row.peak_rss_mb = round(raw["maxrss_kb"] / 1024.0, 1)
    row.model_rss_mb = round(max(raw["maxrss_kb"] - raw.get("baseline_rss_kb", 0), 0) / 1024.0, 1)


def _files_size(files: ModelFiles) -> int:
    paths = [files.model_file] + ([files.params_file] if files.params_file else list(files.folder.iterdir()))
    return sum(p.stat().st_size for p in paths if p.is_file())


def _save_inputs(arrays: Sequence[np.ndarray], path: Path) -> None:
    np.savez(path, **{str(i): a for i, a in enumerate(arrays)})


def paddle_label(device: Device, tensorrt: bool = False, mkldnn: bool = True) -> str:
    """The backend column of a Paddle Inference row: what really ran, on which device."""
    if device.is_gpu:
        return f"paddle-{device}" + ("-trt" if tensorrt else "")
    return "paddle-cpu-onednn" if mkldnn else "paddle-cpu"


def worker_argv(files: ModelFiles, inputs_file: Path, *, int8: bool, threads: int, warmup: int, repeat: int,
                device: Device, tensorrt: bool = False, mkldnn: bool = True) -> List[str]:
    """The command line of one deploy/paddle_worker.py run."""
    model = files.model_file if files.model_file.suffix == ".pdmodel" else files.folder
    argv = [sys.executable, "-m", "zoo.deploy.paddle_worker", "--model", str(model), "--inputs", str(inputs_file),
            "--threads", str(threads), "--warmup", str(warmup), "--repeat", str(repeat), "--device", str(device)]
    argv += (["--mkldnn"] if mkldnn and not device.is_gpu else []) + (["--int8"] if int8 else [])
    argv += ["--tensorrt"] if tensorrt and device.is_gpu else []
    return argv


def bench_paddle(files: ModelFiles, inputs: Sequence[np.ndarray], *, int8: bool, threads: int, warmup: int,
                 repeat: int, device: DeviceLike = "cpu", tensorrt: bool = False, mkldnn: bool = True) -> Dict[str, Any]:
    """Run deploy/paddle_worker.py on `files`; its JSON result."""
    with tempfile.TemporaryDirectory(prefix="zoo-bench-") as tmp:
        src = Path(tmp) / "inputs.npz"
        _save_inputs(inputs, src)
        argv = worker_argv(files, src, int8=int8, threads=threads, warmup=warmup, repeat=repeat,
                           device=require_device(device), tensorrt=tensorrt, mkldnn=mkldnn)
        proc = subprocess.run(argv, capture_output=True, text=True, errors="replace", timeout=3600)

    for line in proc.stdout.splitlines():
        if line.startswith(MARKER):
            return json.loads(line[len(MARKER):])
    tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-6:])
    raise ExportError(f"Paddle Inference benchmark of {files.folder} failed (exit status {proc.returncode})\n{tail}")


def _variants(source: Source, info: ProgramInfo) -> List[tuple]:
    variants = []
    fp32 = source.fp32 if source.fp32 is not None else (None if info.is_int8 else source.primary)
    int8 = source.int8 if source.int8 is not None else (source.primary if info.is_int8 else None)
    if fp32 is not None:
        variants.append(("fp32", fp32))
    if int8 is not None:
        variants.append(("int8", int8))
    return variants


def bench_model(model: str, backend: str = "paddle", threads: int = 1, batch: int = 1, warmup: int = 5,
                repeat: int = 50, device: DeviceLike = "cpu", tensorrt: bool = False,
                opt_bin: Optional[Path] = None, data: Optional[Path] = None,
                max_samples: Optional[int] = None, input_size: Optional[Tuple[int, int]] = None,
                image_overrides: Optional[Mapping[str, Any]] = None,
                on_row: Optional[Callable[[BenchRow], None]] = None) -> BenchResult:
    """Benchmark MODEL (recipe, reproduce folder, model folder or an x86 .nb file) on `device` ("cpu", "gpu:N").

    `data` (an ImageNet-layout folder) scores every INT8 path's top-1 and its agreement with Paddle's
    fake-quant graph; `max_samples` scores an evenly spaced subsample; `image_overrides` (Preprocess fields,
    `resize_mode`) say how its images become inputs, as in `zoo eval`. `input_size` (height, width) sizes
    the inputs of a model with a dynamic height and width.
    """
    # long by its signature only (every option is declared there); the body is one job under 60 lines
    if backend not in BACKENDS:
        raise UsageError(f"unknown backend {backend!r}", hint=f"Use --backend {', '.join(BACKENDS[:-1])} or all.")
    if data is not None and not Path(data).expanduser().is_dir():
        raise UsageError(f"--data {data} is not a folder", hint="Pass an ImageNet-layout folder (val/<class>/ or val_list.txt).")
    if target_is_gpu_onnx(backend, device):
        raise UsageError(f"--backend {backend} runs on the CPU here", hint="Drop --device, or use --backend paddle.")
    target = require_device(device)
    if target.is_gpu:
        target = Device("gpu", target.gpu_id())  # the rows name the GPU that really ran
    elif tensorrt:
        raise UsageError("--tensorrt runs on a GPU", hint="Add --device gpu (or gpu:N), or drop --tensorrt.")
    for name, value in (("--threads", threads), ("--batch", batch), ("--repeat", repeat)):
        if value < 1:
            raise UsageError(f"{name} must be at least 1")
    if warmup < 0:
        raise UsageError("--warmup must be 0 or more")
    result = BenchResult(model=model, batch=batch, threads=threads, warmup=warmup, repeat=repeat, device=str(target),
                         on_row=on_row)
    path = Path(model).expanduser()
    if path.suffix == ".nb" and path.is_file():
        raise UsageError("a .nb file has no declared input shape here",
                         hint="Bench the model it was made from with --backend lite (it converts for x86 itself).")
    source = resolve_source(model, fetch_baseline=True)
    if input_size is not None:
        source = dataclasses.replace(source, fill_size=input_size)
    info = read_program(source.primary)
    variants = _variants(source, info)
    for _name, files in variants:
        check_model(files)  # a corrupt file is named here, not by a worker's traceback (or a native crash)
    programs = {name: (files, read_program(files)) for name, files in variants}
    checked_data = None  # checked before the timings, which a late refusal would throw away
    if data is not None:
        checked_data = bench_data(source, info, data, image_overrides or {}, max_samples)
    inputs = make_inputs(info, batch=batch, size=source.fill, seed=1)
    if not target.is_gpu or backend != "paddle":
        result.notes.append(f"CPU INT8 instruction sets: {', '.join(cpu_flags()) or 'none found'}")
    if source.kind == "recipe" and not any(programs[name][1].is_int8 for name in programs):
        result.notes.append(f"{source.recipe} publishes no INT8 model: run `zoo reproduce {source.recipe} --out DIR`, "
                            f"then `zoo bench DIR` for FP32 and INT8 side by side")
    if target.is_gpu:
        result.notes.append(f"Paddle Inference runs on {target}" + (" through TensorRT (INT8 from the model's own "
                            "scales)" if tensorrt else "") + "; Lite x86 rows, if any, run on the CPU")
    if backend in ("paddle", "all"):
        for name, (files, prog) in programs.items():
            row = BenchRow(variant=name, backend=paddle_label(target, tensorrt), file_size=_files_size(files))
            raw = bench_paddle(files, inputs, int8=prog.is_int8, threads=threads, warmup=warmup, repeat=repeat,
                               device=target, tensorrt=tensorrt)
            _stats(row, raw, batch)
            row.kernels = raw.get("kernels")
            row.runtime = None if target.is_gpu else ("paddle-int8" if prog.is_int8 else None)
            if prog.is_int8 and not target.is_gpu:
                used = (row.kernels or {}).get("onednn_int8_ops", 0)
                row.note = (f"oneDNN INT8 kernels used ({used} ops)" if used else
                            "oneDNN INT8 kernels were NOT used: this runs the fake-quant ops in FP32")
            result.add(row)
    if backend in ("lite", "all"):
        _bench_lite(programs, inputs, warmup, repeat, batch, opt_bin, result)
    if backend in ("paddle3", "all") and not target.is_gpu:
        _bench_paddle3(programs, inputs, threads, warmup, repeat, batch, result)
    with tempfile.TemporaryDirectory(prefix="zoo-onnx-bench-") as tmp:
        if backend in ONNX_BACKENDS or backend == "all":
            runtimes = ONNX_BACKENDS if backend == "all" else (backend,)
            _bench_onnx(programs, inputs, runtimes, threads, warmup, repeat, batch, Path(tmp), result)
        if not target.is_gpu:
            try:
                _check_int8(programs, threads, source, checked_data, Path(tmp), result)
            except ZooError as exc:  # the timings above stand: say what could not be checked, and why
                result.notes.append(f"the INT8 check could not run: {exc.message}")
    _compare(result)
    _fastest(result)
    return result


def target_is_gpu_onnx(backend: str, device: DeviceLike) -> bool:
    """ONNX Runtime and OpenVINO run on the CPU here: a GPU device with them alone is a usage error."""
    return backend in ONNX_BACKENDS and require_device(device).is_gpu


def onnx_label(runtime: str) -> str:
    """The backend column of an ONNX row."""
    return f"{runtime}-cpu"


def bench_onnx(onnx_file: Path, inputs: Sequence[np.ndarray], runtime: str, *, threads: int, warmup: int,
               repeat: int) -> Dict[str, Any]:
    """Run deploy/onnx_worker.py on `onnx_file`; its JSON result."""

    with tempfile.TemporaryDirectory(prefix="zoo-bench-") as tmp:
        src = Path(tmp) / "inputs.npz"
        _save_inputs(inputs, src)
        argv = [sys.executable, "-m", "zoo.deploy.onnx_worker", "--runtime", runtime, "--model", str(onnx_file),
                "--inputs", str(src), "--threads", str(threads), "--warmup", str(warmup), "--repeat", str(repeat)]
        proc = subprocess.run(argv, capture_output=True, text=True, errors="replace", timeout=3600,
                              env={**os.environ, "OPENVINO_TELEMETRY_DISABLE": "1"})
    for line in proc.stdout.splitlines():
        if line.startswith(MARKER):
            return json.loads(line[len(MARKER):])
    tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-6:])
    raise ExportError(f"{runtime} benchmark of {onnx_file.name} failed (exit status {proc.returncode})\n{tail}")


def _bench_onnx(programs: Dict[str, tuple], inputs: Sequence[np.ndarray], runtimes: Sequence[str], threads: int,
                warmup: int, repeat: int, batch: int, workdir: Path, result: BenchResult) -> None:
    """Export each variant to ONNX once, then time it with each runtime."""

    for name, (files, prog) in programs.items():
        try:
            conversion = export_onnx(files, workdir / f"{name}.onnx", workdir / f"{name}-work", info=prog)
        except ExportError as exc:
            for runtime in runtimes:
                result.add(BenchRow(variant=name, backend=onnx_label(runtime), runtime=runtime,
                                            note=f"not run: the ONNX export failed: {exc.message.splitlines()[0]}"))
            continue
        for runtime in runtimes:
            row = BenchRow(variant=name, backend=onnx_label(runtime), runtime=runtime,
                           file_size=conversion.path.stat().st_size)
            _stats(row, bench_onnx(conversion.path, inputs, runtime, threads=threads, warmup=warmup, repeat=repeat),
                   batch)
            if prog.is_int8:
                row.note = "QDQ ONNX" + (" (legacy fake-quant rewritten as quantize_linear, same scales)"
                                         if conversion.rewritten_legacy else "")
            result.add(row)


CHECK_BATCH = 32  # noise inputs for the INT8 check: enough rows for an agreement rate to mean something


def _check_int8(programs: Dict[str, tuple], threads: int, source: Source, data: Optional[BenchData],
                workdir: Path, result: BenchResult) -> None:
    """Each timed INT8 path against Paddle's fake-quant graph: on noise inputs, and scored on `data` when given.

    Real images decide when they are given; noise inputs sit outside the calibrated ranges, so their
    limits are looser (zoo.deploy.validate.compare_int8).
    """
    from zoo.deploy.validate import compare_int8

    rows = [r for r in result.rows if r.variant == "int8" and r.p50_ms is not None and r.runtime]
    if "int8" not in programs or not rows:
        return
    files, info = programs["int8"]
    if detection_contract(info) is not None:
        _check_int8_detections(rows, files, info, threads, source, data, result)
        return
    inputs = make_inputs(info, batch=CHECK_BATCH, size=source.fill, seed=2)
    reference = open_runtime("paddle", files, workdir / "ref", threads=threads)
    expected = run_chunked(reference, inputs)
    batches = data.batches() if data is not None else None
    if batches is not None:
        result.data = str(data.folder)
        result.reference_top1, ref_top1 = _score(reference, batches)
    del reference
    for row in rows:  # one runtime in memory at a time: each is released before the next opens
        runner = open_runtime(row.runtime, files, workdir / f"check-{row.runtime}", threads=threads)  # type: ignore[arg-type]
        row.check = {"noise_inputs": compare_int8(expected, run_chunked(runner, inputs), real=False)}
        if batches is not None:
            row.top1, top1 = _score(runner, batches)
            agree = float((top1 == ref_top1).mean()) if len(top1) else None
            from zoo.deploy.validate import INT8_MIN_AGREEMENT_REAL

            row.check["data"] = {"top1": row.top1, "top1_agreement": agree, "min_agreement": INT8_MIN_AGREEMENT_REAL,
                                 "passed": agree is not None and agree >= INT8_MIN_AGREEMENT_REAL}
        del runner
        gc.collect()


CHECK_CHUNK = 4  # inputs per run of the INT8 check: its activations, not its 32 inputs, set the peak memory
# ... at most this many input values per run: 4 inputs of 3x320x320 (1.3 GB peak for a 32-channel net there);
# a 640x640 input runs alone (benchmarks/bench_check_memory.py: 4.8 GB at 4 per run, see the README)
CHECK_VALUES = 4 * 3 * 320 * 320


def run_chunked(runner: Any, inputs: Sequence[np.ndarray], chunk: Optional[int] = None) -> List[np.ndarray]:
    """`runner.run(inputs)` a few samples at a time, outputs joined along the batch: the same numbers as one
    run (each sample is computed on its own), at a fraction of the memory of a large batch. The default chunk
    is CHECK_CHUNK samples, fewer for large inputs (at most CHECK_VALUES input values per run)."""
    n = len(inputs[0])
    if chunk is None:
        per_sample = sum(int(np.prod(x.shape[1:])) for x in inputs)
        chunk = max(1, min(CHECK_CHUNK, CHECK_VALUES // max(per_sample, 1)))
    parts = [runner.run([np.ascontiguousarray(x[i:i + chunk]) for x in inputs]) for i in range(0, n, chunk)]
    return [np.concatenate([np.asarray(p[k]) for p in parts], axis=0) for k in range(len(parts[0]))]


def _check_int8_detections(rows: List[BenchRow], files: ModelFiles, info: ProgramInfo, threads: int, source: Source,
                           data: Optional[BenchData], result: BenchResult) -> None:
    """A detector's INT8 paths against Paddle's fake-quant graph, box by box (zoo.evaluate.detection.match_detections)
    on real images of its data when at hand (decisive), else on generated inputs."""
    from zoo.deploy.validate import int8_box_match, paddle_detections, real_detection_inputs
    from zoo.evaluate.detection import split_outputs

    contract = detection_contract(info)
    real = real_detection_inputs(source.recipe, info, data=data.folder if data is not None else None)
    inputs = real if real is not None else make_inputs(info, batch=8, size=source.fill, seed=2)
    if real is not None:
        result.data = str(data.folder) if data is not None else f"{source.label}'s data"
    reference = paddle_detections(files, inputs, contract, threads=threads)
    for row in rows:
        with tempfile.TemporaryDirectory(prefix="zoo-det-check-") as tmp:
            try:
                runner = open_runtime(row.runtime, files, Path(tmp), threads=threads)  # type: ignore[arg-type]
                try:
                    outputs = runner.run(list(inputs))
                    candidate = split_outputs(contract, outputs, runner.output_lods(), len(inputs[0]))
                finally:
                    runner.close()
            except ZooError as exc:
                row.check = {"noise_inputs" if real is None else "data": {"passed": False, "error": exc.message[:300]}}
                continue
        found = int8_box_match(reference, candidate)
        found["images"] = len(inputs[0])
        row.check = {"data" if real is not None else "noise_inputs": found}


@dataclass(frozen=True)
class BenchData:
    """--data, checked before anything is timed: the folder and how its images become the model's inputs."""

    folder: Path
    preprocess: Optional[Preprocess]  # None for a detector's COCO folder
    size: Optional[InputSize]
    max_samples: Optional[int]

    def batches(self) -> List[tuple]:
        """The preprocessed val images, in memory (labelled batches of 32)."""
        from zoo.data.imagenet import ImageListDataset, iterate_batches
        from zoo.data.transforms import eval_transform

        assert self.preprocess is not None, "a classifier's --data"
        dataset = ImageListDataset(self.folder, "val", eval_transform(self.preprocess, self.size), self.max_samples)
        return list(iterate_batches(dataset, 32, 2))


def bench_data(source: Source, info: ProgramInfo, data: Path, overrides: Mapping[str, Any],
               max_samples: Optional[int]) -> BenchData:
    """--data as `zoo eval` would read it for this model: the entry's preprocessing (or the folder's exported one,
    or the ImageNet default) with the image flags, sized to the declared input. Refuses, before anything is timed,
    a model that is not a one-input classifier or whose input the images cannot be made to fit."""
    hint = "Drop --data (the timings and the noise-input check still run), or score the model with its own data."
    if detection_contract(info) is not None:  # a COCO folder: its images are read by the detection check
        return BenchData(Path(data).expanduser(), None, None, max_samples)
    if len(image_shapes(info)) != 1 or len(info.inputs) != 1:
        raise UsageError("--data scores one-input classifiers; this model takes "
                         f"{[s.name for s in info.inputs]}", hint=hint)
    files = source.int8 or source.primary
    if source.preprocess:
        base, asked = Preprocess.model_validate(source.preprocess), source.fill_size or source.input_size
        pre, size = folder_preprocess(files, base, overrides, asked)
    else:
        pre, size = ImageChoices(source.fill_size, overrides).resolve(files)
    return BenchData(Path(data).expanduser(), pre, size, max_samples)


def _score(runner: Any, batches: Sequence[tuple]) -> tuple:
    """(top-1 % on the labelled batches, the predicted classes)."""
    predicted = []
    labels = []
    for images, y in batches:
        scores = np.asarray(runner.run([np.ascontiguousarray(images, dtype=np.float32)])[0])
        predicted.append(scores.reshape(len(scores), -1).argmax(axis=1))
        labels.append(np.asarray(y).reshape(-1))
    pred, lab = np.concatenate(predicted), np.concatenate(labels)
    return round(100.0 * float((pred == lab).mean()), 2), pred


def _fastest(result: BenchResult) -> None:
    """The fastest INT8 path that agrees with Paddle's fake-quant graph, against Paddle Inference FP32."""
    def passed(row: BenchRow) -> bool:
        checks = row.check or {}
        decisive = checks.get("data") or checks.get("noise_inputs")  # real images decide when given
        return bool(decisive and decisive.get("passed"))

    int8 = [r for r in result.rows if r.variant == "int8" and r.p50_ms is not None]
    valid = [r for r in int8 if passed(r)]
    wrong = [r.backend for r in int8 if r.check and not passed(r)]
    base = next((r for r in result.rows if r.variant == "fp32" and r.p50_ms is not None
                 and r.backend.startswith("paddle-")), None)
    if not valid:
        if int8:
            result.notes.append("fastest INT8 path: none passed the check against Paddle's fake-quant graph"
                                + (f" ({', '.join(wrong)} failed)" if wrong else ""))
        return
    best = min(valid, key=lambda r: r.p50_ms)  # type: ignore[arg-type,return-value]
    fastest: Dict[str, Any] = {"backend": best.backend, "runtime": best.runtime, "p50_ms": best.p50_ms}
    text = f"fastest INT8 path: {best.backend}, p50 {best.p50_ms:.3f} ms"
    if base is not None:
        fastest.update(baseline=base.backend, baseline_p50_ms=base.p50_ms,
                       speedup=round(base.p50_ms / best.p50_ms, 3))  # type: ignore[operator]
        text += f", {fastest['speedup']:.2f}x Paddle Inference FP32 ({base.backend}, p50 {base.p50_ms:.3f} ms) on this CPU"
    else:
        text += " (Paddle Inference FP32 not run: add --backend all for the speed-up)"
    data_check = (best.check or {}).get("data")
    if data_check and "matched_share" in data_check:  # a detector: its boxes matched on real images
        fastest.update(matched_share=data_check["matched_share"])
        text += (f"; {data_check['matched']} of {data_check['top_boxes']} top boxes of Paddle's fake-quant graph found "
                 f"again on {data_check['images']} images of {result.data}")
    elif data_check:
        fastest.update(top1=best.top1, top1_agreement=data_check["top1_agreement"])
        text += (f"; top-1 {best.top1:.2f}% on {result.data} (Paddle fake-quant: {result.reference_top1:.2f}%, "
                 f"agreement {data_check['top1_agreement']:.1%})")
    else:
        agreement = (best.check or {}).get("noise_inputs", {}).get("top1_agreement")
        text += ("; accuracy not measured (pass --data DIR)" +
                 (f", top-1 agreement with the fake-quant graph on {CHECK_BATCH} noise inputs {agreement:.0%}"
                  if agreement is not None else ""))
    if wrong:
        text += f"; left out, disagreeing with the fake-quant graph: {', '.join(wrong)}"
    fp32 = [r for r in result.rows if r.variant == "fp32" and r.p50_ms is not None]
    quickest = min(fp32, key=lambda r: r.p50_ms) if fp32 else None  # type: ignore[arg-type,return-value]
    if quickest is not None and quickest.p50_ms < best.p50_ms:  # type: ignore[operator]
        fastest["faster_fp32"] = {"backend": quickest.backend, "p50_ms": quickest.p50_ms}
        text += f"; FP32 on {quickest.backend} is faster still (p50 {quickest.p50_ms:.3f} ms)"
    result.fastest = fastest
    result.notes.append(text)


def _bench_lite(programs: Dict[str, tuple], inputs: Sequence[np.ndarray], warmup: int, repeat: int, batch: int,
                opt_bin: Optional[Path], result: BenchResult) -> None:
    for name, (files, prog) in programs.items():
        if prog.is_int8:
            result.add(BenchRow(variant=name, backend="lite-x86", note=(
                "not run: Lite's x86 backend does not run INT8 models (NaN); the INT8 .nb is for arm")))
            continue
        with tempfile.TemporaryDirectory(prefix="zoo-lite-bench-") as tmp:
            nb = convert(files, Path(tmp) / "model", "x86", find_converter("x86", opt_bin))
            row = BenchRow(variant=name, backend="lite-x86", file_size=nb.stat().st_size)
            _stats(row, bench_nb(nb, inputs, warmup, repeat), batch)
            row.note = "threads: Lite's default (the Python MobileConfig has no thread setting)"
            result.add(row)


def bench_paddle3(files: ModelFiles, inputs: Sequence[np.ndarray], *, threads: int, warmup: int,
                  repeat: int) -> Dict[str, Any]:
    """Time `files` on Paddle Inference 3.x (plain kernels) in a fresh worker: its latencies, peak RSS and detail."""
    from zoo.deploy.runtimes import Paddle3Runner

    with tempfile.TemporaryDirectory(prefix="zoo-paddle3-bench-") as tmp:
        runner = Paddle3Runner(files, threads, Path(tmp))
        try:
            return {**runner.time(inputs, warmup, repeat), "detail": runner.detail}
        finally:
            runner.close()


def _bench_paddle3(programs: Dict[str, tuple], inputs: Sequence[np.ndarray], threads: int, warmup: int, repeat: int,
                   batch: int, result: BenchResult) -> None:
    """Each variant on Paddle Inference 3.x (plain kernels; an INT8 model runs its fake-quant graph), in its worker."""
    for name, (files, prog) in programs.items():
        raw = bench_paddle3(files, inputs, threads=threads, warmup=warmup, repeat=repeat)
        row = BenchRow(variant=name, backend="paddle3-cpu", file_size=_files_size(files),
                       runtime="paddle3" if prog.is_int8 else None, note=raw["detail"])
        _stats(row, raw, batch)
        result.add(row)


def _compare(result: BenchResult) -> None:
    """A note with the INT8 speed-up per backend, and a warning when INT8 is not faster."""
    by_backend: Dict[str, Dict[str, BenchRow]] = {}
    for row in result.rows:
        if row.p50_ms is not None:
            by_backend.setdefault(row.backend, {})[row.variant] = row
    for backend, rows in by_backend.items():
        if "fp32" in rows and "int8" in rows:
            ratio = rows["fp32"].p50_ms / rows["int8"].p50_ms  # type: ignore[operator]
            text = f"{backend}: INT8 is {ratio:.2f}x the speed of FP32 (p50)"
            kernels = rows["int8"].kernels or {}
            if ratio < 1.0 and kernels:
                # what was counted in the optimized program, not a timing of each part
                text += (f"; INT8 is slower here; its optimized program runs {kernels.get('onednn_int8_ops', 0)} "
                         f"INT8 ops with {kernels.get('onednn_reorders', 0)} quantize/dequantize ops between them")
            elif ratio < 1.0 and not any("vnni" in f or f == "amx_int8" for f in cpu_flags()):
                text += "; INT8 is slower here, on a CPU without VNNI instructions"
            result.notes.append(text)


def cpu_flags() -> List[str]:
    """The INT8-relevant instruction sets of this CPU (what oneDNN can use)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    flags = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[1].split())
            break
    return sorted(f for f in flags if f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_int8", "avx_vnni"))



"""Paddle Lite: convert an inference model to `.nb`, read a `.nb`'s kernels, run a `.nb` on x86.

Lite always runs in a subprocess (deploy/lite_worker.py or a paddle_lite_opt-compatible executable):
its converter aborts or segfaults on some inputs, and that must become a ConverterError, not kill
the caller.
"""
from __future__ import annotations

import json
import errno
import functools
import os
import re
import signal
import subprocess
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from zoo.deploy.toolchain import WORKER, Converter, runtime_python
from zoo.errors import ConverterError, ExportError
from zoo.modelcheck import free_bytes
from zoo.modelfiles import ModelFiles

CONVERT_TIMEOUT_S = 900
_QUIET_ENV = {"GLOG_minloglevel": "2", "GLOG_v": "0"}

# Lite's enums (lite/api/paddle_place.h), as they appear in a .nb's kernel-type strings.
_TARGETS = {0: "unk", 1: "host", 2: "x86", 3: "cuda", 4: "arm", 5: "opencl", 6: "any", 7: "fpga", 8: "npu",
            9: "xpu", 17: "metal", 18: "nnadapter"}
_PRECISIONS = {0: "unk", 1: "fp32", 2: "int8", 3: "int32", 4: "any", 5: "fp16", 6: "bool", 7: "int64",
               8: "int16", 9: "uint8", 10: "fp64"}
_LAYOUTS = {0: "unk", 1: "NCHW", 2: "any", 3: "NHWC", 4: "image2d", 5: "image_folder"}
# "op/alias/target/precision/layout", stored as the `__@kernel_type_attr@__` of every op in a .nb
_KERNEL_RE = re.compile(rb"([a-z][a-z0-9_]{1,63})/([A-Za-z0-9_]{1,63})/(\d{1,2})/(\d{1,2})/(\d{1,2})(?![0-9/])")
# Ops that move or convert data rather than compute.
_PLUMBING = {"feed", "fetch", "calib", "io_copy", "io_copy_once", "layout", "layout_once", "calib_once"}


@dataclass(frozen=True)
class Kernel:
    op: str
    alias: str
    target: str
    precision: str
    layout: str

    def as_text(self) -> str:
        return f"{self.op}:{self.target}/{self.precision}"


def nb_kernels(path: Path) -> List[Kernel]:
    """The kernels a `.nb` file will run (op, target, precision), in file order."""
    data = Path(path).read_bytes()
    kernels = []
    for m in _KERNEL_RE.finditer(data):
        target, precision, layout = (int(g) for g in m.groups()[2:])
        if target not in _TARGETS or precision not in _PRECISIONS:
            continue
        kernels.append(Kernel(m.group(1).decode(), m.group(2).decode(), _TARGETS[target],
                              _PRECISIONS[precision], _LAYOUTS.get(layout, str(layout))))
    return kernels


def kernel_summary(kernels: Sequence[Kernel]) -> Dict[str, int]:
    """Counts per "op:target/precision", sorted by name."""
    return dict(sorted(Counter(k.as_text() for k in kernels).items()))


def int8_compute_kernels(kernels: Sequence[Kernel]) -> List[Kernel]:
    """Compute kernels that run in INT8 (conversions between precisions left out)."""
    return [k for k in kernels if k.precision == "int8" and k.op not in _PLUMBING]


_UNSUPPORTED_PATTERNS = (
    re.compile(r"unsupported ops are:\s*(.+)", re.IGNORECASE),
    re.compile(r"unsupported op(?:erator)?s?\s*[:=]\s*(.+)", re.IGNORECASE),
    re.compile(r"op(?:erator)?\s+['\"]?([A-Za-z0-9_]+)['\"]?\s+is not supported", re.IGNORECASE),
    re.compile(r"no kernel (?:found|registered) for op\s+['\"]?([A-Za-z0-9_]+)", re.IGNORECASE),
)


def parse_unsupported_ops(output: str) -> List[str]:
    """Names of the ops a converter's output says it cannot handle."""
    found: List[str] = []
    for line in output.splitlines():
        for pattern in _UNSUPPORTED_PATTERNS:
            m = pattern.search(line)
            if not m:
                continue
            for name in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", m.group(1).split(".")[0]):
                if name not in found and name.lower() not in ("and", "on", "the", "ops", "op"):
                    found.append(name)
            break
    return found


def _signal_name(code: int) -> Optional[str]:
    number = -code if code < 0 else (code - 128 if 128 < code < 160 else None)
    if number is None:
        return None
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _tail(text: str, lines: int = 6) -> str:
    kept = [ln for ln in text.strip().splitlines() if ln.strip()]
    return "\n".join("  " + ln[:300] for ln in kept[-lines:])


def converter_version(converter: Converter, output: str = "") -> str:
    """The converter's version: from our worker's first line, or asked with --version."""
    m = re.search(r"converter: paddlelite (\S+)", output)
    if m:
        return m.group(1)
    try:
        proc = subprocess.run(converter.argv + ["--version"], capture_output=True, text=True, timeout=60,
                              env={**os.environ, **_QUIET_ENV})
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    text = (proc.stdout + proc.stderr).strip()
    m = re.search(r"v?\d+\.\d+[\w.\-]*", text)
    return m.group(0) if (proc.returncode == 0 and m) else "unknown"


def convert(files: ModelFiles, out_prefix: Path, arch: str, converter: Converter) -> Path:
    """Run the converter for `arch`; return `<out_prefix>.nb`. ConverterError on any failure."""
    if files.params_file is None:
        model_args = ["--model_dir", str(files.folder)]
    else:
        model_args = ["--model_file", str(files.model_file), "--param_file", str(files.params_file)]
    argv = converter.argv + model_args + [
        "--optimize_out_type", "naive_buffer", "--optimize_out", str(out_prefix), "--valid_targets", arch,
    ]
    try:
        proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              errors="replace", timeout=CONVERT_TIMEOUT_S, env={**os.environ, **_QUIET_ENV})
    except subprocess.TimeoutExpired as exc:
        raise ConverterError(f"the Paddle Lite converter ({converter.label}) ran past {CONVERT_TIMEOUT_S} s for {arch}") from exc
    except OSError as exc:
        raise ConverterError(f"cannot start the Paddle Lite converter {converter.label}: {exc.strerror}") from exc
    output = proc.stdout or ""
    nb = Path(str(out_prefix) + ".nb")
    unsupported = parse_unsupported_ops(output)
    if unsupported or proc.returncode != 0 or not nb.is_file():
        if not unsupported and _no_room(files, out_prefix.parent):
            # the converter says only "fwrite failed": as a full disk, for the caller to name its own target
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(out_prefix.parent))
        version = converter_version(converter, output)
        where = f"Paddle Lite converter {version} ({converter.label})"
        if unsupported:
            message = f"{where} does not support {len(unsupported)} op(s) of this model on {arch}: {', '.join(unsupported)}"
            hint = "Pick another --arch, or change the model so it avoids these ops."
        elif proc.returncode != 0 and _signal_name(proc.returncode):
            message = f"{where} crashed ({_signal_name(proc.returncode)}, exit status {proc.returncode}) converting for {arch}"
            hint = ("paddlelite 2.13rc0 is known to segfault converting for x86: use the CPython 3.7 + paddlelite 2.12 "
                    "toolchain (`make setup`, ZOO_LITE_PYTHON) for x86." if arch == "x86" else ConverterError.default_hint)
        elif proc.returncode != 0:
            message = f"{where} failed with exit status {proc.returncode} converting for {arch}"
            hint = ConverterError.default_hint
        else:
            message = f"{where} exited cleanly but wrote no {nb.name}"
            hint = ConverterError.default_hint
        if output.strip():
            message += "\nconverter output (last lines):\n" + _tail(output)
        raise ConverterError(message, hint=hint)
    return nb


def _no_room(files: ModelFiles, folder: Path) -> bool:
    """Whether `folder` has less room than the .nb would take (about the size of the model's weights)."""
    free = free_bytes(folder)
    weights = files.params_file.stat().st_size if files.params_file is not None else 1 << 20
    return free is not None and free < weights + (64 << 10)


def _save_inputs(arrays: Sequence[np.ndarray], path: Path) -> None:
    np.savez(path, **{str(i): np.ascontiguousarray(a) for i, a in enumerate(arrays)})


def _run_worker(args: List[str], what: str, timeout: float = 900) -> subprocess.CompletedProcess:
    python = runtime_python()
    try:
        proc = subprocess.run([str(python), str(WORKER)] + args, capture_output=True, text=True, errors="replace",
                              timeout=timeout, env={**os.environ, **_QUIET_ENV})
    except subprocess.TimeoutExpired as exc:
        raise ExportError(f"Paddle Lite ran past {timeout:.0f} s {what}") from exc
    if proc.returncode != 0:
        sig = _signal_name(proc.returncode)
        status = f"crashed ({sig})" if sig else f"failed (exit status {proc.returncode})"
        raise ExportError(f"Paddle Lite {status} {what}\n" + _tail(proc.stdout + proc.stderr),
                          hint="An x86 .nb must be run by the Lite version that wrote it (the x86 toolchain).")
    return proc


def nb_opt_version(nb: Path) -> Optional[str]:
    """The opt version a `.nb` file was written by, from its header (a 2-byte meta version, then the version
    string in 16 bytes); None when the header holds none."""
    with open(nb, "rb") as fh:
        head = fh.read(18)
    text = head[2:18].split(b"\0", 1)[0].decode("ascii", "replace").strip()
    return text if re.fullmatch(r"v?\d+\.\d+[\w.\-]*", text) else None


@functools.lru_cache(maxsize=1)
def x86_runtime_version() -> str:
    """The version of the Lite runtime that runs x86 `.nb` files here (the x86 toolchain's paddlelite)."""
    from zoo.deploy.toolchain import find_converter

    return converter_version(find_converter("x86"))


def _same_version(a: str, b: str) -> bool:
    return a.lstrip("v") == b.lstrip("v")


def require_runtime_match(nb: Path) -> None:
    """Refuse an x86 `.nb` written by another opt version than the runtime's: mismatched pairs warn, then fail
    or return nothing (Paddle Lite reports it only as a warning)."""
    written, runtime = nb_opt_version(nb), x86_runtime_version()
    if written is not None and runtime != "unknown" and not _same_version(written, runtime):
        raise ExportError(f"{nb.name} was written by Paddle Lite opt {written}; the x86 runtime here is {runtime}",
                          hint="Convert the model again with this toolchain (`zoo export --target lite --arch x86`).")


def run_nb(nb: Path, inputs: Sequence[np.ndarray]) -> List[np.ndarray]:
    """Run an x86 `.nb` with Lite's own MobileConfig runtime (the x86 toolchain) on one batch."""
    return run_nb_lod(nb, inputs)[0]


def run_nb_lod(nb: Path, inputs: Sequence[np.ndarray]) -> Tuple[List[np.ndarray], List[List[List[int]]]]:
    """Like run_nb, with each output's LoD (offsets per level; [] for a plain tensor), as Predictor.output_lods."""
    require_runtime_match(nb)
    with tempfile.TemporaryDirectory(prefix="zoo-lite-") as tmp:
        src, dst = Path(tmp) / "inputs.npz", Path(tmp) / "outputs.npz"
        _save_inputs(inputs, src)
        _run_worker(["run", "--nb", str(nb), "--inputs", str(src), "--output", str(dst)], f"running {nb.name}")
        with np.load(dst) as data:
            outputs = [data[k] for k in sorted((k for k in data.files if k.isdigit()), key=int)]
            lods: List[List[List[int]]] = [[] for _ in outputs]
            for key in sorted((k for k in data.files if k.startswith("lod")), key=lambda k: int(k.split("_")[1])):
                index = int(key[3:].split("_")[0])
                lods[index].append([int(v) for v in data[key]])
            return outputs, lods


def bench_nb(nb: Path, inputs: Sequence[np.ndarray], warmup: int, repeat: int) -> dict:
    """Time an x86 `.nb` in the x86 toolchain: latencies (ms) and the process's peak RSS (KiB)."""
    require_runtime_match(nb)
    with tempfile.TemporaryDirectory(prefix="zoo-lite-") as tmp:
        src = Path(tmp) / "inputs.npz"
        _save_inputs(inputs, src)
        proc = _run_worker(["bench", "--nb", str(nb), "--inputs", str(src), "--warmup", str(warmup),
                            "--repeat", str(repeat)], f"benchmarking {nb.name}")
    for line in reversed(proc.stdout.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise ExportError(f"Paddle Lite benchmark of {nb.name} printed no result")

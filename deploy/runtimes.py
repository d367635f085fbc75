"""One interface over the runtimes that can serve a Paddle model on a CPU: load it for runtime X, run a batch.

    runner = open_runtime("onnxruntime", files, threads=2, workdir=tmp)
    scores = runner.run([images])[0]

`paddle` is Paddle Inference with plain kernels (an INT8 model runs its fake-quant graph), `paddle-int8`
Paddle Inference with oneDNN and its INT8 kernels, `onnxruntime` / `openvino` the ONNX file `zoo export
--target onnx` writes (made here the same way), `lite` the x86 `.nb` run by Paddle Lite (FP32 only).
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np

from zoo.device import DeviceLike
from zoo.errors import ExportError, UsageError
from zoo.modelfiles import ModelFiles
from zoo.predictor import Predictor
from zoo.program import read_program

RUNTIMES = ("paddle", "paddle-int8", "onnxruntime", "openvino", "lite")


class Runner:
    """A model loaded by one runtime."""

    runtime: str = ""
    detail: str = ""  # what exactly runs, for reports

    def run(self, inputs: Sequence[np.ndarray]) -> List[np.ndarray]:  # pragma: no cover - interface
        raise NotImplementedError


class _PaddleRunner(Runner):
    def __init__(self, files: ModelFiles, threads: int, device: DeviceLike, int8: bool) -> None:
        self._predictor = Predictor(files, device=device, threads=threads, mkldnn=int8, int8=int8)
        self.runtime = "paddle-int8" if int8 else "paddle"
        self.detail = "Paddle Inference, oneDNN INT8 kernels" if int8 else "Paddle Inference, plain kernels"

    def run(self, inputs: Sequence[np.ndarray]) -> List[np.ndarray]:
        return self._predictor.run(list(inputs))


class _OnnxRunner(Runner):
    def __init__(self, files: ModelFiles, runtime: str, threads: int, workdir: Path) -> None:
        from zoo.deploy.onnx import OnnxSession, export_onnx

        conversion = export_onnx(files, workdir / "model.onnx", workdir)
        self._session = OnnxSession(conversion.path, runtime, threads=threads)
        self.runtime = runtime
        self.detail = f"{runtime} on the ONNX export ({'QDQ INT8' if conversion.precision == 'int8' else 'FP32'})"

    def run(self, inputs: Sequence[np.ndarray]) -> List[np.ndarray]:
        return self._session.run(list(inputs))


class _LiteRunner(Runner):
    def __init__(self, files: ModelFiles, workdir: Path, opt_bin: Optional[Path]) -> None:
        from zoo.deploy.lite import convert
        from zoo.deploy.toolchain import find_converter

        if read_program(files).is_int8:
            raise ExportError("Paddle Lite's x86 backend does not run INT8 models (it returns NaN)",
                              hint="Score the FP32 model with --runtime lite, or this one with onnxruntime or openvino.")
        self._nb = convert(files, workdir / "model", "x86", find_converter("x86", opt_bin))
        self.runtime = "lite"
        self.detail = "Paddle Lite x86 .nb (MobileConfig)"

    def run(self, inputs: Sequence[np.ndarray]) -> List[np.ndarray]:
        from zoo.deploy.lite import run_nb

        return run_nb(self._nb, list(inputs))


def open_runtime(runtime: str, files: ModelFiles, workdir: Path, threads: int = 1, device: DeviceLike = "cpu",
                 opt_bin: Optional[Path] = None) -> Runner:
    """Load `files` for `runtime`; what it converts (ONNX, .nb) goes under `workdir`, which the caller removes."""
    if runtime not in RUNTIMES:
        raise UsageError(f"unknown runtime {runtime!r}", hint=f"Use one of {', '.join(RUNTIMES)}.")
    if runtime in ("paddle", "paddle-int8"):
        return _PaddleRunner(files, threads, device, int8=runtime == "paddle-int8")
    if str(device) != "cpu":
        raise UsageError(f"--runtime {runtime} runs on the CPU", hint="Drop --device, or use --runtime paddle.")
    workdir.mkdir(parents=True, exist_ok=True)
    if runtime == "lite":
        return _LiteRunner(files, workdir, opt_bin)
    return _OnnxRunner(files, runtime, threads, workdir)

"""One interface over the runtimes that can serve a Paddle model: load it for runtime X, run a batch.

    runner = open_runtime("onnxruntime", files, workdir=tmp, threads=2)
    scores = runner.run([images])[0]
    runner.close()

The core defines the interface and the two Paddle Inference runtimes of this environment: `paddle` (plain kernels;
an INT8 model runs its fake-quant graph) and `paddle-int8` (oneDNN and its INT8 kernels). The deployment runtimes
(`onnxruntime` and `openvino` on the ONNX export, `lite` on the x86 `.nb`, `paddle3` in the Paddle 3.x environment)
are registered by zoo.deploy.runtimes, which the registry (zoo.plugins.RUNTIMES) imports on first use: evaluation
scores through this interface without importing the deployment code.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, List, Optional, Sequence

import numpy as np

from zoo.device import DeviceLike
from zoo.errors import UsageError
from zoo.modelfiles import ModelFiles
from zoo.plugins import RUNTIMES
from zoo.predictor import Predictor

# every runtime, in the order reports show them
RUNTIME_NAMES = ("paddle", "paddle-int8", "onnxruntime", "openvino", "lite", "paddle3")
# what a registered runtime is: (files, workdir, threads, device, opt_bin) -> Runner
RunnerFactory = Callable[[ModelFiles, Path, int, DeviceLike, Optional[Path]], "Runner"]


class Runner:
    """A model loaded by one runtime."""

    runtime: str = ""
    detail: str = ""  # what exactly runs, for reports

    def run(self, inputs: Sequence[np.ndarray]) -> List[np.ndarray]:  # pragma: no cover - interface
        raise NotImplementedError

    def close(self) -> None:
        """Release what the runtime holds beyond this process (a worker); nothing for in-process runtimes."""

    def output_lods(self) -> List[List[List[int]]]:
        """The LoD of each output of the last run (as Predictor.output_lods): where each image's boxes start in a
        legacy detector's one output tensor. Runtimes without LoD return none."""
        return []


class PaddleRunner(Runner):
    """Paddle Inference in this process: plain kernels, or oneDNN with its INT8 kernels."""

    def __init__(self, files: ModelFiles, threads: int, device: DeviceLike, int8: bool) -> None:
        self._predictor = Predictor(files, device=device, threads=threads, mkldnn=int8, int8=int8)
        self.runtime = "paddle-int8" if int8 else "paddle"
        self.detail = "Paddle Inference, oneDNN INT8 kernels" if int8 else "Paddle Inference, plain kernels"

    def run(self, inputs: Sequence[np.ndarray]) -> List[np.ndarray]:
        return self._predictor.run(list(inputs))

    def output_lods(self) -> List[List[List[int]]]:
        return self._predictor.output_lods()


def _paddle(int8: bool) -> RunnerFactory:
    def make(files: ModelFiles, workdir: Path, threads: int, device: DeviceLike, opt_bin: Optional[Path]) -> Runner:
        return PaddleRunner(files, threads, device, int8)
    return make


RUNTIMES.register("paddle", _paddle(False))
RUNTIMES.register("paddle-int8", _paddle(True))


def open_runtime(runtime: str, files: ModelFiles, workdir: Path, threads: int = 1, device: DeviceLike = "cpu",
                 opt_bin: Optional[Path] = None) -> Runner:
    """Load `files` for `runtime`; what it converts (ONNX, .nb) goes under `workdir`, which the caller removes."""
    if runtime not in RUNTIMES:
        raise UsageError(f"unknown runtime {runtime!r}", hint=f"Use one of {', '.join(RUNTIME_NAMES)}.")
    if runtime not in ("paddle", "paddle-int8") and str(device) != "cpu":
        raise UsageError(f"--runtime {runtime} runs on the CPU", hint="Drop --device, or use --runtime paddle.")
    Path(workdir).mkdir(parents=True, exist_ok=True)
    factory: Any = RUNTIMES.get(runtime)
    return factory(files, Path(workdir), threads, device, opt_bin)

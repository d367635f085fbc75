"""Where Paddle computes: one parser for `--device` and what each stage builds from it.

Accepted forms: ``cpu``, ``gpu`` and ``gpu:N``. Plain ``gpu`` is Paddle's default GPU: GPU 0, or
under ``paddle.distributed.launch`` the GPU the launcher gave this rank (FLAGS_selected_gpus).
Every stage takes its device from here: evaluation and bench configure the Paddle Inference
predictor with `configure_predictor`, PTQ calibrates with an Executor on `place()`, QAT and ACT
train after `activate()` (paddle.set_device).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any, Optional, Union

from zoo.errors import UsageError

ACCEPTED = "cpu, gpu or gpu:N (N = 0, 1, ...)"
# Paddle Inference's initial GPU memory pool (MB); it grows on demand, so this only sets the first reservation.
GPU_MEMORY_MB = 256
_GPU = re.compile(r"gpu(?::(\d+))?")


@dataclass(frozen=True)
class Device:
    """A compute device: kind "cpu" or "gpu"; index None on a GPU means Paddle's default GPU."""

    kind: str = "cpu"
    index: Optional[int] = None

    @property
    def is_gpu(self) -> bool:
        return self.kind == "gpu"

    def __str__(self) -> str:
        """The form `paddle.set_device` and `--device` take: "cpu", "gpu" or "gpu:N"."""
        if not self.is_gpu:
            return "cpu"
        return "gpu" if self.index is None else f"gpu:{self.index}"

    def gpu_id(self) -> int:
        """The GPU this device runs on: its index, else the one Paddle picks for this process."""
        if not self.is_gpu:
            raise ValueError("a CPU device has no GPU id")
        if self.index is not None:
            return self.index
        import paddle

        return int(paddle.distributed.ParallelEnv().device_id)

    def place(self) -> Any:
        """The Paddle place for executors and data loaders (paddle.CUDAPlace(i) or paddle.CPUPlace())."""
        import paddle

        return paddle.CUDAPlace(self.gpu_id()) if self.is_gpu else paddle.CPUPlace()

    def activate(self) -> None:
        """Make this the device of Paddle's dygraph ops and default places (paddle.set_device)."""
        import paddle

        paddle.set_device(str(self))

    def configure_predictor(self, config: Any, memory_mb: int = GPU_MEMORY_MB) -> None:
        """Point a paddle.inference.Config at this device (GPU id included)."""
        if self.is_gpu:
            config.enable_use_gpu(memory_mb, self.gpu_id())
        else:
            config.disable_gpu()

    def check(self) -> "Device":
        """This device, if this Paddle build can use it; a UsageError with what to do otherwise."""
        if not self.is_gpu:
            return self
        import paddle

        if not paddle.device.is_compiled_with_cuda():
            raise UsageError(
                f"--device {self} asked, but this paddle build has no CUDA support",
                hint="Install paddlepaddle-gpu==2.6.2 (pip install 'zoo[gpu]'), or use --device cpu.",
            )
        count = paddle.device.cuda.device_count()
        if count == 0:
            raise UsageError(
                f"--device {self} asked, but no GPU is visible",
                hint="Check the driver with nvidia-smi and CUDA_VISIBLE_DEVICES, or use --device cpu.",
            )
        if self.index is not None and self.index >= count:
            visible = os.environ.get("CUDA_VISIBLE_DEVICES")
            raise UsageError(
                f"--device {self} asked, but only {count} GPU(s) are visible"
                + (f" (CUDA_VISIBLE_DEVICES={visible})" if visible is not None else ""),
                hint=f"Use --device gpu:0 ... gpu:{count - 1}.",
            )
        return self


DeviceLike = Union[str, Device]
CPU = Device("cpu")


def parse_device(value: DeviceLike) -> Device:
    """A Device from "cpu", "gpu" or "gpu:N" (any case, surrounding spaces ignored); a UsageError otherwise.

    Only the spelling is checked here (no paddle import): call `Device.check()` or `require_device`
    before work that needs the device to exist.
    """
    if isinstance(value, Device):
        return value
    text = str(value).strip().lower()
    if text == "cpu":
        return CPU
    match = _GPU.fullmatch(text)
    if match is None:
        raise UsageError(f"unknown device {value!r}", hint=f"Use --device {ACCEPTED}.")
    return Device("gpu", int(match.group(1)) if match.group(1) is not None else None)


def require_device(value: DeviceLike) -> Device:
    """`parse_device` plus the check that this Paddle build can run on it."""
    return parse_device(value).check()

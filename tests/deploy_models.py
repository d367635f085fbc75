"""Tiny inference models for the deploy tests: FP32 conv nets saved with paddle.jit.save, INT8 by PTQ.

Each builder writes once per test session (the folder is reused when it already holds the model),
so the test modules can share them without a conftest fixture.
"""
from __future__ import annotations


import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

SHAPE = (3, 32, 32)


import paddle  # noqa: E402  (dy2static needs module-level names inside forward)
import paddle.nn as nn  # noqa: E402
import paddle.nn.functional as F  # noqa: E402


class TinyConvNet(nn.Layer):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2D(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2D(8)
        self.conv2 = nn.Conv2D(8, 16, 3, stride=2, padding=1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = F.relu(self.bn(self.conv1(x)))
        x = F.relu(self.conv2(x))
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return F.softmax(self.fc(x))


class HardswishNet(nn.Layer):
    """A conv and hard_swish (an op ONNX has only from opset 14). At module level: paddle's dy2static
    re-reads a layer's source, and a class defined inside a function can fail there after other tests."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2D(3, 4, 3)
        self.act = nn.Hardswish()

    def forward(self, x):  # type: ignore[no-untyped-def]
        return self.act(self.conv(x)).mean(axis=[2, 3])


class Det(nn.Layer):
    """Uses an op Paddle Lite has no kernel for (determinant)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2D(3, 4, 3)

    def forward(self, x):
        y = self.conv(x)
        return paddle.linalg.det(y[:, :, :4, :4])


def _save(net: nn.Layer, out: Path) -> None:
    net.eval()
    paddle.jit.save(net, str(out / "inference"), input_spec=[paddle.static.InputSpec([None, *SHAPE], "float32", "x")])


def session_dir(factory: pytest.TempPathFactory) -> Path:
    path = factory.getbasetemp() / "deploy-models"
    path.mkdir(exist_ok=True)
    return path


def fp32_model(factory: pytest.TempPathFactory, name: str = "fp32", seed: int = 0) -> Path:
    """A tiny FP32 conv net with input [None, 3, 32, 32]."""
    out = session_dir(factory) / name
    if (out / "inference.pdiparams").is_file():
        return out
    paddle.seed(seed)
    _save(TinyConvNet(), out)
    return out


def calibration(n: int = 32) -> np.ndarray:
    return np.random.RandomState(3).rand(n, *SHAPE).astype("float32")


def int8_model(factory: pytest.TempPathFactory, onnx_format: bool = False) -> Path:
    """The FP32 net quantized post-training (abs_max) by zoo.quant.ptq.quantize_static."""
    out = session_dir(factory) / ("int8-onnx" if onnx_format else "int8")
    if (out / "inference.pdiparams").is_file():
        return out
    src = fp32_model(factory)
    ops = ("conv2d", "depthwise_conv2d", "mul", "matmul_v2")
    try:
        from zoo.quant.ptq import quantize_static
    except ImportError:  # the zoo's PTQ module absent: the plain PaddleSlim call makes the same kind of model
        _paddleslim_ptq(src, out, ops, onnx_format)
        return out
    from zoo.quant.settings import PTQSettings

    quantize_static(src, out, calibration(), PTQSettings(algo="abs_max", batch_size=8, batch_nums=4, ops=ops,
                                                         onnx_format=onnx_format))
    return out


def _paddleslim_ptq(src: Path, out: Path, ops: tuple, onnx_format: bool) -> None:
    from paddleslim.quant import quant_post_static

    data = calibration()

    class Calib(paddle.io.Dataset):
        def __len__(self) -> int:
            return len(data)

        def __getitem__(self, i: int) -> np.ndarray:
            return data[i]

    paddle.enable_static()
    try:
        x = paddle.static.data("x", [None, *SHAPE], "float32")
        loader = paddle.io.DataLoader(Calib(), feed_list=[x], return_list=False, batch_size=8)
        quant_post_static(executor=paddle.static.Executor(paddle.CPUPlace()), model_dir=str(src),
                          quantize_model_path=str(out), model_filename="inference.pdmodel",
                          params_filename="inference.pdiparams", save_model_filename="inference.pdmodel",
                          save_params_filename="inference.pdiparams", data_loader=loader, batch_nums=4,
                          algo="abs_max", quantizable_op_type=list(ops), onnx_format=onnx_format)
    finally:
        paddle.disable_static()


def reproduce_folder(factory: pytest.TempPathFactory) -> Path:
    """A folder written by `zoo reproduce` itself (the bundled digits PTQ entry, run as a user runs it):
    its report.json is the one the exporters and bench read in real use."""
    out = reproduced(factory, "digits_mobilenetv1_ptq")
    assert (out / "reproduce-rc").read_text() == "0", (out / "reproduce-stdout.json").read_text()[-2000:]
    return out


def reproduced(factory: pytest.TempPathFactory, name: str) -> Path:
    """`zoo reproduce NAME --out ...` run once per session in a fresh process, as a user runs it (Paddle's global
    state left by earlier tests must not decide the numbers); its stdout is kept as reproduce-stdout.json and its
    exit status as reproduce-rc (the folder is written whatever the verdict)."""
    out = session_dir(factory) / f"repro-{name}"
    if (out / "reproduce-rc").is_file():
        return out
    proc = subprocess.run([sys.executable, "-m", "zoo", "reproduce", name, "--out", str(out), "--quiet", "--json"],
                          capture_output=True, text=True, timeout=900)
    assert proc.stdout, proc.stderr[-2000:]
    (out / "reproduce-stdout.json").write_text(proc.stdout, encoding="utf-8")
    (out / "reproduce-rc").write_text(str(proc.returncode), encoding="utf-8")
    return out


def unsupported_model(factory: pytest.TempPathFactory) -> Path:
    """A model with an op Paddle Lite has no kernel for (determinant)."""
    out = session_dir(factory) / "unsupported"
    if (out / "inference.pdiparams").is_file():
        return out
    paddle.seed(0)
    _save(Det(), out)
    return out


def script(folder: Path, name: str, body: str) -> Path:
    """An executable stand-in converter."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("#!/bin/sh\n" + body + "\n", encoding="utf-8")
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def leftovers(parent: Path) -> list:
    """Staging folders an export left behind."""
    return [p for p in parent.iterdir() if ".tmp-" in p.name] if parent.is_dir() else []



class PooledClassifier(nn.Layer):
    """conv -> global average pool -> linear -> softmax: any input side, `classes` scores out."""

    def __init__(self, classes: int) -> None:
        super().__init__()
        self.conv = nn.Conv2D(3, 4, 3, padding=1)
        self.fc = nn.Linear(4, classes)

    def forward(self, x):  # type: ignore[no-untyped-def]
        pooled = paddle.nn.functional.adaptive_avg_pool2d(self.conv(x), 1)
        return paddle.nn.functional.softmax(self.fc(paddle.flatten(pooled, 1)))


def pooled_classifier(folder: Path, shape: list, classes: int = 10) -> Path:
    """A PooledClassifier saved as an inference model taking `shape` (None: a dynamic dimension)."""
    paddle.seed(0)
    net = PooledClassifier(classes)
    net.eval()
    paddle.jit.save(net, str(folder / "inference"), input_spec=[paddle.static.InputSpec(shape, "float32", "x")])
    return folder

"""Tiny networks, data and recipes for the quantization strategy tests (no downloads)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Tuple

import numpy as np

from zoo.schema import Recipe

SHAPE = (3, 16, 16)
CLASSES = 4


def tiny_recipe(strategy: str = "qat", **overrides: Any) -> Recipe:
    """A valid recipe for a 4-class 16x16 problem."""
    data: Dict[str, Any] = {
        "name": f"tiny_{strategy}",
        "summary": "tiny test entry",
        "task": "classification",
        "arch": "tiny",
        "strategy": strategy,
        "source": {"doc": "test", "url": "https://example.org/x"},
        "artifacts": {"fp32": {"bundled": "none.tar", "layout": "inference"}},
        "default_artifact": "fp32",
        "dataset": {"kind": "imagenet", "split": "val", "num_classes": CLASSES},
        "preprocess": {"resize": 16},
        "quant": {"ops": ["Conv2D", "Linear"], "algo": "abs_max", "batch_nums": 2, "batch_size": 8},
        "train": {
            "epochs": 2,
            "learning_rate": 0.01,
            "schedule": {"kind": "piecewise", "boundaries": [1], "gamma": 0.1},
            "optimizer": "Momentum",
            "weight_decay": 1e-5,
            "label_smoothing": 0.1,
            "batch_size": 16,
        },
        "published": [{"input_size": 16, "top1": 90.0, "fp32_top1": 90.0}],
        "tolerance": {"reproduce": 5.0},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return Recipe.model_validate(data)


def tiny_data(n: int = 128, seed: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """Images whose class is the quadrant holding a bright blob (learnable in a few steps)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 0.3, size=(n,) + SHAPE).astype("float32")
    y = rng.integers(0, CLASSES, size=n).astype("int64")
    for i, label in enumerate(y):
        r, c = divmod(int(label), 2)
        x[i, :, r * 8 : r * 8 + 8, c * 8 : c * 8 + 8] += 1.5
    return x, y


class ArrayDataset:
    """A paddle-style map dataset over arrays."""

    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> Tuple[np.ndarray, np.ndarray]:
        return self.x[i], self.y[i]


import paddle  # noqa: E402  (dy2static needs module-level names inside forward)
import paddle.nn as nn  # noqa: E402
import paddle.nn.functional as F  # noqa: E402


class Tiny(nn.Layer):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2D(3, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2D(8)
        self.conv2 = nn.Conv2D(8, 16, 3, stride=2, padding=1)
        self.pool = nn.AdaptiveAvgPool2D(2)
        self.fc = nn.Linear(64, CLASSES)

    def forward(self, x):  # type: ignore[no-untyped-def]
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.conv2(x))
        x = paddle.flatten(self.pool(x), 1)
        return self.fc(x)


def tiny_net() -> Any:
    return Tiny()


def trained_tiny_net(steps: int = 60) -> Any:
    """A tiny net trained in FP32 so the quantized copy has something to keep."""
    import paddle

    paddle.seed(0)
    net = tiny_net()
    x, y = tiny_data(256, seed=1)
    opt = paddle.optimizer.Adam(learning_rate=0.01, parameters=net.parameters())
    for step in range(steps):
        idx = np.arange(step * 32, step * 32 + 32) % len(x)
        loss = paddle.nn.functional.cross_entropy(net(paddle.to_tensor(x[idx])), paddle.to_tensor(y[idx]))
        loss.backward()
        opt.step()
        opt.clear_grad()
    net.eval()
    return net


def save_fp32(net: Any, out_dir: Path) -> Path:
    import paddle

    spec = [paddle.static.InputSpec([None, *SHAPE], "float32", name="x")]
    paddle.jit.save(net, str(out_dir / "inference"), input_spec=spec)
    return out_dir


def accuracy(model_dir: Path, x: np.ndarray, y: np.ndarray) -> float:
    from zoo.predictor import Predictor

    pred = Predictor(model_dir)
    out = pred.run(x)[0]
    return float((out.argmax(1) == y).mean() * 100)


def op_types(model_dir: Path) -> set:
    import paddle

    from zoo.modelfiles import find_model_files
    from zoo.program import static_mode

    files = find_model_files(model_dir)
    with static_mode():
        exe = paddle.static.Executor(paddle.CPUPlace())
        program, _, _ = paddle.static.load_inference_model(str(files.folder / files.model_file.stem), exe)
    return {op.type for op in program.global_block().ops}

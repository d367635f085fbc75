"""Stand-ins for real models of two kinds the zoo's own entries are not (no published model of these kinds
ships in a package installable here), with the properties that broke the commands on the real ones:

- a text detector: dynamic H and W, an interpolation sized by the input's own shape (an int32 subgraph), a
  dense sigmoid probability map (N, 1, H, W) as output;
- a text recognizer: fixed height 16, dynamic width, a neck of `matmul_v2` Linear layers, `layer_norm` and
  `transpose2`, and a softmax over 40 characters per position (N, T, 40), the CTC convention; its
  normalization sums a 0-d scalar into the scores.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

RECOGNIZER_CLASSES = 40


class TextDetector(nn.Layer):
    def __init__(self) -> None:
        super().__init__()
        self.down = nn.Conv2D(3, 8, 3, stride=2, padding=1)
        self.mid = nn.Conv2D(8, 8, 3, padding=1)
        self.head = nn.Conv2D(8, 1, 1)

    def forward(self, x):  # type: ignore[no-untyped-def]
        y = F.relu(self.mid(F.relu(self.down(x))))
        y = F.interpolate(y, size=paddle.shape(x)[2:], mode="nearest")  # sized by the input: int32 shape ops
        return F.sigmoid(self.head(y))


class TextRecognizer(nn.Layer):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2D(3, 16, 3, stride=2, padding=1)
        self.neck = nn.Linear(16, 32)
        self.norm = nn.LayerNorm(32)
        self.head = nn.Linear(32, RECOGNIZER_CLASSES)

    def forward(self, x):  # type: ignore[no-untyped-def]
        y = F.relu(self.conv(x))  # (N, 16, 8, W/2)
        y = paddle.mean(y, axis=2)  # (N, 16, W/2)
        y = paddle.transpose(y, [0, 2, 1])  # (N, T, 16)
        y = self.norm(self.neck(y))
        scores = self.head(y)
        scores = scores - paddle.max(scores)  # a 0-d tensor on the way
        return F.softmax(scores, axis=-1)


def save(net: nn.Layer, folder: Path, shape: list) -> Path:
    """`net` (seeded) as an inference model taking `shape` (None: dynamic)."""
    net.eval()
    paddle.jit.save(net, str(folder / "inference"), input_spec=[paddle.static.InputSpec(shape, "float32", "x")])
    return folder


def text_detector(folder: Path) -> Path:
    paddle.seed(0)
    return save(TextDetector(), folder, [None, 3, None, None])


def text_recognizer(folder: Path) -> Path:
    paddle.seed(1)
    return save(TextRecognizer(), folder, [None, 3, 16, None])


def inputs(n: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """Smooth image-like inputs (blurred noise), normalized to about [-1, 1]."""
    rng = np.random.default_rng(seed)
    x = rng.random((n, 3, height // 4, width // 4), dtype=np.float32)
    x = np.repeat(np.repeat(x, 4, axis=2), 4, axis=3)
    return (x * 2.0 - 1.0).astype(np.float32)

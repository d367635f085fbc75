"""MobileNetV3 in PaddleClas's structure, with the map to its legacy static-graph parameter names.

The SSLD-distilled ImageNet weights are published as static-graph persistables (one file per
variable) named by PaddleClas's 1.x layer names: `conv1_weights`, `conv1_bn_scale`,
`conv2_expand_weights`, `conv2_depthwise_bn_mean`, `conv5_se_1_offset`, `conv_last_weights`,
`last_1x1_conv_weights`, `fc_weights`, `fc_offset`, ... `static_name_map` gives, for every entry
of this network's state dict, the static name it is loaded from.

Structure (per the static graph that produced the weights): every block has an expand 1x1 conv
(even where expansion == input channels), a depthwise conv, an optional SE module (reduction 4,
ReLU then hard-sigmoid with slope 0.2, offset 0.5) and a linear 1x1 conv; a residual add when the
stride is 1 and channels match. Head: 1x1 conv to 960 (x scale) + BN + hard-swish, global average
pool, 1x1 conv to 1280 without bias, hard-swish, dropout, fc.
"""
from __future__ import annotations

from typing import Dict, List, Tuple

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

# k, expansion, out, SE, activation, stride
LARGE: List[Tuple[int, int, int, bool, str, int]] = [
    (3, 16, 16, False, "relu", 1),
    (3, 64, 24, False, "relu", 2),
    (3, 72, 24, False, "relu", 1),
    (5, 72, 40, True, "relu", 2),
    (5, 120, 40, True, "relu", 1),
    (5, 120, 40, True, "relu", 1),
    (3, 240, 80, False, "hardswish", 2),
    (3, 200, 80, False, "hardswish", 1),
    (3, 184, 80, False, "hardswish", 1),
    (3, 184, 80, False, "hardswish", 1),
    (3, 480, 112, True, "hardswish", 1),
    (3, 672, 112, True, "hardswish", 1),
    (5, 672, 160, True, "hardswish", 2),
    (5, 960, 160, True, "hardswish", 1),
    (5, 960, 160, True, "hardswish", 1),
]
LARGE_SQUEEZE, LARGE_EXPAND = 960, 1280


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round channels to a multiple of `divisor`, never below 90% of `value`."""
    out = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if out < 0.9 * value:
        out += divisor
    return out


class ConvBN(nn.Layer):
    """Conv (no bias) + BatchNorm + optional activation."""

    def __init__(self, cin: int, cout: int, k: int, stride: int, groups: int = 1, act: str | None = None) -> None:
        super().__init__()
        self.conv = nn.Conv2D(cin, cout, k, stride=stride, padding=(k - 1) // 2, groups=groups, bias_attr=False)
        self.bn = nn.BatchNorm2D(cout)
        self.act = act

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self.bn(self.conv(x))
        if self.act == "relu":
            return F.relu(x)
        if self.act == "hardswish":
            return F.hardswish(x)
        return x


class SqueezeExcite(nn.Layer):
    def __init__(self, channels: int, reduction: int = 4) -> None:
        super().__init__()
        self.conv1 = nn.Conv2D(channels, channels // reduction, 1)
        self.conv2 = nn.Conv2D(channels // reduction, channels, 1)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        w = F.adaptive_avg_pool2d(x, 1)
        w = F.relu(self.conv1(w))
        # the static graph's hard_sigmoid default (slope 0.2), not paddle 2.x's 1/6
        w = F.hardsigmoid(self.conv2(w), slope=0.2, offset=0.5)
        return x * w


class Block(nn.Layer):
    def __init__(self, cin: int, mid: int, cout: int, k: int, stride: int, se: bool, act: str) -> None:
        super().__init__()
        self.expand = ConvBN(cin, mid, 1, 1, act=act)
        self.depthwise = ConvBN(mid, mid, k, stride, groups=mid, act=act)
        self.se = SqueezeExcite(mid) if se else None
        self.linear = ConvBN(mid, cout, 1, 1, act=None)
        self.shortcut = stride == 1 and cin == cout

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        y = self.depthwise(self.expand(x))
        if self.se is not None:
            y = self.se(y)
        y = self.linear(y)
        return x + y if self.shortcut else y


class MobileNetV3PaddleClas(nn.Layer):
    """MobileNetV3 large (PaddleClas layout): logits of shape (N, num_classes)."""

    def __init__(self, scale: float = 1.0, num_classes: int = 1000, dropout: float = 0.2,
                 cfg: List[Tuple[int, int, int, bool, str, int]] = LARGE,
                 squeeze: int = LARGE_SQUEEZE, expand: int = LARGE_EXPAND) -> None:
        super().__init__()
        self.cfg = list(cfg)
        cin = make_divisible(16 * scale)
        self.conv1 = ConvBN(3, cin, 3, 2, act="hardswish")
        blocks = []
        for k, exp, c, se, act, s in self.cfg:
            cout = make_divisible(scale * c)
            blocks.append(Block(cin, make_divisible(scale * exp), cout, k, s, se, act))
            cin = cout
        self.blocks = nn.LayerList(blocks)
        self.conv_last = ConvBN(cin, make_divisible(scale * squeeze), 1, 1, act="hardswish")
        self.last_conv = nn.Conv2D(make_divisible(scale * squeeze), expand, 1, bias_attr=False)
        self.dropout = nn.Dropout(p=dropout, mode="downscale_in_infer")
        self.fc = nn.Linear(expand, num_classes)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self.conv1(x)
        for block in self.blocks:
            x = block(x)
        x = self.conv_last(x)
        x = F.adaptive_avg_pool2d(x, 1)
        x = F.hardswish(self.last_conv(x))
        x = self.dropout(x)
        return self.fc(paddle.flatten(x, start_axis=1))

    def static_name_map(self) -> Dict[str, str]:
        """state-dict key -> PaddleClas static-graph variable name, for every entry of the state dict."""
        return static_name_map(len(self.cfg), [se for _, _, _, se, _, _ in self.cfg])


_BN = {"weight": "scale", "bias": "offset", "_mean": "mean", "_variance": "variance"}


def _conv_bn(prefix: str, static: str) -> Dict[str, str]:
    out = {f"{prefix}.conv.weight": f"{static}_weights"}
    for key, suffix in _BN.items():
        out[f"{prefix}.bn.{key}"] = f"{static}_bn_{suffix}"
    return out


def static_name_map(num_blocks: int, se_flags: List[bool]) -> Dict[str, str]:
    """The explicit name map: block i is `conv{i+2}` in the static graph."""
    names = _conv_bn("conv1", "conv1")
    for i in range(num_blocks):
        static = f"conv{i + 2}"
        names.update(_conv_bn(f"blocks.{i}.expand", f"{static}_expand"))
        names.update(_conv_bn(f"blocks.{i}.depthwise", f"{static}_depthwise"))
        if se_flags[i]:
            names[f"blocks.{i}.se.conv1.weight"] = f"{static}_se_1_weights"
            names[f"blocks.{i}.se.conv1.bias"] = f"{static}_se_1_offset"
            names[f"blocks.{i}.se.conv2.weight"] = f"{static}_se_2_weights"
            names[f"blocks.{i}.se.conv2.bias"] = f"{static}_se_2_offset"
        names.update(_conv_bn(f"blocks.{i}.linear", f"{static}_linear"))
    names.update(_conv_bn("conv_last", "conv_last"))
    names["last_conv.weight"] = "last_1x1_conv_weights"
    names["fc.weight"] = "fc_weights"
    names["fc.bias"] = "fc_offset"
    return names

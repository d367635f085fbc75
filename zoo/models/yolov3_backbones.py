"""The YOLOv3 backbones of the published detectors, structured as PaddleDetection 0.x built them.

- MobileNetV1 (ppdet 0.x `MobileNet`): a stem conv and 13 depthwise-separable blocks `conv2_1` ..
  `conv6`, plain ReLU everywhere, channels `int(c * scale)`; YOLOv3 taps the outputs of `conv3_2`
  (stride 8), `conv4_2` (stride 16, not `conv5_5`) and `conv6` (stride 32).
- ResNet34 (variant b: 7x7 stem, BasicBlocks, a 1x1 projection shortcut on `res2a` too) and
  ResNet50-vd (3x3 x3 stem, Bottlenecks with the stride on `branch2b`, avg-pool + 1x1 shortcuts
  from stage 3 on) with modulated deformable convs (DCNv2) in the `branch2b` of every stage-5 block.
  YOLOv3 taps res3, res4, res5.

Every conv is bias-free and followed by an unfused BatchNorm (epsilon 1e-5, fluid's default), except the
DCN offset/mask convs, which carry a bias. `width` scales every channel count so tiny versions exist;
at 1.0 the shapes are the published ones. The static names of every parameter are in yolov3_names.py.
"""
from __future__ import annotations

from typing import List, Optional, Tuple

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from zoo.errors import ModelError

BACKBONES = ("mobilenet_v1", "resnet34", "resnet50vd_dcn")

# (name, dw channels, sep output channels, dw groups, stride): the 0.x `_depthwise_separable` calls
MOBILENET_V1_BLOCKS: List[Tuple[str, int, int, int, int]] = [
    ("conv2_1", 32, 64, 32, 1),
    ("conv2_2", 64, 128, 64, 2),
    ("conv3_1", 128, 128, 128, 1),
    ("conv3_2", 128, 256, 128, 2),
    ("conv4_1", 256, 256, 256, 1),
    ("conv4_2", 256, 512, 256, 2),
    ("conv5_1", 512, 512, 512, 1),
    ("conv5_2", 512, 512, 512, 1),
    ("conv5_3", 512, 512, 512, 1),
    ("conv5_4", 512, 512, 512, 1),
    ("conv5_5", 512, 512, 512, 1),
    ("conv5_6", 512, 1024, 512, 2),
    ("conv6", 1024, 1024, 1024, 1),
]
MOBILENET_V1_TAPS = ("conv3_2", "conv4_2", "conv6")

RESNET_STAGE_BLOCKS = (3, 4, 6, 3)  # depth 34 and depth 50 alike
RESNET_STAGE_FILTERS = (64, 128, 256, 512)


def scaled(channels: int, width: float) -> int:
    """0.x's channel rule, `int(channels * scale)`, never below 1."""
    return max(1, int(channels * width))


class ConvBN(nn.Layer):
    """Conv2D (no bias) + BatchNorm2D + optional activation ("relu" or "leaky", slope 0.1)."""

    def __init__(self, cin: int, cout: int, k: int, stride: int = 1, groups: int = 1, act: Optional[str] = "relu") -> None:
        super().__init__()
        self.conv = nn.Conv2D(cin, cout, k, stride=stride, padding=(k - 1) // 2, groups=groups, bias_attr=False)
        self.bn = nn.BatchNorm2D(cout, epsilon=1e-5)
        self.act = act

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self.bn(self.conv(x))
        if self.act == "relu":
            return F.relu(x)
        if self.act == "leaky":
            return F.leaky_relu(x, negative_slope=0.1)
        return x


class DeformConvBN(nn.Layer):
    """DCNv2 as 0.x's `_conv_norm(dcn_v2=True)`: a biased offset/mask conv (2k^2 offsets, then k^2 mask
    logits), a sigmoid on the mask, a bias-free modulated deformable conv, BatchNorm, activation."""

    def __init__(self, cin: int, cout: int, k: int, stride: int = 1, act: Optional[str] = "relu") -> None:
        super().__init__()
        self.k = k
        zero = paddle.ParamAttr(initializer=nn.initializer.Constant(0.0))  # 0.x initialises the offsets at 0
        self.conv_offset = nn.Conv2D(cin, 3 * k * k, k, stride=stride, padding=(k - 1) // 2,
                                     weight_attr=zero, bias_attr=zero)
        self.conv = paddle.vision.ops.DeformConv2D(cin, cout, k, stride=stride, padding=(k - 1) // 2, bias_attr=False)
        self.bn = nn.BatchNorm2D(cout, epsilon=1e-5)
        self.act = act

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        offset_mask = self.conv_offset(x)
        offset, mask = paddle.split(offset_mask, [2 * self.k * self.k, self.k * self.k], axis=1)
        x = self.bn(self.conv(x, offset, F.sigmoid(mask)))
        return F.relu(x) if self.act == "relu" else x


class DepthwiseSeparable(nn.Layer):
    """`{name}_dw` (3x3 depthwise, stride s) then `{name}_sep` (1x1), both ReLU."""

    def __init__(self, cin: int, dw: int, sep: int, groups: int, stride: int) -> None:
        super().__init__()
        self.dw = ConvBN(cin, dw, 3, stride, groups=groups)
        self.sep = ConvBN(dw, sep, 1)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.sep(self.dw(x))


class MobileNetV1(nn.Layer):
    """MobileNetV1 returning the three YOLOv3 taps (strides 8, 16, 32)."""

    def __init__(self, width: float = 1.0) -> None:
        super().__init__()
        self.conv1 = ConvBN(3, scaled(32, width), 3, 2)
        blocks, cin, self.channels = [], scaled(32, width), []
        for name, dw, sep, groups, stride in MOBILENET_V1_BLOCKS:
            # 0.x scales the groups with the same rule as the channels, so the conv stays depthwise
            blocks.append(DepthwiseSeparable(cin, scaled(dw, width), scaled(sep, width), scaled(groups, width), stride))
            cin = scaled(sep, width)
            if name in MOBILENET_V1_TAPS:
                self.channels.append(cin)
        self.blocks = nn.LayerList(blocks)
        self._taps = [i for i, (name, *_) in enumerate(MOBILENET_V1_BLOCKS) if name in MOBILENET_V1_TAPS]

    def forward(self, x: paddle.Tensor) -> List[paddle.Tensor]:
        x = self.conv1(x)
        feats = []
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in self._taps:
                feats.append(x)
        return feats


class BasicBlock(nn.Layer):
    """ResNet34 block: 3x3 (stride) + 3x3 (no act), projection shortcut where 0.x has one, add, ReLU."""

    def __init__(self, cin: int, cout: int, stride: int, project: bool) -> None:
        super().__init__()
        self.branch2a = ConvBN(cin, cout, 3, stride)
        self.branch2b = ConvBN(cout, cout, 3, 1, act=None)
        self.short = ConvBN(cin, cout, 1, stride, act=None) if project else None

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        short = x if self.short is None else self.short(x)
        return F.relu(short + self.branch2b(self.branch2a(x)))


class Bottleneck(nn.Layer):
    """ResNet50-vd block: 1x1, 3x3 (stride; deformable in stage 5), 1x1 x4; vd shortcut; add, ReLU."""

    def __init__(self, cin: int, filters: int, stride: int, project: bool, pool_short: bool, dcn: bool) -> None:
        super().__init__()
        cout = filters * 4
        self.branch2a = ConvBN(cin, filters, 1)
        self.branch2b = DeformConvBN(filters, filters, 3, stride) if dcn else ConvBN(filters, filters, 3, stride)
        self.branch2c = ConvBN(filters, cout, 1, act=None)
        # variant d: a strided shortcut averages 2x2 first and projects with stride 1
        self.pool_short = pool_short
        self.short = ConvBN(cin, cout, 1, 1 if pool_short else stride, act=None) if project else None

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        if self.short is None:
            short = x
        elif self.pool_short:
            short = self.short(F.avg_pool2d(x, 2, stride=2, ceil_mode=True))
        else:
            short = self.short(x)
        return F.relu(short + self.branch2c(self.branch2b(self.branch2a(x))))


class ResNet(nn.Layer):
    """ResNet34 (variant b) or ResNet50-vd with DCNv2 in stage 5, returning res3, res4, res5."""

    def __init__(self, depth: int = 34, width: float = 1.0) -> None:
        super().__init__()
        if depth not in (34, 50):
            raise ModelError(f"ResNet depth {depth} is not a published YOLOv3 backbone", hint="Use 34 or 50.")
        self.depth = depth
        stem_out = scaled(64, width)
        if depth == 34:
            self.stem = nn.LayerList([ConvBN(3, stem_out, 7, 2)])
        else:
            half = scaled(32, width)
            self.stem = nn.LayerList([ConvBN(3, half, 3, 2), ConvBN(half, half, 3, 1), ConvBN(half, stem_out, 3, 1)])
        stages, cin, self.channels = [], stem_out, []
        for s, (count, filters) in enumerate(zip(RESNET_STAGE_BLOCKS, RESNET_STAGE_FILTERS)):
            filters = scaled(filters, width)
            blocks = []
            for i in range(count):
                stride = 2 if i == 0 and s > 0 else 1
                if depth == 34:
                    # 0.x: a projection where channels or stride change, and on res2a (depth < 50, first block)
                    project = cin != filters or stride != 1 or (s == 0 and i == 0)
                    blocks.append(BasicBlock(cin, filters, stride, project))
                    cin = filters
                else:
                    project = cin != filters * 4 or stride != 1
                    blocks.append(Bottleneck(cin, filters, stride, project, pool_short=project and s > 0, dcn=s == 3))
                    cin = filters * 4
            stages.append(nn.LayerList(blocks))
            if s > 0:
                self.channels.append(cin)
        self.stages = nn.LayerList(stages)

    def forward(self, x: paddle.Tensor) -> List[paddle.Tensor]:
        for conv in self.stem:
            x = conv(x)
        x = F.max_pool2d(x, 3, stride=2, padding=1)
        feats = []
        for s, stage in enumerate(self.stages):
            for block in stage:
                x = block(x)
            if s > 0:
                feats.append(x)
        return feats


def build_backbone(name: str, width: float = 1.0) -> nn.Layer:
    """One of BACKBONES; its `channels` attribute lists the tap widths (strides 8, 16, 32)."""
    if name == "mobilenet_v1":
        return MobileNetV1(width)
    if name == "resnet34":
        return ResNet(34, width)
    if name == "resnet50vd_dcn":
        return ResNet(50, width)
    raise ModelError(f"unknown YOLOv3 backbone {name!r}", hint=f"Known: {', '.join(BACKBONES)}.")

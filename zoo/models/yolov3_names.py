"""The explicit map from PaddleDetection 0.x static-graph persistable names to zoo.models.yolov3's parameters.

The published FP32 YOLOv3 weights are `save_persistables` folders, one file per variable, named by
the 0.x layer code (docs/detection.md §1.3). The rules, per module:

- Head (`_conv_bn`): `{name}.conv.weights`, `{name}.bn.{scale,offset,mean,var}` for
  `yolo_block.{i}.{0.0,0.1,1.0,1.1,2,tip}` and `yolo_transition.{i}`; the output convs
  `yolo_output.{i}.conv.{weights,bias}`. Note `.var`, not `_variance`.
- MobileNetV1 (`_conv_norm`): `{name}_weights`, `{name}_bn_{scale,offset,mean,variance}` for
  `conv1` and `{block}_dw` / `{block}_sep`.
- ResNet (`_conv_norm`): `{name}_weights`; BN under `bn_conv1` for `conv1`, else `"bn" + name[3:]`
  (so `conv1_1` gives `bnv1_1_*`, `res2a_branch2a` gives `bn2a_branch2a_*`); blocks `res{stage}{a,b,..}`
  with `_branch2a/b/c` and the shortcut `_branch1`; DCN offset convs `{name}_conv_offset.{w_0,b_0}`.

Every map covers the network's whole state dict one-to-one (241, 291 and 387 entries at any width).
"""
from __future__ import annotations

from typing import Dict

from zoo.errors import ModelError
from zoo.models.yolov3_backbones import BACKBONES, MOBILENET_V1_BLOCKS, RESNET_STAGE_BLOCKS

_HEAD_BN = {"weight": "scale", "bias": "offset", "_mean": "mean", "_variance": "var"}
_BN = {"weight": "scale", "bias": "offset", "_mean": "mean", "_variance": "variance"}
HEAD_CONVS = ("0.0", "0.1", "1.0", "1.1", "2", "tip")  # static suffixes of a yolo_block's six conv-bn units


def _conv_bn(key: str, weights: str, bn: str, suffixes: Dict[str, str] = _BN, sep: str = "_") -> Dict[str, str]:
    out = {f"{key}.conv.weight": weights}
    for attr, suffix in suffixes.items():
        out[f"{key}.bn.{attr}"] = f"{bn}{sep}{suffix}"
    return out


def head_names(levels: int = 3) -> Dict[str, str]:
    """Head parameters: `blocks.{i}.convs.{j}` are yolo_block.{i}.{0.0,0.1,1.0,1.1}, then route (`.2`) and tip."""
    names: Dict[str, str] = {}
    for i in range(levels):
        units = [f"blocks.{i}.convs.{j}" for j in range(4)] + [f"blocks.{i}.route", f"blocks.{i}.tip"]
        for key, suffix in zip(units, HEAD_CONVS):
            static = f"yolo_block.{i}.{suffix}"
            names.update(_conv_bn(key, f"{static}.conv.weights", f"{static}.bn", _HEAD_BN, sep="."))
        names[f"outputs.{i}.weight"] = f"yolo_output.{i}.conv.weights"
        names[f"outputs.{i}.bias"] = f"yolo_output.{i}.conv.bias"
        if i < levels - 1:
            static = f"yolo_transition.{i}"
            names.update(_conv_bn(f"transitions.{i}", f"{static}.conv.weights", f"{static}.bn", _HEAD_BN, sep="."))
    return names


def mobilenet_v1_names() -> Dict[str, str]:
    """MobileNetV1 backbone parameters (keys relative to `backbone.`)."""
    names = _conv_bn("conv1", "conv1_weights", "conv1_bn")
    for i, (block, *_) in enumerate(MOBILENET_V1_BLOCKS):
        for part in ("dw", "sep"):
            static = f"{block}_{part}"
            names.update(_conv_bn(f"blocks.{i}.{part}", f"{static}_weights", f"{static}_bn"))
    return names


def _resnet_unit(key: str, static: str) -> Dict[str, str]:
    bn = "bn_conv1" if static == "conv1" else "bn" + static[3:]
    return _conv_bn(key, f"{static}_weights", bn)


def resnet_names(depth: int) -> Dict[str, str]:
    """ResNet34 (variant b) or ResNet50-vd-DCN backbone parameters (keys relative to `backbone.`)."""
    if depth == 34:
        names = _resnet_unit("stem.0", "conv1")
    else:
        names = {}
        for k in range(3):
            names.update(_resnet_unit(f"stem.{k}", f"conv1_{k + 1}"))
    branches = ("branch2a", "branch2b") if depth == 34 else ("branch2a", "branch2b", "branch2c")
    for s, count in enumerate(RESNET_STAGE_BLOCKS):
        stage = s + 2
        for i in range(count):
            static = f"res{stage}{chr(ord('a') + i)}"
            key = f"stages.{s}.{i}"
            for branch in branches:
                names.update(_resnet_unit(f"{key}.{branch}", f"{static}_{branch}"))
            if depth == 50 and stage == 5:  # DCNv2: the offset/mask conv of branch2b, with its bias
                names[f"{key}.branch2b.conv_offset.weight"] = f"{static}_branch2b_conv_offset.w_0"
                names[f"{key}.branch2b.conv_offset.bias"] = f"{static}_branch2b_conv_offset.b_0"
            if i == 0:  # the first block of every stage has the projection shortcut (R34's res2a included)
                names.update(_resnet_unit(f"{key}.short", f"{static}_branch1"))
    return names


def static_names(backbone: str) -> Dict[str, str]:
    """state-dict key of YOLOv3(backbone) -> 0.x static persistable name, for every entry."""
    if backbone == "mobilenet_v1":
        body = mobilenet_v1_names()
    elif backbone == "resnet34":
        body = resnet_names(34)
    elif backbone == "resnet50vd_dcn":
        body = resnet_names(50)
    else:
        raise ModelError(f"unknown YOLOv3 backbone {backbone!r}", hint=f"Known: {', '.join(BACKBONES)}.")
    names = {f"backbone.{k}": v for k, v in body.items()}
    names.update(head_names())
    return names

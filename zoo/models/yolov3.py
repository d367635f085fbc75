"""YOLOv3 as PaddleDetection 0.x built it, its legacy inference export and its 0.x weight loading.

The head (`YOLOv3Head` in ppdet 0.x, docs/detection.md §1.2) takes the backbone's taps deepest first
(strides 32, 16, 8). Level i runs a detection block of six conv-bn-leaky units (1x1 to `c`, 3x3 to
2c, twice; the 1x1 `route`; the 3x3 `tip`) with c = 512, 256, 128, a biased 1x1 output conv with
3 x (5 + classes) filters, and, for the first two levels, a 1x1 transition (256, 128) on the route,
upsampled x2 (nearest) and concatenated BEFORE the next backbone tap. Only the output convs have a
bias; BatchNorm stays unfused.

The legacy inference contract (what the published archives hold, docs/detection.md §2.3): feeds
`image` float32 [-1, 3, S, S] and `im_size` int32 [-1, 2] (original H, W); per level a `yolo_box`
with the level's anchors and conf_thresh = the NMS score threshold (0.01: 0.x passes
`nms.score_threshold`), boxes concatenated, scores transposed to [N, C, M] and concatenated, and a
`multiclass_nms` (v1) whose LoD output rows are [label, score, x1, y1, x2, y2] in original pixels.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from zoo.errors import ModelError
from zoo.modelfiles import ModelFiles, find_model_files
from zoo.models.yolov3_backbones import BACKBONES, ConvBN, build_backbone, scaled
from zoo.models.yolov3_names import static_names
from zoo.schema import DOWNSAMPLE_RATIOS as DOWNSAMPLE  # the strides recipes' anchor_masks are checked against
from zoo.fsutil import StagedDir
from zoo.modelcheck import verify_saved, writing_model
from zoo.quiet import silenced

ANCHORS: List[List[int]] = [[10, 13], [16, 30], [33, 23], [30, 61], [62, 45], [59, 119],
                            [116, 90], [156, 198], [373, 326]]
ANCHOR_MASKS: List[List[int]] = [[6, 7, 8], [3, 4, 5], [0, 1, 2]]
LEGACY_FEEDS = ("image", "im_size")
_PROBE = "yolo_output.0.conv.weights"  # present in every YOLOv3 persistables folder


@dataclass(frozen=True)
class LegacyNMS:
    """multiclass_nms (v1) settings of the 0.x YOLOv3 configs (all three published ones agree)."""

    score_threshold: float = 0.01
    nms_top_k: int = 1000
    keep_top_k: int = 100
    nms_threshold: float = 0.45
    normalized: bool = False  # boxes in pixels: the +1 area convention
    nms_eta: float = 1.0
    background_label: int = -1


LEGACY_NMS = LegacyNMS()


class YoloBlock(nn.Layer):
    """0.x `_detection_block`: returns (route, tip)."""

    def __init__(self, cin: int, channel: int) -> None:
        super().__init__()
        self.convs = nn.LayerList([
            ConvBN(cin, channel, 1, act="leaky"), ConvBN(channel, 2 * channel, 3, act="leaky"),
            ConvBN(2 * channel, channel, 1, act="leaky"), ConvBN(channel, 2 * channel, 3, act="leaky"),
        ])
        self.route = ConvBN(2 * channel, channel, 1, act="leaky")
        self.tip = ConvBN(channel, 2 * channel, 3, act="leaky")

    def forward(self, x: paddle.Tensor) -> Tuple[paddle.Tensor, paddle.Tensor]:
        for conv in self.convs:
            x = conv(x)
        route = self.route(x)
        return route, self.tip(route)


class YOLOv3(nn.Layer):
    """YOLOv3 on one of BACKBONES; forward(image) returns the raw head outputs for strides 32, 16, 8.

    `width` scales the backbone's channels (0.x's `int(c * scale)`) and, unless `head_width` is
    given, the head's too; at 1.0 every shape is the published one.
    """

    def __init__(self, backbone: str = "mobilenet_v1", num_classes: int = 80, width: float = 1.0,
                 anchors: Sequence[Sequence[int]] = ANCHORS, anchor_masks: Sequence[Sequence[int]] = ANCHOR_MASKS,
                 head_width: Optional[float] = None) -> None:
        super().__init__()
        if num_classes < 1:
            raise ModelError(f"YOLOv3 needs at least one class, got num_classes={num_classes}")
        self.anchors = [list(map(int, a)) for a in anchors]
        self.anchor_masks = [list(map(int, m)) for m in anchor_masks]
        if len(self.anchor_masks) != len(DOWNSAMPLE) or any(
                not 0 <= i < len(self.anchors) for m in self.anchor_masks for i in m):
            raise ModelError(f"anchor_masks {self.anchor_masks} do not fit 3 levels over {len(self.anchors)} anchors")
        self.backbone_name = backbone
        self.num_classes = int(num_classes)
        self.backbone = build_backbone(backbone, width)
        hw = width if head_width is None else head_width
        blocks, transitions, outputs = [], [], []
        extra = 0  # channels of the upsampled route concatenated in front of the tap
        for i, cin in enumerate(reversed(self.backbone.channels)):
            channel = scaled(512 >> i, hw)
            blocks.append(YoloBlock(extra + cin, channel))
            outputs.append(nn.Conv2D(2 * channel, len(self.anchor_masks[i]) * (5 + self.num_classes), 1))
            if i < len(DOWNSAMPLE) - 1:
                extra = scaled(256 >> i, hw)
                transitions.append(ConvBN(channel, extra, 1, act="leaky"))
        self.blocks = nn.LayerList(blocks)
        self.transitions = nn.LayerList(transitions)
        self.outputs = nn.LayerList(outputs)

    def forward(self, image: paddle.Tensor) -> List[paddle.Tensor]:
        feats = self.backbone(image)
        outs: List[paddle.Tensor] = []
        route = None
        for i in range(len(DOWNSAMPLE)):
            x = feats[len(feats) - 1 - i]
            if route is not None:
                x = paddle.concat([route, x], axis=1)  # the upsampled route comes first
            route, tip = self.blocks[i](x)
            outs.append(self.outputs[i](tip))
            if i < len(DOWNSAMPLE) - 1:
                # fluid's resize_nearest(scale=2, align_corners=True) picks the same pixels as this at an exact 2x
                route = F.interpolate(self.transitions[i](route), scale_factor=2, mode="nearest")
            else:
                route = None
        return outs

    def level_anchors(self, level: int) -> List[int]:
        """The flat [w0, h0, w1, h1, ...] anchors of one output level, as yolo_box takes them."""
        return [v for i in self.anchor_masks[level] for v in self.anchors[i]]

    def static_name_map(self) -> Dict[str, str]:
        """state-dict key -> PaddleDetection 0.x persistable name (see zoo.models.yolov3_names)."""
        return static_names(self.backbone_name)


@paddle.jit.not_to_static
def yolo_boxes(network: YOLOv3, outputs: Sequence[paddle.Tensor], im_size: paddle.Tensor,
               conf_thresh: float = LEGACY_NMS.score_threshold) -> Tuple[paddle.Tensor, paddle.Tensor]:
    """0.x `get_prediction` up to the NMS: boxes [N, M, 4] in original pixels and scores [N, C, M]."""
    boxes, scores = [], []
    for i, out in enumerate(outputs):
        box, score = paddle.vision.ops.yolo_box(
            out, im_size, anchors=network.level_anchors(i), class_num=network.num_classes,
            conf_thresh=conf_thresh, downsample_ratio=DOWNSAMPLE[i], clip_bbox=True, scale_x_y=1.0)
        boxes.append(box)
        scores.append(paddle.transpose(score, [0, 2, 1]))
    return paddle.concat(boxes, axis=1), paddle.concat(scores, axis=2)


def _nms_attrs(nms: LegacyNMS) -> Dict[str, object]:
    return {"background_label": nms.background_label, "score_threshold": nms.score_threshold,
            "nms_top_k": nms.nms_top_k, "nms_threshold": nms.nms_threshold, "nms_eta": nms.nms_eta,
            "keep_top_k": nms.keep_top_k, "normalized": nms.normalized}


@paddle.jit.not_to_static
def multiclass_nms_v1(bboxes: paddle.Tensor, scores: paddle.Tensor, nms: LegacyNMS = LEGACY_NMS) -> paddle.Tensor:
    """Append the static `multiclass_nms` (v1) op the 0.x exports hold; static mode only.

    Paddle 2.x has no public API for v1 (whose LoD output and [[-1]] no-box sentinel are the
    legacy contract), so the op is appended directly.
    """
    from paddle.base.layer_helper import LayerHelper

    if paddle.in_dynamic_mode():
        raise ModelError("multiclass_nms_v1 builds a static program; use decode_legacy in dygraph")
    helper = LayerHelper("multiclass_nms")
    out = helper.create_variable_for_type_inference(dtype=bboxes.dtype)
    helper.append_op(type="multiclass_nms", inputs={"BBoxes": bboxes, "Scores": scores},
                     outputs={"Out": out}, attrs=_nms_attrs(nms))
    out.stop_gradient = True
    return out


def decode_legacy(network: YOLOv3, outputs: Sequence[paddle.Tensor], im_size: Union[np.ndarray, paddle.Tensor],
                  conf_thresh: float = LEGACY_NMS.score_threshold, nms: LegacyNMS = LEGACY_NMS) -> List[np.ndarray]:
    """Dygraph decoding of raw head outputs as the legacy export does it: one [n_i, 6] array per image
    (rows [label, score, x1, y1, x2, y2]; n_i may be 0)."""
    if not isinstance(im_size, paddle.Tensor):
        im_size = paddle.to_tensor(np.asarray(im_size, dtype="int32"))
    boxes, scores = yolo_boxes(network, outputs, im_size, conf_thresh)
    # multiclass_nms3 runs v1's algorithm and also returns the per-image counts, which a dygraph tensor cannot carry as LoD
    out, _, counts = paddle._C_ops.multiclass_nms3(
        boxes, scores, None, nms.score_threshold, nms.nms_top_k, nms.keep_top_k, nms.nms_threshold,
        nms.normalized, nms.nms_eta, nms.background_label)
    rows, counts = out.numpy().reshape(-1, 6), counts.numpy().astype(int)
    ends = np.cumsum(counts)
    return [rows[end - n:end] for n, end in zip(counts, ends)]


Saver = Callable[[nn.Layer, str, List[paddle.static.InputSpec]], None]


def _jit_save(layer: nn.Layer, prefix: str, spec: List[paddle.static.InputSpec]) -> None:
    paddle.jit.save(layer, prefix, input_spec=spec)


class _LegacyInference(nn.Layer):
    """The network plus the legacy post-processing, as one traceable layer."""

    def __init__(self, network: YOLOv3, conf_thresh: float, nms: LegacyNMS) -> None:
        super().__init__()
        self.network = network
        self.conf_thresh = conf_thresh
        self.nms = nms

    def forward(self, image: paddle.Tensor, im_size: paddle.Tensor) -> paddle.Tensor:
        boxes, scores = yolo_boxes(self.network, self.network(image), im_size, self.conf_thresh)
        return multiclass_nms_v1(boxes, scores, self.nms)


def export_legacy(network: YOLOv3, out_dir: Path, input_size: int,
                  conf_thresh: float = LEGACY_NMS.score_threshold, nms: LegacyNMS = LEGACY_NMS,
                  legacy_names: bool = False, saver: Optional[Saver] = None) -> ModelFiles:
    """Write `network` as an inference model with the legacy 0.x contract (see the module docstring).

    Files: `inference.pdmodel`/`.pdiparams`, or `__model__`/`__params__` with `legacy_names` (the
    layout of the published archives). They appear in `out_dir` only once both are written and
    verified; `image` is declared [-1, 3, input_size, input_size]. `saver(layer, path_prefix,
    input_spec)` writes the traced layer (default `paddle.jit.save`; quant-aware training passes
    its quantizer's save, which turns the fake-quant layers into the program's quant ops).
    """
    # long by its signature only (every option is declared there); the body is one job under 60 lines
    from zoo.models.export import strip_callstacks

    if input_size <= 0 or input_size % DOWNSAMPLE[0]:
        raise ModelError(f"input size {input_size} is not a positive multiple of {DOWNSAMPLE[0]}",
                         hint="YOLOv3 needs sides divisible by its largest stride.")
    model_name, params_name = ("__model__", "__params__") if legacy_names else ("inference.pdmodel", "inference.pdiparams")
    out_dir = Path(out_dir)
    others = [n for n in ("inference.pdmodel", "inference.pdiparams", "__model__", "__params__")
              if n not in (model_name, params_name) and (out_dir / n).exists()]
    if others:
        raise ModelError(f"{out_dir} already holds a model under other names ({', '.join(others)})",
                         hint="Export into an empty folder, or remove the other model first.")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    was_training = network.training
    network.eval()
    try:
        with StagedDir(out_dir) as stage, writing_model(out_dir):
            image, im_size = LEGACY_FEEDS
            spec = [paddle.static.InputSpec([None, 3, input_size, input_size], "float32", name=image),
                    paddle.static.InputSpec([None, 2], "int32", name=im_size)]
            wrapper = _LegacyInference(network, conf_thresh, nms)
            wrapper.eval()
            with silenced():
                (saver or _jit_save)(wrapper, str(stage.path / "inference"), spec)
            for name in ("inference.pdmodel", "inference.pdiparams"):
                if not (stage.path / name).is_file():
                    raise ModelError(f"paddle.jit.save did not write {name}")
            strip_callstacks(stage.path / "inference.pdmodel")
            (stage.path / "inference.pdiparams").replace(stage.path / params_name)
            (stage.path / "inference.pdmodel").replace(stage.path / model_name)
            verify_saved(ModelFiles(stage.path, stage.path / model_name, stage.path / params_name), out_dir)
            for other in stage.path.iterdir():  # jit.save's .pdiparams.info is not part of an inference model
                if other.name not in (model_name, params_name):
                    other.unlink()
            stage.merge(last=[params_name, model_name])  # the model file last: it marks completion
    except ModelError:
        raise
    except Exception as exc:  # dy2static and Paddle's C++ raise plain exceptions
        raise ModelError(f"cannot export the YOLOv3 network to {out_dir}: {exc}") from exc
    finally:
        if was_training:
            network.train()
    files = find_model_files(out_dir)
    if files.model_file.name != model_name:  # e.g. another *.pdmodel beside it
        raise ModelError(f"{out_dir} holds several models; the export is {out_dir / model_name}",
                         hint="Export into a folder of its own.")
    return files


def load_legacy_weights(network: YOLOv3, source: Union[Path, str, Mapping[str, np.ndarray]],
                        backbone: Optional[str] = None) -> None:
    """Load 0.x static persistables into `network` by the explicit name map.

    `source` is a persistables folder (one file per variable, as `save_persistables` wrote them;
    an archive's extra top folder is fine) or a {static name: array} mapping (e.g. from
    `paddle.static.load_program_state`). Variables the map does not name (optimizer state,
    quantization scales) are ignored; a parameter the map names but the source lacks, or whose
    shape differs, is refused with its name: nothing is loaded then.
    """
    from zoo.models.weights import persistables_root, read_lod_tensor

    if backbone is not None and backbone not in BACKBONES:
        raise ModelError(f"unknown YOLOv3 backbone {backbone!r}", hint=f"Known: {', '.join(BACKBONES)}.")
    if backbone is not None and backbone != network.backbone_name:
        raise ModelError(f"the network has a {network.backbone_name} backbone, the weights are for {backbone}",
                         hint=f"Build YOLOv3(backbone={backbone!r}) for these weights.")
    name_map = network.static_name_map()
    own = network.state_dict()
    if set(own) != set(name_map):  # a network edited without its map: a bug, not bad input
        raise ModelError(f"the YOLOv3 name map does not cover the network: {sorted(set(own) ^ set(name_map))[:3]}")
    if isinstance(source, Mapping):
        arrays = dict(source)
        available = set(arrays)
        origin = "the weights given"

        def read(name: str) -> np.ndarray:
            return np.asarray(arrays[name].numpy() if hasattr(arrays[name], "numpy") else arrays[name])
    else:
        root = persistables_root(Path(source), _PROBE)
        available = {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}
        origin = str(root)

        def read(name: str) -> np.ndarray:
            return read_lod_tensor(root / name)

    missing = [name_map[k] for k in own if name_map[k] not in available]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        unused = sorted(available - set(name_map.values()))
        near = [f"{m} (found {c[0]})" for m in missing for c in [difflib.get_close_matches(m, unused, n=1, cutoff=0.85)] if c]
        hint = (f"Misnamed variable(s)? {'; '.join(near[:3])}." if near else
                f"These are not the 0.x persistables of a YOLOv3 {network.backbone_name} (or the folder is incomplete).")
        raise ModelError(f"{origin} lacks {len(missing)} parameter(s) of YOLOv3 {network.backbone_name}: {shown}", hint=hint)
    state: Dict[str, np.ndarray] = {}
    for key, tensor in own.items():
        value = read(name_map[key])
        if tuple(value.shape) != tuple(tensor.shape):
            raise ModelError(f"{name_map[key]}: shape {tuple(value.shape)} does not fit {key} {tuple(tensor.shape)}",
                             hint="The weights belong to another width, class count or backbone.")
        state[key] = value.astype("float32", copy=False)
    network.set_state_dict(state)

"""Stand-ins for the YOLOv3 entries: a tiny COCO-layout folder and small legacy detection models
built op by op with the real ops of the published archives, plus an independent scorer.

The models are hand-wired detectors, not trained ones, so their box AP is well above zero and a
mistake anywhere in the pipeline shows: each YOLO level is one patch convolution (kernel = stride)
whose objectness rises with the patch's brightness and whose class logits pick class 0 for a red
patch and class 2 for a blue one; anchor 0 of each level predicts a box one cell wide. The tiny
COCO folder holds red and blue squares on black at the stride-32 cells of a 608 input, with the
80 COCO category ids (class 0 -> id 1, class 2 -> id 3 through the sorted ids).

Graph of a legacy model (`__model__`/`__params__`, the 0.x export contract):

    image [-1,3,S,S], im_size [-1,2] int32
      [deformable_conv, identity taps, for the DCN entry]
      per level: [fake_quantize_*] -> conv2d -> [fake_*dequantize_*] -> elementwise_add -> yolo_box
      transpose2 / concat -> multiclass_nms (v1) -> fetch

`independent_box_ap` scores a model without the zoo: cv2 decode and bicubic resize, a static
Executor with the LoD kept, a json written here with the 0.x +1 width/height, pycocotools.
"""
from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from tests.opencv_reference import opencv_4_2_kernels

COCO_IDS: Tuple[int, ...] = tuple(
    [i for i in range(1, 12)] + [i for i in range(13, 26)] + [27, 28] + [i for i in range(31, 45)]
    + [i for i in range(46, 66)] + [67, 70] + [i for i in range(72, 83)] + [i for i in range(84, 91)])
assert len(COCO_IDS) == 80
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
ANCHORS = ((10, 13), (16, 30), (33, 23), (30, 61), (62, 45), (59, 119), (116, 90), (156, 198), (373, 326))
MASKS = ((6, 7, 8), (3, 4, 5), (0, 1, 2))
STRIDES = (32, 16, 8)
RED, BLUE = (250, 40, 40), (40, 40, 250)
# (height, width, [(cell row, cell col, colour)]): cells of the stride-32 grid at input 608
_SCENES = [
    (304, 304, [(3, 4, RED), (10, 2, BLUE), (12, 13, RED)]),
    (240, 320, [(2, 2, BLUE), (9, 15, RED)]),
    (320, 256, [(5, 5, RED), (14, 10, BLUE), (1, 16, BLUE)]),
    (304, 304, [(16, 16, BLUE), (7, 9, RED)]),
]


def make_tiny_coco(root: Path, split: str = "val2017") -> Path:
    """A COCO-layout folder (annotations/instances_<split>.json + <split>/*.jpg) of coloured squares."""
    import cv2

    (root / split).mkdir(parents=True, exist_ok=True)
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for index, (h, w, cells) in enumerate(_SCENES):
        pixels = np.zeros((h, w, 3), np.uint8)
        image_id = 1000 + 7 * index  # ids with gaps, not list positions
        for row, col, colour in cells:
            cw, ch = 32 * w / 608, 32 * h / 608
            x1, y1 = int(round(col * cw)), int(round(row * ch))
            x2, y2 = int(round((col + 1) * cw)) - 1, int(round((row + 1) * ch)) - 1
            pixels[y1:y2 + 1, x1:x2 + 1] = colour
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "iscrowd": 0,
                                "category_id": 1 if colour == RED else 3,
                                "bbox": [x1, y1, x2 - x1 + 1, y2 - y1 + 1], "area": (x2 - x1 + 1) * (y2 - y1 + 1)})
        name = f"{image_id:012d}.jpg"
        # PNG bytes under a .jpg name would be fine for cv2; real JPEGs keep the folder COCO-like
        cv2.imwrite(str(root / split / name), cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 98])
        images.append({"id": image_id, "file_name": name, "height": h, "width": w})
    categories = [{"id": cid, "name": f"class{cid}", "supercategory": "thing"} for cid in COCO_IDS]
    doc = {"images": images, "annotations": annotations, "categories": categories}
    (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(doc))
    return root


def _level_weights(stride: int, num_classes: int, scale: bool, strong: bool) -> Tuple[np.ndarray, np.ndarray]:
    """Patch-conv weights [3*(5+C), 3, s, s] and bias of one level (see the module docstring)."""
    per = 5 + num_classes
    weight = np.zeros((3 * per, 3, stride, stride), np.float32)
    bias = np.full((3 * per,), -20.0, np.float32)  # anchors 1, 2 and other classes: off
    unit = 1.0 if scale else 255.0  # the model sees (p/unit - mean)/std
    k2 = float(stride * stride)
    gain, cls_gain = (25.0, 10.0) if strong else (25.0, 2.0)
    std, mean = np.array(STD, np.float32), np.array(MEAN, np.float32)
    a = 0  # anchor 0 only
    # objectness = gain * (mean brightness in [0,1] - 0.2) (- 3 on the weak levels)
    weight[a * per + 4] = (gain * std / (3 * k2 * unit))[:, None, None]
    bias[a * per + 4] = gain * (float(mean.sum()) / (3 * unit) - 0.2) - (0.0 if strong else 3.0)
    # class 0 = red - blue, class 2 = blue - red
    for cls, sign in ((0, 1.0), (2, -1.0)):
        row = a * per + 5 + cls
        weight[row, 0] = sign * cls_gain * std[0] / (k2 * unit)
        weight[row, 2] = -sign * cls_gain * std[2] / (k2 * unit)
        bias[row] = sign * cls_gain * (mean[0] - mean[2]) / unit
    # tx = ty = 0 (cell centre); tw, th: a box one cell wide in input pixels
    anchor = ANCHORS[MASKS[STRIDES.index(stride)][a]]
    bias[a * per + 0] = bias[a * per + 1] = 0.0
    bias[a * per + 2] = np.log(stride / anchor[0])
    bias[a * per + 3] = np.log(stride / anchor[1])
    return weight, bias


def build_legacy_model(out_dir: Path, kind: str = "fp32", dcn: bool = False, scale: bool = True,
                       size: int = 608, num_classes: int = 80) -> Path:
    """Write `out_dir/__model__` + `__params__`: the hand-wired detector with `kind` = fp32 | qat | ptq ops."""
    import paddle
    from paddle.base.layer_helper import LayerHelper
    from paddle.nn.initializer import Assign

    out_dir.mkdir(parents=True, exist_ok=True)
    paddle.enable_static()
    try:
        main, startup = paddle.static.Program(), paddle.static.Program()
        with paddle.static.program_guard(main, startup):
            image = paddle.static.data("image", [-1, 3, size, size], "float32")
            im_size = paddle.static.data("im_size", [-1, 2], "int32")
            x = image
            if dcn:
                x = _identity_dcn(x)
            boxes, scores = [], []
            for i, stride in enumerate(STRIDES):
                weight, bias = _level_weights(stride, num_classes, scale, strong=(stride == 32))
                # the activation range: a normalized image stays within +-2.7, raw 0..255 pixels within +-1120
                out = _quant_conv(LayerHelper, Assign, paddle, x, weight, stride, kind, f"yolo_output.{i}",
                                  4.0 if scale else 1200.0)
                b = paddle.static.create_parameter([len(bias)], "float32", name=f"yolo_output.{i}.conv.bias",
                                                   default_initializer=Assign(bias))
                out = paddle.add(out, paddle.reshape(b, [1, -1, 1, 1]))
                mask_anchors = [v for m in MASKS[i] for v in ANCHORS[m]]
                box, score = paddle.vision.ops.yolo_box(out, im_size, mask_anchors, num_classes, 0.01, stride)
                boxes.append(box)
                scores.append(paddle.transpose(score, [0, 2, 1]))
            nms = _multiclass_nms(LayerHelper, paddle.concat(boxes, axis=1), paddle.concat(scores, axis=2))
        exe = paddle.static.Executor(paddle.CPUPlace())
        exe.run(startup)
        prefix = out_dir / "model"
        paddle.static.save_inference_model(str(prefix), [image, im_size], [nms], exe, program=main)
    finally:
        paddle.disable_static()
    os.replace(f"{prefix}.pdmodel", out_dir / "__model__")
    os.replace(f"{prefix}.pdiparams", out_dir / "__params__")
    return out_dir


def build_v2_model(out_dir: Path, size: int = 608, num_classes: int = 80) -> Path:
    """Write `out_dir/model.pdmodel` + `.pdiparams` with the 2.x contract (PaddleDetection 2.x export).

    Feeds image + im_shape (resized H, W) + scale_factor (y, x); yolo_box on the original size
    int32(im_shape / scale_factor); multiclass_nms3 with outputs `bbox` [N, 6] and `bbox_num` [B].
    """
    import paddle
    from paddle.base.layer_helper import LayerHelper
    from paddle.nn.initializer import Assign

    out_dir.mkdir(parents=True, exist_ok=True)
    paddle.enable_static()
    try:
        main, startup = paddle.static.Program(), paddle.static.Program()
        with paddle.static.program_guard(main, startup):
            image = paddle.static.data("image", [-1, 3, size, size], "float32")
            im_shape = paddle.static.data("im_shape", [-1, 2], "float32")
            scale_factor = paddle.static.data("scale_factor", [-1, 2], "float32")
            origin = paddle.cast(im_shape / scale_factor, "int32")
            boxes, scores = [], []
            for i, stride in enumerate(STRIDES):
                weight, bias = _level_weights(stride, num_classes, True, strong=(stride == 32))
                w = paddle.static.create_parameter(list(weight.shape), "float32", name=f"yolo_head.yolo_output.{i}.weight",
                                                   default_initializer=Assign(weight))
                b = paddle.static.create_parameter([len(bias)], "float32", name=f"yolo_head.yolo_output.{i}.bias",
                                                   default_initializer=Assign(bias))
                out = paddle.add(paddle.nn.functional.conv2d(image, w, stride=stride), paddle.reshape(b, [1, -1, 1, 1]))
                mask_anchors = [v for m in MASKS[i] for v in ANCHORS[m]]
                box, score = paddle.vision.ops.yolo_box(out, origin, mask_anchors, num_classes, 0.005, stride)
                boxes.append(box)
                scores.append(paddle.transpose(score, [0, 2, 1]))
            helper = LayerHelper("multiclass_nms3")
            bbox = helper.create_variable_for_type_inference("float32")
            index = helper.create_variable_for_type_inference("int32")
            bbox_num = helper.create_variable_for_type_inference("int32")
            helper.append_op(type="multiclass_nms3",
                             inputs={"BBoxes": paddle.concat(boxes, axis=1), "Scores": paddle.concat(scores, axis=2)},
                             outputs={"Out": bbox, "Index": index, "NmsRoisNum": bbox_num},
                             attrs={"background_label": -1, "score_threshold": 0.01, "nms_top_k": 1000,
                                    "nms_threshold": 0.45, "keep_top_k": 100, "normalized": True, "nms_eta": 1.0})
        exe = paddle.static.Executor(paddle.CPUPlace())
        exe.run(startup)
        paddle.static.save_inference_model(str(out_dir / "model"), [image, im_shape, scale_factor], [bbox, bbox_num], exe,
                                           program=main)
    finally:
        paddle.disable_static()
    return out_dir


def _identity_dcn(x):
    """A DCNv2 layer that passes its input through: zero offsets (from a zero conv), mask 1, centre tap 1."""
    import paddle
    from paddle.nn.initializer import Assign

    offset_w = paddle.static.create_parameter([27, 3, 3, 3], "float32", name="res5a_branch2b_conv_offset.w_0",
                                              default_initializer=Assign(np.zeros((27, 3, 3, 3), np.float32)))
    offset_b = np.zeros((27,), np.float32)
    offset_b[18:] = 30.0  # mask logits: sigmoid(30) == 1.0 in float32
    offset_bias = paddle.static.create_parameter([27], "float32", name="res5a_branch2b_conv_offset.b_0",
                                                 default_initializer=Assign(offset_b))
    om = paddle.add(paddle.nn.functional.conv2d(x, offset_w, padding=1), paddle.reshape(offset_bias, [1, -1, 1, 1]))
    offset, mask = om[:, :18], paddle.nn.functional.sigmoid(om[:, 18:])
    taps = np.zeros((3, 3, 3, 3), np.float32)
    for c in range(3):
        taps[c, c, 1, 1] = 1.0
    weight = paddle.static.create_parameter([3, 3, 3, 3], "float32", name="res5a_branch2b_weights",
                                            default_initializer=Assign(taps))
    return paddle.vision.ops.deform_conv2d(x, offset, weight, padding=1, mask=mask)


def _quant_conv(LayerHelper, Assign, paddle, x, weight: np.ndarray, stride: int, kind: str, name: str, act_max: float):
    """conv2d, with the frozen quantization pattern of a QAT (channel-wise) or PTQ (abs_max) archive around it."""
    if kind == "fp32":
        w = paddle.static.create_parameter(list(weight.shape), "float32", name=f"{name}.conv.weights",
                                           default_initializer=Assign(weight))
        return paddle.nn.functional.conv2d(x, w, stride=stride)
    helper = LayerHelper(f"{name}_quant")
    if kind == "qat":
        act_type, scale_name = "fake_quantize_moving_average_abs_max", f"{name}.quant_dequant.scale"
    else:
        act_type, scale_name = "fake_quantize_range_abs_max", f"{name}.range.scale"
    in_scale = paddle.static.create_parameter([1], "float32", name=scale_name,
                                              default_initializer=Assign(np.array([act_max], np.float32)))
    quantized = helper.create_variable_for_type_inference("float32")
    attrs = {"bit_length": 8, "is_test": True}
    if kind == "qat":
        attrs["moving_rate"] = 0.9
    else:
        attrs["window_size"] = 10000
    helper.append_op(type=act_type, inputs={"X": x, "InScale": in_scale},
                     outputs={"Out": quantized, "OutScale": in_scale}, attrs=attrs)
    if kind == "qat":
        # weights stored as int-range floats with one scale per output channel
        channel_max = np.maximum(np.abs(weight).reshape(len(weight), -1).max(axis=1), 1e-8).astype(np.float32)
        int_weight = np.round(weight / channel_max[:, None, None, None] * 127).astype(np.float32)
        w = paddle.static.create_parameter(list(weight.shape), "float32", name=f"{name}.conv.weights",
                                           default_initializer=Assign(int_weight))
        conv = paddle.nn.functional.conv2d(quantized, w, stride=stride)
        channel_scale = paddle.static.create_parameter([len(weight)], "float32", name=f"channel_scale_{name}",
                                                       default_initializer=Assign(channel_max))
        out = helper.create_variable_for_type_inference("float32")
        helper.append_op(type="fake_channel_wise_dequantize_max_abs", inputs={"X": conv, "Scales": [channel_scale, in_scale]},
                         outputs={"Out": out}, attrs={"quant_bits": [8, 8], "quant_axis": 0, "x_num_col_dims": 1})
        return out
    # PTQ: one weight scale for the tensor, dequantized by max_range = 127 * 127 / weight_scale
    weight_max = float(max(np.abs(weight).max(), 1e-8))
    int_weight = np.round(weight / weight_max * 127).astype(np.float32)
    w = paddle.static.create_parameter(list(weight.shape), "float32", name=f"{name}.conv.weights",
                                       default_initializer=Assign(int_weight))
    conv = paddle.nn.functional.conv2d(quantized, w, stride=stride)
    out = helper.create_variable_for_type_inference("float32")
    helper.append_op(type="fake_dequantize_max_abs", inputs={"X": conv, "Scale": in_scale}, outputs={"Out": out},
                     attrs={"max_range": float(127 * 127 / weight_max)})
    return out


def _multiclass_nms(LayerHelper, bboxes, scores):
    """The 0.x eval NMS (multiclass_nms v1): rows [label, score, x1, y1, x2, y2] with a per-image LoD."""
    helper = LayerHelper("multiclass_nms")
    out = helper.create_variable_for_type_inference("float32")
    helper.append_op(type="multiclass_nms", inputs={"BBoxes": bboxes, "Scores": scores}, outputs={"Out": out},
                     attrs={"background_label": -1, "score_threshold": 0.01, "nms_top_k": 1000, "nms_threshold": 0.45,
                            "keep_top_k": 100, "normalized": False, "nms_eta": 1.0})
    out.stop_gradient = True
    return out


def persistables_tar(folder: Path, name: str) -> bytes:
    """Every file of a persistables folder under `<name>/` (the layout of the 0.x FP32 archives)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            data = path.read_bytes()
            info = tarfile.TarInfo(f"{name}/{path.relative_to(folder)}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def legacy_tar(model_dir: Path, folder: str) -> bytes:
    """The archive as PaddleSlim published it: `<folder>/__model__` + `<folder>/__params__`."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name in ("__model__", "__params__"):
            data = (model_dir / name).read_bytes()
            info = tarfile.TarInfo(f"{folder}/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def independent_box_ap(model_dir: Path, coco_root: Path, size: int, scale: bool = True, split: str = "val2017",
                       batch_size: int = 2, json_out: Optional[Path] = None) -> Dict[str, float]:
    """Box AP / AP50 (percent) of a model folder computed without the zoo, the way PaddleDetection did it.

    The contract is read from the feeds: 0.x (image + im_size) or 2.x (image + im_shape + scale_factor).
    """
    import contextlib

    import cv2
    import paddle
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    ann = coco_root / "annotations" / f"instances_{split}.json"
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(ann))
    clsid2catid = dict(enumerate(sorted(gt.getCatIds())))
    images = sorted(gt.dataset["images"], key=lambda im: im["id"])
    mean, std = np.array(MEAN, np.float32), np.array(STD, np.float32)
    paddle.enable_static()
    try:
        exe = paddle.static.Executor(paddle.CPUPlace())
        names = next(pair for pair in (("__model__", "__params__"), ("inference.pdmodel", "inference.pdiparams"),
                                       ("model.pdmodel", "model.pdiparams")) if (model_dir / pair[0]).is_file())
        program, feeds, fetches = paddle.static.load_inference_model(
            str(model_dir), exe, model_filename=names[0], params_filename=names[1])
        program.global_block().var("image").desc.set_need_check_feed(False)  # 416/320 on a 608 declaration
        v2 = "scale_factor" in feeds
        results = []
        for start in range(0, len(images), batch_size):
            batch = images[start:start + batch_size]
            inputs, sizes = [], []
            for im in batch:
                rgb = cv2.cvtColor(cv2.imread(str(coco_root / split / im["file_name"])), cv2.COLOR_BGR2RGB)
                h, w = rgb.shape[:2]
                with opencv_4_2_kernels():  # paddlepaddle 1.8.5's opencv-python 4.2.0.32 pixels
                    resized = cv2.resize(rgb, None, None, fx=size / w, fy=size / h, interpolation=2).astype(np.float32)
                if scale:
                    resized /= 255.0
                inputs.append(((resized - mean) / std).transpose(2, 0, 1))
                sizes.append((im["height"], im["width"]))
            if v2:  # 2.x: resized shape + per-axis scale; boxes counted per image by bbox_num; no +1
                feed = {"image": np.stack(inputs), "im_shape": np.array([[size, size]] * len(batch), np.float32),
                        "scale_factor": np.array([[size / h, size / w] for h, w in sizes], np.float32)}
                rows, counts = exe.run(program, feed=feed, fetch_list=fetches)
                offsets, plus = np.concatenate([[0], np.cumsum(counts)]).astype(int), 0.0
            else:  # 0.x: original (H, W); boxes split by the LoD; [[-1]] when the batch has none; +1 sizes
                (out,) = exe.run(program, feed={"image": np.stack(inputs), "im_size": np.array(sizes, np.int32)},
                                 fetch_list=fetches, return_numpy=False)
                rows, plus = np.array(out), 1.0
                if rows.shape == (1, 1):
                    continue
                offsets = out.lod()[0]
            for k, im in enumerate(batch):
                for label, score, x1, y1, x2, y2 in rows[offsets[k]:offsets[k + 1]]:
                    if label < 0:
                        continue
                    results.append({"image_id": im["id"], "category_id": clsid2catid[int(label)],
                                    "bbox": [float(x1), float(y1), float(x2 - x1 + plus), float(y2 - y1 + plus)],
                                    "score": float(score)})
    finally:
        paddle.disable_static()
    if json_out is not None:
        json_out.write_text(json.dumps(results))
    if not results:
        return {"box_ap": 0.0, "ap50": 0.0, "detections": 0}
    with contextlib.redirect_stdout(io.StringIO()):
        evaluator = COCOeval(gt, gt.loadRes(results), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return {"box_ap": float(evaluator.stats[0] * 100), "ap50": float(evaluator.stats[1] * 100), "detections": len(results)}


# entry -> (quantization pattern, DCN layer, scale to [0,1]) of its stand-in archive
ENTRIES: Dict[str, Tuple[str, bool, bool]] = {
    "yolov3_mobilenetv1_coco_quant_post": ("ptq", False, True),
    "yolov3_mobilenetv1_coco_quant_aware": ("qat", False, True),
    "yolov3_r34_coco_quant_post": ("ptq", False, True),
    "yolov3_r34_coco_quant_aware": ("qat", False, True),
    "yolov3_r50vd_dcn_obj365_coco_quant_aware": ("qat", True, False),
}


def standin_recipe(name: str, folder: Path, arch_args: Optional[Dict[str, object]] = None) -> Tuple[str, List[str]]:
    """Copy recipes/NAME.yaml as standin_NAME into `folder` (checksums dropped; `arch_args` set, e.g. a
    small width, for a network built from stand-in weights); return its name and quantized URL paths."""
    from urllib.parse import urlparse

    import yaml

    repo = Path(__file__).resolve().parents[1]
    data = yaml.safe_load((repo / "recipes" / f"{name}.yaml").read_text())
    data["name"] = f"standin_{name}"
    data.pop("aliases", None)
    for art in data["artifacts"].values():
        for key in ("sha256", "md5", "size"):
            art.pop(key, None)
    if arch_args is not None:
        data["arch_args"] = {**(data.get("arch_args") or {}), **arch_args}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"standin_{name}.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return data["name"], [urlparse(u).path for u in data["artifacts"]["quantized"]["urls"]]


def reproduce_standin(name: str, base_url: str, data: Path, recipes: Path, out: Path, monkeypatch,  # type: ignore[no-untyped-def]
                      *args: str) -> Tuple[dict, Dict[int, dict]]:
    """`zoo reproduce standin_NAME --data DATA --max-samples 3 ARGS --out OUT --json` with the stand-ins served at
    `base_url`: a shortened run, so PARTIAL (exit 4) with one row per published size (608, 416, 320).
    Returns the report and its rows by input size."""
    from tests.conftest import RUNNER
    from zoo.cli.main import app

    monkeypatch.setenv("ZOO_MIRROR", base_url)
    monkeypatch.setenv("ZOO_RECIPE_PATH", str(recipes))
    result = RUNNER.invoke(app, ["reproduce", f"standin_{name}", "--data", str(data), "--max-samples", "3", *args,
                                 "--out", str(out), "--json"])
    assert result.exit_code == 4, result.stderr  # PARTIAL
    report = json.loads(result.stdout)
    assert report["status"] == "PARTIAL"
    settings = {s["input_size"]: s for s in report["settings"]}
    assert list(settings) == [608, 416, 320]
    return report, settings

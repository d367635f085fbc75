"""Tiny detection models and COCO-layout folders whose box AP is known before anything is scored.

A "box model" returns fixed boxes given relative to the image (so they land on the ground truth
of any image whose objects sit at the same relative places), scaled by the original size the
contract feeds it: `im_size` (legacy) or `im_shape / scale_factor` (2.x). Its scores are the
fixed `scores` times the mean of the preprocessed image, clipped to [0, 1]: a white image gives
the scores as written, a black one gives none (the legacy NMS then returns its [[-1]] sentinel).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import cv2
import numpy as np

from zoo.modelfiles import ModelFiles, find_model_files

# relative [x1, y1, x2, y2] of the objects every white test image holds, and their class indices
REL_BOXES = [(0.1, 0.2, 0.5, 0.6), (0.3, 0.3, 0.9, 0.8)]
REL_CLASSES = [0, 1]
CATEGORY_IDS = [7, 3]  # listed unsorted: class i is the i-th listed id (class 0 is category 7), as PaddleDetection maps them
NMS = dict(background_label=-1, score_threshold=0.01, nms_top_k=1000, nms_threshold=0.45, keep_top_k=100,
           normalized=False, nms_eta=1.0)


def write_coco(root: Path, images: Sequence[Tuple[int, int, int]], plus_one: bool = True, split: str = "val2017",
               rel_boxes: Sequence[Tuple[float, float, float, float]] = REL_BOXES) -> Path:
    """A COCO folder of plain images (height, width, gray value); white ones (255) hold the REL_BOXES objects.

    Boxes are written as the contract's code writes its results (`plus_one`: width x2 - x1 + 1), so a
    model returning exactly REL_BOXES scores 100 AP.
    """
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    (root / split).mkdir(parents=True, exist_ok=True)
    cats = [{"id": c, "name": f"class{c}"} for c in CATEGORY_IDS]
    to_cat = dict(enumerate(CATEGORY_IDS))
    imgs: List[Dict] = []
    anns: List[Dict] = []
    for n, (h, w, value) in enumerate(images):
        image_id = 100 + n
        name = f"{image_id:012d}.png"
        cv2.imwrite(str(root / split / name), np.full((h, w, 3), value, np.uint8))
        imgs.append({"id": image_id, "file_name": name, "height": h, "width": w})
        if value != 255:
            continue
        for (x1, y1, x2, y2), cls in zip(rel_boxes, REL_CLASSES):
            bx1, by1, bx2, by2 = x1 * w, y1 * h, x2 * w, y2 * h
            bw, bh = bx2 - bx1 + (1 if plus_one else 0), by2 - by1 + (1 if plus_one else 0)
            anns.append({"id": len(anns) + 1, "image_id": image_id, "category_id": to_cat[cls],
                         "bbox": [bx1, by1, bw, bh], "area": bw * bh, "iscrowd": 0})
    path = root / "annotations" / f"instances_{split}.json"
    path.write_text(json.dumps({"images": imgs, "annotations": anns, "categories": cats}))
    return root


def build_box_model(out: Path, contract: str, scores: np.ndarray, rel_boxes: Sequence[Sequence[float]] = REL_BOXES,
                    side: int = 32, legacy_names: bool = False) -> ModelFiles:
    """A static program with the detection ops of `contract` ("legacy" or "v2") returning fixed boxes.

    `scores` is (classes, boxes). `legacy_names` writes `__model__`/`__params__` as the 0.x exports did.
    """
    import paddle
    from paddle.base.layer_helper import LayerHelper

    paddle.enable_static()
    try:
        main, start = paddle.static.Program(), paddle.static.Program()
        with paddle.static.program_guard(main, start):
            image = paddle.static.data("image", [-1, 3, side, side], "float32")
            if contract == "legacy":
                im_size = paddle.static.data("im_size", [-1, 2], "int32")
                hw = paddle.cast(im_size, "float32")
                feeds = [image, im_size]
            else:
                im_shape = paddle.static.data("im_shape", [-1, 2], "float32")
                scale = paddle.static.data("scale_factor", [-1, 2], "float32")
                hw = paddle.floor(im_shape / scale + 0.5)  # the original size, rounded
                feeds = [image, im_shape, scale]
            rel = paddle.static.create_parameter(
                [1, len(rel_boxes), 4], "float32", name="rel_boxes",
                default_initializer=paddle.nn.initializer.Assign(np.asarray([rel_boxes], np.float32)))
            wh = paddle.concat([hw[:, 1:2], hw[:, 0:1], hw[:, 1:2], hw[:, 0:1]], axis=1)  # W, H, W, H
            boxes = rel * paddle.unsqueeze(wh, 1)
            base = paddle.static.create_parameter(
                [1, *np.shape(scores)], "float32", name="base_scores",
                default_initializer=paddle.nn.initializer.Assign(np.asarray([scores], np.float32)))
            gate = paddle.clip(paddle.mean(image, axis=[1, 2, 3]), 0.0, 1.0)
            probs = base * paddle.reshape(gate, [-1, 1, 1])
            helper = LayerHelper("multiclass_nms")
            rows = helper.create_variable_for_type_inference("float32")
            if contract == "legacy":
                helper.append_op(type="multiclass_nms", inputs={"BBoxes": boxes, "Scores": probs},
                                 outputs={"Out": rows}, attrs=NMS)
                fetch = [rows]
            else:
                index = helper.create_variable_for_type_inference("int32")
                num = helper.create_variable_for_type_inference("int32")
                helper.append_op(type="multiclass_nms3", inputs={"BBoxes": boxes, "Scores": probs},
                                 outputs={"Out": rows, "Index": index, "NmsRoisNum": num}, attrs=NMS)
                fetch = [rows, num]
        exe = paddle.static.Executor(paddle.CPUPlace())
        exe.run(start)
        out.mkdir(parents=True, exist_ok=True)
        if legacy_names:
            paddle.static.save_inference_model(str(out / "inference"), feeds, fetch, exe, program=main)
            (out / "inference.pdmodel").rename(out / "__model__")
            (out / "inference.pdiparams").rename(out / "__params__")
        else:
            paddle.static.save_inference_model(str(out / "inference"), feeds, fetch, exe, program=main)
    finally:
        paddle.disable_static()
    return find_model_files(out)


def expected_rows(h: int, w: int, scores: np.ndarray, rel_boxes: Sequence[Sequence[float]] = REL_BOXES
                  ) -> List[Tuple[int, float, float, float, float, float]]:
    """What a box model returns for a white h x w image: (class, score, x1, y1, x2, y2) above the NMS threshold."""
    out = []
    for cls in range(np.shape(scores)[0]):
        for m, (x1, y1, x2, y2) in enumerate(rel_boxes):
            if scores[cls][m] > NMS["score_threshold"]:
                out.append((cls, float(scores[cls][m]), x1 * w, y1 * h, x2 * w, y2 * h))
    return out

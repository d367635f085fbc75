"""Training YOLOv3: ground-truth targets from COCO records, the training set, and the loss.

The loss is PaddleDetection 0.x's `YOLOv3Loss` with `use_fine_grained_loss: false`: per output
level one `paddle.vision.ops.yolo_loss` (Paddle's `yolov3_loss` op) with the level's anchor mask
and downsample ratio, summed over the levels and averaged over the batch. Targets are the 0.x
reader's `gt_bbox` and `gt_class`, padded with zero boxes to a fixed count: the COCO loader's
inclusive corners (x2 = x + w - 1) turned into center and size by BboxXYXY2XYWH (w = x2 - x1,
cx = (x1 + x2) / 2), normalized by the original image size. So a box is learnt one pixel smaller
than COCO counts it, and the legacy json's `x2 - x1 + 1` gives the pixel back at evaluation.
"""
from __future__ import annotations

from typing import Any, Callable, List, Sequence, Tuple

import numpy as np

from zoo.models.yolov3 import DOWNSAMPLE, YOLOv3

MAX_BOXES = 50  # 0.x's PadBox num_max_boxes
IGNORE_THRESH = 0.7  # the published YOLOv3 configs


def gt_targets(boxes: np.ndarray, classes: np.ndarray, height: int, width: int,
               max_boxes: int = MAX_BOXES) -> Tuple[np.ndarray, np.ndarray]:
    """xyxy boxes in original pixels (x2, y2 inclusive) -> yolo_loss's (max_boxes, 4) normalized cxcywh and labels
    (0.x's convention: w = x2 - x1, cx = (x1 + x2) / 2)."""
    gt_box = np.zeros((max_boxes, 4), dtype=np.float32)
    gt_label = np.zeros((max_boxes,), dtype=np.int32)
    n = min(len(boxes), max_boxes)
    if n:
        b = np.asarray(boxes[:n], dtype=np.float32).reshape(n, 4)
        bw, bh = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
        gt_box[:n] = np.stack([(b[:, 0] + b[:, 2]) / 2 / width, (b[:, 1] + b[:, 3]) / 2 / height, bw / width, bh / height],
                              axis=1)
        gt_label[:n] = np.asarray(classes[:n], dtype=np.int32)
    return gt_box, gt_label


def yolov3_loss(network: YOLOv3, outputs: Sequence[Any], gt_box: Any, gt_label: Any,
                ignore_thresh: float = IGNORE_THRESH, label_smooth: bool = False) -> Any:
    """The YOLOv3 loss of the head outputs (strides 32, 16, 8), summed over levels, averaged over the batch."""
    import paddle

    flat = [v for anchor in network.anchors for v in anchor]
    total = None
    for level, (out, ratio) in enumerate(zip(outputs, DOWNSAMPLE)):
        loss = paddle.vision.ops.yolo_loss(out, gt_box, gt_label, flat, list(network.anchor_masks[level]),
                                           network.num_classes, ignore_thresh, ratio, use_label_smooth=label_smooth)
        total = loss if total is None else total + loss
    return total.mean()


class DetectionTrainSet:
    """A COCO split as (CHW float32 image, gt_box, gt_label) samples (a map-style paddle dataset).

    `flip` mirrors half the samples (numpy's global generator, which QAT seeds per epoch). `transform` maps a decoded RGB HWC image to the network input (the recipe's resize + normalize);
    boxes stay in original-image units, normalized by the original size, so a square resize that does
    not keep the aspect ratio leaves the targets right.
    """

    def __init__(self, coco: Any, transform: Callable[[np.ndarray], np.ndarray], max_boxes: int = MAX_BOXES,
                 flip: bool = False) -> None:
        self.coco = coco
        self.transform = transform
        self.max_boxes = max_boxes
        self.flip = flip

    def __len__(self) -> int:
        return len(self.coco)

    def __getitem__(self, index: int) -> List[np.ndarray]:
        record = self.coco.records[index]
        image = self.coco.load_image(index)
        boxes = np.asarray(record["boxes"], np.float32).reshape(-1, 4)
        width = int(record["width"])
        if self.flip and np.random.random() < 0.5:  # 0.x RandomFlipImage: x -> W - 1 - x (inclusive pixel boxes)
            image = np.ascontiguousarray(image[:, ::-1])
            boxes = np.stack([width - 1 - boxes[:, 2], boxes[:, 1], width - 1 - boxes[:, 0], boxes[:, 3]], axis=1)
        gt_box, gt_label = gt_targets(boxes, np.asarray(record["classes"]), int(record["height"]), width, self.max_boxes)
        return [np.asarray(self.transform(image), dtype=np.float32), gt_box, gt_label]

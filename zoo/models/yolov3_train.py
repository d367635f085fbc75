"""Training YOLOv3: ground-truth targets from COCO records, the training set, and the loss.

The loss is PaddleDetection 0.x's `YOLOv3Loss` with `use_fine_grained_loss: false`: per output
level one `paddle.vision.ops.yolo_loss` (Paddle's `yolov3_loss` op) with the level's anchor mask
and downsample ratio, summed over the levels and averaged over the batch. Targets are the 0.x
reader's `gt_bbox` (center x, center y, w, h normalized by the original image size; 0.x counts a
box's width as x2 - x1 + 1) and `gt_class`, padded with zero boxes to a fixed count.
"""
from __future__ import annotations

from typing import Any, Callable, List, Sequence, Tuple

import numpy as np

from zoo.models.yolov3 import DOWNSAMPLE, YOLOv3

MAX_BOXES = 50  # 0.x's PadBox num_max_boxes
IGNORE_THRESH = 0.7  # the published YOLOv3 configs


def gt_targets(boxes: np.ndarray, classes: np.ndarray, height: int, width: int,
               max_boxes: int = MAX_BOXES) -> Tuple[np.ndarray, np.ndarray]:
    """xyxy boxes in original pixels (x2, y2 inclusive) -> yolo_loss's (max_boxes, 4) normalized cxcywh and labels."""
    gt_box = np.zeros((max_boxes, 4), dtype=np.float32)
    gt_label = np.zeros((max_boxes,), dtype=np.int32)
    n = min(len(boxes), max_boxes)
    if n:
        b = np.asarray(boxes[:n], dtype=np.float32).reshape(n, 4)
        bw, bh = b[:, 2] - b[:, 0] + 1, b[:, 3] - b[:, 1] + 1
        gt_box[:n] = np.stack([(b[:, 0] + bw / 2) / width, (b[:, 1] + bh / 2) / height, bw / width, bh / height], axis=1)
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
    """A COCO split as (CHW float32 image at `size`, gt_box, gt_label) samples (a map-style paddle dataset).

    `transform` maps a decoded RGB HWC image to the network input (the recipe's resize + normalize);
    boxes stay in original-image units, normalized by the original size, so a square resize that does
    not keep the aspect ratio leaves the targets right.
    """

    def __init__(self, coco: Any, transform: Callable[[np.ndarray], np.ndarray], max_boxes: int = MAX_BOXES) -> None:
        self.coco = coco
        self.transform = transform
        self.max_boxes = max_boxes

    def __len__(self) -> int:
        return len(self.coco)

    def __getitem__(self, index: int) -> List[np.ndarray]:
        record = self.coco.records[index]
        image = self.coco.load_image(index)
        gt_box, gt_label = gt_targets(np.asarray(record["boxes"], np.float32), np.asarray(record["classes"]),
                                      int(record["height"]), int(record["width"]), self.max_boxes)
        return [np.asarray(self.transform(image), dtype=np.float32), gt_box, gt_label]

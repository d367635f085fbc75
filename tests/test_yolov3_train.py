"""YOLOv3 training pieces: targets from COCO records, the horizontal flip, the loss, and the task's network."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from zoo.models.yolov3_train import DetectionTrainSet, gt_targets, yolov3_loss


def test_targets_are_normalized_centres_and_sizes_padded() -> None:
    # a box over pixels x 10..29, y 20..59 (COCO w x h 20 x 40) in a 100 x 200 (H x W) image: 0.x learns
    # it as 19 x 39 around (19.5, 39.5), and its json adds the pixel back (x2 - x1 + 1)
    box, label = gt_targets(np.array([[10, 20, 29, 59]], np.float32), np.array([3]), height=100, width=200, max_boxes=4)
    assert box.shape == (4, 4) and label.shape == (4,) and label.dtype == np.int32
    np.testing.assert_allclose(box[0], [19.5 / 200, 39.5 / 100, 19 / 200, 39 / 100])
    assert label[0] == 3 and not box[1:].any() and not label[1:].any()
    box, _ = gt_targets(np.zeros((7, 4), np.float32), np.zeros(7), 10, 10, max_boxes=5)  # more boxes than room
    assert box.shape == (5, 4)


class _OneImage:
    """A stand-in COCO split of one 4 x 6 image with one box (the CocoDataset fields the training set reads)."""

    def __init__(self) -> None:
        self.image = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)
        self.records = [{"boxes": [[1, 0, 2, 3]], "classes": [5], "height": 4, "width": 6}]

    def __len__(self) -> int:
        return 1

    def load_image(self, index: int) -> np.ndarray:
        return self.image.copy()


def test_flip_mirrors_the_image_and_its_boxes() -> None:
    coco = _OneImage()
    plain = DetectionTrainSet(coco, lambda img: img.astype(np.float32), max_boxes=2)
    image, box, label = plain[0]
    np.testing.assert_array_equal(image, coco.image)
    np.testing.assert_allclose(box[0], [1.5 / 6, 1.5 / 4, 1 / 6, 3 / 4])  # x 1..2 -> centre 1.5, width 1
    flipped = DetectionTrainSet(coco, lambda img: img.astype(np.float32), max_boxes=2, flip=True)
    seen = set()
    np.random.seed(0)
    for _ in range(20):  # half the samples are mirrored
        image, box, label = flipped[0]
        mirrored = bool(np.array_equal(image, coco.image[:, ::-1]))
        assert mirrored or np.array_equal(image, coco.image)
        # mirrored: columns 1..2 become 3..4 of 0..5, centre 3.5
        np.testing.assert_allclose(box[0], [(3.5 if mirrored else 1.5) / 6, 1.5 / 4, 1 / 6, 3 / 4])
        assert label[0] == 5
        seen.add(mirrored)
    assert seen == {True, False}


def test_loss_falls_when_the_head_fits_one_box() -> None:
    import paddle

    from zoo.models.yolov3 import YOLOv3

    paddle.seed(0)
    net = YOLOv3("mobilenet_v1", num_classes=3, width=0.25)
    image = paddle.to_tensor(np.random.default_rng(0).random((2, 3, 64, 64), np.float32))
    box, label = gt_targets(np.array([[8, 8, 40, 40]], np.float32), np.array([1]), 64, 64, max_boxes=4)
    gt_box = paddle.to_tensor(np.stack([box, box]))
    gt_label = paddle.to_tensor(np.stack([label, label]))
    opt = paddle.optimizer.Momentum(learning_rate=0.01, parameters=net.parameters())
    losses = []
    for _ in range(8):
        loss = yolov3_loss(net, net(image), gt_box, gt_label)
        loss.backward()
        opt.step()
        opt.clear_grad()
        losses.append(float(loss))
    assert np.isfinite(losses).all() and losses[-1] < 0.5 * losses[0]


def test_detection_task_builds_the_recipe_network_and_starts_qat_from_fp32() -> None:
    from zoo.registry import get_recipe
    from zoo.schema import Role
    from zoo.tasks import get_task

    recipe = get_recipe("digits_yolov3_mobilenetv1_qat")
    task = get_task(recipe.task)
    network = task.build_network(recipe)
    assert network.anchors == [list(a) for a in recipe.detection.anchors]  # the recipe's, not COCO's
    assert network.num_classes == 10
    assert task.start_weights(recipe) is Role.fp32
    assert task.start_weights(get_recipe("yolov3_r34_coco_quant_aware")) is Role.fp32  # not the ImageNet backbone
    assert get_task("classification").start_weights(get_recipe("mobilenetv1_qat")) is Role.pretrained


def test_crops_in_a_detection_recipe_are_refused(tmp_path: Path) -> None:
    from zoo.errors import UsageError
    from zoo.registry import get_recipe
    from zoo.schema import Augment
    from zoo.tasks import get_task

    recipe = get_recipe("digits_yolov3_mobilenetv1_qat")
    bad = recipe.model_copy(update={"train": recipe.train.model_copy(update={"augment": Augment(random_crop=128)})})
    with pytest.raises(UsageError, match="crops"):
        get_task("detection").require_reproducible(bad)

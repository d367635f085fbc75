"""COCO box AP of detection models of both contracts, built by the tests so the AP is known in advance."""
from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Dict

import numpy as np
import pytest

from tests.det_models import CATEGORY_IDS, build_box_model, expected_rows, write_coco
from zoo.data.coco import CocoDataset
from zoo.errors import ModelError
from zoo.evaluate.detection import (coco_detections, evaluate_detection, feeds_for, is_detection_model, model_contract,
                                    split_outputs)
from zoo.schema import Contract, Preprocess

from .conftest import RUNNER

# (height, width, gray value): white images hold the objects, the black one none (its scores gate to 0)
IMAGES = [(60, 80, 255), (48, 64, 255), (50, 50, 0), (70, 40, 255), (64, 96, 255)]
EXACT = np.array([[0.9, 0.0], [0.0, 0.6]])  # class c at box c only: every detection is a true positive
PRE = Preprocess(backend="cv2", resize=32, interpolation="bicubic")


@pytest.fixture(scope="session")
def det(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Path]:
    root = tmp_path_factory.mktemp("det")
    return {
        "legacy": build_box_model(root / "legacy", "legacy", EXACT),
        "v2": build_box_model(root / "v2", "v2", EXACT),
        "coco_legacy": write_coco(root / "coco_legacy", IMAGES, plus_one=True),
        "coco_v2": write_coco(root / "coco_v2", IMAGES, plus_one=False),
        "root": root,
    }


@pytest.mark.parametrize("contract", ["legacy", "v2"])
def test_exact_boxes_score_100_at_every_size_and_batch(det, contract: str, tmp_path: Path) -> None:
    files, data = det[contract], CocoDataset(det[f"coco_{contract}"])
    assert model_contract(files) is Contract(contract) and is_detection_model(files)
    jsons = []
    for size, batch in ((32, 1), (16, 3), (24, 5)):  # declared 32: smaller sides run too (no feed-shape check)
        out = tmp_path / f"{size}.json"
        result = evaluate_detection(files, data, size, PRE, batch_size=batch, json_out=out)
        assert (result["box_ap"], result["ap50"], result["images"], result["contract"]) == (100.0, 100.0, 5, contract)
        jsons.append(sorted(json.loads(out.read_text()), key=lambda d: (d["image_id"], d["category_id"])))
    assert jsons[0] == jsons[1] == jsons[2]  # batches of 3 and 5 split into the same per-image boxes as batch 1
    assert len(jsons[0]) == 8 and 102 not in {d["image_id"] for d in jsons[0]}  # the black image has none
    # class 0 is the first category the file lists (not the smallest id), as PaddleDetection maps it
    first = [d for d in jsons[0] if d["image_id"] == 100 and d["category_id"] == CATEGORY_IDS[0]]
    plus = 1 if contract == "legacy" else 0  # 0.x writes width x2 - x1 + 1, 2.x x2 - x1
    assert CATEGORY_IDS[0] != min(CATEGORY_IDS) and len(first) == 1
    np.testing.assert_allclose(first[0]["bbox"], [8, 12, 32 + plus, 24 + plus], atol=1e-4)


def test_the_wrong_box_convention_costs_ap(det) -> None:
    # legacy boxes against ground truth written without the +1: IoU drops below the top thresholds
    result = evaluate_detection(det["legacy"], CocoDataset(det["coco_v2"]), 32, PRE)
    assert result["ap50"] == 100.0 and result["box_ap"] < 100.0


def test_the_legacy_no_box_sentinel(det) -> None:
    data = CocoDataset(det["coco_legacy"])
    data.records = [data.records[2], data.records[0]]  # the black image first, alone in its batch
    result = evaluate_detection(det["legacy"], data, 32, PRE, batch_size=1)
    assert result["detections"] == 2 and result["box_ap"] == 100.0


def test_split_outputs_of_both_contracts() -> None:
    rows = np.arange(18, dtype=np.float32).reshape(3, 6)
    parts = split_outputs(Contract.legacy, [rows], [[[0, 2, 2, 3]]], 3)
    assert [len(p) for p in parts] == [2, 0, 1] and parts[2][0, 0] == 12
    assert [len(p) for p in split_outputs(Contract.legacy, [np.array([[-1.0]])], [[[0, 1]]], 2)] == [0, 0]
    with pytest.raises(ModelError, match="without a LoD"):
        split_outputs(Contract.legacy, [rows], [[]], 2)
    with pytest.raises(ModelError, match="does not split 3 rows into 2 images"):
        split_outputs(Contract.legacy, [rows], [[[0, 1, 2]]], 2)
    parts = split_outputs(Contract.v2, [rows, np.array([1, 0, 2], np.int32)], [[], []], 3)
    assert [len(p) for p in parts] == [1, 0, 2] and parts[2][1, 0] == 12
    with pytest.raises(ModelError, match="bbox_num"):
        split_outputs(Contract.v2, [rows, np.array([1, 1], np.int32)], [[], []], 2)


def test_feeds_and_json_conventions() -> None:
    images = np.zeros((2, 3, 32, 32), np.float32)
    legacy = feeds_for(Contract.legacy, images, [(60, 80), (20, 10)])
    assert legacy["im_size"].dtype == np.int32 and legacy["im_size"].tolist() == [[60, 80], [20, 10]]  # (H, W)
    v2 = feeds_for(Contract.v2, images, [(64, 16), (32, 32)])
    assert v2["im_shape"].tolist() == [[32, 32], [32, 32]] and v2["scale_factor"].tolist() == [[0.5, 2.0], [1.0, 1.0]]
    rows = np.array([[1, 0.5, 10, 20, 30, 60], [-1, 0.4, 0, 0, 1, 1]], np.float32)
    assert coco_detections(rows[:1], 5, {0: 3, 1: 7}, Contract.legacy)[0] == {
        "image_id": 5, "category_id": 7, "bbox": [10.0, 20.0, 21.0, 41.0], "score": 0.5}
    assert [d["bbox"] for d in coco_detections(rows, 5, {0: 3, 1: 7}, Contract.v2)] == [[10.0, 20.0, 20.0, 40.0]]
    with pytest.raises(ModelError, match="predicts class 1, the annotation has 1 categories"):
        coco_detections(rows[:1], 5, {0: 3}, Contract.legacy)


def test_scores_agree_with_a_direct_pycocotools_run(det, tmp_path: Path) -> None:
    """The independent check: the zoo's AP against pycocotools on a json written here from the model's definition."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    # each class also fires on the other class's object, class 1's false positive above its true one: AP 75
    scores = np.array([[0.9, 0.7], [0.8, 0.6]])
    model = build_box_model(tmp_path / "m", "legacy", scores, legacy_names=True)
    root = det["coco_legacy"]
    annotations = json.loads((root / "annotations" / "instances_val2017.json").read_text())
    to_cat = dict(enumerate(CATEGORY_IDS))
    hand = []
    for img in annotations["images"]:
        if img["file_name"] == "000000000102.png":
            continue  # black: no detection
        for cls, score, x1, y1, x2, y2 in expected_rows(img["height"], img["width"], scores):
            hand.append({"image_id": img["id"], "category_id": to_cat[cls], "score": score,
                         "bbox": [x1, y1, x2 - x1 + 1, y2 - y1 + 1]})
    (tmp_path / "hand.json").write_text(json.dumps(hand))
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(root / "annotations" / "instances_val2017.json"))
        check = COCOeval(gt, gt.loadRes(str(tmp_path / "hand.json")), "bbox")
        check.evaluate()
        check.accumulate()
        check.summarize()
    direct = 100.0 * check.stats[0]
    assert abs(direct - 75.0) < 0.01

    from zoo.cli.main import app

    result = RUNNER.invoke(app, ["eval", str(model.folder), "--data", str(root), "--json", "--batch-size", "2"])
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["task"] == "detection" and out["contract"] == "legacy" and out["input_size"] == [32]
    assert abs(out["box_ap"]["32"] - direct) < 0.01
    assert abs(evaluate_detection(model, CocoDataset(root), 32, PRE)["ap50"] - 100.0 * check.stats[1]) < 0.01

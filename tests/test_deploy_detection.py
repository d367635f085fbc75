"""Export and bench of detection models: real-image feeds, Lite .nb files that keep yolo_box / multiclass_nms,
the x86 .nb compared with Paddle Inference by matching detections, and zoo bench on a two-input detector.

The models are the hand-wired legacy detectors of tests/det_standins.py (the ops of the published archives:
fake-quant PTQ pattern, yolo_box, multiclass_nms v1) on the tiny COCO folder of coloured squares, where they
find every square at 608 with confident boxes, so a wrong box or a lost image shows.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Tuple

import numpy as np
import pytest

from tests.conftest import RUNNER
from tests.det_models import build_box_model
from tests.det_standins import build_legacy_model, make_tiny_coco
from zoo.cli.main import app
from zoo.program import read_program
from zoo.deploy.validate import make_inputs
from zoo.evaluate.detection import match_detections
from zoo.modelfiles import find_model_files


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("det-deploy")
    data = make_tiny_coco(root / "coco")
    fp32 = build_legacy_model(root / "fp32", kind="fp32")
    ptq = build_legacy_model(root / "ptq", kind="ptq")
    return data, fp32, ptq


def _rows(*boxes: Tuple[float, ...]) -> np.ndarray:
    return np.asarray(boxes, np.float64).reshape(-1, 6)


def test_detections_match_by_box_not_by_position() -> None:
    ref = [_rows((0, 0.9, 10, 10, 50, 50), (2, 0.6, 60, 60, 90, 95)), _rows()]
    shuffled = [_rows((2, 0.6, 60, 60, 90, 95), (0, 0.9, 10, 10, 50.2, 50)), _rows()]
    assert match_detections(ref, shuffled)["passed"]
    moved = [_rows((0, 0.9, 20, 10, 60, 50), (2, 0.6, 60, 60, 90, 95)), _rows()]
    result = match_detections(ref, moved)
    assert not result["passed"] and result["matched"] == 1 and result["top_boxes"] == 2
    relabelled = [_rows((1, 0.9, 10, 10, 50, 50), (2, 0.6, 60, 60, 90, 95)), _rows()]
    assert not match_detections(ref, relabelled)["passed"]
    rescored = [_rows((0, 0.8, 10, 10, 50, 50), (2, 0.6, 60, 60, 90, 95)), _rows()]
    assert not match_detections(ref, rescored)["passed"]
    assert match_detections(ref, rescored, score_tol=0.2)["passed"]
    assert not match_detections(ref, ref[:1])["passed"]  # an image lost


def test_generated_inputs_are_valid_for_both_contracts(models, tmp_path: Path) -> None:
    _, fp32, _ = models
    legacy = make_inputs(read_program(find_model_files(fp32)), batch=3)
    assert legacy[0].shape == (3, 3, 608, 608) and legacy[1].dtype == np.int32
    assert (legacy[1] > 0).all() and len({tuple(r) for r in legacy[1]}) == 3  # several original shapes
    v2 = make_inputs(read_program(build_box_model(tmp_path / "v2", "v2", np.full((2, 2), 0.5))), batch=2)
    image, im_shape, scale = v2
    assert im_shape.tolist() == [[32, 32], [32, 32]] and (scale > 0).all() and scale.dtype == np.float32


def test_lite_x86_finds_the_boxes_paddle_finds(models, tmp_path: Path) -> None:
    data, fp32, _ = models
    out = tmp_path / "x86"
    result = RUNNER.invoke(app, ["export", str(fp32), "--target", "lite", "--arch", "x86", "--data", str(data),
                                 "--out", str(out), "--json"])
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    (art,) = report["artifacts"]
    check = art["validation"]
    assert check["kind"] == "detections" and check["passed"]
    assert check["top_boxes"] > 0 and check["matched"] == check["top_boxes"] and check["min_iou"] >= 0.95
    assert check["kernels"]["yolo_box:host/fp32"] == 3 and check["kernels"]["multiclass_nms:host/fp32"] == 1
    assert any("real images" in n for n in report["notes"])
    assert (out / "model.x86.fp32.nb").is_file()


def test_lite_x86_without_images_uses_valid_generated_feeds(models, tmp_path: Path) -> None:
    _, fp32, _ = models
    result = RUNNER.invoke(app, ["export", str(fp32), "--target", "lite", "--arch", "x86", "--out",
                                 str(tmp_path / "x86"), "--json"])
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["artifacts"][0]["validation"]["kind"] == "detections"
    assert any("generated inputs" in n for n in report["notes"])


def test_lite_arm_int8_keeps_the_detection_ops(models, tmp_path: Path) -> None:
    data, _, ptq = models
    result = RUNNER.invoke(app, ["export", str(ptq), "--target", "lite", "--arch", "arm", "--data", str(data),
                                 "--out", str(tmp_path / "arm"), "--json"])
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    # an arm .nb cannot run here: nothing may claim its boxes were checked
    assert not any("validated" in n for n in report["notes"])
    assert any("arm .nb files cannot run on this machine" in n and "not checked" in n for n in report["notes"])
    (art,) = report["artifacts"]
    check = art["validation"]
    assert art["precision"] == "int8" and check["int8_kernels"] == check["int8_ops_in_source"] == 3
    assert check["kernels"].get("conv2d:arm/int8") == 3
    assert check["detection_ops"] == {"multiclass_nms": 1, "yolo_box": 3}


def test_bench_times_a_two_input_detector_and_checks_its_boxes(models) -> None:
    data, _, ptq = models
    result = RUNNER.invoke(app, ["bench", str(ptq), "--repeat", "2", "--warmup", "0", "--data", str(data), "--json"])
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    (row,) = [r for r in report["rows"] if r["variant"] == "int8"]
    assert row["p50_ms"] > 0
    check = row["check"]["data"]  # real images decide
    assert check["images"] == 4 and check["top_boxes"] > 0
    # confident boxes: oneDNN's INT8 kernels find what the fake-quant graph finds, and the path is named
    assert check["passed"] and check["matched_share"] >= check["min_matched_share"]
    assert report["fastest"]["backend"] == row["backend"]
    assert any("top boxes of Paddle's fake-quant graph found again" in n for n in report["notes"])

"""Independent check of detection scoring: models built here are scored by `zoo eval` (the CLI, end to
end) and by a direct pycocotools run on a json this test writes itself (tests/det_standins.py:
independent_box_ap, PaddleDetection's conventions per contract); the two must agree to 0.01 AP.

Both contracts: a legacy 0.x folder (`__model__`/`__params__`: image + im_size, multiclass_nms with a
LoD, +1 box sizes) and a 2.x folder (`model.pdmodel`: image + im_shape + scale_factor,
multiclass_nms3 bbox + bbox_num, no +1). Both declare a 608 input and are scored at 416/320 too.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Tuple

import pytest

from tests.conftest import RUNNER
from tests.det_standins import build_legacy_model, build_v2_model, independent_box_ap, make_tiny_coco
from zoo.cli.main import app


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("det-independent")
    return make_tiny_coco(root / "coco"), build_legacy_model(root / "legacy"), build_v2_model(root / "v2")


def _zoo_eval(folder: Path, data: Path, *flags: str) -> dict:
    result = RUNNER.invoke(app, ["eval", str(folder), "--data", str(data), "--json", "--batch-size", "3", *flags])
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize("contract,size", [("legacy", 608), ("legacy", 320), ("v2", 608), ("v2", 416)])
def test_zoo_eval_agrees_with_pycocotools(models: Tuple[Path, Path, Path], contract: str, size: int, tmp_path: Path) -> None:
    data, legacy, v2 = models
    folder = legacy if contract == "legacy" else v2
    report = _zoo_eval(folder, data, "--task", "detection", "--size", str(size))
    assert report["contract"] == contract and report["images"] == 4
    written = tmp_path / "detections.json"
    expected = independent_box_ap(folder, data, size, json_out=written)
    assert json.loads(written.read_text())  # the hand-written json holds the detections that were scored
    assert report["box_ap"][str(size)] == pytest.approx(expected["box_ap"], abs=0.01)
    assert report["ap50"][str(size)] == pytest.approx(expected["ap50"], abs=0.01)
    if size == 608:  # the squares sit on the stride-32 cells at 608: a real detector there
        assert expected["box_ap"] > 50


def test_the_conventions_differ_between_contracts(models: Tuple[Path, Path, Path]) -> None:
    """The same detector scores differently under the 0.x +1 box sizes: the check would see a mix-up."""
    data, legacy, v2 = models
    a = _zoo_eval(legacy, data, "--size", "608")  # the task found from the program's ops
    b = _zoo_eval(v2, data, "--size", "608")
    assert a["contract"] == "legacy" and b["contract"] == "v2"
    assert b["box_ap"]["608"] - a["box_ap"]["608"] > 5


def test_an_annotation_file_with_other_categories_than_the_model_is_refused(models: Tuple[Path, Path, Path],
                                                                            tmp_path: Path) -> None:
    import shutil

    data, legacy, _ = models
    moved = tmp_path / "coco"
    shutil.copytree(data, moved)
    ann = moved / "annotations" / "instances_val2017.json"
    doc = json.loads(ann.read_text())
    doc["categories"].insert(0, {"id": 999, "name": "extra"})  # every class after it would shift by one
    ann.write_text(json.dumps(doc))
    result = RUNNER.invoke(app, ["eval", str(legacy), "--data", str(moved), "--size", "608"])
    assert result.exit_code != 0
    text = " ".join(result.output.split())
    assert f"lists {len(doc['categories'])} categories, the model predicts {len(doc['categories']) - 1} classes" in text


@pytest.mark.parametrize("size, said", [("600", "a multiple of 32"), ("31", "a multiple of 32"),
                                        ("100000", "larger than 2048")])
def test_an_input_side_the_detector_cannot_take_is_refused_before_scoring(models: Tuple[Path, Path, Path],
                                                                         size: str, said: str) -> None:
    data, legacy, _ = models
    result = RUNNER.invoke(app, ["eval", str(legacy), "--data", str(data), "--size", size])
    assert result.exit_code == 2, result.output
    assert said in " ".join(result.output.split()) and "Traceback" not in result.output

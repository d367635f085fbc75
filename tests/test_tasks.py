"""The task interface: registry, folder detection, recipe sections, and a detection entry scored per size."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict

import numpy as np
import pytest

from tests.det_models import build_box_model, write_coco
from tests.httpserver import file_server, hub_env, make_tar  # noqa: F401
from zoo.cli.main import app
from zoo.errors import DuplicateNameError, RecipeError, UnknownNameError, UsageError
from zoo.modelfiles import find_model_files
from zoo.registry import load_recipe_file
from zoo.tasks import ModelTask, get_task, register_task, task_names, task_of_model

from .conftest import REPO, RUNNER

UPSTREAM = "https://paddlemodels.bj.bcebos.com"
IMAGES = [(60, 80, 255), (48, 64, 255), (50, 50, 0), (70, 40, 255)]
EXACT = np.array([[0.9, 0.0], [0.0, 0.6]])


def get_recipe(name: str):  # type: ignore[no-untyped-def]
    """A shipped recipe, read on its own (the tests here do not depend on the rest of the registry)."""
    return load_recipe_file(REPO / "recipes" / f"{name}.yaml")


@pytest.fixture(scope="session")
def boxes(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Path]:
    root = tmp_path_factory.mktemp("tasks")
    legacy = build_box_model(root / "archive" / "yolo_int8", "legacy", EXACT, legacy_names=True)
    members = {f"yolo_int8/{p.name}": p.read_bytes() for p in legacy.folder.iterdir()}
    return {"model": legacy.folder, "tar": make_tar(members), "coco": write_coco(root / "coco", IMAGES)}


def test_registry_names_and_refusals() -> None:
    assert {"classification", "detection"} <= set(task_names())  # tests may register more
    assert get_task("detection").metrics == ("box_ap",) and get_task("classification").metrics == ("top1", "top5")
    with pytest.raises(UnknownNameError, match="unknown task 'segmentation'"):
        get_task("segmentation")
    with pytest.raises(DuplicateNameError, match="already registered"):
        @register_task("detection")
        class Other(ModelTask):  # type: ignore[misc]  # abstract: never instantiated
            pass


def test_a_folders_task_comes_from_its_ops(boxes, tmp_path: Path) -> None:
    import paddle

    assert task_of_model(find_model_files(boxes["model"])).name == "detection"
    net = paddle.nn.Conv2D(3, 2, 1)
    paddle.jit.save(net, str(tmp_path / "cls" / "inference"),
                    input_spec=[paddle.static.InputSpec([None, 3, 8, 8], "float32", "x")])
    files = find_model_files(tmp_path / "cls")
    assert task_of_model(files).name == "classification"
    assert task_of_model(files, "detection").name == "detection"  # --task wins


def test_sizes_per_task() -> None:
    r34 = get_recipe("yolov3_r34_coco_quant_aware")
    det, cls = get_task("detection"), get_task("classification")
    assert det.entry_sizes(r34, None) == [608, 416, 320] and det.entry_sizes(r34, [416, 416, 320]) == [416, 320]
    digits = get_recipe("digits_mobilenetv1_ptq")
    assert cls.entry_sizes(digits, None) == [digits.headline().input_size]
    with pytest.raises(UsageError, match="one input size"):
        cls.entry_sizes(digits, [32, 24])
    with pytest.raises(UsageError, match="--crop does not apply to detection"):
        det.preprocess(r34.preprocess, {"crop": 224})


def test_detection_recipes_name_contract_and_conventions(tmp_path: Path) -> None:
    for name in ("yolov3_r34_coco_quant_aware", "yolov3_r50vd_dcn_obj365_coco_quant_aware"):
        det = get_recipe(name).detection
        assert det is not None and det.contract.value == "legacy" and det.nms.normalized is False
        assert det.nms.keep_top_k == 100 and det.conf_threshold == 0.01 and len(det.anchors) == 9
    assert get_recipe("yolov3_r50vd_dcn_obj365_coco_quant_aware").preprocess.scale is False  # raw 0..255 pixels
    assert get_recipe("digits_mobilenetv1_ptq").detection is None
    path = tmp_path / "bad.yaml"
    recipe = json.loads(json.dumps(_recipe("x", "https://example.invalid/a.tar", 100.0)))
    recipe.update(task="classification", published=[{"input_size": 8, "top1": 1.0}], detection={"contract": "v2"})
    path.write_text(json.dumps(recipe))
    with pytest.raises(RecipeError, match="does not fit task 'classification'"):
        load_recipe_file(path)


def _recipe(name: str, url: str, ap16: float, contract: str = "legacy") -> dict:
    return {
        "name": name, "summary": "test detector", "task": "detection", "arch": "yolov3_mobilenet_v1", "strategy": "qat",
        "source": {"doc": "test", "url": "https://example.invalid/doc"},
        "artifacts": {"quantized": {"urls": [url], "layout": "legacy-inference"},
                      "fp32": {"urls": ["https://example.invalid/unused.tar"], "layout": "persistables"}},
        "default_artifact": "quantized",
        "dataset": {"kind": "coco", "split": "val2017", "num_classes": 2},
        "preprocess": {"backend": "cv2", "resize": 32, "interpolation": "bicubic"},
        "quant": {},
        "train": {"iterations": 1, "learning_rate": 0.1, "batch_size": 1},
        "published": [{"input_size": 32, "box_ap": 100.0}, {"input_size": 16, "box_ap": ap16}],
        "tolerance": {"eval": 0.1},
        "detection": {"contract": contract},
    }


def _eval(*args: str):  # type: ignore[no-untyped-def]
    result = RUNNER.invoke(app, ["eval", *args])
    result.text = " ".join((result.stdout + result.stderr).split())
    return result


def test_a_detection_entry_is_scored_at_every_published_size(boxes, hub_env, file_server, monkeypatch) -> None:
    file_server.add("/PaddleSlim/det.tar", boxes["tar"])
    monkeypatch.setenv("ZOO_MIRROR", file_server.base_url)
    for name, ap16, contract in (("det_ok", 100.0, "legacy"), ("det_off", 90.0, "legacy"), ("det_v2", 100.0, "v2")):
        (hub_env.recipes / f"{name}.yaml").write_text(json.dumps(_recipe(name, UPSTREAM + "/PaddleSlim/det.tar", ap16, contract)))
    coco = str(boxes["coco"])

    result = _eval("det_ok", "--data", coco, "--json")
    assert result.exit_code == 0, result.text
    out = json.loads(result.stdout)
    assert out["box_ap"] == {"32": 100.0, "16": 100.0} and [r["input_size"] for r in out["sizes"]] == [32, 16]
    assert out["comparison"]["status"] == "PASS" and set(out["comparison"]["metrics"]) == {"box_ap@32", "box_ap@16"}

    result = _eval("det_off", "--data", coco)  # 16 is 10 points off its published row: outside tolerance.eval
    assert result.exit_code == 3 and "outside the recipe's eval tolerance" in result.text
    assert "16 box AP 100.00 % AP50 100.00 %" in result.text and "published INT8 box AP 90.00 % (diff +10.00)" in result.text

    result = _eval("det_off", "--data", coco, "--max-samples", "2", "--sizes", "16", "--json")
    out = json.loads(result.stdout)
    assert result.exit_code == 0 and out["comparison"]["status"] == "PARTIAL" and list(out["box_ap"]) == ["16"]

    result = _eval("det_ok", "--data", coco, "--sizes", "24", "--json")  # no published row at 24: nothing to compare
    assert result.exit_code == 0 and "comparison" not in json.loads(result.stdout)

    result = _eval("det_v2", "--data", coco)
    assert result.exit_code == 1 and "is a legacy detection model; det_v2's recipe declares the v2 contract" in result.text

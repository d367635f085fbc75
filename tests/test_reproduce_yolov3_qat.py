"""The three quant-aware YOLOv3 entries reproduced end to end with stand-ins: `zoo reproduce NAME --data TINY_COCO
--max-samples N --iterations 1` fetches FP32 persistables under the 0.x names (Paddle's save_vars from a tiny 0.x
static program, served over HTTP through ZOO_MIRROR), builds the network from them, trains it quant-aware with
yolo_loss on train2017 (channel-wise weights, moving-average activations, the yolo_output convs in float),
exports the legacy contract from the trained network, scores FP32 and INT8 at 608/416/320 from the written files,
and reports PARTIAL (one iteration, three images).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, Iterator, Tuple

import numpy as np
import pytest

from tests.conftest import RUNNER
from tests.det_standins import make_tiny_coco, persistables_tar, reproduce_standin, standin_recipe
from tests.httpserver import FileServer
from tests.yolov3_static_ref import build_and_save
from zoo.cli.main import app

pytestmark = pytest.mark.slow
WIDTH = 0.125  # the published graph at an eighth of the channels: quick at 608
ENTRIES = {"yolov3_mobilenetv1_coco_quant_aware": "mobilenet_v1", "yolov3_r34_coco_quant_aware": "resnet34",
           "yolov3_r50vd_dcn_obj365_coco_quant_aware": "resnet50_vd_dcn"}


@pytest.fixture(scope="module")
def standins(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tuple[FileServer, Path, Path]]:
    import yaml

    root = tmp_path_factory.mktemp("yolov3-qat")
    data = make_tiny_coco(root / "coco", "val2017")
    make_tiny_coco(root / "coco", "train2017")  # quant-aware training trains on train2017
    recipes = root / "recipes"
    with FileServer() as server:
        for n, (name, backbone) in enumerate(ENTRIES.items()):
            standin_recipe(name, recipes, {"width": WIDTH, "num_classes": 80})
            url = yaml.safe_load((recipes / f"standin_{name}.yaml").read_text())["artifacts"]["fp32"]["urls"][0]
            folder = root / "weights" / name
            build_and_save(backbone, WIDTH, 80, 64, folder, np.zeros((1, 3, 64, 64), np.float32), seed=n)
            path = "/" + url.split("/", 3)[3]
            server.add(path, persistables_tar(folder, Path(path).stem))
        yield server, data, recipes


@pytest.mark.parametrize("name", sorted(ENTRIES))
def test_quant_aware_entry_reproduces_end_to_end(name: str, standins, monkeypatch: pytest.MonkeyPatch,
                                                 tmp_path: Path) -> None:
    from zoo.program import read_program
    from zoo.modelfiles import find_model_files
    from zoo.registry import get_recipe
    from zoo.tasks.detection import output_conv_weights

    server, data, recipes = standins
    out = tmp_path / "run"
    report, settings = reproduce_standin(name, server.base_url, data, recipes, out, monkeypatch,
                                         "--iterations", "1", "--batch-size", "2")
    recipe = get_recipe(f"standin_{name}")
    for row in recipe.published:
        assert settings[row.input_size]["metrics"]["box_ap"]["published"] == row.metric("box_ap")
        assert settings[row.input_size]["metrics"]["box_ap"]["measured"] is not None  # scored; the ops below show it was quantized
    found = {d["setting"] for d in report["protocol"]["deviations"]}
    assert {"evaluation images", "iterations"} <= found
    # the INT8 model: QAT's fake quant-dequant ops, the legacy feeds and post-processing, the head in float
    int8 = find_model_files(out / "int8")
    info = read_program(int8)
    assert {"fake_channel_wise_quantize_dequantize_abs_max", "yolo_box", "multiclass_nms"} <= set(info.op_types)
    assert [s.name for s in info.inputs] == ["image", "im_size"] and info.inputs[1].dtype == "int32"
    assert info.inputs[0].shape[1:] == (3, 608, 608)
    head = set(output_conv_weights(int8))
    assert len(head) == 3
    quantized_filters = {f for op in info.ops if op.type.startswith("fake_channel_wise_quantize")
                         for f in op.inputs.get("X", ())}
    convs = [op for op in info.ops if op.type in ("conv2d", "depthwise_conv2d")]
    assert len(quantized_filters) == len(convs) - 3  # every conv but the three yolo_output ones
    assert not head & quantized_filters
    # zoo eval of the written INT8 model gives what the report says
    evaluated = RUNNER.invoke(app, ["eval", str(out / "int8"), "--data", str(data), "--size", "416",
                                    "--max-samples", "3", "--json"])
    assert evaluated.exit_code == 0, evaluated.stderr
    assert json.loads(evaluated.stdout)["box_ap"]["416"] == pytest.approx(settings[416]["metrics"]["box_ap"]["measured"], abs=1e-6)


def test_quant_aware_detection_needs_train2017(standins, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import shutil

    server, data, recipes = standins
    only_val = tmp_path / "coco"
    shutil.copytree(data, only_val)
    (only_val / "annotations" / "instances_train2017.json").unlink()
    monkeypatch.setenv("ZOO_MIRROR", server.base_url)
    monkeypatch.setenv("ZOO_RECIPE_PATH", str(recipes))
    result = RUNNER.invoke(app, ["reproduce", "standin_yolov3_mobilenetv1_coco_quant_aware", "--data", str(only_val),
                                 "--iterations", "1", "--out", str(tmp_path / "run")])
    assert result.exit_code != 0
    assert "train2017" in result.stderr and "Traceback" not in result.stderr

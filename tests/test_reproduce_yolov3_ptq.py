"""The two post-training YOLOv3 entries reproduced end to end with stand-ins: `zoo reproduce NAME --data TINY_COCO
--max-samples N` fetches FP32 persistables under the 0.x names (written here by Paddle's save_vars from a tiny
0.x static program, served over HTTP through ZOO_MIRROR), exports the network with the legacy contract,
calibrates it on train2017 with the recipe's settings (KL, range_abs_max, channel-wise weights, the yolo_output
head quantized), scores FP32 and INT8 at 608/416/320, and reports PARTIAL: 4 images are not COCO val2017.
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
WIDTH = 0.125  # the published shapes at an eighth of the channels: the same graph, quick at 608
ENTRIES = {"yolov3_mobilenetv1_coco_quant_post": "mobilenet_v1", "yolov3_r34_coco_quant_post": "resnet34"}


@pytest.fixture(scope="module")
def standins(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tuple[FileServer, Path, Path, Dict[str, Dict[str, np.ndarray]]]]:
    import yaml

    root = tmp_path_factory.mktemp("yolov3-ptq")
    data = make_tiny_coco(root / "coco", "val2017")
    make_tiny_coco(root / "coco", "train2017")  # the recipe calibrates on train2017
    recipes = root / "recipes"
    weights: Dict[str, Dict[str, np.ndarray]] = {}
    with FileServer() as server:
        for n, (name, backbone) in enumerate(ENTRIES.items()):
            standin_recipe(name, recipes, {"width": WIDTH, "num_classes": 80})
            url = yaml.safe_load((recipes / f"standin_{name}.yaml").read_text())["artifacts"]["fp32"]["urls"][0]
            folder = root / "weights" / name
            x = np.zeros((1, 3, 64, 64), np.float32)
            weights[name], _ = build_and_save(backbone, WIDTH, 80, 64, folder, x, seed=n)
            path = "/" + url.split("/", 3)[3]
            server.add(path, persistables_tar(folder, Path(path).stem))
        yield server, data, recipes, weights


@pytest.mark.parametrize("name", sorted(ENTRIES))
def test_quant_post_entry_reproduces_end_to_end(name: str, standins, monkeypatch: pytest.MonkeyPatch,
                                                tmp_path: Path) -> None:
    from zoo.program import read_program
    from zoo.modelfiles import find_model_files
    from zoo.registry import get_recipe
    from zoo.tasks.detection import output_conv_weights

    server, data, recipes, weights = standins
    out = tmp_path / "run"
    report, settings = reproduce_standin(name, server.base_url, data, recipes, out, monkeypatch)
    recipe = get_recipe(f"standin_{name}")
    for row in recipe.published:
        s = settings[row.input_size]
        assert s["fp32"]["box_ap"]["measured"] is not None
        assert s["fp32"]["box_ap"]["published"] == row.fp32().get("box_ap")
        if row.metric("box_ap") is not None:  # the INT8 numbers the recipe publishes are the ones compared
            assert s["metrics"]["box_ap"]["published"] == row.metric("box_ap")
        assert s["metrics"]["box_ap"]["measured"] is not None
    found = {d["setting"] for d in report["protocol"]["deviations"]}
    assert {"evaluation images", "evaluation set", "calibration images"} <= found
    assert report["data"]["calib_split"] == "train2017" and report["data"]["calib_images"] == 4
    assert report["data"]["images"] == 3
    # the FP32 model holds the served weights (the 0.x names were mapped, not re-initialized)
    fp32 = find_model_files(out / "fp32")
    import paddle

    from zoo.modelcheck import load_inference_program

    paddle.enable_static()
    try:
        scope = paddle.static.Scope()
        with paddle.static.scope_guard(scope):
            program, _, _ = load_inference_program(fp32, paddle.static.Executor(paddle.CPUPlace()))
            head = output_conv_weights(fp32)
            values = [np.array(scope.find_var(w).get_tensor()) for w in head]
    finally:
        paddle.disable_static()
    served = [weights[name][f"yolo_output.{i}.conv.weights"] for i in range(3)]
    assert all(np.array_equal(a, b) for a, b in zip(values, served))
    # the INT8 model: legacy PTQ ops, every conv quantized, the output head too (quant_post had no skip pattern)
    info = read_program(find_model_files(out / "int8"))
    assert {"fake_quantize_range_abs_max", "fake_channel_wise_dequantize_max_abs", "yolo_box", "multiclass_nms"} <= set(info.op_types)
    convs = [op for op in info.ops if op.type in ("conv2d", "depthwise_conv2d")]
    assert len(info.quantized) == len(convs)
    assert info.inputs[0].name == "image" and info.inputs[0].shape[1:] == (3, 608, 608)
    assert [s.name for s in info.inputs] == ["image", "im_size"] and info.inputs[1].dtype == "int32"
    # the INT8 model finds the FP32 model's boxes: at least half of the top boxes match (IoU >= 0.5, scores
    # within 0.1). The stand-in has random weights, so its box scores nearly tie and INT8 reorders some of
    # them (22 of 40 measured on the mobilenet stand-in); a stub strategy's model matches none.
    from zoo.contracts import detection_contract
    from zoo.deploy.validate import INT8_DET_IOU, INT8_DET_SCORE_TOL, paddle_detections
    from zoo.evaluate.detection import generated_feeds, match_detections

    int8_files = find_model_files(out / "int8")
    contract = detection_contract(info)
    feeds = generated_feeds(contract, 320, batch=2, seed=0)
    inputs = [np.ascontiguousarray(feeds[spec.name].astype(spec.dtype)) for spec in info.inputs]
    found = match_detections(paddle_detections(fp32, inputs, contract), paddle_detections(int8_files, inputs, contract),
                             iou=INT8_DET_IOU, score_tol=INT8_DET_SCORE_TOL)
    assert found["top_boxes"] > 0 and found["matched"] >= 0.5 * found["top_boxes"], found
    # zoo eval of the written INT8 model gives what the report says
    evaluated = RUNNER.invoke(app, ["eval", str(out / "int8"), "--data", str(data), "--size", "320",
                                    "--max-samples", "3", "--json"])
    assert evaluated.exit_code == 0, evaluated.stderr
    assert json.loads(evaluated.stdout)["box_ap"]["320"] == pytest.approx(settings[320]["metrics"]["box_ap"]["measured"], abs=1e-6)

"""`zoo reproduce digits_yolov3_mobilenetv1_ptq`: the bundled detector calibrated on its train2017 canvases
(image + im_size feeds, the recipe's size and preprocessing) and scored at every published size.

Shortened with --max-samples to stay quick, so the run is PARTIAL; the recipe publishes FP32 numbers only so
far, and the report must say that it compared the INT8 numbers with nothing.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import RUNNER
from zoo.cli.main import app

pytestmark = pytest.mark.slow
NAME = "digits_yolov3_mobilenetv1_ptq"


def test_bundled_detector_reproduces_at_every_size(tmp_path: Path) -> None:
    from zoo.program import read_program
    from zoo.modelfiles import find_model_files
    from zoo.registry import get_recipe
    from zoo.tasks.detection import output_conv_weights

    out = tmp_path / "o"
    result = RUNNER.invoke(app, ["reproduce", NAME, "--out", str(out), "--max-samples", "40", "--json", "--quiet"])
    assert result.exit_code == 4, result.stderr
    report = json.loads(result.stdout)
    recipe = get_recipe(NAME)
    sizes = [row.input_size for row in recipe.published]
    assert [s["input_size"] for s in report["settings"]] == sizes
    assert report["data"]["calib_split"] == "train2017" and report["data"]["calib_images"] == 160
    assert report["data"]["images"] == 40
    unpublished = not any(row.metric("box_ap") is not None for row in recipe.published)
    for s in report["settings"]:
        int8, fp32 = s["metrics"]["box_ap"]["measured"], s["fp32"]["box_ap"]["measured"]
        assert 0.0 < int8 <= 100.0 and 0.0 < fp32 <= 100.0
        assert s["int8_drop"]["box_ap"] == pytest.approx(fp32 - int8, abs=1e-3)
        if unpublished:
            assert s["metrics"]["box_ap"]["published"] is None and s["metrics"]["box_ap"]["pass"] is None
    if unpublished:
        assert report["compared_with"].startswith("nothing") and "FP32 numbers only" in report["compared_with"]
        assert "Compared with: nothing" in (out / "report.md").read_text()
    # the recipe quantizes the head too: every conv, the three that feed yolo_box included
    int8_files = find_model_files(out / "int8")
    info = read_program(int8_files)
    assert len(info.quantized) == sum(op.type in ("conv2d", "depthwise_conv2d") for op in info.ops)
    head = set(output_conv_weights(int8_files))
    dequantized = {op.inputs["X"][0] for op in info.ops if op.type == "fake_channel_wise_dequantize_max_abs"}
    head_outputs = {v for op in info.ops if op.type == "conv2d" and set(op.inputs["Filter"]) & head
                    for v in op.output_vars()}
    assert len(head) == 3 and head_outputs <= dequantized
    # zoo eval of the written INT8 model agrees with the report
    evaluated = RUNNER.invoke(app, ["eval", str(out / "int8"), "--data", report["data"]["root"], "--size", "96",
                                    "--max-samples", "40", "--json"])
    assert evaluated.exit_code == 0, evaluated.stderr
    measured = {s["input_size"]: s["metrics"]["box_ap"]["measured"] for s in report["settings"]}
    assert json.loads(evaluated.stdout)["box_ap"]["96"] == pytest.approx(measured[96], abs=1e-6)
    # its INT8 ONNX file: the head's idle observers dropped, the NMS the zoo's own graph; both ONNX runtimes find the
    # fake-quant graph's boxes again, and ONNX Runtime scores it within the recipe's tolerance (it lost 5.6 box AP
    # points while the head's outputs were rounded to 8 bits)
    exported = RUNNER.invoke(app, ["export", str(out / "int8"), "--target", "onnx", "--data", report["data"]["root"],
                                   "--out", str(tmp_path / "onnx"), "--json"])
    assert exported.exit_code == 0, exported.stderr
    (art,) = [a for a in json.loads(exported.stdout)["artifacts"] if a["precision"] == "int8"]
    for runtime in ("onnxruntime", "openvino"):
        assert art["validation"][runtime]["matched_share"] >= 0.8
    on_onnx = RUNNER.invoke(app, ["eval", str(out / "int8"), "--data", report["data"]["root"], "--size", "96",
                                  "--max-samples", "40", "--runtime", "onnxruntime", "--json"])
    assert on_onnx.exit_code == 0, on_onnx.stderr
    assert abs(json.loads(on_onnx.stdout)["box_ap"]["96"] - measured[96]) <= recipe.tolerance.reproduce

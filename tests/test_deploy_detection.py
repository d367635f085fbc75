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
from zoo.errors import ModelError
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


def test_onnx_export_finds_the_boxes_paddle_finds_on_both_runtimes(models, tmp_path: Path) -> None:
    """The legacy contract (image + im_size, yolo_box, multiclass_nms v1) through `zoo export --target onnx`: the
    NMS cut off, converted, and written as the zoo's ONNX graph; ONNX Runtime and OpenVINO both run the file and
    find every top box again. (The INT8 detector is exported in test_reproduce_digits_det.py.)"""
    import onnx

    data, fp32, _ = models
    out = tmp_path / "onnx"
    result = RUNNER.invoke(app, ["export", str(fp32), "--target", "onnx", "--data", str(data), "--out", str(out),
                                 "--json"])
    assert result.exit_code == 0, result.stderr
    (art,) = json.loads(result.stdout)["artifacts"]
    check = art["validation"]
    assert check["kind"] == "detections" and check["passed"]
    for runtime in ("onnxruntime", "openvino"):
        assert check[runtime]["matched"] == check[runtime]["top_boxes"] > 0
    ops = {n.op_type for n in onnx.load(str(out / "model.fp32.onnx")).graph.node}
    assert "NonMaxSuppression" in ops and "TopK" in ops


def test_onnx_export_of_an_int8_detector_without_output_scales_says_why_it_cannot(models, tmp_path: Path) -> None:
    """The stand-in PTQ archive records no output scale (out_threshold) for its three head convs, and paddle2onnx
    writes a quantized op without one in float: the export refuses to call such a file INT8 and says why."""
    data, _, ptq = models
    out = tmp_path / "onnx"
    result = RUNNER.invoke(app, ["export", str(ptq), "--target", "onnx", "--data", str(data), "--out", str(out)])
    assert result.exit_code == 1
    assert "wrote every quantized op in float" in result.stderr and "records 0 such output scale" in result.stderr
    assert "--target inference" in result.stderr and "Traceback" not in result.stderr
    assert not out.exists()


def test_onnx_export_of_the_2x_contract_returns_boxes_and_counts(tmp_path: Path) -> None:
    """The 2.x contract (image + im_shape + scale_factor, multiclass_nms3 returning bbox and bbox_num): the file
    returns both, and its boxes are Paddle's on both runtimes."""
    from tests.det_standins import build_v2_model
    from zoo.deploy.onnx import OnnxSession

    model = build_v2_model(tmp_path / "v2", size=96)
    out = tmp_path / "onnx"
    result = RUNNER.invoke(app, ["export", str(model), "--target", "onnx", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.stderr
    (art,) = json.loads(result.stdout)["artifacts"]
    assert art["validation"]["onnxruntime"]["matched"] == art["validation"]["onnxruntime"]["top_boxes"] > 0
    assert art["validation"]["openvino"]["matched"] == art["validation"]["openvino"]["top_boxes"]
    inputs = make_inputs(read_program(find_model_files(model)), batch=1)
    session = OnnxSession(out / "model.fp32.onnx")
    bbox, bbox_num = session.run(inputs)
    assert bbox.shape[1] == 6 and bbox_num.dtype == np.int32 and bbox_num.tolist() == [len(bbox)]
    # the file declares one image per run: a batch of two is refused by the runtime, not cut to its first image
    with pytest.raises(ModelError, match="failed on inputs of shape"):
        session.run(make_inputs(read_program(find_model_files(model)), batch=2))


def test_bench_times_an_onnx_detector_image_by_image(models) -> None:
    """`zoo bench --batch 2` on ONNX Runtime: the detector's file takes one image per run, so a batch is timed as its
    images in turn."""
    _, fp32, _ = models
    result = RUNNER.invoke(app, ["bench", str(fp32), "--backend", "onnxruntime", "--batch", "2", "--repeat", "2",
                                 "--warmup", "0", "--json"])
    assert result.exit_code == 0, result.stderr
    (row,) = [r for r in json.loads(result.stdout)["rows"] if r["backend"] == "onnxruntime-cpu"]
    assert row["p50_ms"] > 0


def test_eval_scores_a_detector_on_each_onnx_runtime_as_on_paddle(models) -> None:
    """Box AP through the ONNX files equals Paddle's, at the size the model was saved at (608, where the stand-in
    finds every square) and at one it was not (320: the runner converts the model again for it)."""
    data, fp32, _ = models
    ap = {}
    for runtime in ("paddle", "onnxruntime", "openvino"):
        result = RUNNER.invoke(app, ["eval", str(fp32), "--data", str(data), "--sizes", "608,320", "--runtime",
                                     runtime, "--json"])
        assert result.exit_code == 0, result.stderr
        ap[runtime] = json.loads(result.stdout)["box_ap"]
    assert ap["paddle"]["608"] > 50 and ap["paddle"]["320"] > 0
    for runtime in ("onnxruntime", "openvino"):
        for size in ("608", "320"):
            assert ap[runtime][size] == pytest.approx(ap["paddle"][size], abs=0.01), (runtime, size)


def test_zoo_quantize_takes_a_detector_and_derives_its_size_feed(models, tmp_path: Path) -> None:
    """`zoo quantize` on a legacy detector with a .npy of images: im_size is the images' own size; the INT8 model
    it writes scores the tiny COCO folder close to its FP32 source."""
    import cv2

    data, fp32, _ = models
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    images = [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in sorted((data / "val2017").glob("*.jpg"))]
    canvases = [(cv2.resize(im, (608, 608), interpolation=cv2.INTER_CUBIC) / 255.0 - mean) / std for im in images]
    calib = tmp_path / "calib.npy"
    np.save(calib, np.stack(canvases).transpose(0, 3, 1, 2).astype(np.float32))
    out = tmp_path / "int8"
    result = RUNNER.invoke(app, ["quantize", str(fp32), "--calib-data", str(calib), "--algo", "abs_max", "--batch-size",
                                 "2", "--batch-nums", "2", "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.stderr
    assert read_program(find_model_files(out)).is_int8
    ap = {}
    for model in (fp32, out):
        scored = RUNNER.invoke(app, ["eval", str(model), "--data", str(data), "--size", "608", "--json"])
        assert scored.exit_code == 0, scored.stderr
        ap[model] = json.loads(scored.stdout)["box_ap"]["608"]
    assert ap[fp32] > 50 and abs(ap[out] - ap[fp32]) < 10

"""The ONNX NMS graph (deploy/onnx_nms.py) against Paddle's own multiclass_nms kernel, on both ONNX runtimes.

The reference is Paddle's CPU kernel (`multiclass_nms3`, v1's algorithm), run in dygraph on the same boxes and scores;
the graph under test is appended to a pass-through ONNX model and run by ONNX Runtime and OpenVINO. The boxes are
drawn in clusters so that suppression decides most of them, and as pixel boxes where Paddle measures (w + 1) x (h + 1).
"""
from __future__ import annotations

from pathlib import Path
from typing import Tuple

import numpy as np
import pytest

from zoo.deploy.onnx import OnnxSession
from zoo.deploy.onnx_nms import NmsSpec, append_nms

CLASSES, BOXES = 4, 300


def _boxes_and_scores(normalized: bool, seed: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    rng = np.random.RandomState(seed)
    centres = rng.uniform(60, 540, size=(12, 2))[rng.randint(0, 12, BOXES)] + rng.normal(0, 6, (BOXES, 2))
    sizes = rng.uniform(8, 80, size=(BOXES, 2))
    boxes = np.concatenate([centres - sizes / 2, centres + sizes / 2], axis=1)
    boxes = np.round(boxes)  # pixel corners: where the +1 of Paddle's unnormalized areas matters most
    if normalized:
        boxes = boxes / 608.0
    scores = rng.uniform(0, 1, size=(CLASSES, BOXES)) ** 3  # most low, a few high, no ties
    return boxes[None].astype(np.float32), scores[None].astype(np.float32)


def _paddle_rows(boxes: np.ndarray, scores: np.ndarray, spec: NmsSpec) -> np.ndarray:
    import paddle

    out, _, _ = paddle._C_ops.multiclass_nms3(
        paddle.to_tensor(boxes), paddle.to_tensor(scores), None, spec.score_threshold, spec.nms_top_k,
        spec.keep_top_k, spec.nms_threshold, spec.normalized, 1.0, spec.background_label)
    rows = out.numpy().reshape(-1, 6)
    return rows if rows.shape != (1, 6) or rows[0, 0] >= 0 else rows[:0]


def _pass_through_onnx(path: Path, spec: NmsSpec) -> None:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["boxes_in"], ["boxes_out"]), helper.make_node("Identity", ["scores_in"], ["scores_out"])],
        "nms", [helper.make_tensor_value_info("boxes_in", TensorProto.FLOAT, [1, "m", 4]),
                helper.make_tensor_value_info("scores_in", TensorProto.FLOAT, [1, CLASSES, "m"])],
        [helper.make_tensor_value_info("boxes_out", TensorProto.FLOAT, [1, "m", 4]),
         helper.make_tensor_value_info("scores_out", TensorProto.FLOAT, [1, CLASSES, "m"])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    append_nms(path, spec)


def _sorted(rows: np.ndarray) -> np.ndarray:
    return rows[np.lexsort((rows[:, 1], rows[:, 0]))]


def _spec(**settings: float) -> NmsSpec:
    base = dict(boxes="b", scores="s", rows="rows", counts=None, outputs=("rows",), score_threshold=0.01,
                nms_top_k=1000, keep_top_k=100, nms_threshold=0.45, normalized=False, background_label=-1)
    base.update(settings)
    return NmsSpec(**base)  # type: ignore[arg-type]


CASES = {
    "yolov3 (pixels, keep_top_k cuts)": _spec(),
    "normalized, background 0, nms_top_k cuts": _spec(normalized=True, background_label=0, nms_top_k=20, keep_top_k=-1),
    "strict IoU, no caps": _spec(nms_threshold=0.1, nms_top_k=-1, keep_top_k=-1, score_threshold=0.2),
}


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
@pytest.mark.parametrize("case", list(CASES))
def test_onnx_nms_keeps_exactly_the_boxes_paddle_keeps(case: str, runtime: str, tmp_path: Path) -> None:
    spec = CASES[case]
    boxes, scores = _boxes_and_scores(spec.normalized)
    want = _paddle_rows(boxes, scores, spec)
    assert 10 < len(want) < CLASSES * BOXES / 2, len(want)  # suppression and the caps decided something
    path = tmp_path / "nms.onnx"
    _pass_through_onnx(path, spec)
    (got,) = OnnxSession(path, runtime).run([boxes, scores])
    assert got.shape == want.shape
    assert np.array_equal(_sorted(got)[:, 0], _sorted(want)[:, 0])
    np.testing.assert_allclose(_sorted(got), _sorted(want), rtol=0, atol=1e-6)
    assert np.all(np.diff(got[:, 1]) <= 0)  # best first


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_onnx_nms_with_nothing_above_the_threshold_returns_no_row(runtime: str, tmp_path: Path) -> None:
    spec = _spec(score_threshold=0.999999)
    boxes, scores = _boxes_and_scores(False)
    assert len(_paddle_rows(boxes, scores, spec)) == 0
    path = tmp_path / "nms.onnx"
    _pass_through_onnx(path, spec)
    (got,) = OnnxSession(path, runtime).run([boxes, scores])
    assert got.shape == (0, 6)


def test_the_half_pixel_growth_is_what_makes_pixel_boxes_agree(tmp_path: Path) -> None:
    """Negative control: the same graph measuring pixel boxes as ONNX does (x2 - x1) keeps other boxes than Paddle."""
    spec = _spec()
    boxes, scores = _boxes_and_scores(False)
    want = _paddle_rows(boxes, scores, spec)
    path = tmp_path / "nms.onnx"
    _pass_through_onnx(path, _spec(normalized=True))  # no growth, same pixel boxes
    (got,) = OnnxSession(path, "onnxruntime").run([boxes, scores])
    assert got.shape != want.shape or not np.allclose(_sorted(got), _sorted(want), atol=1e-6)

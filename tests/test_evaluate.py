"""Top-k accuracy through the real Paddle Inference predictor on tiny models with known answers."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from zoo.errors import DataError, ModelError
from zoo.evaluate.classification import TopK, evaluate


def _pool_model(out: Path, channels: int) -> Path:
    """A network whose class scores are the per-channel means of its input: answers are known."""
    import paddle

    from zoo.models import save_inference

    class Pool(paddle.nn.Layer):
        def __init__(self) -> None:
            super().__init__()
            # one parameter so that the export has a params file like every real model
            self.gain = self.create_parameter([1], default_initializer=paddle.nn.initializer.Constant(1.0))

        def forward(self, x):
            return paddle.mean(x, axis=[2, 3]) * self.gain

    save_inference(Pool(), out, (channels, 2, 2))
    return out


@pytest.fixture(scope="module")
def pool7(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _pool_model(tmp_path_factory.mktemp("pool7"), 7)


def _inputs(scores: np.ndarray) -> np.ndarray:
    return np.repeat(np.repeat(scores[:, :, None, None], 2, axis=2), 2, axis=3).astype("float32")


def test_known_top1_top5(pool7: Path) -> None:
    rng = np.random.default_rng(0)
    scores = np.stack([rng.permutation(7).astype("float32") for _ in range(10)])
    ranks = np.argsort(-scores, axis=1)
    # labels: rank 0 for 4 images (top-1 hits), rank 3 for 3 (top-5 only), rank 6 for 3 (misses)
    labels = np.array([ranks[i, 0] for i in range(4)] + [ranks[i, 3] for i in range(4, 7)] + [ranks[i, 6] for i in range(7, 10)])
    batches = [(_inputs(scores[:6]), labels[:6]), (_inputs(scores[6:]), labels[6:])]
    result = evaluate(pool7, batches, threads=1)
    assert result == {"top1": 40.0, "top5": 70.0, "images": 10, "classes": 7}


def test_fewer_than_five_classes(tmp_path: Path) -> None:
    model = _pool_model(tmp_path / "pool3", 3)
    scores = np.array([[0, 1, 2], [2, 1, 0], [0, 2, 1]], dtype="float32")
    labels = np.array([2, 1, 0])
    result = evaluate(model, [(_inputs(scores), labels)])
    assert result["top1"] == pytest.approx(100 / 3, abs=1e-3)
    assert result["top5"] is None and result["classes"] == 3  # top-5 of 3 classes would hold every class
    assert result["images"] == 3


def test_topk_meter_ties_and_shapes() -> None:
    meter = TopK(5)
    meter.update(np.array([[0.1, 0.9], [0.8, 0.2]]), np.array([[1], [1]]))
    assert meter.result() == {"top1": 50.0, "top5": None, "images": 2, "classes": 2}
    with pytest.raises(ModelError, match="2 rows for 3 images"):
        meter.update(np.zeros((2, 2)), np.zeros(3))


def test_no_images_is_an_error(pool7: Path) -> None:
    with pytest.raises(DataError, match="no images"):
        evaluate(pool7, [])


def test_rejected_input_shape(pool7: Path) -> None:
    with pytest.raises(ModelError, match="rejected inputs of shape"):
        evaluate(pool7, [(np.zeros((1, 7, 2), "float32"), np.zeros(1, "int64"))])


def test_folder_without_model(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="holds no Paddle inference model"):
        evaluate(tmp_path, [])

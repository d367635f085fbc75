"""`zoo eval PATH` refuses what it would score wrong: a fixed non-square input (the transform makes square
crops) and an output that is not (batch, classes) scores (a dense map would be scored as thousands of classes)."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import RUNNER
from tests.deploy_models import pooled_classifier
from zoo.cli.main import app


def _save(net, folder: Path, shape: list) -> Path:  # type: ignore[no-untyped-def]
    import paddle

    net.eval()
    paddle.jit.save(net, str(folder / "inference"), input_spec=[paddle.static.InputSpec(shape, "float32", "x")])
    return folder


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict:
    import paddle

    class DenseMap(paddle.nn.Layer):
        def __init__(self) -> None:
            super().__init__()
            self.conv = paddle.nn.Conv2D(3, 1, 3, padding=1)

        def forward(self, x):  # type: ignore[no-untyped-def]
            return paddle.nn.functional.sigmoid(self.conv(x))

    root = tmp_path_factory.mktemp("wrong")
    paddle.seed(0)
    return {"wide": pooled_classifier(root / "wide", [None, 3, 48, 192]),
            "dense": _save(DenseMap(), root / "dense", [None, 3, 32, 32])}


@pytest.fixture
def digits(zoo_home: Path) -> Path:
    from zoo.data.digits import materialize

    return materialize()


def test_a_non_square_model_is_not_scored_on_square_crops(models: dict, digits: Path) -> None:
    result = RUNNER.invoke(app, ["eval", str(models["wide"]), "--data", str(digits)])
    assert result.exit_code == 2, result.output
    assert "takes 48x192 inputs" in " ".join(result.output.split())


def test_a_dense_output_is_not_scored_as_classes(models: dict, digits: Path) -> None:
    result = RUNNER.invoke(app, ["eval", str(models["dense"]), "--data", str(digits), "--max-samples", "8"])
    assert result.exit_code == 1, result.output
    text = " ".join(result.output.split())
    assert "not (batch, classes) scores" in text and "top-1     " not in result.output  # no score line

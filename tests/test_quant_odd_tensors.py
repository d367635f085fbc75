"""Calibration reads every tensor a quantized op takes: a 0-d scalar and an integer tensor on the model's
shape path included (the default fast engine measures them; PaddleSlim's own search fails with a hint)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from zoo.cli.main import app

OPS = "conv2d,elementwise_add,elementwise_mul"


@pytest.fixture(scope="module")
def odd_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import paddle

    class Net(paddle.nn.Layer):
        def __init__(self) -> None:
            super().__init__()
            self.conv = paddle.nn.Conv2D(3, 4, 3, padding=1)

        def forward(self, x):  # type: ignore[no-untyped-def]
            y = self.conv(x)
            total = paddle.sum(y) + 1.0  # elementwise_add of a 0-d tensor
            n = paddle.shape(x)[0] + 1  # elementwise_add on the int32 shape path
            return y * total / paddle.cast(n, "float32")

    folder = tmp_path_factory.mktemp("odd")
    paddle.seed(0)
    net = Net()
    net.eval()
    paddle.jit.save(net, str(folder / "inference"), input_spec=[paddle.static.InputSpec([None, 3, 8, 8], "float32", "x")])
    np.save(folder / "calib.npy", np.random.default_rng(0).random((8, 3, 8, 8), dtype=np.float32))
    return folder


@pytest.mark.parametrize("algo", ["mse", "avg", "KL", "abs_max"])
def test_the_fast_engine_calibrates_0d_and_integer_tensors(odd_model: Path, tmp_path: Path, algo: str) -> None:
    result = CliRunner().invoke(app, ["quantize", str(odd_model), "--calib-data", str(odd_model / "calib.npy"),
                                      "--algo", algo, "--ops", OPS, "--batch-size", "4", "--batch-nums", "2",
                                      "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "o" / "inference.pdmodel").is_file()


def test_paddleslims_failure_on_them_says_what_to_do(odd_model: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["quantize", str(odd_model), "--calib-data", str(odd_model / "calib.npy"),
                                      "--algo", "avg", "--engine", "paddleslim", "--ops", OPS, "--batch-size", "4",
                                      "--batch-nums", "2", "--out", str(tmp_path / "o")])
    assert result.exit_code == 1
    assert "--engine fast" in " ".join(result.output.split())

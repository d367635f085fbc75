"""A model's own preprocessing for image folders: BGR channels, non-square inputs, direct resize and
resize-to-height with padded width, in eval, quantize and bench --data; and the refusals when the
folder's images cannot be made to fit the model."""
from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from zoo.cli.main import app
from zoo.data.transforms import eval_transform
from zoo.schema import Backend, Preprocess

from .conftest import RUNNER


def _run(*args: str):
    return RUNNER.invoke(app, list(args))


def _err(res) -> str:
    return " ".join(res.stderr.split())


def _channel_means(folder: Path, shape: tuple) -> Path:
    """A model whose class scores are the mean of each input channel (class i: channel i dominates)."""
    import paddle

    from zoo.models import save_inference

    class ChannelMeans(paddle.nn.Layer):
        def __init__(self) -> None:
            super().__init__()
            identity = paddle.nn.initializer.Assign(np.eye(3, dtype=np.float32).reshape(3, 3, 1, 1))
            self.conv = paddle.nn.Conv2D(3, 3, 1, weight_attr=paddle.ParamAttr(initializer=identity))  # quantizable

        def forward(self, x):  # type: ignore[no-untyped-def]
            return paddle.mean(self.conv(x), axis=[2, 3])

    save_inference(ChannelMeans(), folder, shape)
    return folder


@pytest.fixture(scope="module")
def text_line_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fixed 3x16x48 input, as text-line classifiers take (48x192 in the published ones)."""
    return _channel_means(tmp_path_factory.mktemp("textline"), (3, 16, 48))


@pytest.fixture(scope="module")
def dynamic_width_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Height 16 declared, width open, as text recognizers take."""
    return _channel_means(tmp_path_factory.mktemp("dynw"), (3, 16, -1))


@pytest.fixture(scope="module")
def bgr_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """val/<class>/ where class i is the image whose BGR channel i dominates (0 blue, 1 green, 2 red)."""
    root = tmp_path_factory.mktemp("bgr")
    colours = {"0_blue": (20, 20, 230), "1_green": (20, 230, 20), "2_red": (230, 20, 20)}  # RGB values
    for name, rgb in colours.items():
        folder = root / "val" / name
        folder.mkdir(parents=True)
        for i in range(2):
            Image.new("RGB", (60 + 10 * i, 20), rgb).save(folder / f"{i}.png")
    return root


def test_height_pad_is_the_text_line_arithmetic() -> None:
    """Resize to height H keeping the aspect (width rounded up, at most W), normalize, then zero-pad the width:
    checked against the arithmetic written out here with OpenCV and numpy on a BGR image."""
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (30, 70, 3), dtype=np.uint8)
    pre = Preprocess(backend=Backend.cv2, resize_pad=(16, 48), channels="BGR", mean=(0.5,) * 3, std=(0.5,) * 3)
    got = eval_transform(pre)(rgb)

    bgr = rgb[:, :, ::-1]
    width = min(48, math.ceil(16 * 70 / 30))  # 38
    resized = cv2.resize(bgr, (width, 16)).astype(np.float32)
    expect = np.zeros((3, 16, 48), np.float32)
    expect[:, :, :width] = ((resized / 255.0 - 0.5) / 0.5).transpose(2, 0, 1)
    assert got.shape == (3, 16, 48)
    assert np.all(got[:, :, width:] == 0)
    np.testing.assert_allclose(got, expect, atol=2 / 255 / 0.5 + 1e-6)  # OpenCV's SIMD and scalar kernels round apart


def test_direct_resize_makes_height_by_width() -> None:
    pre = Preprocess(resize_hw=(16, 48))
    assert eval_transform(pre)(Image.new("RGB", (100, 100))).shape == (3, 16, 48)
    assert pre.output_hw() == (16, 48)
    with pytest.raises(ValueError, match="not with"):
        Preprocess(resize_hw=(16, 48), crop=16)


def test_bgr_is_scored_as_bgr(text_line_model: Path, bgr_data: Path) -> None:
    """The model reads BGR: --channels bgr scores it right, the RGB default does not, and says what it used."""
    res = _run("eval", str(text_line_model), "--data", str(bgr_data), "--resize", "direct", "--channels", "bgr", "--json")
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["top1"] == 100.0 and out["input_size"] == "16x48"
    assert out["preprocess"]["channels"] == "BGR" and out["preprocess"]["resize_hw"] == [16, 48]
    assert out["top5"] is None  # 3 classes: top-5 says nothing
    res = _run("eval", str(text_line_model), "--data", str(bgr_data), "--resize", "direct", "--json")
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout)["top1"] < 50.0  # red and blue swap


def test_height_pad_on_a_folder(text_line_model: Path, bgr_data: Path) -> None:
    res = _run("eval", str(text_line_model), "--data", str(bgr_data), "--resize", "height-pad", "--channels", "bgr",
               "--mean", "0.5,0.5,0.5", "--std", "0.5,0.5,0.5", "--json")
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["top1"] == 100.0 and out["preprocess"]["resize_pad"] == [16, 48]
    assert out["preprocess"]["mean"] == [0.5, 0.5, 0.5]


def test_non_square_model_with_a_square_resize_is_refused(text_line_model: Path, bgr_data: Path) -> None:
    res = _run("eval", str(text_line_model), "--data", str(bgr_data))
    assert res.exit_code == 2
    assert "takes 16x48 inputs" in _err(res) and "--resize direct" in _err(res) and "Traceback" not in res.stderr


def test_one_open_side_needs_the_size(dynamic_width_model: Path, bgr_data: Path) -> None:
    res = _run("eval", str(dynamic_width_model), "--data", str(bgr_data), "--resize", "height-pad")
    assert res.exit_code == 2 and "--input-size H,W" in _err(res)
    res = _run("eval", str(dynamic_width_model), "--data", str(bgr_data), "--resize", "height-pad",
               "--input-size", "20,48")
    assert res.exit_code == 2 and "contradicts the model's declared 16x? input" in _err(res)
    res = _run("eval", str(dynamic_width_model), "--data", str(bgr_data), "--resize", "height-pad", "--channels", "bgr",
               "--input-size", "16,64", "--json")
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout)["input_size"] == "16x64"


def test_unknown_flags_values_are_usage_errors(text_line_model: Path, bgr_data: Path) -> None:
    for flags, says in ((["--channels", "gbr"], "--channels"), (["--resize", "fill"], "--resize"),
                        (["--input-size", "1,2,3"], "--input-size")):
        res = _run("eval", str(text_line_model), "--data", str(bgr_data), *flags)
        assert res.exit_code == 2 and says in _err(res) and "Traceback" not in res.stderr


def test_quantize_calibrates_with_the_models_preprocessing(text_line_model: Path, bgr_data: Path,
                                                            tmp_path: Path) -> None:
    """The calibration folder is read as eval reads it: refused without a non-square resize, accepted with one."""
    base = ["quantize", str(text_line_model), "--calib-data", str(bgr_data), "--batch-size", "2", "--batch-nums", "3",
            "--algo", "abs_max", "--json"]
    res = _run(*base, "--out", str(tmp_path / "a"))
    assert res.exit_code == 2 and "takes 16x48 inputs" in _err(res)
    res = _run(*base, "--out", str(tmp_path / "b"), "--resize", "direct", "--channels", "bgr")
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout)["calib_samples"] == 6
    assert (tmp_path / "b" / "inference.pdmodel").is_file()


def test_quantize_input_size_checks_an_array(dynamic_width_model: Path, tmp_path: Path) -> None:
    np.save(tmp_path / "calib.npy", np.zeros((2, 3, 16, 40), np.float32))
    res = _run("quantize", str(dynamic_width_model), "--calib-data", str(tmp_path / "calib.npy"), "--input-size", "16,64",
               "--out", str(tmp_path / "q"))
    assert res.exit_code != 0 and "16, 64" in _err(res).replace("16,64", "16, 64") and "Traceback" not in res.stderr


def test_bench_data_uses_the_same_preprocessing(text_line_model: Path, bgr_data: Path) -> None:
    """bench --data on the non-square model: refused before timing without a resize that fits, scored with one."""
    base = ["bench", str(text_line_model), "--data", str(bgr_data), "--repeat", "2", "--warmup", "0"]
    res = _run(*base)
    assert res.exit_code == 2 and "takes 16x48 inputs" in _err(res)
    res = _run(*base, "--resize", "direct", "--channels", "bgr", "--json")
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout)["rows"][0]["p50_ms"] > 0

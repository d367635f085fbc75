"""Both layouts of a PaddleSlim 1.x quant-aware export: float/ is evaluated, int/ is routed to Paddle Lite."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from zoo.cli.main import app
from zoo.errors import ModelError
from zoo.modelfiles import find_model_files
from zoo.predictor import Predictor

from .conftest import RUNNER
from .quant_export_standins import CLASSES, INPUT_SHAPE, build_quant_export


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_quant_export(tmp_path_factory.mktemp("quant_export") / "yolo_quant")


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tiny_imagenet")
    rng = np.random.default_rng(0)
    for label in range(2):
        folder = root / "val" / f"class{label}"
        folder.mkdir(parents=True)
        for k in range(3):
            Image.fromarray(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)).save(folder / f"{k}.png")
    return root


def test_export_folder_is_read_from_float(export: Path) -> None:
    files = find_model_files(export)
    assert files.folder == export / "float" and files.model_file.name == "__model__"
    out = Predictor(export).run(np.random.default_rng(1).random((2, *INPUT_SHAPE), dtype=np.float32))[0]
    assert out.shape == (2, CLASSES) and np.isfinite(out).all()


def test_int_model_really_fails_in_paddle_inference(export: Path) -> None:
    """Why int/ is refused up front: Paddle Inference itself cannot run its int8 weights."""
    from paddle import inference

    config = inference.Config(str(export / "int" / "__model__"), str(export / "int" / "__params__"))
    config.disable_glog_info()
    with pytest.raises(Exception, match="int8"):
        predictor = inference.create_predictor(config)
        handle = predictor.get_input_handle("image")
        handle.reshape([1, *INPUT_SHAPE])
        handle.copy_from_cpu(np.zeros((1, *INPUT_SHAPE), np.float32))
        predictor.run()


def test_int_model_is_recognised_by_its_int8_weights(export: Path) -> None:
    with pytest.raises(ModelError, match=r"int8 \(conv2d_0\.w_0\.int8, fc_0\.w_0\.int8\).*int/ model") as info:
        Predictor(export / "int")
    assert "zoo export" in info.value.hint and "--target lite" in info.value.hint
    assert str(export / "float") in info.value.hint  # the runnable sibling is named


def test_zoo_eval_of_int_model_points_to_lite(export: Path, images: Path) -> None:
    result = RUNNER.invoke(app, ["eval", str(export / "int"), "--data", str(images), "--input-size", "8"])
    text = " ".join((result.stdout + result.stderr).split())
    assert result.exit_code == 1, text
    assert "only Paddle Lite runs" in text and "zoo export" in text and "Traceback" not in text


def test_zoo_eval_of_export_folder_scores_float(export: Path, images: Path) -> None:
    result = RUNNER.invoke(app, ["eval", str(export), "--data", str(images), "--input-size", "8", "--json"])
    assert result.exit_code == 0, result.stdout + result.stderr
    assert '"images": 6' in result.stdout and str(export / "float") in result.stdout


def test_zoo_export_lite_takes_the_int_model(export: Path, tmp_path: Path) -> None:
    out = tmp_path / "lite"
    result = RUNNER.invoke(app, ["export", str(export / "int"), "--target", "lite", "--arch", "arm", "--out", str(out)])
    assert result.exit_code == 0, result.stdout + result.stderr
    nb = list(out.glob("*.arm.int8.nb"))
    assert len(nb) == 1 and nb[0].stat().st_size > 0
    assert "conv2d:arm/int8" in " ".join(result.stdout.split())

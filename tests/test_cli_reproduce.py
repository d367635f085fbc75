"""`zoo reproduce`: bad input gives a clear error and exit 1, with nothing half-written."""
from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from zoo.cli.main import app

runner = CliRunner()


def _run(*args: str):  # type: ignore[no-untyped-def]
    result = runner.invoke(app, ["reproduce", *args])
    result.text = " ".join(result.output.split())
    return result


def test_imagenet_entry_without_data(tmp_path: Path) -> None:
    result = _run("mobilenetv1_qat", "--out", str(tmp_path / "o"))
    assert result.exit_code == 1
    assert "needs its imagenet data" in result.text and "--data" in result.text
    assert not (tmp_path / "o").exists()


def test_missing_and_empty_data_folders(tmp_path: Path) -> None:
    result = _run("mobilenetv3_small_ptq", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "o"))
    assert result.exit_code == 1 and "error:" in result.text and "Traceback" not in result.text
    (tmp_path / "empty").mkdir()
    result = _run("mobilenetv3_small_ptq", "--data", str(tmp_path / "empty"), "--out", str(tmp_path / "o"))
    assert result.exit_code == 1 and "error:" in result.text
    assert not (tmp_path / "o").exists()  # the data is checked before anything is downloaded or written


def test_qat_needs_a_train_split(tmp_path: Path) -> None:
    from tests.repro_standins import make_imagenet

    data = make_imagenet(tmp_path / "d", classes=2, per_class=1)
    import shutil

    shutil.rmtree(data / "train")
    result = _run("mobilenetv1_qat", "--data", str(data), "--out", str(tmp_path / "o"))
    assert result.exit_code == 1 and "no train split" in result.text


def test_unknown_entry_suggests_names() -> None:
    result = _run("mobilenetv1_qta")
    assert result.exit_code == 1 and "mobilenetv1_qat" in result.text


def test_gpu_on_a_cpu_build_is_a_clear_error(tmp_path: Path) -> None:
    import paddle

    if paddle.device.is_compiled_with_cuda():
        pytest.skip("this paddle has CUDA")
    result = _run("mobilenetv1_qat", "--device", "gpu", "--out", str(tmp_path / "o"))
    assert result.exit_code == 2 and "no CUDA support" in result.text


@pytest.mark.parametrize("name", ["yolov3_r34_coco_quant_post", "yolov3_r34_coco_quant_aware"])
def test_a_detection_entry_asks_for_its_coco_data(name: str) -> None:
    result = _run(name)
    assert result.exit_code == 1 and "--data" in result.text and "instances_val2017.json" in result.text

"""`infer_cfg.yml`: an export folder's own preprocessing is read, reported, and overridable by flags."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.det_models import build_box_model, write_coco
from zoo.cli.main import app
from zoo.data.infer_cfg import read_infer_cfg
from zoo.errors import DataError
from zoo.schema import Backend, Interpolation

from .conftest import RUNNER
from .test_evaluate_detection import EXACT, IMAGES

# what PaddleDetection 0.x's export writes for YOLOv3 (tools/export_model.py, release/0.2)
CFG_0X = """\
use_python_inference: false
mode: fluid
draw_threshold: 0.5
metric: COCO
arch: YOLO
Preprocess:
- interp: 2
  max_size: 0
  target_size: 608
  type: Resize
  use_cv2: true
- is_channel_first: false
  is_scale: false
  mean: [123.675, 116.28, 103.53]
  std: [58.395, 57.12, 57.375]
  type: Normalize
- channel_first: true
  to_bgr: true
  type: Permute
label_list: [a, b]
"""
# and 2.x's (deploy/python/infer.py reads it)
CFG_2X = """\
mode: paddle
arch: YOLO
Preprocess:
- interp: 1
  keep_ratio: false
  target_size: [416, 416]
  type: Resize
- is_scale: true
  mean: [0.485, 0.456, 0.406]
  std: [0.229, 0.224, 0.225]
  type: NormalizeImage
- type: Permute
"""


def test_paddledetection_0x_config(tmp_path: Path) -> None:
    (tmp_path / "infer_cfg.yml").write_text(CFG_0X)
    cfg = read_infer_cfg(tmp_path)
    pre = cfg.preprocess
    assert cfg.size == 608 and pre.resize == 608 and pre.interpolation is Interpolation.bicubic
    assert pre.backend is Backend.cv2 and pre.scale is False and pre.mean == (123.675, 116.28, 103.53)
    assert pre.channels == "BGR" and pre.layout == "CHW"


def test_paddledetection_2x_config(tmp_path: Path) -> None:
    (tmp_path / "infer_cfg.yml").write_text(CFG_2X)
    cfg = read_infer_cfg(tmp_path)
    assert cfg.size == 416 and cfg.preprocess.interpolation is Interpolation.bilinear
    assert cfg.preprocess.scale is True and cfg.preprocess.channels == "RGB" and cfg.preprocess.layout == "CHW"
    assert read_infer_cfg(tmp_path / "missing") is None


@pytest.mark.parametrize("text, message", [
    (CFG_2X.replace("keep_ratio: false", "keep_ratio: true"), "keeps the aspect ratio"),
    (CFG_2X.replace("[416, 416]", "[416, 608]"), "not square"),
    (CFG_2X.replace("interp: 1", "interp: 3"), "interp 3"),
    (CFG_2X + "- type: PadStride\n  stride: 32\n", "'PadStride' is not one the zoo can apply"),
    (CFG_2X.replace("mean: [0.485, 0.456, 0.406]", "mean: [0.5]"), r"mean is \[0\.5\]"),
    ("Preprocess: [\n", "cannot be read as YAML"),
    ("mode: paddle\n", "no 'Preprocess' list"),
])
def test_unusable_configs_are_refused_by_name(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "infer_cfg.yml").write_text(text)
    with pytest.raises(DataError, match=message) as info:
        read_infer_cfg(tmp_path)
    assert "infer_cfg.yml" in str(info.value) and info.value.hint


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("infer_cfg")
    model = build_box_model(root / "model", "legacy", EXACT)
    coco = write_coco(root / "coco", IMAGES, plus_one=True)
    return model.folder, coco


def _eval(folder: Path, coco: Path, *flags: str):
    result = RUNNER.invoke(app, ["eval", str(folder), "--data", str(coco), "--json", *flags])
    return result, (json.loads(result.stdout) if result.exit_code == 0 else None)


def test_eval_reads_the_folders_config_and_flags_override_it(exported, tmp_path: Path) -> None:
    """The box model scores white images only when their preprocessed mean is positive: a config that maps
    white to 0 (mean 1, std 1 after scaling) silences it, and --mean 0,0,0 brings it back."""
    model, coco = exported
    folder = tmp_path / "export"
    shutil.copytree(model, folder)
    result, plain = _eval(folder, coco)
    assert result.exit_code == 0 and plain["box_ap"]["32"] == 100.0 and "preprocess_source" not in plain

    cfg = CFG_2X.replace("[416, 416]", "[32, 32]").replace("[0.485, 0.456, 0.406]", "[1, 1, 1]")
    (folder / "infer_cfg.yml").write_text(cfg.replace("[0.229, 0.224, 0.225]", "[1, 1, 1]"))
    result, read = _eval(folder, coco)
    assert result.exit_code == 0, result.stdout + result.stderr
    assert read["preprocess_source"] == str(folder / "infer_cfg.yml")
    assert read["input_size"] == [32] and read["sizes"][0]["preprocess"]["mean"] == [1.0, 1.0, 1.0]
    assert read["box_ap"]["32"] == 0.0

    result, overridden = _eval(folder, coco, "--mean", "0,0,0")
    assert result.exit_code == 0 and overridden["box_ap"]["32"] == 100.0
    assert overridden["sizes"][0]["preprocess"]["std"] == [1.0, 1.0, 1.0]  # the rest still from the file

    text = RUNNER.invoke(app, ["eval", str(folder), "--data", str(coco)])
    assert "preprocessing from" in " ".join(text.stdout.split()) and "opencv" in text.stdout


def test_eval_refuses_an_unusable_config_without_traceback(exported, tmp_path: Path) -> None:
    model, coco = exported
    folder = tmp_path / "export"
    shutil.copytree(model, folder)
    (folder / "infer_cfg.yml").write_text(CFG_2X.replace("keep_ratio: false", "keep_ratio: true"))
    result = RUNNER.invoke(app, ["eval", str(folder), "--data", str(coco)])
    text = " ".join((result.stdout + result.stderr).split())
    assert result.exit_code == 1 and "keeps the aspect ratio" in text and "Traceback" not in text

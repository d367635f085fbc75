"""The Python API as a user calls it: zoo.list_entries and zoo.load (README "Python API")."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import zoo
from zoo.data.digits import materialize
from zoo.errors import UsageError, UnknownNameError


def test_import_zoo_stays_light() -> None:
    code = "import sys, zoo; zoo.__version__; print('paddle' in sys.modules, 'zoo.registry' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]


def test_list_entries_filters_by_pattern() -> None:
    digits = zoo.list_entries("digits_*")
    assert digits == sorted(digits) and "digits_mobilenetv1_ptq" in digits
    assert all(name.startswith("digits_") for name in digits)
    assert set(digits) < set(zoo.list_entries())
    assert zoo.list_entries("no_such_entry_*") == []


@pytest.fixture
def digits_val(zoo_home: Path) -> list:
    root = materialize(zoo_home)  # generated once per session home
    return sorted((root / "val").glob("*/*.png"))[::6]  # 61 images over the ten classes


def test_load_an_entry_and_classify_its_data(digits_val: list) -> None:
    model = zoo.load("digits_mobilenetv1_ptq")
    assert model.task == "classification" and model.input_size == 32
    assert model.files.model_file.is_file() and model.provenance["sha256"] == model.recipe.artifacts[model.recipe.default_artifact].sha256
    assert model.published[0]["fp32_top1"] == model.recipe.published[0].fp32().get("top1")
    outputs = model.predict(digits_val)[0]
    labels = np.array([int(p.parent.name) for p in digits_val])
    # the entry's FP32 top-1 is 93.41 on the whole val split: a wrong transform (size, mean, layout) loses it
    assert (outputs.argmax(1) == labels).mean() >= 0.85


def test_load_a_folder_uses_its_declared_size(digits_val: list) -> None:
    entry = zoo.load("digits_mobilenetv1_ptq")
    folder = zoo.load(entry.files.folder)
    assert folder.recipe is None and folder.published == [] and folder.input_size == 32
    assert folder.provenance["model_sha256"] == entry.provenance["model_sha256"]
    assert folder.predict(digits_val[:4])[0].shape == (4, 10)


def test_bad_requests_are_clear_errors() -> None:
    with pytest.raises(UsageError, match="has no artifact 'quantised'"):
        zoo.load("digits_mobilenetv1_ptq", artifact="quantised")
    with pytest.raises(UnknownNameError):
        zoo.load("digits_mobilenet_ptq_typo")

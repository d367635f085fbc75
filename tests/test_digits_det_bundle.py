"""The bundled digits detector: its tar matches the recipe, the recipe matches the training script, and
`zoo eval` on the bundled data gives the published FP32 box AP, agreeing with an independent pycocotools run on a json this test writes."""
from __future__ import annotations

import hashlib
import importlib.util
import json
import re
import tarfile
from pathlib import Path

import pytest

from tests.conftest import RUNNER
from zoo.cli.main import app
from zoo.registry import get_recipe
from zoo.schema import Role

REPO = Path(__file__).resolve().parents[1]
ASSETS = REPO / "zoo" / "assets"
NAME = "digits_yolov3_mobilenetv1_ptq"


def _script():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("train_digits_det", REPO / "scripts" / "train_digits_det.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def test_bundled_tar_matches_recipe() -> None:
    art = get_recipe(NAME).artifacts[Role.fp32]
    blob = (ASSETS / art.bundled).read_bytes()
    assert len(blob) == art.size
    assert hashlib.sha256(blob).hexdigest() == art.sha256
    with tarfile.open(ASSETS / art.bundled) as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == ["inference.pdiparams", "inference.pdmodel"]
    assert all(m.mtime == 0 and m.uid == 0 and m.isfile() for m in members)


def test_recipe_matches_training_script() -> None:
    script = _script()
    recipe = get_recipe(NAME)
    assert recipe.preprocess == script.PREPROCESS
    assert [row.input_size for row in recipe.published] == list(script.EVAL_SIZES)
    assert recipe.detection is not None and recipe.detection.contract.value == "legacy"
    assert [tuple(a) for a in recipe.detection.anchors] == list(script.ANCHORS)
    assert [tuple(m) for m in recipe.detection.anchor_masks] == list(script.ANCHOR_MASKS)
    assert recipe.arch_args == {"width": script.WIDTH}
    assert recipe.dataset.num_classes == script.NUM_CLASSES
    # the published FP32 numbers are the ones the script measured
    measured = json.loads((ASSETS / "digits_models.json").read_text())[script.NAME]
    assert measured["sha256"] == recipe.artifacts[Role.fp32].sha256
    assert {str(row.input_size): row.fp32().get("box_ap") for row in recipe.published} == measured["box_ap"]


def test_update_recipes_rewrites_checksum_and_box_ap(tmp_path: Path) -> None:
    script = _script()
    text = (REPO / "recipes" / f"{NAME}.yaml").read_text()
    (tmp_path / f"{NAME}.yaml").write_text(text)
    entry = {"file": get_recipe(NAME).artifacts[Role.fp32].bundled, "sha256": "ab" * 32, "size": 123,
             "box_ap": {"160": 61.25, "128": 55.5, "96": 40.0}}
    assert script.update_recipes(entry, tmp_path) == [f"{NAME}.yaml"]
    updated = (tmp_path / f"{NAME}.yaml").read_text()
    assert f"sha256: {'ab' * 32}\n    size: 123\n" in updated
    rows = {int(m.group(1)): m.group(0) for m in re.finditer(r"input_size: (\d+),[^\n]*", updated)}
    assert "fp32_box_ap: 61.25" in rows[160] and "fp32_box_ap: 40.00" in rows[96]
    published = {r.input_size: r.metric("box_ap") for r in get_recipe(NAME).published}  # the INT8 numbers stay as they were
    assert all(f"box_ap: {published[size]:.2f}" in rows[size] for size in published if published[size] is not None)
    assert updated.count("\n") == text.count("\n")  # comments and layout kept


def test_entry_data_is_the_bundled_detection_set(zoo_home: Path) -> None:
    from zoo.tasks import get_task

    folder = get_task("detection").resolve_data(get_recipe(NAME), None)
    assert folder == zoo_home / "datasets" / "digits_det"
    assert (folder / "annotations" / "instances_val2017.json").is_file()


def test_zoo_eval_reproduces_the_published_fp32_box_ap(zoo_home: Path) -> None:
    from tests.det_standins import independent_box_ap
    from zoo.data.digits_det import dataset_dir
    from zoo.hub import fetch

    result = RUNNER.invoke(app, ["eval", NAME, "--json", "--batch-size", "16"])
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    recipe = get_recipe(NAME)
    assert report["images"] == recipe.dataset.eval_images and report["contract"] == "legacy"
    published = {str(row.input_size): row.fp32().get("box_ap") for row in recipe.published}
    for size, value in published.items():
        assert report["box_ap"][size] == pytest.approx(value, abs=recipe.tolerance.eval)
    assert report["comparison"]["status"] == "PASS"
    # a real detector at the largest size, as zoo eval measures it
    assert report["box_ap"][str(recipe.published[0].input_size)] >= 50
    # the same number from a direct pycocotools run on a json written here
    folder = fetch(recipe, Role.fp32).path
    largest = recipe.published[0].input_size
    expected = independent_box_ap(folder, dataset_dir(), largest, batch_size=16)
    assert report["box_ap"][str(largest)] == pytest.approx(expected["box_ap"], abs=0.01)

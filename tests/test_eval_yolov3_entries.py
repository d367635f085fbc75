"""The five published YOLOv3 entries, evaluated end to end with `zoo eval NAME --data TINY_COCO`.

Each entry gets a stand-in archive (`__model__`/`__params__` of a hand-wired detector built with the
real ops: fake-quant/dequant of its QAT or PTQ kind, deformable_conv for the DCN entry, yolo_box,
multiclass_nms), served over real HTTP through ZOO_MIRROR, fetched, unpacked and normalized by the
hub, and scored at the recipe's sizes with the recipe's preprocessing (raw 0..255 pixels for the
Objects365 entry). Every box AP must agree to 0.01 with an independent scorer (tests/det_standins.py:
a static Executor, a json written by hand with the 0.x conventions, pycocotools). The numbers cannot
match the published ones (4 images, not COCO val2017): the comparison is PARTIAL.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, Iterator, Tuple

import pytest

from tests.conftest import RUNNER
from tests.det_standins import ENTRIES, build_legacy_model, independent_box_ap, legacy_tar, make_tiny_coco, standin_recipe
from tests.httpserver import FileServer
from zoo.cli.main import app

_MISSING_FIRST = "yolov3_mobilenetv1_coco_quant_aware"  # its first URL candidate is not served: the second one is


@pytest.fixture(scope="module")
def standins(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tuple[FileServer, Path, Path, Dict[str, Tuple[Path, str]]]]:
    root = tmp_path_factory.mktemp("yolov3-standins")
    data = make_tiny_coco(root / "coco")
    recipes = root / "recipes"
    models: Dict[str, Tuple[Path, str]] = {}
    with FileServer() as server:
        for name, (kind, dcn, scale) in ENTRIES.items():
            standin, paths = standin_recipe(name, recipes)
            folder = build_legacy_model(root / "models" / name, kind=kind, dcn=dcn, scale=scale)
            served = paths[1] if name == _MISSING_FIRST else paths[0]
            server.add(served, legacy_tar(folder, Path(served).stem))
            models[name] = (folder, served)
        yield server, data, recipes, models


@pytest.fixture
def env(standins, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    server, data, recipes, models = standins
    monkeypatch.setenv("ZOO_MIRROR", server.base_url)
    monkeypatch.setenv("ZOO_RECIPE_PATH", str(recipes))
    return server, data, models


def _op_types(folder: Path) -> set:
    from zoo.modelcheck import read_program_desc

    return {op.type for op in read_program_desc(folder / "__model__").blocks[0].ops}


@pytest.mark.parametrize("name", sorted(ENTRIES))
def test_entry_evaluates_end_to_end(name: str, env, zoo_home: Path) -> None:  # type: ignore[no-untyped-def]
    server, data, models = env
    kind, dcn, scale = ENTRIES[name]
    folder, served = models[name]
    ops = _op_types(folder)
    assert {"yolo_box", "multiclass_nms"} <= ops
    assert ("deformable_conv" in ops) is dcn
    if kind == "qat":
        assert {"fake_quantize_moving_average_abs_max", "fake_channel_wise_dequantize_max_abs"} <= ops
    else:
        assert {"fake_quantize_range_abs_max", "fake_dequantize_max_abs"} <= ops

    result = RUNNER.invoke(app, ["eval", f"standin_{name}", "--data", str(data), "--json", "--batch-size", "3"])
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["artifact"] == "quantized" and report["contract"] == "legacy"
    assert report["images"] == 4
    assert server.requests(served), "the archive was not downloaded from the mirror"
    from zoo.registry import get_recipe

    recipe = get_recipe(f"standin_{name}")
    sizes = [row.input_size for row in recipe.published]
    assert report["input_size"] == sizes and set(report["box_ap"]) == {str(s) for s in sizes}
    assert report["preprocess"]["scale"] is scale
    for size in sizes:
        expected = independent_box_ap(folder, data, size, scale=scale)
        assert report["box_ap"][str(size)] == pytest.approx(expected["box_ap"], abs=0.01), size
        assert report["ap50"][str(size)] == pytest.approx(expected["ap50"], abs=0.01), size
    # the hand-wired detector finds the squares at 608, where they sit on its cells
    assert report["box_ap"]["608"] > 50
    # 4 images are not COCO val2017: indicative only, never PASS or FAIL
    assert report["comparison"]["status"] == "PARTIAL"
    assert "evaluation set" in {d["setting"] for d in report["comparison"]["deviations"]}


def test_wrong_normalisation_changes_the_score(env) -> None:  # type: ignore[no-untyped-def]
    """The Objects365 entry's raw-pixel input is what its numbers need: scaled pixels lose the squares."""
    _, data, models = env
    folder, _ = models["yolov3_r50vd_dcn_obj365_coco_quant_aware"]
    right = independent_box_ap(folder, data, 608, scale=False)["box_ap"]
    wrong = independent_box_ap(folder, data, 608, scale=True)["box_ap"]
    assert right > 50 and wrong < right - 20

"""The bundled digits detection dataset: COCO layout, fixed split, determinism, atomic writing."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from zoo.data import digits_det


@pytest.fixture(scope="module")
def det_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return digits_det.materialize(tmp_path_factory.mktemp("digits-det-home"))


def _load(folder: Path, split: str) -> dict:
    return json.loads(digits_det.annotation_file(folder, split).read_text())


def test_coco_layout(det_dir: Path) -> None:
    assert det_dir.name == "digits_det" and det_dir.parent.name == "datasets"
    for split, (count, first_id) in digits_det.SPLITS.items():
        doc = _load(det_dir, split)
        assert len(doc["images"]) == count
        assert [im["id"] for im in doc["images"]] == list(range(first_id, first_id + count))
        assert all((det_dir / split / im["file_name"]).is_file() for im in doc["images"])
        assert sorted(c["id"] for c in doc["categories"]) == list(digits_det.CATEGORY_IDS)
        # several digits per canvas on average, every class present, ids unique
        assert len(doc["annotations"]) > 2.5 * count
        assert {a["category_id"] for a in doc["annotations"]} == set(digits_det.CATEGORY_IDS)
        assert len({a["id"] for a in doc["annotations"]}) == len(doc["annotations"])
    train_ids = {im["id"] for im in _load(det_dir, "train2017")["images"]}
    assert not train_ids & {im["id"] for im in _load(det_dir, "val2017")["images"]}


def test_category_ids_are_not_class_indices() -> None:
    ids = digits_det.CATEGORY_IDS
    assert list(ids) == sorted(ids) and len(set(ids)) == digits_det.NUM_CLASSES
    assert list(ids) != list(range(1, digits_det.NUM_CLASSES + 1))  # gaps, as COCO has


def test_boxes_are_tight_around_the_ink(det_dir: Path) -> None:
    import cv2

    doc = _load(det_dir, "val2017")
    sizes = {im["id"]: (im["height"], im["width"]) for im in doc["images"]}
    for image in doc["images"][:20]:
        pixels = cv2.cvtColor(cv2.imread(str(det_dir / "val2017" / image["file_name"])), cv2.COLOR_BGR2RGB)
        assert pixels.shape == (image["height"], image["width"], 3)  # the annotation's size is the file's
        assert 96 <= image["height"] <= 160 and 96 <= image["width"] <= 160
        background = pixels.max(axis=2).astype(int)
        for ann in (a for a in doc["annotations"] if a["image_id"] == image["id"]):
            x, y, w, h = (int(v) for v in ann["bbox"])
            assert x >= 0 and y >= 0 and x + w <= sizes[image["id"]][1] and y + h <= sizes[image["id"]][0]
            assert 4 <= h <= 44 and w >= 1
            assert ann["area"] == w * h and ann["iscrowd"] == 0
            # the box's border rows/columns carry ink (digits are light on a dark background)
            crop = background[y:y + h, x:x + w]
            assert crop.max() - crop.min() >= 40
            ink = crop.min() + 0.15 * (crop.max() - crop.min())
            assert min(crop[:, 0].max(), crop[:, -1].max(), crop[0].max(), crop[-1].max()) >= ink


def test_val_digits_are_held_out() -> None:
    sources = digits_det.source_digits()
    assert len(sources["train2017"]) + len(sources["val2017"]) == 1797
    train = {p.tobytes() for p, _ in sources["train2017"]}
    assert sum(p.tobytes() in train for p, _ in sources["val2017"]) <= 2  # sklearn's digits repeat a few images


def test_deterministic(det_dir: Path, tmp_path: Path) -> None:
    again = digits_det.materialize(tmp_path)
    for split in digits_det.SPLITS:
        assert digits_det.annotation_file(again, split).read_bytes() == digits_det.annotation_file(det_dir, split).read_bytes()
    name = _load(det_dir, "val2017")["images"][7]["file_name"]
    assert (again / "val2017" / name).read_bytes() == (det_dir / "val2017" / name).read_bytes()


def test_compose_draws_only_from_its_rng() -> None:
    digits = digits_det.source_digits()["val2017"]
    a = digits_det.compose(np.random.default_rng(3), digits)
    b = digits_det.compose(np.random.default_rng(3), digits)
    assert np.array_equal(a[0], b[0]) and a[1] == b[1]
    assert not np.array_equal(a[0], digits_det.compose(np.random.default_rng(4), digits)[0])


def test_idempotent(det_dir: Path) -> None:
    marker = det_dir / "digits_det.json"
    before = marker.stat().st_mtime_ns
    assert digits_det.materialize(det_dir.parent.parent) == det_dir
    assert marker.stat().st_mtime_ns == before  # nothing rewritten
    assert [p.name for p in det_dir.parent.iterdir()] == ["digits_det"]  # no scratch folder left


def test_partial_folder_is_replaced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(digits_det, "SPLITS", {"train2017": (3, 1), "val2017": (2, 100001)})
    target = digits_det.dataset_dir(tmp_path)
    (target / "annotations").mkdir(parents=True)
    (target / "annotations" / "instances_val2017.json").write_text("{}")  # a leftover without the marker
    folder = digits_det.materialize(tmp_path)
    assert len(_load(folder, "val2017")["images"]) == 2
    assert (folder / "digits_det.json").is_file()


def test_interrupted_write_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(staging: Path) -> dict:
        (staging / "train2017").mkdir()
        raise KeyboardInterrupt

    monkeypatch.setattr(digits_det, "_write", boom)
    with pytest.raises(KeyboardInterrupt):
        digits_det.materialize(tmp_path)
    assert list(digits_det.dataset_dir(tmp_path).parent.iterdir()) == []


def test_unwritable_home_is_a_data_error(tmp_path: Path) -> None:
    from zoo.errors import DataError

    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(DataError) as info:
        digits_det.materialize(blocker)
    assert "ZOO_HOME" in info.value.hint

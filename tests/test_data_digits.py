"""The bundled digits dataset: layout, fixed split, idempotence, atomic writing."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from zoo.data import digits, resolve_data
from zoo.data.imagenet import ImageListDataset, find_samples
from zoo.data.transforms import eval_transform
from zoo.registry import get_recipe
from zoo.schema import Preprocess


@pytest.fixture(scope="module")
def digits_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return digits.materialize(tmp_path_factory.mktemp("digits-home"))


def test_layout_and_split(digits_dir: Path) -> None:
    meta = json.loads((digits_dir / "digits.json").read_text())
    train, val = find_samples(digits_dir, "train"), find_samples(digits_dir, "val")
    assert len(train) + len(val) == 1797
    assert (meta["train"], meta["val"]) == (len(train), len(val))
    assert sorted({label for _, label in val}) == list(range(10))
    # stratified: every class has about a fifth of its images in val
    counts = np.bincount([label for _, label in val], minlength=10)
    assert counts.min() >= 35 and counts.max() <= 37
    assert not {p for p, _ in train} & {p for p, _ in val}
    # the folder layout agrees with the list files
    assert all(p.parent.name == str(label) and p.parent.parent.name == "val" for p, label in val)


def test_images_are_small_rgb_pngs(digits_dir: Path) -> None:
    ds = ImageListDataset(digits_dir, "val", eval_transform(Preprocess(resize_short=32, crop=32)))
    image, label = ds[0]
    assert image.shape == (3, 32, 32)
    np.testing.assert_allclose(image[0] * 0.229 + 0.485, image[1] * 0.224 + 0.456, atol=1e-5)  # grey in RGB
    from PIL import Image

    with Image.open(ds.samples[0][0]) as img:
        assert img.format == "PNG" and img.mode == "RGB" and img.size == (32, 32)


def test_split_is_fixed(digits_dir: Path, tmp_path: Path) -> None:
    again = digits.materialize(tmp_path)
    assert (again / "val_list.txt").read_text() == (digits_dir / "val_list.txt").read_text()
    first = (digits_dir / "val" / "0").iterdir().__next__().name
    assert (again / "val" / "0" / first).read_bytes() == (digits_dir / "val" / "0" / first).read_bytes()


def test_idempotent(tmp_path: Path) -> None:
    folder = digits.materialize(tmp_path)
    marker = folder / "val_list.txt"
    before = marker.stat().st_mtime_ns
    assert digits.materialize(tmp_path) == folder
    assert marker.stat().st_mtime_ns == before  # nothing rewritten
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".digits.staging")]


def test_partial_folder_is_replaced(tmp_path: Path) -> None:
    target = digits.dataset_dir(tmp_path)
    (target / "val").mkdir(parents=True)
    (target / "val_list.txt").write_text("val/0/x.png 0\n")  # a leftover without the completion marker
    folder = digits.materialize(tmp_path)
    assert len(find_samples(folder, "val")) > 300


def test_interrupted_write_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(staging: Path) -> dict:
        (staging / "train").mkdir()
        raise KeyboardInterrupt

    monkeypatch.setattr(digits, "_write", boom)
    with pytest.raises(KeyboardInterrupt):
        digits.materialize(tmp_path)
    parent = digits.dataset_dir(tmp_path).parent
    assert list(parent.iterdir()) == []


def test_resolve_data_materializes_under_zoo_home(zoo_home: Path) -> None:
    folder = resolve_data(get_recipe("digits_mobilenetv1_ptq"), None)
    assert folder == zoo_home / "datasets" / "digits"
    assert (folder / "val_list.txt").is_file()

"""ImageNet-layout datasets: list files, class folders, batches, loaders, bad input."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from zoo.data import resolve_data
from zoo.data.imagenet import ImageListDataset, image_batches, iterate_batches, make_loader, subsample
from zoo.data.transforms import eval_transform
from zoo.errors import DataError
from zoo.registry import get_recipe
from zoo.schema import Preprocess

PRE = Preprocess(resize_short=16, crop=16)


def _save(path: Path, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (20, 18), (value, value, value)).save(path)


@pytest.fixture
def folder_layout(tmp_path: Path) -> Path:
    for cls, value in (("zebra", 200), ("ant", 10), ("cat", 100)):
        for i in range(2):
            _save(tmp_path / "val" / cls / f"{i}.png", value)
    (tmp_path / "val" / "cat" / "notes.txt").write_text("not an image")
    return tmp_path


@pytest.fixture
def list_layout(tmp_path: Path) -> Path:
    lines = []
    for i in range(5):
        _save(tmp_path / "images" / f"img {i}.png", 40 * i)  # a space in the name
        lines.append(f"images/img {i}.png {i % 3}")
    (tmp_path / "val_list.txt").write_text("\n".join(lines) + "\n\n")
    return tmp_path


def test_class_folders_sorted(folder_layout: Path) -> None:
    ds = ImageListDataset(folder_layout, "val", eval_transform(PRE))
    assert len(ds) == 6
    assert [p.parent.name for p, _ in ds.samples] == ["ant", "ant", "cat", "cat", "zebra", "zebra"]
    assert ds.labels.tolist() == [0, 0, 1, 1, 2, 2]
    image, label = ds[4]
    assert image.shape == (3, 16, 16) and image.dtype == np.float32
    assert label == 2 and label.dtype == np.int64


def test_list_file_parsing(list_layout: Path) -> None:
    ds = ImageListDataset(list_layout, "val", eval_transform(PRE))
    assert ds.labels.tolist() == [0, 1, 2, 0, 1]
    assert ds.samples[1][0] == list_layout / "images" / "img 1.png"
    assert ds.num_classes == 3


def test_max_samples_is_evenly_spaced() -> None:
    assert subsample(10, 3) == [0, 4, 9]  # linspace(0, 9, 3) rounded (4.5 -> 4, banker's rounding)
    assert subsample(4, None) == [0, 1, 2, 3]
    assert subsample(4, 10) == [0, 1, 2, 3]


def test_iterate_batches_shapes_and_order(folder_layout: Path) -> None:
    ds = ImageListDataset(folder_layout, "val", eval_transform(PRE))
    batches = list(iterate_batches(ds, 4, num_workers=2))
    assert [b[0].shape for b in batches] == [(4, 3, 16, 16), (2, 3, 16, 16)]
    assert np.concatenate([b[1] for b in batches]).tolist() == ds.labels.tolist()
    assert [x.shape[0] for x in image_batches(ds, 5)()] == [5, 1]


@pytest.mark.parametrize("workers", [0, 1])
def test_make_loader_dygraph(folder_layout: Path, workers: int) -> None:
    ds = ImageListDataset(folder_layout, "val", eval_transform(PRE))
    batches = list(make_loader(ds, batch_size=4, shuffle=False, num_workers=workers))
    images, labels = batches[0]
    assert list(images.shape) == [4, 3, 16, 16]
    assert labels.numpy().reshape(-1).tolist() == [0, 0, 1, 1]


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist") as err:
        ImageListDataset(tmp_path / "nope", "val", eval_transform(PRE))
    assert err.value.hint


def test_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="neither val_list.txt nor a val/ folder"):
        ImageListDataset(tmp_path, "val", eval_transform(PRE))
    (tmp_path / "val" / "a").mkdir(parents=True)
    with pytest.raises(DataError, match="holds no images"):
        ImageListDataset(tmp_path, "val", eval_transform(PRE))
    (tmp_path / "val_list.txt").write_text("\n# only a comment\n")
    with pytest.raises(DataError, match="lists no images"):
        ImageListDataset(tmp_path, "val", eval_transform(PRE))


@pytest.mark.parametrize("line, why", [("justapath.jpg", "expected `relative/path label`"),
                                       ("a.jpg seven", "is not an integer"),
                                       ("a.jpg -1", "negative label")])
def test_malformed_list_line_names_file_and_line(tmp_path: Path, line: str, why: str) -> None:
    _save(tmp_path / "ok.png", 1)
    (tmp_path / "val_list.txt").write_text(f"ok.png 0\n\n{line}\n")
    with pytest.raises(DataError) as err:
        ImageListDataset(tmp_path, "val", eval_transform(PRE))
    assert "val_list.txt:3: " in err.value.message
    assert why in err.value.message
    assert err.value.hint


def test_unreadable_image_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "val" / "a").mkdir(parents=True)
    bad = tmp_path / "val" / "a" / "broken.jpg"
    bad.write_bytes(b"not a jpeg at all")
    ds = ImageListDataset(tmp_path, "val", eval_transform(PRE))
    with pytest.raises(DataError, match="broken.jpg") as err:
        ds[0]
    assert err.value.hint


def test_listed_image_missing(tmp_path: Path) -> None:
    (tmp_path / "val_list.txt").write_text("gone.jpg 0\n")
    ds = ImageListDataset(tmp_path, "val", eval_transform(PRE))
    with pytest.raises(DataError, match="gone.jpg does not exist"):
        next(iterate_batches(ds, 1))


def test_resolve_data_needs_data_for_imagenet(tmp_path: Path) -> None:
    recipe = get_recipe("mobilenetv3_small_ptq")
    with pytest.raises(DataError, match="needs its imagenet data") as err:
        resolve_data(recipe, None)
    assert "--data" in err.value.hint
    assert resolve_data(recipe, tmp_path) == tmp_path

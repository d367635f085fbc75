"""The COCO-layout reader: records as PaddleDetection 0.x built them, and file-and-field errors."""
from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from zoo.data.coco import CocoDataset
from zoo.errors import DataError


def _folder(root: Path, images=None, annotations=None, categories=None) -> Path:
    (root / "annotations").mkdir(parents=True)
    (root / "val2017").mkdir()
    images = images if images is not None else [
        {"id": 42, "file_name": "a.png", "height": 30, "width": 40},
        {"id": 7, "file_name": "b.png", "height": 20, "width": 10},
        {"id": 9, "file_name": "c.png", "height": 16, "width": 16},
    ]
    for img in images:
        pixels = np.zeros((img["height"], img["width"], 3), np.uint8)
        pixels[..., 0] = 200  # blue in OpenCV's BGR: the reader must hand back RGB
        cv2.imwrite(str(root / "val2017" / img["file_name"]), pixels)
    categories = categories if categories is not None else [{"id": 18, "name": "dog"}, {"id": 1, "name": "person"}]
    annotations = annotations if annotations is not None else [
        {"id": 1, "image_id": 42, "category_id": 18, "bbox": [4.0, 5.0, 10.0, 6.0], "area": 60, "iscrowd": 0},
        {"id": 2, "image_id": 42, "category_id": 1, "bbox": [35.0, 0.0, 20.0, 8.0], "area": 160, "iscrowd": 0},
        {"id": 3, "image_id": 42, "category_id": 1, "bbox": [0.0, 0.0, 5.0, 5.0], "area": 25, "iscrowd": 1},
        {"id": 4, "image_id": 7, "category_id": 1, "bbox": [1.0, 1.0, 2.0, 2.0], "area": 0, "iscrowd": 0},
    ]
    (root / "annotations" / "instances_val2017.json").write_text(
        json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return root


def test_records_follow_paddledetection(tmp_path: Path) -> None:
    ds = CocoDataset(_folder(tmp_path / "coco"))
    # classes follow the file's category order (18 first), as PaddleDetection's enumerate(getCatIds())
    assert ds.clsid2catid == {0: 18, 1: 1} and ds.catid2clsid == {18: 0, 1: 1} and ds.num_classes == 2
    assert [r["id"] for r in ds.records] == [7, 9, 42] == ds.image_ids  # sorted by id, images without boxes kept
    rec = ds.records[2]
    assert (rec["height"], rec["width"], rec["file"].name) == (30, 40, "a.png")
    # [x, y, w, h] -> [x1, y1, x1 + w - 1, y1 + h - 1], clipped to the image; the crowd box is left out
    np.testing.assert_allclose(rec["boxes"], [[4, 5, 13, 10], [35, 0, 39, 7]])
    assert rec["boxes"].dtype == np.float32 and rec["classes"].tolist() == [0, 1]
    assert ds.records[0]["boxes"].shape == (0, 4)  # its only box has zero area
    assert len(ds) == 3 and ds.split_size == 3


def test_load_image_is_rgb_and_max_samples_subsamples(tmp_path: Path) -> None:
    ds = CocoDataset(_folder(tmp_path / "coco"), max_samples=2)
    assert [r["id"] for r in ds.records] == [7, 42] and ds.split_size == 3
    image = ds.load_image(1)
    assert image.shape == (30, 40, 3) and image.dtype == np.uint8
    assert image[0, 0].tolist() == [0, 0, 200]
    gt = ds.coco()
    assert sorted(gt.getImgIds()) == [7, 9, 42] and len(gt.getAnnIds(imgIds=[42], iscrowd=False)) == 2


def test_missing_or_malformed_annotation_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"instances_val2017\.json does not exist"):
        CocoDataset(tmp_path)
    root = _folder(tmp_path / "coco")
    (root / "annotations" / "instances_val2017.json").write_text("{not json")
    with pytest.raises(DataError, match="is not valid JSON"):
        CocoDataset(root)
    (root / "annotations" / "instances_val2017.json").write_text(json.dumps({"images": [], "categories": []}))
    with pytest.raises(DataError, match="field 'annotations' is missing"):
        CocoDataset(root)


@pytest.mark.parametrize("image,annotation,message", [
    ({"id": 1, "file_name": "a.png", "width": 4}, None, r"images\[0\]: field 'height' is NoneType"),
    ({"id": 1, "file_name": "a.png", "height": "4", "width": 4}, None, r"images\[0\]: field 'height' is str"),
    (None, {"id": 1, "image_id": 42, "category_id": 5, "bbox": [0, 0, 1, 1]}, r"annotations\[0\]: category_id 5"),
    (None, {"id": 1, "image_id": 3, "category_id": 1, "bbox": [0, 0, 1, 1]}, r"annotations\[0\]: image_id 3"),
    (None, {"id": 1, "image_id": 42, "category_id": 1, "bbox": [0, 0, 1]}, r"annotations\[0\]: field 'bbox'"),
])
def test_bad_fields_name_the_entry(tmp_path: Path, image, annotation, message) -> None:
    root = _folder(tmp_path / "coco")
    data = json.loads((root / "annotations" / "instances_val2017.json").read_text())
    if image is not None:
        data["images"] = [image]
        data["annotations"] = []
    if annotation is not None:
        data["annotations"] = [annotation]
    (root / "annotations" / "instances_val2017.json").write_text(json.dumps(data))
    with pytest.raises(DataError, match=message) as info:
        CocoDataset(root)
    assert "instances_val2017.json" in str(info.value)


def test_missing_unreadable_and_mismatched_images(tmp_path: Path) -> None:
    root = _folder(tmp_path / "coco")
    (root / "val2017" / "b.png").unlink()
    with pytest.raises(DataError, match=r"b\.png is named in .*instances_val2017\.json \(image id 7\) but does not exist"):
        CocoDataset(root)
    root = _folder(tmp_path / "coco2")
    (root / "val2017" / "a.png").write_bytes(b"not an image")
    ds = CocoDataset(root)
    with pytest.raises(DataError, match=r"a\.png is not a readable image \(image id 42"):
        ds.load_image(2)
    cv2.imwrite(str(root / "val2017" / "c.png"), np.zeros((16, 17, 3), np.uint8))
    with pytest.raises(DataError, match=r"c\.png is 17x16 .* says width 16, height 16"):
        ds.load_image(1)


@pytest.mark.parametrize("order", [[18, 1, 5], [1, 5, 18], [5, 18, 1]])
def test_class_order_is_pycocotools_getcatids(tmp_path: Path, order) -> None:
    """PaddleDetection gives class i to the i-th id of pycocotools' getCatIds(): the check is against pycocotools itself."""
    from pycocotools.coco import COCO

    cats = [{"id": cid, "name": f"c{cid}"} for cid in order]
    ds = CocoDataset(_folder(tmp_path / "coco", categories=cats))
    with contextlib.redirect_stdout(io.StringIO()):
        expected = dict(enumerate(COCO(str(ds.annotation_file)).getCatIds()))
    assert ds.clsid2catid == expected
    assert list(ds.clsid2catid.values()) == order
    assert ds.records[2]["classes"].tolist() == [order.index(18), order.index(1)]


@pytest.mark.parametrize("bbox, said", [([1.0, 1.0, float("nan"), 4.0], "expected a finite number"),
                                        ([1.0, 1.0, -3.0, 4.0], "negative width or height"),
                                        ([float("inf"), 1.0, 3.0, 4.0], "expected a finite number")])
def test_malformed_boxes_are_refused(tmp_path: Path, bbox: list, said: str) -> None:
    annotations = [{"id": 1, "image_id": 42, "category_id": 18, "bbox": bbox, "area": 12, "iscrowd": 0}]
    with pytest.raises(DataError, match=said) as info:
        CocoDataset(_folder(tmp_path / "coco", annotations=annotations))
    assert "annotations[0]" in info.value.message
    assert "ImageNet" not in (info.value.hint or "")  # the hint names the COCO layout, not another one


def test_empty_boxes_are_left_out_and_counted(tmp_path: Path) -> None:
    ds = CocoDataset(_folder(tmp_path / "coco"))  # annotation 4 has zero area
    assert ds.dropped_boxes == 1


def test_coco_errors_carry_a_coco_hint(tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        CocoDataset(tmp_path / "nothing")
    assert "COCO" in (info.value.hint or "") and "ImageNet" not in (info.value.hint or "")

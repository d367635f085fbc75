"""COCO-layout detection data: `DIR/annotations/instances_<split>.json` + `DIR/<split>/` images.

Records follow PaddleDetection 0.x's COCODataSet (ppdet/data/source/coco.py, release/0.2): every
image of the annotation file (images without boxes included, as its evaluation reader keeps them),
crowd boxes left out, boxes as `[x1, y1, x2, y2]` with `x2 = x1 + w - 1` clipped to the image,
and class i given to the i-th category id in the annotation file's order (no background class):
PaddleDetection (0.x and 2.x) maps `enumerate(COCO.getCatIds())`, and pycocotools' getCatIds()
keeps the file's order. COCO's own files list their ids sorted; another file may not.
Images are decoded with OpenCV to RGB uint8 HWC, as its DecodeImage does.
"""
from __future__ import annotations

import contextlib
import io
import json
import math
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np

from zoo.data.imagenet import decode_cv2, subsample
from zoo.errors import DataError


class CocoDataError(DataError):
    """A COCO-layout folder or annotation file is missing or malformed."""

    default_hint = ("Check --data: a COCO-layout folder holds annotations/instances_<split>.json (COCO format) and "
                    "the <split>/ images it names.")


def annotation_path(root: Path, split: str) -> Path:
    """Where the annotation file of `split` lives in a COCO-layout folder."""
    return Path(root) / "annotations" / f"instances_{split}.json"


def _field(value: Any, name: str, where: str, kind: type) -> Any:
    if not isinstance(value, kind) or isinstance(value, bool):
        raise CocoDataError(f"{where}: field {name!r} is {type(value).__name__} {value!r}, expected {kind.__name__}",
                        hint="The annotation file must follow the COCO format (instances_<split>.json).")
    return value


def _number(value: Any, name: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise CocoDataError(f"{where}: field {name!r} is {value!r}, expected a finite number",
                            hint="The annotation file must follow the COCO format (instances_<split>.json).")
    return float(value)


def _load_json(path: Path) -> Dict[str, Any]:
    if not path.is_file():
        raise CocoDataError(f"{path} does not exist",
                        hint="A COCO folder holds annotations/instances_<split>.json and the <split>/ images.")
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise CocoDataError(f"{path} is not valid JSON: {exc}", hint="Download the annotation file again.") from None
    if not isinstance(data, dict):
        raise CocoDataError(f"{path}: the top level is {type(data).__name__}, expected an object with "
                        "'images', 'annotations' and 'categories'")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise CocoDataError(f"{path}: field {key!r} is missing or not a list",
                            hint="The annotation file must follow the COCO format (instances_<split>.json).")
    return data


class CocoDataset:
    """The images and boxes of one split of a COCO-layout folder (optionally `max_samples` evenly spaced images)."""

    def __init__(self, root: Path, split: str = "val2017", max_samples: Optional[int] = None) -> None:
        self.root = Path(root).expanduser()
        self.split = split
        self.annotation_file = annotation_path(self.root, split)
        if not self.root.is_dir():
            raise CocoDataError(f"{self.root} is not a folder", hint="Pass a COCO folder (annotations/ + val2017/) with --data.")
        self._data = _load_json(self.annotation_file)
        self.image_dir = self.root / split
        self._parse_categories()
        self.dropped_boxes = 0  # empty boxes the reader leaves out
        records = self._parse_records()
        self.split_size = len(records)
        if not records:
            raise CocoDataError(f"{self.annotation_file} lists no images", hint="Check the annotation file of the split.")
        self.records: List[Dict[str, Any]] = [records[i] for i in subsample(len(records), max_samples)]
        for record in self.records:
            if not record["file"].is_file():
                raise CocoDataError(f"{record['file']} is named in {self.annotation_file} (image id {record['id']}) "
                                "but does not exist", hint=f"Put the {split} images in {self.image_dir}/.")
        self._coco: Any = None

    def _parse_categories(self) -> None:
        where = str(self.annotation_file)
        ids = []
        for i, cat in enumerate(self._data["categories"]):
            entry = f"{where}: categories[{i}]"
            _field(cat, "categories[]", where, dict)
            ids.append(int(_field(cat.get("id"), "id", entry, int)))
        if not ids:
            raise CocoDataError(f"{where}: 'categories' is empty", hint="A detection split needs its category list.")
        if len(set(ids)) != len(ids):
            raise CocoDataError(f"{where}: 'categories' repeats an id: {sorted(ids)}")
        self.clsid2catid: Dict[int, int] = dict(enumerate(ids))  # the file's order, as getCatIds() gives it
        self.catid2clsid: Dict[int, int] = {cat: i for i, cat in self.clsid2catid.items()}
        self.num_classes = len(ids)

    def _parse_records(self) -> List[Dict[str, Any]]:
        where = str(self.annotation_file)
        records: Dict[int, Dict[str, Any]] = {}
        for i, img in enumerate(self._data["images"]):
            entry = f"{where}: images[{i}]"
            _field(img, "images[]", where, dict)
            image_id = int(_field(img.get("id"), "id", entry, int))
            name = _field(img.get("file_name"), "file_name", entry, str)
            height = int(_field(img.get("height"), "height", entry, int))
            width = int(_field(img.get("width"), "width", entry, int))
            if height <= 0 or width <= 0:
                raise CocoDataError(f"{entry}: height {height} / width {width} must be positive")
            if image_id in records:
                raise CocoDataError(f"{entry}: image id {image_id} is listed twice")
            records[image_id] = {"id": image_id, "file": self.image_dir / name, "height": height, "width": width,
                                 "boxes": [], "classes": []}
        for i, ann in enumerate(self._data["annotations"]):
            entry = f"{where}: annotations[{i}]"
            _field(ann, "annotations[]", where, dict)
            image_id = int(_field(ann.get("image_id"), "image_id", entry, int))
            cat = int(_field(ann.get("category_id"), "category_id", entry, int))
            if image_id not in records:
                raise CocoDataError(f"{entry}: image_id {image_id} is not in 'images'")
            if cat not in self.catid2clsid:
                raise CocoDataError(f"{entry}: category_id {cat} is not in 'categories'")
            bbox = ann.get("bbox")
            if not isinstance(bbox, list) or len(bbox) != 4:
                raise CocoDataError(f"{entry}: field 'bbox' is {bbox!r}, expected [x, y, width, height]")
            x, y, w, h = (_number(v, "bbox", entry) for v in bbox)
            if w < 0 or h < 0:
                raise CocoDataError(f"{entry}: bbox {bbox!r} has a negative width or height",
                                    hint="COCO boxes are [x, y, width, height] with width, height >= 0; fix the file.")
            if ann.get("iscrowd", 0):
                continue  # crowd regions are scored by COCOeval as "ignore", never trained on
            rec = records[image_id]
            x1, y1 = max(0.0, x), max(0.0, y)
            x2 = min(rec["width"] - 1.0, x1 + max(0.0, w - 1.0))
            y2 = min(rec["height"] - 1.0, y1 + max(0.0, h - 1.0))
            if float(ann.get("area", w * h) or 0) > 0 and x2 >= x1 and y2 >= y1:
                rec["boxes"].append((x1, y1, x2, y2))
                rec["classes"].append(self.catid2clsid[cat])
            else:  # an empty box: left out, as the published reader leaves it out, and counted
                self.dropped_boxes += 1
        out = []
        for image_id in sorted(records):
            rec = records[image_id]
            rec["boxes"] = np.asarray(rec["boxes"], dtype=np.float32).reshape(-1, 4)
            rec["classes"] = np.asarray(rec["classes"], dtype=np.int64)
            out.append(rec)
        return out

    def __len__(self) -> int:
        return len(self.records)

    @property
    def image_ids(self) -> List[int]:
        """The COCO ids of the images in this (sub)set, in order."""
        return [int(r["id"]) for r in self.records]

    def load_image(self, index: int) -> np.ndarray:
        """Image `index` as RGB uint8 HWC (cv2 decode); a size that disagrees with its annotation is refused."""
        rec = self.records[index]
        path: Path = rec["file"]
        try:
            image = decode_cv2(path.read_bytes())
        except OSError as exc:
            raise CocoDataError(f"cannot read {path}: {exc.strerror or exc}") from None
        if image is None:
            raise CocoDataError(f"{path} is not a readable image (image id {rec['id']} of {self.annotation_file})",
                            hint="Replace the file, or remove the image from the annotation file.")
        h, w = image.shape[:2]
        if (h, w) != (rec["height"], rec["width"]):
            raise CocoDataError(
                f"{path} is {w}x{h} (width x height) but {self.annotation_file} says width {rec['width']}, "
                f"height {rec['height']} (image id {rec['id']})",
                hint="Boxes are in the annotation's pixel coordinates: the image and its annotation must agree.")
        return image

    def coco(self) -> Any:
        """The ground truth as a pycocotools COCO object (built once, from the file already read)."""
        if self._coco is None:
            from pycocotools.coco import COCO

            gt = COCO()
            gt.dataset = self._data
            with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
                gt.createIndex()
            self._coco = gt
        return self._coco

"""scikit-learn's handwritten digits composed into a small COCO-layout detection dataset (offline).

Each canvas is a small RGB image (96..160 px a side, width and height drawn apart, so resizing to a
square stretches it as the published readers do) holding 1 to 5 digits at random sizes (14..44 px)
and positions, pasted in random light colours over a smooth dark gradient. Boxes are the tight
bounds of each pasted digit's strokes. Written once under ZOO_HOME/datasets/digits_det:

    annotations/instances_train2017.json   annotations/instances_val2017.json
    train2017/000000000001.png ...          val2017/000000100001.png ...

The split is fixed at the source: the validation canvases use only the digits the classification
digits data holds out (zoo/data/digits.py: per class, every fifth image), so no val digit is ever
seen in training. Category ids are COCO-like, sorted but not contiguous (`CATEGORY_IDS`): the
class index of digit d is d, its category id `CATEGORY_IDS[d]`. Everything follows from `SEED`:
two runs write identical bytes. Writing goes to a scratch folder renamed into place and a marker
(`digits_det.json`) is written last, so an interrupted run leaves nothing a later run trusts.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np


FORMAT_VERSION = 1
SEED = 11
NUM_CLASSES = 10
# COCO-like ids: sorted, with gaps (as COCO's 1..90 for 80 classes), so class index != category id
CATEGORY_IDS: Tuple[int, ...] = (1, 2, 4, 5, 7, 8, 10, 11, 13, 14)
CATEGORY_NAMES: Tuple[str, ...] = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
SPLITS: Dict[str, Tuple[int, int]] = {"train2017": (1200, 1), "val2017": (300, 100001)}  # canvases, first image id
CANVAS_SIDES = (96, 160)  # inclusive range of each side
DIGIT_SIDES = (14, 44)  # inclusive range of a digit's pasted height
DIGITS_PER_CANVAS = (1, 5)
MAX_OVERLAP = 0.1  # IoU a new digit may have with those already on the canvas
VAL_EVERY = 5  # the classification digits split: per class, every fifth image is held out
_META = "digits_det.json"


def dataset_dir(home: Optional[Path] = None) -> Path:
    """Where the digits detection dataset lives (whether or not it exists yet)."""
    from zoo.data.digits import default_home

    return Path(home if home is not None else default_home()) / "datasets" / "digits_det"


def annotation_file(root: Path, split: str = "val2017") -> Path:
    """The COCO annotation file of `split` under a dataset folder."""
    return Path(root) / "annotations" / f"instances_{split}.json"


def _is_complete(folder: Path) -> bool:
    try:
        meta = json.loads((folder / _META).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return meta.get("version") == FORMAT_VERSION and all(annotation_file(folder, s).is_file() for s in SPLITS)


def source_digits() -> Dict[str, List[Tuple[np.ndarray, int]]]:
    """The 8x8 digits (0..16) per split, held out exactly as the classification digits data does."""
    from sklearn.datasets import load_digits

    data = load_digits()
    out: Dict[str, List[Tuple[np.ndarray, int]]] = {"train2017": [], "val2017": []}
    seen = [0] * NUM_CLASSES
    for pixels, label in zip(data.images, data.target):
        split = "val2017" if seen[int(label)] % VAL_EVERY == 0 else "train2017"
        seen[int(label)] += 1
        out[split].append((np.asarray(pixels, dtype=np.float64), int(label)))
    return out


def _digit_mask(pixels: np.ndarray, height: int, width: int) -> np.ndarray:
    """An 8x8 digit as an alpha mask in [0, 1] of height x width (PIL bilinear: deterministic)."""
    from PIL import Image

    grey = np.clip(pixels * (255.0 / 16.0), 0, 255).round().astype(np.uint8)
    resized = Image.fromarray(grey, mode="L").resize((width, height), Image.BILINEAR)
    return np.asarray(resized, dtype=np.float32) / 255.0


def _iou(a: Tuple[int, int, int, int], b: Tuple[int, int, int, int]) -> float:
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    return inter / float((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def compose(rng: np.random.Generator, digits: List[Tuple[np.ndarray, int]]) -> Tuple[np.ndarray, List[Tuple[List[float], int]]]:
    """One canvas (H x W x 3 uint8) and its objects [([x, y, w, h], digit), ...] drawn with `rng`.

    Boxes are COCO [x, y, w, h] in pixels, tight around the strokes (mask >= 0.25): x..x+w-1 are the
    first and last columns with ink, so w = x2 - x1 + 1 as the 0.x convention counts a box.
    """
    height, width = (int(v) for v in rng.integers(CANVAS_SIDES[0], CANVAS_SIDES[1] + 1, size=2))
    # a smooth dark background: two corner colours blended along a random direction
    c0, c1 = rng.integers(0, 90, size=(2, 3)).astype(np.float32)
    angle = rng.uniform(0, np.pi)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    t = (np.cos(angle) * xx / width + np.sin(angle) * yy / height)
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    canvas = c0[None, None, :] * (1 - t[..., None]) + c1[None, None, :] * t[..., None]
    placed: List[Tuple[int, int, int, int]] = []
    objects: List[Tuple[List[float], int]] = []
    for _ in range(int(rng.integers(DIGITS_PER_CANVAS[0], DIGITS_PER_CANVAS[1] + 1))):
        pixels, label = digits[int(rng.integers(len(digits)))]
        dh = int(rng.integers(DIGIT_SIDES[0], DIGIT_SIDES[1] + 1))
        dw = max(8, int(round(dh * rng.uniform(0.7, 1.1))))
        colour = rng.integers(150, 256, size=3).astype(np.float32)
        for _try in range(20):  # a free spot, else the digit is skipped
            x0 = int(rng.integers(0, width - dw + 1))
            y0 = int(rng.integers(0, height - dh + 1))
            cell = (x0, y0, x0 + dw, y0 + dh)
            if all(_iou(cell, other) <= MAX_OVERLAP for other in placed):
                break
        else:
            continue
        alpha = _digit_mask(pixels, dh, dw)
        ink = np.argwhere(alpha >= 0.25)
        if len(ink) == 0:
            continue
        region = canvas[y0:y0 + dh, x0:x0 + dw]
        canvas[y0:y0 + dh, x0:x0 + dw] = region * (1 - alpha[..., None]) + colour[None, None, :] * alpha[..., None]
        (r0, q0), (r1, q1) = ink.min(axis=0), ink.max(axis=0)
        placed.append(cell)
        objects.append(([float(x0 + q0), float(y0 + r0), float(q1 - q0 + 1), float(r1 - r0 + 1)], label))
    return np.clip(canvas, 0, 255).round().astype(np.uint8), objects


def _write_split(staging: Path, split: str, digits: List[Tuple[np.ndarray, int]], rng: np.random.Generator) -> dict:
    from PIL import Image

    count, first_id = SPLITS[split]
    (staging / split).mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for image_id in range(first_id, first_id + count):
        canvas, objects = compose(rng, digits)
        name = f"{image_id:012d}.png"
        Image.fromarray(canvas, mode="RGB").save(staging / split / name, format="PNG", optimize=False)
        images.append({"id": image_id, "file_name": name, "height": int(canvas.shape[0]), "width": int(canvas.shape[1])})
        for box, label in objects:
            annotations.append({"id": len(annotations) + 1 + first_id * 10, "image_id": image_id,
                                "category_id": CATEGORY_IDS[label], "bbox": box, "area": box[2] * box[3],
                                "iscrowd": 0})
    categories = [{"id": cid, "name": name, "supercategory": "digit"} for cid, name in zip(CATEGORY_IDS, CATEGORY_NAMES)]
    doc = {"info": {"description": f"zoo digits_det {split} (scikit-learn digits on canvases)", "version": str(FORMAT_VERSION)},
           "images": images, "annotations": annotations, "categories": categories}
    path = annotation_file(staging, split)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, separators=(",", ":")) + "\n", encoding="utf-8")
    return {"images": len(images), "boxes": len(annotations)}


def _write(staging: Path) -> dict:
    sources = source_digits()
    rng = np.random.default_rng(SEED)
    meta: dict = {"version": FORMAT_VERSION, "seed": SEED, "num_classes": NUM_CLASSES,
                  "category_ids": list(CATEGORY_IDS),
                  "split": f"val canvases use only the digits held out per class (occurrence % {VAL_EVERY} == 0)"}
    for split in SPLITS:
        meta[split] = _write_split(staging, split, sources[split], rng)
    # the marker is written last: a folder without it is never trusted
    (staging / _META).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return meta


def materialize(home: Optional[Path] = None) -> Path:
    """Write the digits detection dataset once (idempotent) and return its folder."""
    from zoo.data import materialize_once

    return materialize_once(dataset_dir(home), _write, _is_complete, "digits detection dataset")

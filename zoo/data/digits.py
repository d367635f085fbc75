"""scikit-learn's handwritten digits as a small ImageNet-layout dataset (offline, bundled with sklearn).

1797 8x8 grey images (0..16) become 32x32 RGB PNGs under ZOO_HOME/datasets/digits:
`train/<digit>/NNNN.png`, `val/<digit>/NNNN.png` plus `train_list.txt` / `val_list.txt`.
The split is fixed and stratified: within each class, every fifth image (the 1st, 6th, ...) is
validation, the rest train. Writing goes to a staging folder renamed into place, so an interrupted run leaves
nothing half-written and concurrent runs agree.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import numpy as np
from PIL import Image

from zoo.home import cache_home

IMAGE_SIZE = 32
NUM_CLASSES = 10
VAL_EVERY = 5
FORMAT_VERSION = 2
_META = "digits.json"


def default_home() -> Path:
    """Where generated digits data lives: the zoo's cache home (ZOO_HOME)."""
    return cache_home()


def dataset_dir(home: Optional[Path] = None) -> Path:
    """Where the digits dataset lives (whether or not it exists yet)."""
    return Path(home if home is not None else default_home()) / "datasets" / "digits"


def _is_complete(folder: Path) -> bool:
    try:
        meta = json.loads((folder / _META).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return meta.get("version") == FORMAT_VERSION and (folder / "val_list.txt").is_file() and (folder / "train_list.txt").is_file()


def to_image(pixels: np.ndarray) -> Image.Image:
    """One 8x8 digit (0..16) -> a 32x32 RGB image (bilinear upsampling)."""
    grey = np.clip(pixels.reshape(8, 8) * (255.0 / 16.0), 0, 255).round().astype(np.uint8)
    return Image.fromarray(grey, mode="L").resize((IMAGE_SIZE, IMAGE_SIZE), Image.BILINEAR).convert("RGB")


def _write(staging: Path) -> dict:
    from sklearn.datasets import load_digits

    data = load_digits()
    lists = {"train": [], "val": []}
    seen = [0] * NUM_CLASSES
    for index, (pixels, label) in enumerate(zip(data.data, data.target)):
        # stratified: the images of each class go 1-in-5 to val (the raw order cycles 0..9)
        split = "val" if seen[int(label)] % VAL_EVERY == 0 else "train"
        seen[int(label)] += 1
        rel = f"{split}/{int(label)}/{index:04d}.png"
        out = staging / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        to_image(pixels).save(out, format="PNG", optimize=False)
        lists[split].append(f"{rel} {int(label)}")
    for split, lines in lists.items():
        (staging / f"{split}_list.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    meta = {"version": FORMAT_VERSION, "image_size": IMAGE_SIZE, "num_classes": NUM_CLASSES,
            "train": len(lists["train"]), "val": len(lists["val"]),
            "split": f"per class, occurrence % {VAL_EVERY} == 0 -> val"}
    # the marker is written last: a folder without it is never trusted
    (staging / _META).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return meta


def materialize(home: Optional[Path] = None) -> Path:
    """Write the digits dataset once (idempotent) and return its folder."""
    from zoo.data import materialize_once

    return materialize_once(dataset_dir(home), _write, _is_complete, "digits dataset")

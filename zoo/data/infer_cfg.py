"""The preprocessing an exported PaddleDetection model folder carries in its `infer_cfg.yml`.

PaddleDetection's export writes, beside the model, the steps its deploy code runs before
inference. The zoo reads the steps that describe a square resize and a normalization:

- `Resize`: `target_size` (0.x: an int; 2.x: [h, w], square only), `interp` (OpenCV's flag:
  0 nearest, 1 bilinear, 2 bicubic, 4 lanczos), with `max_size: 0` (0.x) or `keep_ratio: false` (2.x);
- `Normalize` (0.x) / `NormalizeImage` (2.x): `is_scale`, `mean`, `std`;
- `Permute`: channel-first (0.x's `to_bgr: true` reverses the channels).

Any other step, or a resize that keeps the aspect ratio, is refused by name: scoring with a
preprocessing the model was not exported with would give a silently wrong number.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

import yaml

from zoo.errors import DataError
from zoo.schema import Backend, Interpolation, Preprocess

FILENAME = "infer_cfg.yml"
_CV2_INTERP = {0: Interpolation.nearest, 1: Interpolation.bilinear, 2: Interpolation.bicubic, 4: Interpolation.lanczos}
_HINT = ("Fix the file, or move it out of the model folder to score with the zoo's default preprocessing and "
         "the preprocessing flags.")


@dataclass(frozen=True)
class InferConfig:
    """The preprocessing of an export folder and the square side it resizes to."""

    path: Path
    preprocess: Preprocess
    size: int


def _fail(path: Path, what: str) -> DataError:
    return DataError(f"{path}: {what}", hint=_HINT)


def _side(path: Path, value: Any) -> int:
    sides = value if isinstance(value, list) else [value]
    if not sides or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in sides):
        raise _fail(path, f"Resize target_size is {value!r}, expected a positive int or [h, w]")
    if len(set(sides)) != 1:
        raise _fail(path, f"Resize target_size {value!r} is not square; the zoo scores square inputs only")
    return int(sides[0])


def _resize(path: Path, step: Dict[str, Any], fields: Dict[str, Any]) -> None:
    if step.get("keep_ratio") or step.get("max_size", 0):
        raise _fail(path, "Resize keeps the aspect ratio (keep_ratio / max_size); the zoo resizes to a square")
    interp = step.get("interp", 2)
    if interp not in _CV2_INTERP:
        raise _fail(path, f"Resize interp {interp!r} is not one of {sorted(_CV2_INTERP)} (OpenCV flags)")
    fields.update(resize=_side(path, step.get("target_size")), interpolation=_CV2_INTERP[interp])


def _normalize(path: Path, step: Dict[str, Any], fields: Dict[str, Any]) -> None:
    for key in ("mean", "std"):
        value = step.get(key)
        if not (isinstance(value, list) and len(value) == 3 and all(isinstance(v, (int, float)) for v in value)):
            raise _fail(path, f"{step['type']} {key} is {value!r}, expected three numbers")
        fields[key] = tuple(float(v) for v in value)
    fields["scale"] = bool(step.get("is_scale", True))


def _steps(path: Path) -> List[Dict[str, Any]]:
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise _fail(path, f"cannot be read as YAML ({exc})") from None
    steps = doc.get("Preprocess") if isinstance(doc, dict) else None
    if not isinstance(steps, list) or not all(isinstance(s, dict) and isinstance(s.get("type"), str) for s in steps):
        raise _fail(path, "has no 'Preprocess' list of steps with a 'type'")
    return steps


def read_infer_cfg(folder: Path) -> Optional[InferConfig]:
    """The preprocessing in `folder/infer_cfg.yml`, or None when the folder has none; DataError if unusable."""
    path = Path(folder) / FILENAME
    if not path.is_file():
        return None
    fields: Dict[str, Any] = {"backend": Backend.cv2, "layout": "HWC"}
    for step in _steps(path):
        kind = step["type"]
        if kind == "Resize":
            _resize(path, step, fields)
        elif kind in ("Normalize", "NormalizeImage"):
            _normalize(path, step, fields)
        elif kind == "Permute":
            fields["layout"] = "CHW" if step.get("channel_first", True) else "HWC"
            if step.get("to_bgr", False):
                fields["channels"] = "BGR"
        else:
            raise _fail(path, f"preprocessing step {kind!r} is not one the zoo can apply "
                              "(it reads Resize, Normalize / NormalizeImage and Permute)")
    if "resize" not in fields:
        raise _fail(path, "has no Resize step: the input size is unknown")
    return InferConfig(path=path, preprocess=Preprocess(**fields), size=fields["resize"])

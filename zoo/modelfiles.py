"""Find the model and parameter files of a Paddle inference model folder, whatever its naming.

Paddle writes several layouts: `inference.pdmodel` + `inference.pdiparams` (2.x `paddle.jit.save` /
`paddle.static.save_inference_model`), `model.pdmodel` + `model.pdiparams`, the legacy
`__model__` + `__params__` (or `model` + `params`) of the 1.x era, and legacy folders with one
file per parameter (params_file None). A PaddleSlim 1.x quant-aware export (`float/` beside `int/`)
is read from `float/`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from zoo.errors import ModelError
from zoo.fsutil import hash_file

LEGACY_PAIRS = (("__model__", "__params__"), ("model", "params"))
# PaddleSlim 1.x's quant-aware export writes float/ (fake-quant, runs in Paddle) beside int/ (int8-typed
# weights, Paddle Lite only) and, in early releases, mobile/: such a folder is read from float/
QUANT_EXPORT_FLOAT = "float"
QUANT_EXPORT_OTHERS = ("int", "int8", "mobile")


@dataclass(frozen=True)
class ModelFiles:
    """Where a Paddle inference model's files are."""

    folder: Path
    model_file: Path
    params_file: Optional[Path]  # None: one file per parameter inside `folder`

    @property
    def model_filename(self) -> str:
        return self.model_file.name

    @property
    def params_filename(self) -> Optional[str]:
        return None if self.params_file is None else self.params_file.name


def find_model_files(path: Path) -> ModelFiles:
    """Locate the model files in `path` (a folder, or a `.pdmodel` file); raise ModelError if none."""
    path = Path(path).expanduser()
    if path.is_file() and path.suffix == ".pdmodel":
        params = path.with_suffix(".pdiparams")
        return ModelFiles(path.parent, path, params if params.exists() else None)
    if not path.exists():
        raise ModelError(f"{path} does not exist")
    if not path.is_dir():
        raise ModelError(f"{path} is not a model folder")
    preferred = path / "inference.pdmodel"
    candidates = [preferred] if preferred.is_file() else sorted(path.glob("*.pdmodel"))
    if len(candidates) > 1:
        names = ", ".join(c.name for c in candidates)
        raise ModelError(f"{path} holds several models ({names})", hint="Pass the .pdmodel file you mean.")
    if candidates:
        model = candidates[0]
        params = model.with_suffix(".pdiparams")
        return ModelFiles(path, model, params if params.is_file() else None)
    for model_name, params_name in LEGACY_PAIRS:
        model = path / model_name
        if model.is_file():
            params = path / params_name
            return ModelFiles(path, model, params if params.is_file() else None)
    quant_export = path / QUANT_EXPORT_FLOAT
    if quant_export.is_dir() and any((path / sub).is_dir() for sub in QUANT_EXPORT_OTHERS):
        return find_model_files(quant_export)
    raise ModelError(
        f"{path} holds no Paddle inference model (no *.pdmodel, __model__ or model file)",
    )


def model_sha256(files: ModelFiles) -> str:
    """sha256 over the model file and the parameter file (the identity of a model)."""

    return hash_file(*[p for p in (files.model_file, files.params_file) if p is not None])[0]

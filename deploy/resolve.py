"""Turn what the user typed (a recipe name, a `zoo reproduce` folder, a model folder) into model files."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Union

from zoo.errors import ModelError, UnknownNameError
from zoo.modelfiles import ModelFiles, find_model_files
from zoo.registry import load_registry
from zoo.schema import Role
import zoo.hub


@dataclass
class Source:
    """The models behind MODEL: the one to export first (int8 when there is one) and its FP32 baseline."""

    kind: str  # "recipe" | "reproduce" | "folder"
    label: str  # a short name for output folders and tables
    primary: ModelFiles
    fp32: Optional[ModelFiles] = None  # FP32 baseline, when known and different from `primary`
    int8: Optional[ModelFiles] = None  # the quantized model, when there is one
    recipe: Optional[str] = None
    preprocess: Optional[Dict[str, Any]] = None
    input_size: Optional[int] = None
    fill_size: Optional[Tuple[int, int]] = None  # (h, w) for dynamic input sizes, given by the user

    @property
    def fill(self) -> Optional[Union[int, Tuple[int, int]]]:
        """What the dynamic sizes of generated inputs take: the user's (h, w), else the entry's side."""
        return self.fill_size if self.fill_size is not None else self.input_size
    extra: Dict[str, Any] = field(default_factory=dict)


def is_reproduce_folder(path: Path) -> bool:
    return (path / "report.json").is_file() and ((path / "int8").is_dir() or (path / "fp32").is_dir())


def _maybe_model(path: Path) -> Optional[ModelFiles]:
    try:
        return find_model_files(path) if path.is_dir() else None
    except ModelError:
        return None


def _from_reproduce(path: Path, prefer: str) -> Source:
    try:
        report = json.loads((path / "report.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path / 'report.json'} is not a readable report ({exc})") from exc
    int8 = _maybe_model(path / "int8")
    fp32 = _maybe_model(path / "fp32")
    primary = fp32 if prefer == "fp32" and fp32 else (int8 or fp32)
    if primary is None:
        raise ModelError(f"{path} is a reproduce folder but neither int8/ nor fp32/ holds an inference model",
                         hint="Rerun `zoo reproduce`; it writes the quantized model into int8/.")
    settings = report.get("settings") or [{}]
    return Source(kind="reproduce", label=str(report.get("name") or report.get("recipe") or path.name),
                  primary=primary, fp32=fp32, int8=int8, recipe=report.get("recipe") or report.get("name"),
                  preprocess=report.get("preprocess"), input_size=settings[0].get("input_size"))


def _from_recipe(name: str, prefer: str, fetch_baseline: bool) -> Source:
    recipe = load_registry().get(name)

    def fetched(role: Role) -> Optional[ModelFiles]:
        artifact = recipe.artifacts.get(role)
        if artifact is None or not artifact.layout.is_inference_model:
            return None
        got = zoo.hub.fetch(recipe, role)
        return find_model_files(Path(got.path))

    int8 = fetched(Role.quantized) if prefer != "fp32" or fetch_baseline else None
    fp32 = fetched(Role.fp32) if (int8 is None or fetch_baseline or prefer == "fp32") else None
    primary = fp32 if prefer == "fp32" and fp32 else (int8 or fp32)
    if primary is None:
        raise ModelError(f"recipe {recipe.name} publishes no inference model (only training weights)",
                         hint=f"Run `zoo reproduce {recipe.name} --out DIR` and export DIR.")
    return Source(kind="recipe", label=recipe.name, primary=primary, fp32=fp32, int8=int8, recipe=recipe.name,
                  preprocess=recipe.preprocess.model_dump(mode="json"), input_size=recipe.headline().input_size)


QUANTIZE_RECORD = "zoo-quantize.json"  # what `zoo quantize` wrote into its --out: source, settings


def _quantized_from(folder: Path) -> Optional[ModelFiles]:
    """The FP32 model `zoo quantize` made this folder's model from, when its record names one that still exists."""
    try:
        record = json.loads((folder / QUANTIZE_RECORD).read_text(encoding="utf-8"))
        return find_model_files(Path(record["model"]))
    except (OSError, ValueError, KeyError, TypeError, ModelError):
        return None


def resolve_source(model: str, prefer: str = "int8", fetch_baseline: bool = False) -> Source:
    """Resolve MODEL. `prefer` "int8" exports the quantized model when there is one; "fp32" the baseline.

    `fetch_baseline` also fetches a recipe's FP32 model next to its quantized one (for side-by-side runs).
    """
    path = Path(model).expanduser()
    if path.exists():
        if path.is_dir() and is_reproduce_folder(path):
            return _from_reproduce(path, prefer)
        if path.is_dir() and path.name in ("fp32", "int8") and is_reproduce_folder(path.parent):
            # OUT/fp32 or OUT/int8 of a reproduction: that model, with its run's recipe (data, preprocessing)
            return _from_reproduce(path.parent, path.name)
        files = find_model_files(path)  # ModelError with a hint when it is not a model
        source_fp32 = _quantized_from(files.folder)  # read once: it decides both variants
        return Source(kind="folder", label=files.folder.resolve().name or "model", primary=files,
                      fp32=source_fp32, int8=files if source_fp32 else None)
    try:
        return _from_recipe(model, prefer, fetch_baseline)
    except UnknownNameError as exc:
        raise ModelError(
            f"{model!r} is neither a folder nor a zoo entry",
            hint="Pass a recipe name (`zoo list`), a `zoo reproduce` output folder or a Paddle inference model folder.",
        ) from exc

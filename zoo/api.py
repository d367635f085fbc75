"""The Python entry point: `zoo.load(name_or_path)` and `zoo.list_entries(pattern)`.

`load` gives one object with everything needed to run a zoo entry (or any Paddle inference model
folder) from Python: its files, a Paddle Inference predictor, the transform that matches the
preprocessing its numbers were measured with, the published numbers and where the files came from.
"""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np

from zoo.data.imagenet import load_image
from zoo.data.infer_cfg import read_infer_cfg
from zoo.data.transforms import InputSize, Transform, eval_transform
from zoo.device import DeviceLike
from zoo.errors import UsageError
from zoo.evaluate.run import recipe_model, resolve_target
from zoo.home import cache_home
from zoo.hub.core import artifact_ref
from zoo.modelfiles import ModelFiles, find_model_files, model_sha256
from zoo.predictor import Predictor
from zoo.registry import load_registry
from zoo.schema import Preprocess, Recipe, Role
from zoo.tasks import get_task, task_of_model

ImageInput = Union[str, Path, np.ndarray, Any]  # a file path, an RGB HWC uint8 array, or a PIL image


@dataclass
class LoadedModel:
    """A zoo entry (or model folder) ready to run: files, predictor, matching transform, numbers, provenance."""

    name: str
    files: ModelFiles
    task: str
    preprocess: Preprocess
    input_size: Optional[InputSize]  # a side, or (height, width)
    published: List[Dict[str, Any]]  # one row per published setting: input_size, INT8 and FP32 metrics (percent)
    provenance: Dict[str, Any]  # recipe, artifact role, url and sha256 of what was loaded (or the folder and its hash)
    recipe: Optional[Recipe] = None
    device: DeviceLike = "cpu"
    threads: int = 2

    @cached_property
    def transform(self) -> Transform:
        """image -> float32 input array, as the entry's published numbers were measured."""
        return eval_transform(self.preprocess, self.input_size)

    @cached_property
    def predictor(self) -> Predictor:
        """The Paddle Inference predictor of the model files (created on first use)."""
        return Predictor(self.files, device=self.device, threads=self.threads)

    def inputs(self, images: Sequence[ImageInput]) -> np.ndarray:
        """The batch the model takes for `images` (paths are decoded as the entry's reader decodes them)."""
        arrays = []
        for image in images:
            if isinstance(image, (str, Path)):
                image = load_image(Path(image), self.preprocess.backend)
            arrays.append(self.transform(image))
        return np.stack(arrays)

    def predict(self, images: Sequence[ImageInput]) -> List[np.ndarray]:
        """The model's outputs for `images` (single-input models, e.g. classifiers: one row per image)."""
        names = self.predictor.input_names
        if len(names) != 1:
            raise UsageError(f"{self.name} takes {len(names)} inputs {names}; predict() feeds single-input models",
                             hint="Build the feeds yourself: model.predictor.run({name: array, ...}), "
                                  "with model.inputs(images) for the image input.")
        return self.predictor.run(self.inputs(images))


def load(name_or_path: Union[str, Path], artifact: Optional[str] = None, *, device: DeviceLike = "cpu",
         mirror: Optional[str] = None) -> LoadedModel:
    """A zoo entry (name or alias: its `artifact`, default the recipe's default artifact, fetched and verified)
    or a Paddle inference model folder (its infer_cfg.yml preprocessing if it has one, else its task's default)."""
    recipe, path = resolve_target(str(name_or_path))
    if recipe is None:
        if artifact is not None:
            raise UsageError("artifact= names an entry's artifact; a model folder has none", hint="Drop artifact=.")
        return _load_folder(Path(path), device)  # type: ignore[arg-type]
    role = _role(recipe, artifact)
    files = recipe_model(recipe, role, cache_home() / "exported" / recipe.name / role.value, mirror)
    art = recipe.artifacts[role]
    provenance = {"recipe": recipe.name, "artifact": role.value, "url": artifact_ref(art),
                  "sha256": art.sha256, "source": recipe.source.model_dump(mode="json") if recipe.source else None,
                  "model_sha256": model_sha256(files)}
    published = [row.model_dump(mode="json", exclude_none=True) for row in recipe.published]
    return LoadedModel(recipe.name, files, get_task(recipe.task).name, recipe.preprocess,
                       recipe.headline().input_size, published, provenance, recipe, device)


def list_entries(pattern: str = "*") -> List[str]:
    """The names of the zoo's entries matching a shell-style `pattern` (on the name or an alias), sorted."""
    registry = load_registry()
    return sorted(r.name for r in registry.filter()
                  if fnmatch.fnmatch(r.name, pattern) or any(fnmatch.fnmatch(a, pattern) for a in r.aliases))


def _role(recipe: Recipe, artifact: Optional[str]) -> Role:
    if artifact is None:
        return recipe.default_artifact
    try:
        role = Role(artifact)
    except ValueError:
        role = None  # type: ignore[assignment]
    if role is None or role not in recipe.artifacts:
        have = ", ".join(r.value for r in recipe.artifacts)
        raise UsageError(f"{recipe.name} has no artifact {artifact!r}", hint=f"Use one of: {have}.")
    return role


def _load_folder(path: Path, device: DeviceLike) -> LoadedModel:
    files = find_model_files(path)
    task = task_of_model(files)
    exported = read_infer_cfg(files.folder)
    pre, (size,) = task.folder_inputs(files, exported.preprocess if exported else task.folder_preprocess(),
                                      [exported.size] if exported else None, {})
    provenance = {"folder": str(files.folder), "model_sha256": model_sha256(files),
                  "preprocess_source": str(exported.path) if exported else f"the {task.name} default"}
    return LoadedModel(files.folder.name, files, task.name, pre, size, [], provenance, None, device)

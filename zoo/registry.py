"""The registry of recipes: load and validate every YAML in recipes/, look entries up, filter.

Extra recipe folders can be added with ZOO_RECIPE_PATH (os.pathsep-separated); names must be
unique across all of them.
"""
from __future__ import annotations

import fnmatch
import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence

import yaml
from pydantic import ValidationError

from zoo.errors import RecipeError, UnknownNameError
from zoo.models.registry import ARCHITECTURES, INFERENCE_MODEL, Architecture, argument_problems
from zoo.names import NameRegistry
from zoo.plugins import STRATEGIES, TASKS
from zoo.schema import Recipe, removed_fields, validation_messages
import zoo.recipes


def builtin_recipe_dir() -> Path:
    """The folder of recipes shipped with the package (recipes/ in a checkout)."""

    return Path(list(zoo.recipes.__path__)[0])


def recipe_dirs() -> List[Path]:
    """The built-in folder followed by every folder in ZOO_RECIPE_PATH."""
    dirs = [builtin_recipe_dir()]
    for part in os.environ.get("ZOO_RECIPE_PATH", "").split(os.pathsep):
        if part:
            dirs.append(Path(part).expanduser())
    return dirs


def _format_validation_error(path: Path, err: ValidationError) -> str:
    return "\n".join([f"{path}: invalid recipe"] + [f"  {line}" for line in validation_messages(err)])


class _NoAliasLoader(yaml.SafeLoader):
    """YAML without aliases: a recipe is small data, and nested aliases ("billion laughs") would expand
    into gigabytes on load."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise RecipeError(f"line {mark.line + 1}: YAML aliases (*name) are not allowed in recipes",
                              hint="Write the repeated value out in full.")
        return super().compose_node(parent, index)


def load_recipe_file(path: Path) -> Recipe:
    """Parse and validate one recipe file; errors name the file and the field."""
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_NoAliasLoader)  # noqa: S506 - a SafeLoader
    except RecipeError as exc:
        raise RecipeError(f"{path}: {exc.message}", hint=exc.hint) from None
    except OSError as exc:
        raise RecipeError(f"{path}: cannot read recipe: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise RecipeError(f"{path}: not valid UTF-8 (byte {exc.start} is {exc.object[exc.start:exc.start + 1]!r})",
                          hint="Save the recipe file as UTF-8.") from None
    except yaml.YAMLError as exc:
        raise RecipeError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise RecipeError(f"{path}: a recipe must be a mapping of fields, got {type(data).__name__}")
    removed = removed_fields(data)
    if removed:
        raise RecipeError(f"{path}: " + "; ".join(removed), hint="Delete the field(s) from the recipe.")
    arch = _architecture(path, data.get("arch"))
    if "preprocess" not in data and arch is not None and arch.preprocess is not None:
        data = {**data, "preprocess": arch.preprocess().model_dump(mode="json")}  # the convention its weights were trained with
    try:
        recipe = Recipe.model_validate(data)
    except ValidationError as exc:
        raise RecipeError(_format_validation_error(path, exc)) from exc
    if recipe.name != path.stem:
        raise RecipeError(
            f"{path}: field `name` is {recipe.name!r} but the file is named {path.name!r}",
            hint="Name each recipe file after its entry: NAME.yaml.",
        )
    _check_architecture(path, recipe, arch)
    _check_task_and_strategy(path, recipe)
    return recipe


def _check_task_and_strategy(path: Path, recipe: Recipe) -> None:
    """`task` and `strategy` name registered ones, and the recipe sets what its strategy reads."""
    for field, table in (("task", TASKS), ("strategy", STRATEGIES)):
        try:
            table.get(getattr(recipe, field))
        except UnknownNameError as exc:
            raise RecipeError(f"{path}: field `{field}`: {exc} (registered: {', '.join(table.names())})",
                              hint=exc.hint) from None
    wanted = set(TASKS.get(recipe.task).metrics)
    for i, row in enumerate(recipe.published):
        stray = (set(row.metrics()) | set(row.fp32())) - wanted
        if stray:
            raise RecipeError(f"{path}: field `published.{i}`: metric(s) {sorted(stray)} do not fit task {recipe.task!r}",
                              hint=f"Task {recipe.task!r} publishes {', '.join(sorted(wanted))} (and fp32_ of each).")
    problems = STRATEGIES.get(recipe.strategy)().recipe_problems(recipe)
    if problems:
        raise RecipeError(f"{path}: " + "; ".join(problems), hint="Add the field(s) to the recipe.")


def _architecture(path: Path, name: object) -> Optional[Architecture]:
    """The registered architecture a recipe names (None for `inference_model` or a missing field, which
    validation reports); an unknown name is refused with the close ones."""
    if not isinstance(name, str) or name == INFERENCE_MODEL:
        return None
    try:
        return ARCHITECTURES.get(name)
    except UnknownNameError as exc:
        raise RecipeError(f"{path}: field `arch`: {exc}", hint=exc.hint) from None


def _check_architecture(path: Path, recipe: Recipe, arch: Optional[Architecture]) -> None:
    """`arch` serves the recipe's task and `arch_args` fit its builder."""
    if arch is None:
        if recipe.arch_args:
            raise RecipeError(f"{path}: field `arch_args`: arch {INFERENCE_MODEL!r} builds no network, so it takes no arguments",
                              hint="Remove `arch_args`, or name the architecture of the network.")
        return
    if arch.task != recipe.task:
        raise RecipeError(f"{path}: field `arch`: {arch.name} is a {arch.task} network, the recipe's task is "
                          f"{recipe.task}", hint=f"Pick a {recipe.task} architecture: "
                          f"{', '.join(n for n in ARCHITECTURES.names() if ARCHITECTURES.get(n).task == recipe.task)}.")
    problems = argument_problems(arch, recipe.arch_args)
    classes = recipe.arch_args.get("num_classes", recipe.dataset.num_classes)
    if classes != recipe.dataset.num_classes:
        problems.append(f"num_classes {classes} disagrees with dataset.num_classes {recipe.dataset.num_classes}")
    if problems:
        raise RecipeError(f"{path}: field `arch_args`: " + "; ".join(problems),
                          hint=f"See the builder's signature: zoo.models.archs.{arch.builder.__name__}.")


class Registry:
    """All recipes, keyed by name, with aliases (a NameRegistry of recipes plus the recipe files they came from)."""

    def __init__(self, recipes: Iterable[Recipe], origins: Optional[Dict[str, Path]] = None) -> None:
        self._recipes: NameRegistry[Recipe] = NameRegistry(
            "recipe",
            unknown_message="no zoo entry named {name!r}",
            unknown_hint="Run `zoo list` to see every entry.",
            duplicate_hint="Every recipe name and alias must be unique.",
        )
        self.origins: Dict[str, Path] = dict(origins or {})
        for recipe in recipes:
            self.add(recipe, self.origins.get(recipe.name))

    def add(self, recipe: Recipe, origin: Optional[Path] = None) -> None:
        """Register one recipe; a name or alias used twice raises DuplicateNameError naming both files."""
        self._recipes.register(recipe.name, recipe, recipe.aliases, str(origin) if origin is not None else None)
        if origin is not None:
            self.origins[recipe.name] = origin

    @classmethod
    def from_dirs(cls, dirs: Sequence[Path]) -> "Registry":
        """Load every *.yaml in the folders, in name order."""
        registry = cls([])
        for folder in dirs:
            if not folder.is_dir():
                raise RecipeError(f"recipe folder {folder} does not exist", hint="Check ZOO_RECIPE_PATH.")
            for path in sorted(folder.glob("*.yaml")):
                registry.add(load_recipe_file(path), path)
        return registry

    def names(self) -> List[str]:
        return self._recipes.names()

    def __len__(self) -> int:
        return len(self._recipes)

    def __contains__(self, name: str) -> bool:
        return name in self._recipes

    def get(self, name: str) -> Recipe:
        """The recipe of a name or alias; an unknown name raises UnknownNameError suggesting close matches."""
        return self._recipes.get(name)

    def filter(
        self,
        pattern: Optional[str] = None,
        task: Optional[str] = None,
        strategy: Optional[str] = None,
    ) -> List[Recipe]:
        """Recipes whose name matches the fnmatch pattern (a bare word matches as a substring)."""
        if pattern and not any(ch in pattern for ch in "*?["):
            pattern = f"*{pattern}*"
        out = []
        for name in self.names():
            recipe = self._recipes.get(name)
            if pattern and not fnmatch.fnmatch(name, pattern):
                continue
            if task is not None and recipe.task != task:
                continue
            if strategy is not None and recipe.strategy != strategy:
                continue
            out.append(recipe)
        return out


@lru_cache(maxsize=None)
def _cached(dirs: tuple) -> Registry:
    return Registry.from_dirs([Path(d) for d in dirs])


def load_registry() -> Registry:
    """The registry of the built-in recipes plus ZOO_RECIPE_PATH (cached per set of folders)."""
    return _cached(tuple(str(d) for d in recipe_dirs()))


def get_recipe(name: str) -> Recipe:
    """Shortcut: the recipe of a name or alias."""
    return load_registry().get(name)

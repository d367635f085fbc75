"""Datasets and transforms: ImageNet-layout folders, the bundled digits data, recipe-driven transforms."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, List, Optional

from zoo import manifest
from zoo.errors import DataError
from zoo.schema import DatasetKind, Recipe
from zoo.fsutil import StagedDir


def resolve_data(recipe: Recipe, data: Optional[Path]) -> Path:
    """The data folder of a recipe: digits is materialized on demand, anything else needs `data`."""
    if data is not None:
        return Path(data).expanduser()
    if recipe.dataset.kind is DatasetKind.digits:
        from zoo.data.digits import materialize

        return materialize()
    raise DataError(
        f"{recipe.name} needs its {recipe.dataset.kind.value} data ({recipe.dataset.split} split)",
        hint=(
            "Pass --data DIR: an ImageNet-layout folder (train_list.txt / val_list.txt or train/<class>/, val/<class>/)."
            if recipe.dataset.kind is DatasetKind.imagenet
            else "Pass --data DIR: a COCO folder (annotations/ + val2017/)."
        ),
    )


MANIFEST_FILE = ".zoo-files.json"  # a generated dataset's file manifest


def dataset_problems(folder: Path, full: bool = False) -> List[str]:
    """How a generated dataset folder differs from the manifest written with it (empty: intact)."""
    return manifest.problems(folder, manifest.read(folder / MANIFEST_FILE), exclude=(MANIFEST_FILE,), full=full)


def materialize_once(target: Path, write: Callable[[Path], None], is_complete: Callable[[Path], bool],
                     label: str) -> Path:
    """Build a generated dataset folder once: `write` fills a scratch folder beside `target`, which is renamed
    into place (a stale, partial or altered `target` is replaced; a concurrent process that finished first wins).

    The folder carries a file manifest (written last), checked before it is used again: a relabelled or
    damaged copy is generated afresh instead of being scored as if it were the published data.
    """

    def intact() -> bool:
        return is_complete(target) and not dataset_problems(target)

    if intact():
        return target
    try:
        stage = StagedDir(target)
    except OSError as exc:
        raise DataError(f"cannot create {target.parent}: {exc.strerror}", hint="ZOO_HOME must be a writable folder.") from exc
    with stage:
        try:
            write(stage.path)
            files = manifest.build(stage.path, exclude=(MANIFEST_FILE,))
            (stage.path / MANIFEST_FILE).write_text(json.dumps({"files": files}, indent=1) + "\n", encoding="utf-8")
            if not intact():  # else a concurrent process finished first: keep its folder
                stage.commit()
        except OSError as exc:
            raise DataError(f"cannot write the {label} to {target}: {exc}",
                            hint="ZOO_HOME must be a writable folder with free space.") from exc
    return target


__all__ = ["MANIFEST_FILE", "dataset_problems", "materialize_once", "resolve_data"]

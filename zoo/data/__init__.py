"""Datasets and transforms: ImageNet-layout folders, the bundled digits data, recipe-driven transforms."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

from zoo.errors import DataError
from zoo.schema import DatasetKind, Recipe


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


def materialize_once(target: Path, write: Callable[[Path], None], is_complete: Callable[[Path], bool],
                     label: str) -> Path:
    """Build a generated dataset folder once: `write` fills a scratch folder beside `target`, which is renamed
    into place (a stale or partial `target` is replaced; a concurrent process that finished first wins)."""
    from zoo.fsutil import StagedDir

    if is_complete(target):
        return target
    try:
        stage = StagedDir(target)
    except OSError as exc:
        raise DataError(f"cannot create {target.parent}: {exc.strerror}", hint="ZOO_HOME must be a writable folder.") from exc
    with stage:
        try:
            write(stage.path)
            if not is_complete(target):  # else a concurrent process finished first: keep its folder
                stage.commit()
        except OSError as exc:
            raise DataError(f"cannot write the {label} to {target}: {exc}",
                            hint="ZOO_HOME must be a writable folder with free space.") from exc
    return target


__all__ = ["materialize_once", "resolve_data"]

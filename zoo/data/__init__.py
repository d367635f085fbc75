"""Datasets and transforms: ImageNet-layout folders, the bundled digits data, recipe-driven transforms."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

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


__all__ = ["resolve_data"]

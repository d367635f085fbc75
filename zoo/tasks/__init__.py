"""Tasks: what evaluation and reproduction need to know about classification and detection.

A task is a small interface, like a quantization strategy (zoo/quant/base.py): its data folder and
dataset reader, its preprocessing, how a model of the task is scored (predictor feeds and metric),
the published metrics it compares, and the rows it reports. `zoo eval`, `zoo reproduce` and the
CLI ask `get_task(recipe.task)` (or `task_of_model` for a plain folder) and never branch on the
task themselves.
"""
from __future__ import annotations

import importlib
from typing import Dict, List, Optional, Type, Union

from zoo.errors import UsageError
from zoo.modelfiles import ModelFiles
from zoo.schema import Task
from zoo.tasks.base import ModelTask, ScoreOptions

_REGISTRY: Dict[str, Type[ModelTask]] = {}
_BUILTIN_MODULES: Dict[str, str] = {
    "classification": "zoo.tasks.classification",
    "detection": "zoo.tasks.detection",
}
# a folder whose program shows no task-specific op is scored as this task
FALLBACK_TASK = "classification"


def register_task(name: str):  # type: ignore[no-untyped-def]
    """Class decorator: register a task under `name` (a recipe's `task`); a name used twice raises."""

    def deco(cls: Type[ModelTask]) -> Type[ModelTask]:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"task {name!r} is already registered ({_REGISTRY[name].__name__})")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return deco


def task_names() -> List[str]:
    """Every known task name."""
    return sorted(set(_REGISTRY) | set(_BUILTIN_MODULES))


def get_task(task: Union[Task, str]) -> ModelTask:
    """The task registered under `task` (a schema Task or its name)."""
    name = task.value if isinstance(task, Task) else str(task)
    if name not in _REGISTRY and name in _BUILTIN_MODULES:
        importlib.import_module(_BUILTIN_MODULES[name])
    if name not in _REGISTRY:
        raise UsageError(f"unknown task {name!r}", hint=f"Known tasks: {', '.join(task_names())}.")
    return _REGISTRY[name]()


def task_of_model(files: ModelFiles, asked: Optional[str] = None) -> ModelTask:
    """The task of a model folder: `asked` when given, else the first task that recognizes its program."""
    if asked is not None:
        return get_task(asked)
    for name in task_names():
        task = get_task(name)
        if name != FALLBACK_TASK and task.recognizes(files):
            return task
    return get_task(FALLBACK_TASK)


__all__ = ["FALLBACK_TASK", "ModelTask", "ScoreOptions", "get_task", "register_task", "task_names", "task_of_model"]

"""Tasks: what evaluation and reproduction need to know about classification and detection.

A task is a small interface, like a quantization strategy (zoo/quant/base.py): its data folder and
dataset reader, its preprocessing, how a model of the task is scored (predictor feeds and metric),
the published metrics it compares, and the rows it reports. `zoo eval`, `zoo reproduce` and the
CLI ask `get_task(recipe.task)` (or `task_of_model` for a plain folder) and never branch on the
task themselves.
"""
from __future__ import annotations

from typing import Callable, List, Optional, Type

from zoo.modelfiles import ModelFiles
from zoo import plugins
from zoo.names import NameRegistry
from zoo.tasks.base import ModelTask, ScoreOptions

# one table for the recipe loader and the pipeline (zoo.plugins); built-ins are imported on first use
TASKS: NameRegistry[Type[ModelTask]] = plugins.TASKS
# a folder whose program shows no task-specific op is scored as this task
FALLBACK_TASK = "classification"


def register_task(name: str) -> Callable[[Type[ModelTask]], Type[ModelTask]]:
    """Class decorator: register a task under `name` (a recipe's `task`); a name used twice raises DuplicateNameError."""
    return TASKS.decorator(name, set_name=True)


def task_names() -> List[str]:
    """Every known task name."""
    return TASKS.names()


def get_task(task: str) -> ModelTask:
    """The task registered under the name `task` (a recipe's `task`)."""
    return TASKS.get(task)()


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

"""The open registries a recipe names into: its `task` and its `strategy`.

They sit below everything that registers into them (zoo.tasks, zoo.quant) so that the recipe loader
can check a recipe's `task` and `strategy` against the one list of each. Built-in entries are named
with the module that registers them and imported on first use (they are light, but their modules
import the task's or strategy's machinery).
"""
from __future__ import annotations

from typing import Any

from zoo.names import NameRegistry

TASKS: NameRegistry[Any] = NameRegistry(
    "task", builtin={"classification": "zoo.tasks.classification", "detection": "zoo.tasks.detection"}
)
STRATEGIES: NameRegistry[Any] = NameRegistry(
    "quantization strategy",
    plural="strategies",
    builtin={"ptq": "zoo.quant.ptq_strategy", "qat": "zoo.quant.qat", "act": "zoo.quant.act"},
)

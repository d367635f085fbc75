"""The open registries a recipe names into (its `task` and its `strategy`) and the runtimes models are scored on.

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

# the runtimes zoo.runtime.open_runtime loads models for: the core's two Paddle Inference runtimes, and the
# deployment runtimes zoo.deploy registers (named here by module, imported only when one is asked for)
_DEPLOY_RUNTIMES = "zoo.deploy.runtimes"
RUNTIMES: NameRegistry[Any] = NameRegistry(
    "runtime",
    builtin={"paddle": "zoo.runtime", "paddle-int8": "zoo.runtime", "onnxruntime": _DEPLOY_RUNTIMES,
             "openvino": _DEPLOY_RUNTIMES, "lite": _DEPLOY_RUNTIMES, "paddle3": _DEPLOY_RUNTIMES},
)

"""The registry of network implementations: recipes name an architecture by key (`arch`)."""
from __future__ import annotations

from typing import Callable, List, TypeVar

from zoo.errors import ModelError
from zoo.names import NameRegistry

Builder = Callable[..., object]  # returns a paddle.nn.Layer
B = TypeVar("B", bound=Builder)

# A recipe with this arch has no network definition: the strategy works on its FP32 inference model.
INFERENCE_MODEL = "inference_model"

# zoo.models.archs registers the built-in architectures; it is imported on the first lookup
ARCHITECTURES: NameRegistry[Builder] = NameRegistry(
    "architecture",
    modules=["zoo.models.archs"],
    reserved=[INFERENCE_MODEL],
    duplicate_hint="Pick another name for the new architecture.",
)


def register_model(name: str) -> Callable[[B], B]:
    """Decorator: register a builder under `name`; registering a name twice raises DuplicateNameError."""
    return ARCHITECTURES.decorator(name)  # type: ignore[return-value]


def available_models() -> List[str]:
    """Registered architecture keys, sorted."""
    return ARCHITECTURES.names()


def build_model(arch: str, **kwargs: object):  # -> paddle.nn.Layer
    """Instantiate a registered architecture (e.g. build_model("digits_mobilenet_v1", num_classes=10))."""
    if arch == INFERENCE_MODEL:
        raise ModelError(
            f"arch {INFERENCE_MODEL!r} has no network definition",
            hint="This recipe works on its FP32 inference model; load it with zoo.predictor or the strategy directly.",
        )
    return ARCHITECTURES.get(arch)(**kwargs)

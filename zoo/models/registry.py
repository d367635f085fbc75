"""The registry of network implementations: recipes name an architecture by key (`arch`)."""
from __future__ import annotations

from typing import Callable, Dict, List, TypeVar

from zoo.errors import ModelError

Builder = Callable[..., object]  # returns a paddle.nn.Layer
B = TypeVar("B", bound=Builder)

_BUILDERS: Dict[str, Builder] = {}

# A recipe with this arch has no network definition: the strategy works on its FP32 inference model.
INFERENCE_MODEL = "inference_model"


def register_model(name: str) -> Callable[[B], B]:
    """Decorator: register a builder under `name`; registering a name twice raises ModelError."""

    def deco(fn: B) -> B:
        if name in _BUILDERS or name == INFERENCE_MODEL:
            raise ModelError(f"model {name!r} is already registered", hint="Pick another name for the new architecture.")
        _BUILDERS[name] = fn
        return fn

    return deco


def available_models() -> List[str]:
    """Registered architecture keys, sorted."""
    _ensure_builtin()
    return sorted(_BUILDERS)


def build_model(arch: str, **kwargs: object):  # -> paddle.nn.Layer
    """Instantiate a registered architecture (e.g. build_model("digits_mobilenet_v1", num_classes=10))."""
    _ensure_builtin()
    if arch == INFERENCE_MODEL:
        raise ModelError(
            f"arch {INFERENCE_MODEL!r} has no network definition",
            hint="This recipe works on its FP32 inference model; load it with zoo.predictor or the strategy directly.",
        )
    try:
        builder = _BUILDERS[arch]
    except KeyError:
        raise ModelError(f"unknown architecture {arch!r}", hint=f"Known: {', '.join(sorted(_BUILDERS))}.") from None
    return builder(**kwargs)


def _ensure_builtin() -> None:
    import zoo.models.archs  # noqa: F401  (registers the built-in architectures on first import)

"""The registry of network implementations: recipes name an architecture by key (`arch`).

An entry carries what a recipe needs besides the builder: the task it serves, the preprocessing a
recipe gets when it names none (the convention its weights were trained with), and how its
published weights are named (`weights`). `argument_problems` checks a recipe's `arch_args`
against the builder's own signature, so a misspelt or mistyped argument is refused when the recipe
loads, not half-way through a run.
"""
from __future__ import annotations

import collections.abc
import inspect
import typing
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional, TypeVar

from zoo.errors import ModelError
from zoo.names import NameRegistry
from zoo.schema import Preprocess, Task

Builder = Callable[..., object]  # returns a paddle.nn.Layer
B = TypeVar("B", bound=Builder)

# A recipe with this arch has no network definition: the strategy works on its FP32 inference model.
INFERENCE_MODEL = "inference_model"


@dataclass(frozen=True)
class Architecture:
    """One registered network: its builder, task, default preprocessing and weight naming."""

    name: str
    builder: Builder
    task: str  # a task name (zoo.schema.Task lists the built-in ones)
    preprocess: Optional[Callable[[], Preprocess]] = None  # what a recipe that names none gets
    weights: str = "a paddle state dict (.pdparams) with the builder's own keys"

    def parameters(self) -> Dict[str, inspect.Parameter]:
        """The builder's keyword arguments (a `**kwargs` catch-all is not one: it accepts nothing by name)."""
        return {name: p for name, p in inspect.signature(self.builder).parameters.items()
                if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}

    def build(self, **kwargs: object) -> object:
        """Instantiate the network."""
        return self.builder(**kwargs)


# zoo.models.archs registers the built-in architectures; it is imported on the first lookup
ARCHITECTURES: NameRegistry[Architecture] = NameRegistry(
    "architecture",
    modules=["zoo.models.archs"],
    reserved=[INFERENCE_MODEL],
    duplicate_hint="Pick another name for the new architecture.",
)


def register_model(name: str, task: str = Task.classification, preprocess: Optional[Callable[[], Preprocess]] = None,
                   weights: Optional[str] = None) -> Callable[[B], B]:
    """Decorator: register a builder under `name`; registering a name twice raises DuplicateNameError."""

    def deco(builder: B) -> B:
        entry = Architecture(name, builder, task, preprocess, weights or Architecture.weights)
        ARCHITECTURES.register(name, entry, origin=getattr(builder, "__module__", None))
        return builder

    return deco


def get_architecture(arch: str) -> Architecture:
    """The registered entry of `arch` (UnknownNameError with close names when there is none)."""
    if arch == INFERENCE_MODEL:
        raise ModelError(
            f"arch {INFERENCE_MODEL!r} has no network definition",
            hint="This recipe works on its FP32 inference model; load it with zoo.predictor or the strategy directly.",
        )
    return ARCHITECTURES.get(arch)


def available_models() -> List[str]:
    """Registered architecture keys, sorted."""
    return ARCHITECTURES.names()


def build_model(arch: str, **kwargs: object):  # -> paddle.nn.Layer
    """Instantiate a registered architecture (e.g. build_model("digits_mobilenet_v1", num_classes=10))."""
    return get_architecture(arch).build(**kwargs)


def _kind(value: Any) -> str:
    return "a number" if isinstance(value, (int, float)) and not isinstance(value, bool) else type(value).__name__


_SCALARS = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


def _mismatch(value: Any, hint: Any, where: str) -> Optional[str]:
    """Where `value` does not fit the builder's annotation `hint`, at any depth (None: it fits or the
    annotation says nothing checkable)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Union:
        if value is None and type(None) in args:
            return None
        found = [_mismatch(value, arm, where) for arm in args if arm is not type(None)]
        return None if any(f is None for f in found) else found[0]
    if origin in (list, tuple, collections.abc.Sequence):
        if not isinstance(value, list):
            return f"{where} must be a list, got {value!r}"
        for i, item in enumerate(value):
            found = _mismatch(item, args[0] if args else Any, f"{where}[{i}]")
            if found:
                return found
        return None
    if hint in _SCALARS:
        ok = isinstance(value, bool) if hint is bool else (
            isinstance(value, str) if hint is str else
            isinstance(value, (int, float) if hint is float else int) and not isinstance(value, bool))
        return None if ok else f"{where} must be {_SCALARS[hint]}, got {value!r}"
    return None


def argument_problems(arch: Architecture, args: Mapping[str, Any]) -> List[str]:
    """What is wrong with `args` for `arch`'s builder: unknown names, and values whose kind differs from
    the default's (a number for a number, a list for a list, ...)."""
    params = arch.parameters()
    try:
        hints = typing.get_type_hints(arch.builder)
    except Exception:  # an annotation that does not resolve: fall back to the defaults' kinds
        hints = {}
    problems = []
    for key, value in args.items():
        if key not in params:
            problems.append(f"{arch.name} takes no argument {key!r} (it takes: {', '.join(params) or 'none'})")
            continue
        default = params[key].default
        if key in hints:
            found = _mismatch(value, hints[key], f"{arch.name}'s {key!r}")
        elif default is inspect.Parameter.empty or default is None or _kind(value) == _kind(default):
            found = None
        else:
            found = f"{arch.name}'s {key!r} is {_kind(default)} (default {default!r}), got {value!r}"
        if found:
            problems.append(found)
    return problems

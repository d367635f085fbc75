"""One registry class for everything the zoo looks up by name: recipes, architectures, strategies, tasks.

A registry maps names (and aliases) to values, refuses a name used twice (DuplicateNameError) and
answers an unknown name with close matches (UnknownNameError). Built-in entries that import heavy
libraries (paddle, paddleslim) are registered lazily: `builtin` names the module that registers each
built-in name, and that module is imported the first time the name is asked for or re-registered.
"""
from __future__ import annotations

import difflib
import importlib
from typing import Callable, Dict, Generic, Iterable, List, Mapping, Optional, TypeVar

from zoo.errors import DuplicateNameError, UnknownNameError

T = TypeVar("T")


class NameRegistry(Generic[T]):
    """Values of one kind (e.g. "architecture") keyed by unique names and aliases."""

    def __init__(
        self,
        kind: str,
        plural: Optional[str] = None,
        builtin: Optional[Mapping[str, str]] = None,
        modules: Iterable[str] = (),
        reserved: Iterable[str] = (),
        unknown_message: Optional[str] = None,
        unknown_hint: Optional[str] = None,
        duplicate_hint: str = "Pick another name.",
    ) -> None:
        """`builtin`: name -> module registering it (imported when that name is first used); `modules`: modules
        registering built-ins, all imported on the first use of any name; `reserved`: names nobody may register.

        `unknown_message` is a format string with {kind} and {name}; `unknown_hint` replaces the list of
        known names when nothing close is found (a long list helps nobody).
        """
        self.kind = kind
        self.plural = plural or f"{kind}s"
        self._builtin: Dict[str, str] = dict(builtin or {})
        self._modules: List[str] = list(modules)
        self._reserved = frozenset(reserved)
        self._unknown_message = unknown_message or "unknown {kind} {name!r}"
        self._unknown_hint = unknown_hint
        self._duplicate_hint = duplicate_hint
        self._values: Dict[str, T] = {}
        self._aliases: Dict[str, str] = {}
        self._origins: Dict[str, str] = {}

    # ---- registering --------------------------------------------------------------------------

    def register(self, name: str, value: T, aliases: Iterable[str] = (), origin: Optional[str] = None) -> T:
        """Add `value` under `name` and its aliases; a name or alias already taken by another value raises."""
        aliases = list(aliases)
        if self._values.get(name) is value and not aliases:
            return value  # the same object registered again (a module imported twice) is harmless
        for key in [name, *aliases]:
            self._load_builtin(key)  # a built-in's name is taken even before its module is imported
            taken = key in self._values or key in self._aliases or key in self._reserved
            if taken:
                first = self._origins.get(self._aliases.get(key, key))
                where = f"{origin}: " if origin else ""
                also = f" (first from {first})" if first else ""
                raise DuplicateNameError(
                    f"{where}duplicate name {key!r}: {self.kind} already registered{also}", hint=self._duplicate_hint
                )
        self._values[name] = value
        for alias in aliases:
            self._aliases[alias] = name
        if origin is not None:
            self._origins[name] = origin
        return value

    def decorator(self, name: str, set_name: bool = False) -> Callable[[T], T]:
        """`@registry.decorator("name")`: register the decorated class or function under `name`.

        With `set_name`, the registered class also gets `name` as its `name` attribute (once registered:
        a refused class keeps its own).
        """

        def deco(value: T) -> T:
            self.register(name, value)
            if set_name:
                value.name = name  # type: ignore[attr-defined]
            return value

        return deco

    # ---- looking up ---------------------------------------------------------------------------

    def get(self, name: str) -> T:
        """The value of a name or alias; an unknown name raises UnknownNameError with close matches."""
        key = self._aliases.get(name, name)
        self._load_builtin(key)
        if key in self._values:
            return self._values[key]
        raise UnknownNameError(self._unknown_message.format(kind=self.kind, name=name), hint=self._hint_for(name))

    def __contains__(self, name: object) -> bool:
        self._load_modules()
        return isinstance(name, str) and (name in self._values or name in self._aliases or name in self._builtin)

    def __len__(self) -> int:
        self._load_modules()
        return len(set(self._values) | set(self._builtin))

    def names(self) -> List[str]:
        """Every registered or built-in name (not the aliases), sorted."""
        self._load_modules()
        return sorted(set(self._values) | set(self._builtin))

    def origin(self, name: str) -> Optional[str]:
        """Where `name` was registered from (a file path), if the registrant said."""
        return self._origins.get(self._aliases.get(name, name))

    def _hint_for(self, name: str) -> str:
        candidates = self.names() + sorted(self._aliases)
        close = difflib.get_close_matches(name, candidates, n=3, cutoff=0.5)
        if close:
            return f"Did you mean: {', '.join(close)}?"
        if self._unknown_hint is not None:
            return self._unknown_hint
        return f"Known {self.plural}: {', '.join(self.names())}."

    def _load_modules(self) -> None:
        modules, self._modules = self._modules, []  # emptied first: the modules register through this registry
        for i, module in enumerate(modules):
            try:
                importlib.import_module(module)
            except BaseException:
                self._modules = modules[i:] + self._modules  # a failed import is retried (and fails loudly) next time
                raise

    def _load_builtin(self, name: str) -> None:
        self._load_modules()
        # import_module of a module that is being imported returns it from sys.modules: no recursion
        module = self._builtin.get(name)
        if module is not None and name not in self._values:
            importlib.import_module(module)

"""The one registry class: lazy built-ins, duplicates refused, unknown names answered with close matches."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from zoo.errors import DuplicateNameError, UnknownNameError
from zoo.names import NameRegistry
from zoo.quant.base import QuantStrategy, get_strategy, register_strategy, strategy_names


def test_lazy_builtin_is_imported_on_first_use(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "zoo_test_lazy_plugin.py").write_text(
        "from tests_registry_holder import REG\nREG.register('lazy', 42)\n"
    )
    reg: NameRegistry[int] = NameRegistry("widget", builtin={"lazy": "zoo_test_lazy_plugin"})
    holder = type(sys)("tests_registry_holder")
    holder.REG = reg  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tests_registry_holder", holder)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "zoo_test_lazy_plugin", raising=False)
    assert reg.names() == ["lazy"] and "zoo_test_lazy_plugin" not in sys.modules
    with pytest.raises(DuplicateNameError, match="duplicate name 'lazy': widget already registered"):
        reg.register("lazy", 7)  # a built-in's name is taken before its module is imported
    assert reg.get("lazy") == 42


def test_aliases_duplicates_and_suggestions() -> None:
    reg: NameRegistry[str] = NameRegistry("gadget", reserved=["none"])
    reg.register("alpha", "A", aliases=["first"], origin="a.yaml")
    assert reg.get("first") == "A" and reg.origin("first") == "a.yaml" and "first" in reg
    with pytest.raises(DuplicateNameError, match=r"b.yaml: duplicate name 'first': gadget already registered \(first from a.yaml\)"):
        reg.register("beta", "B", aliases=["first"], origin="b.yaml")
    assert "beta" not in reg  # a refused entry leaves nothing behind
    with pytest.raises(DuplicateNameError):
        reg.register("none", "N")
    assert reg.register("alpha", reg.get("alpha")) == "A"  # the same value again is harmless
    with pytest.raises(UnknownNameError, match="unknown gadget 'alpah'") as info:
        reg.get("alpah")
    assert info.value.hint == "Did you mean: alpha?"
    with pytest.raises(UnknownNameError) as info:
        reg.get("zzz")
    assert info.value.hint == "Known gadgets: alpha."


def test_strategy_registry_uses_zoo_errors() -> None:
    assert {"act", "ptq", "qat"} <= set(strategy_names())
    with pytest.raises(UnknownNameError, match="unknown quantization strategy 'pqt'") as info:
        get_strategy("pqt")
    assert "ptq" in info.value.hint

    @register_strategy("test_names_custom")
    class Custom(QuantStrategy):
        def quantize(self, recipe, source, data, out_dir, options):  # type: ignore[no-untyped-def]
            raise NotImplementedError

    assert isinstance(get_strategy("test_names_custom"), Custom) and Custom.name == "test_names_custom"
    with pytest.raises(DuplicateNameError):
        register_strategy("test_names_custom")(type("Other", (Custom,), {}))

"""The bundled digits models: the tars match their recipes, packing is byte-reproducible."""
from __future__ import annotations

import hashlib
import importlib.util
import tarfile
from pathlib import Path

import pytest

from zoo.registry import get_recipe
from zoo.schema import Role

REPO = Path(__file__).resolve().parents[1]
ASSETS = REPO / "zoo" / "assets"
DIGITS = ["digits_mobilenetv1_ptq", "digits_mobilenetv1_qat", "digits_mobilenetv3_act"]


def _script():
    spec = importlib.util.spec_from_file_location("train_digits", REPO / "scripts" / "train_digits.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


@pytest.mark.parametrize("name", DIGITS)
def test_bundled_tar_matches_recipe(name: str) -> None:
    art = get_recipe(name).artifacts[Role.fp32]
    blob = (ASSETS / art.bundled).read_bytes()
    assert len(blob) == art.size
    assert hashlib.sha256(blob).hexdigest() == art.sha256
    with tarfile.open(ASSETS / art.bundled) as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == ["inference.pdiparams", "inference.pdmodel"]
    assert all(m.mtime == 0 and m.uid == 0 and m.isfile() for m in members)


def test_recipe_preprocess_matches_training_script() -> None:
    script = _script()
    for name in DIGITS:
        assert get_recipe(name).preprocess == script.PREPROCESS


def test_pack_is_byte_reproducible(tmp_path: Path) -> None:
    script = _script()
    src = tmp_path / "model"
    src.mkdir()
    (src / "inference.pdmodel").write_bytes(b"model")
    (src / "inference.pdiparams").write_bytes(b"params" * 100)
    (src / "inference.pdiparams.info").write_bytes(b"not shipped")
    script.pack(src, tmp_path / "a.tar")
    (src / "inference.pdmodel").touch()  # a newer mtime must not change the bytes
    script.pack(src, tmp_path / "b.tar")
    assert (tmp_path / "a.tar").read_bytes() == (tmp_path / "b.tar").read_bytes()
    with tarfile.open(tmp_path / "a.tar") as tar:
        assert tar.getnames() == ["inference.pdiparams", "inference.pdmodel"]


def test_update_recipes_rewrites_only_fp32_fields(tmp_path: Path) -> None:
    script = _script()
    src = REPO / "recipes" / "digits_mobilenetv1_ptq.yaml"
    copy = tmp_path / src.name
    copy.write_text(src.read_text())
    before = get_recipe("digits_mobilenetv1_ptq")
    summary = {"x": {"file": "digits_mobilenetv1_fp32.tar", "sha256": "ab" * 32, "size": 123, "top1": 91.234, "top5": 99.5}}
    assert script.update_recipes(summary, tmp_path) == [src.name]
    from zoo.registry import load_recipe_file

    after = load_recipe_file(copy)
    art = after.artifacts[Role.fp32]
    assert (art.sha256, art.size) == ("ab" * 32, 123)
    assert (after.published[0].fp32().get("top1"), after.published[0].fp32().get("top5")) == (91.23, 99.5)
    assert after.published[0].metric("top1") == before.published[0].metric("top1")  # INT8 numbers are left alone

"""The cache checks what it serves: extractions and generated datasets carry a file manifest, checked
before use (a damaged one is rebuilt from verified bytes, or refused) and by `zoo cache verify`."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tests.conftest import RUNNER
from tests.httpserver import file_server, hub_env, legacy_model_tar, write_recipe  # noqa: F401
from zoo.cli.main import app
from zoo.errors import ChecksumError
from zoo.hub import fetch
from zoo.hub.archive import META_NAME
from zoo.registry import get_recipe, load_recipe_file

BUNDLED = "digits_mobilenetv1_ptq"


def _flip(path: Path, at: int = 1000) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_damaged_bundled_extraction_is_named_by_verify_and_rebuilt_by_fetch(zoo_home: Path) -> None:
    folder = fetch(get_recipe(BUNDLED), "fp32").path
    params = folder / "inference.pdiparams"
    good = _sha(params)
    assert json.loads((folder / META_NAME).read_text())["files"]["inference.pdiparams"]["sha256"] == good
    _flip(params)
    result = RUNNER.invoke(app, ["cache", "verify"])
    assert result.exit_code == 1, result.output
    assert "MISMATCH" in result.output and "inference.pdiparams hashes to" in result.output
    again = fetch(get_recipe(BUNDLED), "fp32").path  # the same process: the changed mtime is noticed
    assert again == folder and _sha(again / "inference.pdiparams") == good
    assert RUNNER.invoke(app, ["cache", "verify"]).exit_code == 0


def test_a_damaged_extraction_is_caught_even_with_its_mtime_kept(zoo_home: Path) -> None:
    import os

    from zoo import manifest

    folder = fetch(get_recipe(BUNDLED), "fp32").path
    params = folder / "inference.pdiparams"
    good, stat = _sha(params), params.stat()
    _flip(params)
    os.utime(params, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    manifest._checked.clear()  # as a new process finds it: the first check hashes every file
    assert _sha(fetch(get_recipe(BUNDLED), "fp32").path / "inference.pdiparams") == good


def test_an_extraction_from_before_manifests_is_extracted_again(zoo_home: Path) -> None:
    folder = fetch(get_recipe(BUNDLED), "fp32").path
    meta = json.loads((folder / META_NAME).read_text())
    del meta["files"]
    (folder / META_NAME).write_text(json.dumps(meta))
    again = fetch(get_recipe(BUNDLED), "fp32").path
    assert "files" in json.loads((again / META_NAME).read_text())


def test_a_damaged_download_and_extraction_are_refused_with_the_way_out(hub_env, file_server) -> None:
    url = file_server.url("/m_int8.tar")
    recipe = load_recipe_file(write_recipe(hub_env.recipes, "m", {"quantized": {"urls": [url], "layout": "legacy-inference"}}))
    good, files = legacy_model_tar("m_int8")
    file_server.add("/m_int8.tar", good)
    got = fetch(recipe)
    _flip(got.path / "inference.pdiparams", 10)
    _flip(got.archive, 600)  # the stored archive is damaged too: nothing to rebuild from
    with pytest.raises(ChecksumError, match="cached files of m/quantized are damaged") as info:
        fetch(recipe)
    assert "--force" in info.value.hint
    fixed = fetch(recipe, force=True)
    assert (fixed.path / "inference.pdiparams").read_bytes() == files["m_int8/__params__"]


def test_a_relabelled_digits_dataset_is_generated_again(zoo_home: Path) -> None:
    from zoo.data.digits import materialize

    folder = materialize()
    labels = folder / "val_list.txt"
    good = labels.read_text()
    first = good.splitlines()[0]
    path, label = first.split()
    labels.write_text(good.replace(first, f"{path} {(int(label) + 1) % 10}", 1))
    result = RUNNER.invoke(app, ["cache", "verify", "--json"])
    assert result.exit_code == 1
    bad = [r for r in json.loads(result.output)["results"] if not r["ok"]]
    assert [r["kind"] for r in bad] == ["dataset"] and "val_list.txt" in bad[0]["problem"]
    assert materialize() == folder and labels.read_text() == good

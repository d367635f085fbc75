"""Pins are recorded only for downloads that passed every check, archives only once they unpacked;
pins an older version recorded for archives that never unpacked are dropped, working ones kept."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from tests.httpserver import file_server, hub_env, legacy_model_tar, make_tar, write_recipe  # noqa: F401
from zoo.errors import ArchiveError, ChecksumError
from zoo.hub import fetch
from zoo.registry import load_recipe_file

HTML = b"<html><body>503 Service Unavailable</body></html>\n"


def _pins(home: Path) -> dict:
    path = home / "pins.json"
    return json.loads(path.read_text())["pins"] if path.exists() else {}


def _leftovers(home: Path) -> list:
    """Every file the cache holds besides locks (which are empty and reused)."""
    return sorted(str(p.relative_to(home)) for p in home.rglob("*")
                  if p.is_file() and p.parts[len(home.parts)] != "locks" and p.name != "pins.json")


def _old_pin(home: Path, url: str, data: bytes, name: str, label: str, blob: bool = True) -> str:
    """The state an older version left: a pin without the extraction mark, and its stored file."""
    sha = hashlib.sha256(data).hexdigest()
    if blob:
        (home / "blobs" / sha).mkdir(parents=True)
        (home / "blobs" / sha / name).write_bytes(data)
    home.mkdir(parents=True, exist_ok=True)
    pins = {url: {"sha256": sha, "size": len(data), "md5": hashlib.md5(data).hexdigest(), "file": name,
                  "url": url, "names": [label], "source": "first-download", "time": "2024-01-01T00:00:00Z"}}
    (home / "pins.json").write_text(json.dumps({"version": 1, "pins": pins}))
    return sha


@pytest.fixture
def tar_entry(hub_env, file_server):
    url = file_server.url("/PaddleSlim/m_int8.tar")
    recipe = load_recipe_file(write_recipe(hub_env.recipes, "m", {"quantized": {"urls": [url], "layout": "legacy-inference"}}))
    good, files = legacy_model_tar("m_int8")
    return recipe, url, good, files


def test_not_an_archive_leaves_no_pin_and_a_good_archive_then_succeeds(hub_env, file_server, tar_entry):
    recipe, url, good, files = tar_entry
    file_server.add("/PaddleSlim/m_int8.tar", HTML)  # an error page served with 200 under the archive's URL
    with pytest.raises(ArchiveError, match="not a readable tar archive") as info:
        fetch(recipe)
    assert "<html>" in info.value.message and url in info.value.message
    assert "Nothing from this download was kept or pinned" in info.value.hint
    assert _pins(hub_env.home) == {} and _leftovers(hub_env.home) == []
    file_server.add("/PaddleSlim/m_int8.tar", good)
    got = fetch(recipe)  # no --force needed: nothing vouches for the error page
    assert (got.path / "inference.pdiparams").read_bytes() == files["m_int8/__params__"]
    (pin,) = _pins(hub_env.home).values()
    assert pin["sha256"] == hashlib.sha256(good).hexdigest() and pin["extracted"] is True


def test_archive_without_a_model_is_refused_and_not_pinned(hub_env, file_server, tar_entry):
    recipe, _url, good, _files = tar_entry
    file_server.add("/PaddleSlim/m_int8.tar", make_tar({"m_int8/README.txt": b"moved to another host\n"}))
    with pytest.raises(ArchiveError, match="holds no Paddle inference model") as info:
        fetch(recipe)
    assert "README.txt" in info.value.message and "legacy-inference" in info.value.message
    assert _pins(hub_env.home) == {} and _leftovers(hub_env.home) == []


def test_plain_file_pin_is_unmarked_and_enforced(hub_env, file_server):
    data = os.urandom(2000)
    file_server.add("/m/w.pdparams", data)
    recipe = load_recipe_file(write_recipe(hub_env.recipes, "w", {"pretrained": {
        "urls": [file_server.url("/m/w.pdparams")], "layout": "pdparams"}}))
    fetch(recipe)
    (pin,) = _pins(hub_env.home).values()
    assert "extracted" not in pin and pin["size"] == 2000
    file_server.add("/m/w.pdparams", os.urandom(2000))
    with pytest.raises(ChecksumError, match="pin"):
        fetch(recipe, force=True)


@pytest.mark.parametrize("force", [False, True])
def test_old_pin_of_a_stored_file_that_never_unpacked_is_dropped(hub_env, file_server, tar_entry, force):
    recipe, url, good, files = tar_entry
    bad_sha = _old_pin(hub_env.home, url, HTML, "m_int8.tar", "m/quantized")
    file_server.add("/PaddleSlim/m_int8.tar", good)
    got = fetch(recipe, force=force)
    assert (got.path / "inference.pdmodel").read_bytes() == files["m_int8/__model__"]
    (pin,) = _pins(hub_env.home).values()
    assert pin["sha256"] == hashlib.sha256(good).hexdigest() and pin["extracted"] is True
    assert not (hub_env.home / "blobs" / bad_sha).exists()


def test_old_pin_with_nothing_on_disk_is_enforced_until_force(hub_env, file_server, tar_entry):
    recipe, url, good, _files = tar_entry
    _old_pin(hub_env.home, url, HTML, "m_int8.tar", "m/quantized", blob=False)
    file_server.add("/PaddleSlim/m_int8.tar", good)
    with pytest.raises(ChecksumError, match="pin recorded on 2024-01-01"):
        fetch(recipe)  # nothing shows the pinned bytes were bad: without --force the pin still holds
    assert fetch(recipe, force=True).path.is_dir()
    assert _pins(hub_env.home)[url]["sha256"] == hashlib.sha256(good).hexdigest()


def test_old_pin_downloaded_again_and_still_not_unpacking_is_dropped(hub_env, file_server, tar_entry):
    recipe, url, good, _files = tar_entry
    _old_pin(hub_env.home, url, HTML, "m_int8.tar", "m/quantized", blob=False)
    file_server.add("/PaddleSlim/m_int8.tar", HTML)  # the very bytes pinned: now shown not to unpack
    with pytest.raises(ArchiveError, match="not a readable tar"):
        fetch(recipe)
    assert _pins(hub_env.home) == {} and _leftovers(hub_env.home) == []
    file_server.add("/PaddleSlim/m_int8.tar", good)
    assert fetch(recipe).path.is_dir()


def test_old_pin_of_an_archive_that_unpacks_is_still_enforced(hub_env, file_server, tar_entry):
    recipe, url, good, files = tar_entry
    sha = _old_pin(hub_env.home, url, good, "m_int8.tar", "m/quantized")  # stored, extraction missing
    changed, _ = legacy_model_tar("m_int8")
    file_server.add("/PaddleSlim/m_int8.tar", changed)  # upstream replaced the file
    with pytest.raises(ChecksumError, match="pin recorded on 2024-01-01"):
        fetch(recipe, force=True)
    assert _pins(hub_env.home)[url]["extracted"] is True  # its bytes unpacked: marked, kept
    folder = hub_env.home / "extracted" / sha / "m_int8"
    assert (folder / "inference.pdiparams").read_bytes() == files["m_int8/__params__"]
    assert fetch(recipe).path == folder and len(file_server.requests("/PaddleSlim/m_int8.tar")) == 1

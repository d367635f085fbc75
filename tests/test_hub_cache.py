"""Locks, pins, verified_pdparams and the cache layout."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
import time

import pytest

from tests.httpserver import file_server, hub_env, write_recipe  # noqa: F401
from zoo.errors import ChecksumError
from zoo.hub import cache_home, fetch, verified_pdparams
from zoo.hub.cache import clean_cache, list_cache, verify_cache
from zoo.hub.lock import FileLock
from zoo.hub.store import Store
from zoo.registry import load_recipe_file


def test_cache_home_defaults(monkeypatch, tmp_path):
    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "h"))
    assert cache_home() == tmp_path / "h"
    monkeypatch.delenv("ZOO_HOME")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_home() == tmp_path / "xdg" / "zoo"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    assert cache_home() == tmp_path / "user" / ".cache" / "zoo"


def test_lock_excludes_and_times_out(tmp_path):
    path = tmp_path / "a.lock"
    with FileLock(path, timeout=5):
        # a second process, because flock locks belong to an open file description
        other = subprocess.run([sys.executable, "-c", (
            "import sys; from zoo.hub.lock import FileLock; from zoo.errors import CacheError\n"
            "try:\n    FileLock(sys.argv[1], timeout=0.3).acquire()\n"
            "except CacheError as e:\n    print(e); sys.exit(3)"), str(path)],
            capture_output=True, text=True)
        assert other.returncode == 3, other.stderr
        assert "timed out" in other.stdout and f":{os.getpid()})" in other.stdout  # names the holder
    with FileLock(path, timeout=0.3):  # released: free again
        assert path.read_text().endswith(f":{os.getpid()}")


def test_lock_of_a_killed_holder_is_recovered(tmp_path):
    path = tmp_path / "b.lock"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from zoo.hub.lock import FileLock\n"
        "FileLock(sys.argv[1], timeout=5).acquire(); print('held', flush=True); time.sleep(60)"), str(path)],
        stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    holder.kill()
    holder.wait()
    assert path.exists()  # the file stays behind...
    start = time.monotonic()
    with FileLock(path, timeout=2):  # ...but the kernel released the lock with the process
        assert time.monotonic() - start < 1


def test_threads_fetching_one_artifact_download_once(hub_env, file_server):
    data = os.urandom(500_000)
    file_server.add("/m/t.bin", data, rate=2_000_000)
    recipe = load_recipe_file(write_recipe(hub_env.recipes, "thr", {"quantized": {"urls": [file_server.url("/m/t.bin")]}}))
    results = []
    threads = [threading.Thread(target=lambda: results.append(fetch(recipe))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 3 and all(r.path.read_bytes() == data for r in results)
    assert [h.status for h in file_server.requests("/m/t.bin")] == [200]


def test_pins_file_is_replaced_atomically(hub_env, file_server):
    for i in range(3):
        file_server.add(f"/m/p{i}.bin", os.urandom(1000 + i))
        recipe = load_recipe_file(write_recipe(hub_env.recipes, f"p{i}", {"quantized": {"urls": [file_server.url(f"/m/p{i}.bin")]}}))
        fetch(recipe)
    pins = json.loads((hub_env.home / "pins.json").read_text())["pins"]
    assert sorted(p["size"] for p in pins.values()) == [1000, 1001, 1002]
    assert not [p for p in hub_env.home.iterdir() if p.name.startswith(".pins-")]  # no temp file left


def test_shared_artifact_pins_both_names(hub_env, file_server):
    data = os.urandom(1000)
    file_server.add("/m/shared.bin", data)
    arts = {"fp32": {"urls": [file_server.url("/m/shared.bin")]}}
    a = load_recipe_file(write_recipe(hub_env.recipes, "sa", arts))
    b = load_recipe_file(write_recipe(hub_env.recipes, "sb", arts))
    fetch(a)
    fetch(b)
    assert len(file_server.requests("/m/shared.bin")) == 1
    (entry,) = list_cache()
    assert entry.names == ["sa/fp32", "sb/fp32"] and entry.path.read_bytes() == data


def test_verify_and_clean_library(hub_env, file_server):
    data = os.urandom(1000)
    file_server.add("/m/v.bin", data)
    write_recipe(hub_env.recipes, "v", {"quantized": {"urls": [file_server.url("/m/v.bin")]}})
    from zoo.registry import get_recipe

    got = fetch(get_recipe("v"))
    assert [r.ok for r in verify_cache()] == [True]
    got.path.write_bytes(data[:-1] + b"!")
    (bad,) = verify_cache()
    assert not bad.ok and "hashes to" in bad.problem
    removed = clean_cache("v")
    assert not got.path.exists() and Store(hub_env.home).read_pins() == {} and removed


def test_verified_pdparams(hub_env, file_server, tmp_path):
    weights = os.urandom(3000)
    file_server.add("/hapi/mobilenet.pdparams", weights)
    recipe = load_recipe_file(write_recipe(hub_env.recipes, "pd", {
        "pretrained": {"urls": [file_server.url("/hapi/mobilenet.pdparams")], "layout": "pdparams"}}))
    stranger = tmp_path / "stranger.pdparams"
    stranger.write_bytes(os.urandom(3000))
    with pytest.raises(ChecksumError, match="refusing to load") as info:
        verified_pdparams(stranger)
    assert "pickle" in info.value.hint
    got = fetch(recipe)  # pins the hash on first download
    assert verified_pdparams(got.path) == got.path
    copy = tmp_path / "copy.pdparams"
    copy.write_bytes(weights)
    assert verified_pdparams(copy) == copy  # the hash, not the location, is what is trusted
    got.path.write_bytes(weights + b"x")
    with pytest.raises(ChecksumError):
        verified_pdparams(got.path)


def test_verified_pdparams_trusts_a_published_md5(hub_env, tmp_path, monkeypatch):
    weights = os.urandom(500)
    write_recipe(hub_env.recipes, "md5pub", {"pretrained": {
        "urls": ["https://example.invalid/w.pdparams"], "md5": hashlib.md5(weights).hexdigest(), "layout": "pdparams"}})
    path = tmp_path / "w.pdparams"
    path.write_bytes(weights)
    assert verified_pdparams(path) == path


def test_clean_an_entry_removed_from_the_registry(hub_env, file_server):
    data = os.urandom(700)
    file_server.add("/m/old.bin", data)
    path = write_recipe(hub_env.recipes, "retired", {"quantized": {"urls": [file_server.url("/m/old.bin")]}})
    got = fetch(load_recipe_file(path))
    path.unlink()  # the entry is gone from the registry; its cached file and pin are not
    removed = clean_cache("retired")
    assert not got.path.exists() and Store(hub_env.home).read_pins() == {}
    assert any("pin of" in str(r) for r in removed)
    from zoo.errors import UnknownNameError

    with pytest.raises(UnknownNameError):
        clean_cache("never-existed")


def test_an_extraction_left_by_a_dead_process_is_swept(hub_env, tmp_path):
    from zoo.fsutil import scratch_dir

    store = Store(hub_env.home)
    store.ensure()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    left = scratch_dir(store.tmp, "abc")  # named for this process: rename it to the dead one's pid
    stale = left.with_name(left.name.replace(f".{os.getpid()}-", f".{int(dead.stdout)}-"))
    left.rename(stale)
    (stale / "inference.pdmodel").write_bytes(b"half")
    mine = scratch_dir(store.tmp, "live")  # a live process's extraction stays
    store.ensure()
    assert not stale.exists() and mine.exists()

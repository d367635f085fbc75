"""`zoo fetch` and `zoo cache`: in-process through typer's runner, and as real processes for
concurrency, kill-and-resume and terminal detection."""
from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.httpserver import file_server, hub_env, legacy_model_tar, write_recipe  # noqa: F401
from zoo.cli.main import app
from zoo.errors import UsageError
from zoo.hub.core import artifact_key
from zoo.hub.download import partial_path
from zoo.registry import load_recipe_file

from .conftest import REPO, RUNNER

runner = RUNNER
UPSTREAM = "https://paddlemodels.bj.bcebos.com"


def zoo(*args: str) -> "object":
    return runner.invoke(app, list(args))


def zoo_proc(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "zoo", *args], cwd=REPO, env=dict(os.environ),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def _clean_failure(result, *needles: str, code: int = 1) -> None:
    assert result.exit_code == code, (result.exit_code, result.stderr)
    assert "error:" in result.stderr and "hint:" in result.stderr
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in result.stderr, result.stderr


def _no_cache_entry(home: Path) -> None:
    for sub in ("blobs", "extracted", "tmp"):
        folder = home / sub
        assert not folder.exists() or list(folder.iterdir()) == [], f"{sub} not empty"


@pytest.fixture
def entry(hub_env, file_server, monkeypatch):
    """Entry `yolo`: quantized archive + fp32 file upstream, served via ZOO_MIRROR."""
    data, files = legacy_model_tar("yolo_int8", params_size=200_000)
    fp32 = os.urandom(50_000)
    file_server.add("/PaddleSlim/yolo_int8.tar", data)
    file_server.add("/object_detection/yolo.pdparams", fp32)
    write_recipe(hub_env.recipes, "yolo", {
        "quantized": {"urls": [UPSTREAM + "/PaddleSlim/yolo_int8.tar"], "layout": "legacy-inference"},
        "fp32": {"urls": [UPSTREAM + "/object_detection/yolo.pdparams"], "layout": "pdparams"}})
    monkeypatch.setenv("ZOO_MIRROR", file_server.base_url)
    return {"tar": data, "files": files, "fp32": fp32}


def test_fetch_prints_the_ready_path(entry, file_server):
    result = zoo("fetch", "yolo")
    assert result.exit_code == 0, result.stderr
    path = Path(result.stdout.strip())
    assert (path / "inference.pdiparams").read_bytes() == entry["files"]["yolo_int8/__params__"]
    assert result.stderr == ""  # not a terminal: no progress bar, no chatter


def test_fetch_all_json(entry, file_server):
    result = zoo("fetch", "yolo", "--what", "all", "--json")
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["name"] == "yolo"
    arts = {a["role"]: a for a in out["artifacts"]}
    assert set(arts) == {"quantized", "fp32"}
    assert Path(arts["fp32"]["path"]).read_bytes() == entry["fp32"]
    assert arts["fp32"]["sha256"] == hashlib.sha256(entry["fp32"]).hexdigest() and arts["fp32"]["size"] == 50_000
    assert arts["quantized"]["url"] == file_server.url("/PaddleSlim/yolo_int8.tar")


def test_fetch_force_downloads_again(entry, file_server):
    assert zoo("fetch", "yolo", "--what", "fp32").exit_code == 0
    result = zoo("fetch", "yolo", "--what", "fp32", "--force", "--quiet")
    assert result.exit_code == 0
    assert Path(result.stdout.strip()).read_bytes() == entry["fp32"]
    assert len(file_server.requests("/object_detection/yolo.pdparams")) == 2


def test_mirror_option(hub_env, file_server, monkeypatch):
    data = os.urandom(1000)
    file_server.add("/PaddleSlim/x.tar.bin", data)
    write_recipe(hub_env.recipes, "mir", {"quantized": {"urls": [UPSTREAM + "/PaddleSlim/x.tar.bin"]}})
    result = zoo("fetch", "mir", "--mirror", file_server.base_url + "/")
    assert result.exit_code == 0, result.stderr
    assert Path(result.stdout.strip()).read_bytes() == data
    _clean_failure(zoo("fetch", "mir", "--force", "--mirror", "ftp://nope"), "not an http(s) base URL",
                   code=UsageError.exit_code)


def test_missing_role_and_unknown_name(entry):
    _clean_failure(zoo("fetch", "yolo", "--what", "pretrained"), "no 'pretrained' artifact", code=UsageError.exit_code)
    _clean_failure(zoo("fetch", "nosuchmodel"), "no zoo entry named")


def test_404_everywhere_is_one_clear_message(entry, file_server):
    file_server.remove("/PaddleSlim/yolo_int8.tar")
    _clean_failure(zoo("fetch", "yolo"), "HTTP 404", "ZOO_MIRROR")
    _no_cache_entry(Path(os.environ["ZOO_HOME"]))


def test_dns_failure_message(hub_env, monkeypatch):
    monkeypatch.setenv("ZOO_MIRROR", "http://no-such-host.invalid")
    write_recipe(hub_env.recipes, "dns", {"quantized": {"urls": [UPSTREAM + "/a/b.tar"]}})
    _clean_failure(zoo("fetch", "dns"), "DNS")


def test_checksum_mismatch_message(hub_env, file_server, monkeypatch):
    file_server.add("/m/a.bin", os.urandom(100))
    write_recipe(hub_env.recipes, "bad", {"quantized": {"urls": [file_server.url("/m/a.bin")], "sha256": "a" * 64}})
    _clean_failure(zoo("fetch", "bad"), "checksum mismatch")
    _no_cache_entry(hub_env.home)


def test_disk_full_message(entry, hub_env, file_server):
    recipe = load_recipe_file(hub_env.recipes / "yolo.yaml")
    art = recipe.artifacts[recipe.default_artifact]
    part = partial_path(hub_env.home / "partial", artifact_key(art), file_server.url("/PaddleSlim/yolo_int8.tar"))
    part.parent.mkdir(parents=True)
    part.symlink_to("/dev/full")  # every write into the partial fails with ENOSPC, like a full disk
    _clean_failure(zoo("fetch", "yolo"), "disk full")
    _no_cache_entry(hub_env.home)


def test_permission_denied_message(entry, hub_env, monkeypatch, tmp_path):
    if os.geteuid() == 0:
        monkeypatch.setenv("ZOO_HOME", "/sys/zoo-cache")  # even root may not create folders in sysfs
    else:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        monkeypatch.setenv("ZOO_HOME", str(locked / "home"))
    _clean_failure(zoo("fetch", "yolo"), "permission denied")


def test_offline(entry, hub_env, file_server, monkeypatch):
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    result = zoo("fetch", "yolo")
    _clean_failure(result, "offline", "yolo_int8.tar", str(hub_env.home))
    assert file_server.requests("/PaddleSlim/yolo_int8.tar") == []
    monkeypatch.delenv("ZOO_OFFLINE")
    assert zoo("fetch", "yolo").exit_code == 0
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    result = zoo("fetch", "yolo")
    assert result.exit_code == 0 and Path(result.stdout.strip()).is_dir()
    assert len(file_server.requests("/PaddleSlim/yolo_int8.tar")) == 1


def test_cache_ls_verify_clean(entry, hub_env):
    assert zoo("fetch", "yolo", "--what", "all").exit_code == 0
    listing = json.loads(zoo("cache", "ls", "--json").stdout)
    assert {tuple(a["names"]) for a in listing["artifacts"]} == {("yolo/quantized",), ("yolo/fp32",)}
    assert all(a["source"] == "first-download" for a in listing["artifacts"])
    ok = zoo("cache", "verify")
    assert ok.exit_code == 0 and "0 mismatch" in ok.stdout
    blob = next(Path(a["path"]) for a in listing["artifacts"] if a["names"] == ["yolo/fp32"])
    blob.write_bytes(b"tampered")
    bad = zoo("cache", "verify")
    assert bad.exit_code == 1 and "MISMATCH" in bad.stdout and "Traceback" not in bad.stderr
    assert json.loads(zoo("cache", "verify", "--json").stdout)["ok"] is False
    assert zoo("cache", "clean", "yolo").exit_code == 0
    assert not blob.exists() and json.loads((hub_env.home / "pins.json").read_text())["pins"] == {}
    assert zoo("cache", "verify").exit_code == 0
    assert json.loads(zoo("cache", "ls", "--json").stdout)["artifacts"] == []
    assert zoo("fetch", "yolo").exit_code == 0
    assert zoo("cache", "clean").exit_code == 0 and not (hub_env.home / "blobs").exists()


def test_error_page_under_an_archive_url_is_not_pinned(entry, hub_env, file_server):
    file_server.add("/PaddleSlim/yolo_int8.tar", b"<html>quota exceeded</html>")
    _clean_failure(zoo("fetch", "yolo"), "not a readable tar archive", "<html>quota", "kept or pinned")
    assert not (hub_env.home / "pins.json").exists()
    _no_cache_entry(hub_env.home)
    file_server.add("/PaddleSlim/yolo_int8.tar", entry["tar"])
    result = zoo("fetch", "yolo")  # no --force: nothing was pinned
    assert result.exit_code == 0, result.stderr
    assert (Path(result.stdout.strip()) / "inference.pdmodel").read_bytes() == entry["files"]["yolo_int8/__model__"]


def test_force_recovers_from_an_old_pin_that_never_unpacked(entry, hub_env, file_server):
    """The state an older version left: the error page stored and pinned as the archive."""
    page = b"<html>quota exceeded</html>"
    sha = hashlib.sha256(page).hexdigest()
    (hub_env.home / "blobs" / sha).mkdir(parents=True)
    (hub_env.home / "blobs" / sha / "yolo_int8.tar").write_bytes(page)
    ref = UPSTREAM + "/PaddleSlim/yolo_int8.tar"
    (hub_env.home / "pins.json").write_text(json.dumps({"version": 1, "pins": {ref: {
        "sha256": sha, "size": len(page), "file": "yolo_int8.tar", "url": ref, "names": ["yolo/quantized"],
        "source": "first-download", "time": "2024-01-01T00:00:00Z"}}}))
    result = zoo("fetch", "yolo", "--force", "--json")
    assert result.exit_code == 0, result.stderr
    (art,) = json.loads(result.stdout)["artifacts"]
    assert art["sha256"] == hashlib.sha256(entry["tar"]).hexdigest()
    assert (Path(art["path"]) / "inference.pdiparams").read_bytes() == entry["files"]["yolo_int8/__params__"]
    pin = json.loads((hub_env.home / "pins.json").read_text())["pins"][ref]
    assert pin["sha256"] == art["sha256"] and pin["extracted"] is True
    assert not (hub_env.home / "blobs" / sha).exists()


def test_concurrent_fetches_download_once(hub_env, file_server, monkeypatch):
    size = 2_000_000
    data = os.urandom(size)
    file_server.add("/m/shared.bin", data, rate=2_000_000)  # about 1 s, so the processes overlap
    write_recipe(hub_env.recipes, "shared", {"quantized": {"urls": [file_server.url("/m/shared.bin")]}})
    procs = [zoo_proc("fetch", "shared", "--json") for _ in range(4)]
    outs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], [o[1] for o in outs]
    paths = {json.loads(o[0])["artifacts"][0]["path"] for o in outs}
    assert len(paths) == 1 and Path(paths.pop()).read_bytes() == data
    hits = file_server.requests("/m/shared.bin")
    assert [h.status for h in hits] == [200] and file_server.bytes_sent("/m/shared.bin") == size


def test_killed_run_is_resumed_by_the_next(hub_env, file_server):
    size = 3_000_000
    data = os.urandom(size)
    file_server.add("/m/killed.bin", data, rate=1_000_000)
    write_recipe(hub_env.recipes, "killed", {"quantized": {"urls": [file_server.url("/m/killed.bin")]}})
    proc = zoo_proc("fetch", "killed")
    partial = hub_env.home / "partial"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        parts = list(partial.glob("*.part")) if partial.exists() else []
        if parts and parts[0].stat().st_size > 600_000:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    kept = parts[0].stat().st_size
    assert 600_000 < kept < size
    file_server.add("/m/killed.bin", data)  # full speed now
    again = zoo_proc("fetch", "killed")
    out, err = again.communicate(timeout=60)
    assert again.returncode == 0, err
    assert Path(out.strip()).read_bytes() == data
    hits = file_server.requests("/m/killed.bin")
    assert hits[-1].status == 206 and hits[-1].start == kept
    assert file_server.bytes_sent("/m/killed.bin") < 1.2 * size


def test_piped_output_has_no_progress_bar(entry):
    proc = zoo_proc("fetch", "yolo")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and err == ""
    assert Path(out.strip()).is_dir()

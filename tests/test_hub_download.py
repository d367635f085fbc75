"""zoo.hub.fetch against a real local HTTP server with injected faults."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from tests.httpserver import file_server, free_port_url, hub_env, legacy_model_tar, write_recipe  # noqa: F401
from zoo.errors import ChecksumError, DownloadError, OfflineError
from zoo.hub import cache_home, fetch
from zoo.registry import get_recipe, load_recipe_file

UPSTREAM = "https://paddlemodels.bj.bcebos.com"


def _blob_files(home: Path) -> list:
    return sorted(p for p in (home / "blobs").rglob("*") if p.is_file()) if (home / "blobs").exists() else []


def _entry(env, name, path, **art):
    """A recipe whose only artifact lives at UPSTREAM + path (reached through the mirror)."""
    art.setdefault("layout", "inference")
    return load_recipe_file(write_recipe(env.recipes, name, {"quantized": {"urls": [UPSTREAM + path], **art}}))


def test_mirror_rewrite_extracts_and_normalizes_legacy_names(hub_env, file_server, monkeypatch):
    data, files = legacy_model_tar("yolo_int8")
    file_server.add("/PaddleSlim/yolo.tar", data)
    monkeypatch.setenv("ZOO_MIRROR", file_server.base_url + "/")
    got = fetch(_entry(hub_env, "yolo", "/PaddleSlim/yolo.tar", layout="legacy-inference"))
    assert got.path.name == "yolo_int8"  # single top-level folder = the model folder
    assert (got.path / "inference.pdmodel").read_bytes() == files["yolo_int8/__model__"]
    assert (got.path / "inference.pdiparams").read_bytes() == files["yolo_int8/__params__"]
    assert not (got.path / "__model__").exists()
    meta = json.loads((got.path / "zoo-artifact.json").read_text())
    assert meta["renamed"] == {"inference.pdmodel": "__model__", "inference.pdiparams": "__params__"}
    assert got.url == file_server.base_url + "/PaddleSlim/yolo.tar"
    assert got.archive.read_bytes() == data and got.sha256 == hashlib.sha256(data).hexdigest()
    assert got.path.is_relative_to(cache_home())
    assert [h.status for h in file_server.requests("/PaddleSlim/yolo.tar")] == [200]
    # a second fetch is a cache hit: no request
    again = fetch(get_recipe("yolo"))
    assert again.path == got.path and len(file_server.requests("/PaddleSlim/yolo.tar")) == 1


def test_explicit_mirror_argument_beats_env(hub_env, file_server, monkeypatch):
    data = os.urandom(5000)
    file_server.add("/a/w.pdparams", data)
    monkeypatch.setenv("ZOO_MIRROR", free_port_url())
    got = fetch(_entry(hub_env, "w", "/a/w.pdparams", layout="pdparams"), mirror=file_server.base_url)
    assert got.path.read_bytes() == data and got.archive is None


@pytest.mark.parametrize("offset", [1, 30_000, 99_999])
def test_connection_cut_mid_body_resumes(hub_env, file_server, offset):
    data = os.urandom(100_000)
    file_server.add("/m/cut.bin", data, cuts=[offset])
    got = fetch(_entry(hub_env, "cut", "/m/cut.bin"), mirror=file_server.base_url)
    assert got.path.read_bytes() == data
    hits = file_server.requests("/m/cut.bin")
    assert len(hits) == 2 and hits[0].sent == offset
    assert not list((hub_env.home / "partial").iterdir())


def test_five_cuts_in_a_large_download_cost_less_than_20_percent(hub_env, file_server):
    size = 8 * 1024 * 1024
    data = os.urandom(size)
    file_server.add("/big/model.bin", data, cuts=[size // 6 * k + 12345 for k in range(1, 6)])
    got = fetch(_entry(hub_env, "big", "/big/model.bin"), mirror=file_server.base_url)
    assert got.path.read_bytes() == data
    hits = file_server.requests("/big/model.bin")
    assert len(hits) == 6 and all(h.status == 206 for h in hits[1:])
    assert file_server.bytes_sent("/big/model.bin") < 1.2 * size


def test_unknown_length_body(hub_env, file_server):
    data = os.urandom(200_000)
    file_server.add("/m/nolen.bin", data, no_length=True)
    got = fetch(_entry(hub_env, "nolen", "/m/nolen.bin"), mirror=file_server.base_url)
    assert got.path.read_bytes() == data and got.size == 200_000


def test_unknown_length_cut_is_resumed_up_to_the_pinned_size(hub_env, file_server):
    """Without a Content-Length a cut looks like the end; the pinned size says it is not."""
    data = os.urandom(200_000)
    file_server.add("/m/nolen2.bin", data)
    recipe = _entry(hub_env, "nolen2", "/m/nolen2.bin")
    fetch(recipe, mirror=file_server.base_url)
    file_server.add("/m/nolen2.bin", data, no_length=True, cuts=[150_000])
    file_server.reset_log()
    assert fetch(recipe, mirror=file_server.base_url, force=True).path.read_bytes() == data
    assert [(h.status, h.start) for h in file_server.requests("/m/nolen2.bin")] == [(200, 0), (206, 150_000)]


def test_burst_of_503_is_retried(hub_env, file_server):
    data = os.urandom(20_000)
    file_server.add("/m/busy.bin", data, statuses=[503, 503, 429])
    got = fetch(_entry(hub_env, "busy", "/m/busy.bin"), mirror=file_server.base_url)
    assert got.path.read_bytes() == data
    assert [h.status for h in file_server.requests("/m/busy.bin")] == [503, 503, 429, 200]


def test_endless_503_gives_up_after_bounded_retries(hub_env, file_server):
    file_server.add("/m/down.bin", b"x", statuses=[503] * 50)
    with pytest.raises(DownloadError, match="HTTP 503") as info:
        fetch(_entry(hub_env, "down", "/m/down.bin"), mirror=file_server.base_url)
    assert "after 4 tries" in info.value.message  # ZOO_RETRIES=3: one try + three retries
    assert len(file_server.requests("/m/down.bin")) == 4
    assert _blob_files(hub_env.home) == []


def test_404_then_second_candidate(hub_env, file_server):
    data = os.urandom(3000)
    file_server.add("/PaddleSlim/yolov3_mobilenet_coco_quant_aware.bin", data)
    write_recipe(hub_env.recipes, "cand", {"quantized": {"urls": [
        UPSTREAM + "/PaddleSlim/yolov3_mobilenetv1_coco_quant_aware.bin",
        UPSTREAM + "/PaddleSlim/yolov3_mobilenet_coco_quant_aware.bin"], "layout": "inference"}})
    got = fetch(get_recipe("cand"), mirror=file_server.base_url)
    assert got.path.read_bytes() == data
    assert got.url.endswith("/yolov3_mobilenet_coco_quant_aware.bin")
    assert [h.status for h in file_server.requests("/PaddleSlim/yolov3_mobilenetv1_coco_quant_aware.bin")] == [404]


def test_unreachable_host_then_second_candidate(hub_env, file_server):
    data = os.urandom(3000)
    file_server.add("/x/ok.bin", data)
    write_recipe(hub_env.recipes, "unreach", {"quantized": {"urls": [
        free_port_url() + "/x/ok.bin", file_server.url("/x/ok.bin")], "layout": "inference"}})
    got = fetch(get_recipe("unreach"))
    assert got.path.read_bytes() == data and got.url == file_server.url("/x/ok.bin")


def test_every_candidate_404(hub_env, file_server):
    with pytest.raises(DownloadError, match="HTTP 404") as info:
        fetch(_entry(hub_env, "gone", "/nowhere/x.tar"), mirror=file_server.base_url)
    assert "still serves it" in info.value.hint
    assert _blob_files(hub_env.home) == []


def test_dns_failure_names_the_cause(hub_env):
    write_recipe(hub_env.recipes, "dns", {"quantized": {"urls": ["http://no-such-host.invalid/x.bin"]}})
    with pytest.raises(DownloadError, match="DNS"):
        fetch(get_recipe("dns"))


def test_server_ignoring_range_restarts_from_zero(hub_env, file_server):
    data = os.urandom(300_000)
    file_server.add("/m/norange.bin", data, cuts=[150_000], ignore_range=True)
    got = fetch(_entry(hub_env, "norange", "/m/norange.bin"), mirror=file_server.base_url)
    assert got.path.read_bytes() == data
    hits = file_server.requests("/m/norange.bin")
    assert [h.status for h in hits] == [200, 200] and hits[1].range is not None


def test_truncated_body_under_correct_length_is_resumed(hub_env, file_server):
    data = os.urandom(300_000)
    file_server.add("/m/trunc.bin", data, truncate=150_000)
    got = fetch(_entry(hub_env, "trunc", "/m/trunc.bin"), mirror=file_server.base_url)
    assert got.path.read_bytes() == data
    assert [h.status for h in file_server.requests("/m/trunc.bin")] == [200, 206]


def test_always_truncated_without_range_fails_cleanly(hub_env, file_server):
    file_server.add("/m/broken.bin", os.urandom(50_000), truncate=20_000, ignore_range=True)
    with pytest.raises(DownloadError, match="closed"):
        fetch(_entry(hub_env, "broken", "/m/broken.bin"), mirror=file_server.base_url)
    assert _blob_files(hub_env.home) == []


def test_read_timeout_is_retried(hub_env, file_server):
    data = os.urandom(10_000)
    file_server.add("/m/slow.bin", data, stalls=[1.5])  # ZOO_TIMEOUT=0.5
    got = fetch(_entry(hub_env, "slow", "/m/slow.bin"), mirror=file_server.base_url)
    assert got.path.read_bytes() == data
    assert len(file_server.requests("/m/slow.bin")) == 2


def test_persistent_read_timeout_fails(hub_env, file_server, monkeypatch):
    monkeypatch.setenv("ZOO_RETRIES", "1")
    file_server.add("/m/stuck.bin", os.urandom(1000), stalls=[1.0, 1.0])
    with pytest.raises(DownloadError, match="timed out"):
        fetch(_entry(hub_env, "stuck", "/m/stuck.bin"), mirror=file_server.base_url)
    assert _blob_files(hub_env.home) == []


def test_registry_checksum_mismatch_is_refused(hub_env, file_server):
    good = os.urandom(4000)
    file_server.add("/m/c.bin", good, body=os.urandom(4000))
    recipe = _entry(hub_env, "chk", "/m/c.bin", sha256=hashlib.sha256(good).hexdigest())
    with pytest.raises(ChecksumError, match="sha256"):
        fetch(recipe, mirror=file_server.base_url)
    assert _blob_files(hub_env.home) == [] and not list((hub_env.home / "partial").iterdir())
    file_server.add("/m/c.bin", good)
    assert fetch(recipe, mirror=file_server.base_url).path.read_bytes() == good


def test_registry_md5_and_size_are_checked(hub_env, file_server):
    data = os.urandom(4000)
    file_server.add("/m/md5.bin", data)
    recipe = _entry(hub_env, "md5", "/m/md5.bin", md5="0" * 32)
    with pytest.raises(ChecksumError, match="md5"):
        fetch(recipe, mirror=file_server.base_url)
    recipe = _entry(hub_env, "size", "/m/md5.bin", size=3999)
    with pytest.raises(ChecksumError, match="size 4000"):
        fetch(recipe, mirror=file_server.base_url)
    recipe = _entry(hub_env, "good", "/m/md5.bin", md5=hashlib.md5(data).hexdigest(), size=4000)
    assert fetch(recipe, mirror=file_server.base_url).path.read_bytes() == data


def test_pin_recorded_then_changed_file_refused_and_copy_kept(hub_env, file_server):
    data = os.urandom(8000)
    file_server.add("/m/pinned.bin", data)
    recipe = _entry(hub_env, "pinned", "/m/pinned.bin")
    first = fetch(recipe, mirror=file_server.base_url)
    pins = json.loads((hub_env.home / "pins.json").read_text())["pins"]
    pin = pins[UPSTREAM + "/m/pinned.bin"]
    assert pin["sha256"] == hashlib.sha256(data).hexdigest() and pin["size"] == 8000
    assert pin["source"] == "first-download" and pin["names"] == ["pinned/quantized"]
    file_server.add("/m/pinned.bin", os.urandom(8000))  # upstream silently replaced the file
    with pytest.raises(ChecksumError, match="pin"):
        fetch(recipe, mirror=file_server.base_url, force=True)
    assert first.path.read_bytes() == data  # the verified copy is intact
    assert fetch(recipe, mirror=file_server.base_url).path.read_bytes() == data


def test_force_downloads_again(hub_env, file_server):
    data = os.urandom(3000)
    file_server.add("/m/f.bin", data)
    recipe = _entry(hub_env, "force", "/m/f.bin")
    fetch(recipe, mirror=file_server.base_url)
    got = fetch(recipe, mirror=file_server.base_url, force=True)
    assert got.path.read_bytes() == data
    assert len(file_server.requests("/m/f.bin")) == 2


def test_stale_partial_from_an_older_file_is_discarded(hub_env, file_server):
    """Bytes resumed from an earlier run that belong to another version: one clean retry."""
    data = os.urandom(30_000)
    recipe = _entry(hub_env, "stale", "/m/stale.bin", sha256=hashlib.sha256(data).hexdigest())
    file_server.add("/m/stale.bin", os.urandom(30_000), cuts=[10_000])
    with pytest.raises(ChecksumError):
        fetch(recipe, mirror=file_server.base_url)
    # leave a partial of the wrong file behind, as a killed run would
    file_server.add("/m/stale.bin", os.urandom(30_000), cuts=[12_000])
    with pytest.raises(DownloadError):
        fetch(recipe, mirror=free_port_url())
    file_server.add("/m/stale.bin", data)
    from zoo.hub.core import artifact_key
    from zoo.hub.download import partial_path

    part = partial_path(hub_env.home / "partial", artifact_key(recipe.artifacts[recipe.default_artifact]),
                        file_server.url("/m/stale.bin"))
    part.write_bytes(os.urandom(5000))
    got = fetch(recipe, mirror=file_server.base_url)
    assert got.path.read_bytes() == data


def test_offline_serves_cache_or_names_what_is_missing(hub_env, file_server, monkeypatch):
    data = os.urandom(2000)
    file_server.add("/m/off.bin", data)
    recipe = _entry(hub_env, "off", "/m/off.bin")
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    with pytest.raises(OfflineError) as info:
        fetch(recipe, mirror=file_server.base_url)
    assert "offline" in info.value.message and "off.bin" in info.value.message
    assert str(hub_env.home) in info.value.message
    assert file_server.requests("/m/off.bin") == []
    monkeypatch.delenv("ZOO_OFFLINE")
    fetch(recipe, mirror=file_server.base_url)
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    assert fetch(recipe, mirror=file_server.base_url).path.read_bytes() == data
    assert len(file_server.requests("/m/off.bin")) == 1


def test_bundled_artifact_needs_no_network(hub_env, tmp_path, monkeypatch):
    import zoo.assets

    assets = tmp_path / "assets"
    data, files = legacy_model_tar("digits", compress="gz")
    (assets / "models").mkdir(parents=True)
    (assets / "models" / "digits.tar.gz").write_bytes(data)
    monkeypatch.setattr(zoo.assets, "__path__", [str(assets)])
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    write_recipe(hub_env.recipes, "bund", {"fp32": {"bundled": "models/digits.tar.gz",
                                                     "sha256": hashlib.sha256(data).hexdigest()}})
    got = fetch(get_recipe("bund"))
    assert (got.path / "inference.pdiparams").read_bytes() == files["digits/__params__"]
    assert got.url == "bundled:models/digits.tar.gz" and got.archive == assets / "models" / "digits.tar.gz"
    bad = write_recipe(hub_env.recipes, "bund2", {"fp32": {"bundled": "models/digits.tar.gz", "sha256": "0" * 64}})
    with pytest.raises(ChecksumError):
        fetch(load_recipe_file(bad))


def test_mirror_rewrite_rules():
    from zoo.errors import UsageError
    from zoo.hub.mirror import candidates, rewrite

    url = "https://paddlemodels.bj.bcebos.com/PaddleSlim/x.tar"
    assert rewrite(url, "http://127.0.0.1:8000") == "http://127.0.0.1:8000/PaddleSlim/x.tar"
    assert rewrite(url, "https://m.example.org/zoo/") == "https://m.example.org/zoo/PaddleSlim/x.tar"
    assert rewrite(url + "?v=2", "http://m") == "http://m/PaddleSlim/x.tar?v=2"
    assert candidates([url, "https://other.host/PaddleSlim/x.tar"], "http://m") == ["http://m/PaddleSlim/x.tar"]
    assert candidates([url], None) == [url]
    with pytest.raises(UsageError):
        rewrite(url, "mirror.example.org")


def test_bad_timeout_setting_is_a_usage_error(hub_env, monkeypatch):
    from zoo.errors import UsageError

    monkeypatch.setenv("ZOO_TIMEOUT", "soon")
    write_recipe(hub_env.recipes, "st", {"quantized": {"urls": ["http://127.0.0.1:9/x.bin"]}})
    with pytest.raises(UsageError, match="ZOO_TIMEOUT"):
        fetch(get_recipe("st"))

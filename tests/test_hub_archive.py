"""Safe extraction: hostile members are refused and leave nothing behind; legacy names normalized."""
from __future__ import annotations

import hashlib
import json
import os
import tarfile
from pathlib import Path

import pytest

from tests.httpserver import file_server, hub_env, make_tar, make_zip, write_recipe  # noqa: F401
from zoo.errors import ArchiveError
from zoo.hub import archive as arc
from zoo.hub import fetch
from zoo.registry import load_recipe_file


def _special(name: str, kind: bytes, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info


HOSTILE_TARS = {
    "traversal": make_tar({"model/../../evil.txt": b"x"}),
    "absolute": make_tar({"/tmp/zoo-evil-absolute.txt": b"x"}),
    "symlink": make_tar({"model/a": b"x"}, special=[_special("model/link", tarfile.SYMTYPE, "/etc/passwd")]),
    "hardlink": make_tar({"model/a": b"x"}, special=[_special("model/hard", tarfile.LNKTYPE, "model/a")]),
    "chardev": make_tar({"model/a": b"x"}, special=[_special("model/null", tarfile.CHRTYPE)]),
    "blockdev": make_tar({"model/a": b"x"}, special=[_special("model/sda", tarfile.BLKTYPE)]),
    "fifo": make_tar({"model/a": b"x"}, special=[_special("model/pipe", tarfile.FIFOTYPE)]),
    "zip-traversal": make_zip({"../evil.txt": b"x"}),
    "zip-absolute": make_zip({"/evil.txt": b"x"}),
    "zip-symlink": make_zip({"model/a": b"x"}, symlinks={"model/link": "/etc/passwd"}),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_TARS))
def test_hostile_archive_is_refused_and_leaves_nothing(case, tmp_path):
    suffix = ".zip" if case.startswith("zip") else ".tar"
    archive = tmp_path / f"hostile{suffix}"
    archive.write_bytes(HOSTILE_TARS[case])
    staging = tmp_path / "out" / "staging"
    with pytest.raises(ArchiveError, match="refused"):
        arc.extract(archive, staging)
    assert not staging.exists()
    assert not (tmp_path / "evil.txt").exists() and not Path("/tmp/zoo-evil-absolute.txt").exists()


@pytest.mark.parametrize("case", ["traversal", "symlink", "chardev", "zip-symlink"])
def test_hostile_archive_through_fetch_leaves_no_cache_entry(case, hub_env, file_server):
    suffix = ".zip" if case.startswith("zip") else ".tar"
    file_server.add(f"/h/{case}{suffix}", HOSTILE_TARS[case])
    recipe = load_recipe_file(write_recipe(hub_env.recipes, "hostile", {"quantized": {"urls": [file_server.url(f"/h/{case}{suffix}")]}}))
    with pytest.raises(ArchiveError):
        fetch(recipe)
    assert list((hub_env.home / "extracted").iterdir()) == []
    assert list((hub_env.home / "tmp").iterdir()) == []


def test_corrupt_archive_is_an_archive_error(tmp_path):
    good = make_tar({"m/inference.pdmodel": os.urandom(50_000)}, compress="gz")
    archive = tmp_path / "cut.tar.gz"
    archive.write_bytes(good[: len(good) // 2])
    with pytest.raises(ArchiveError, match="corrupt"):
        arc.extract(archive, tmp_path / "staging")
    assert not (tmp_path / "staging").exists()


@pytest.mark.parametrize("compress,suffix", [("", ".tar"), ("gz", ".tar.gz"), ("gz", ".tgz"), (None, ".zip")])
def test_formats_extract_with_the_single_top_folder_as_model_folder(compress, suffix, tmp_path):
    files = {"MobileNetV3_infer/model": os.urandom(300), "MobileNetV3_infer/params": os.urandom(900),
             "MobileNetV3_infer/sub/readme.txt": b"hi"}
    data = make_zip(files) if compress is None else make_tar(files, compress)
    archive = tmp_path / f"a{suffix}"
    archive.write_bytes(data)
    staging = tmp_path / "staging"
    arc.extract(archive, staging)
    folder = arc.model_folder(staging)
    assert folder == staging / "MobileNetV3_infer"
    renamed = arc.normalize_legacy(folder)
    assert renamed == {"inference.pdmodel": "model", "inference.pdiparams": "params"}
    assert (folder / "inference.pdmodel").read_bytes() == files["MobileNetV3_infer/model"]
    assert (folder / "inference.pdiparams").read_bytes() == files["MobileNetV3_infer/params"]
    assert (folder / "sub" / "readme.txt").read_bytes() == b"hi"


def test_several_top_level_entries_keep_the_root_and_modern_names_untouched(hub_env, file_server):
    files = {"inference.pdmodel": os.urandom(100), "inference.pdiparams": os.urandom(200), "__model__": b"old"}
    data = make_tar(files)
    file_server.add("/m/flat.tar", data)
    recipe = load_recipe_file(write_recipe(hub_env.recipes, "flat", {"quantized": {"urls": [file_server.url("/m/flat.tar")]}}))
    got = fetch(recipe)
    assert got.path == hub_env.home / "extracted" / hashlib.sha256(data).hexdigest()
    for name, content in files.items():
        assert (got.path / name).read_bytes() == content
    assert json.loads((got.path / "zoo-artifact.json").read_text())["renamed"] == {}


def test_lone_legacy_model_is_not_renamed(tmp_path):
    """A one-file-per-variable folder keeps __model__: Paddle loads such folders by that name."""
    (tmp_path / "__model__").write_bytes(b"p")
    (tmp_path / "conv1_weights").write_bytes(b"w")
    assert arc.normalize_legacy(tmp_path) == {}
    assert (tmp_path / "__model__").read_bytes() == b"p"


def test_unknown_suffix_is_not_extracted(hub_env, file_server):
    data = os.urandom(100)
    file_server.add("/m/weights.pdparams", data)
    recipe = load_recipe_file(write_recipe(hub_env.recipes, "pd", {"pretrained": {"urls": [file_server.url("/m/weights.pdparams")], "layout": "pdparams"}}))
    got = fetch(recipe)
    assert got.archive is None and got.path.name == "weights.pdparams" and got.path.read_bytes() == data


def test_tar_members_lose_setuid_and_world_write_bits(tmp_path):
    import io
    import stat

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        info = tarfile.TarInfo("m/inference.pdmodel")
        info.size, info.mode = 3, 0o4777
        tf.addfile(info, io.BytesIO(b"abc"))
    archive = tmp_path / "modes.tar"
    archive.write_bytes(buf.getvalue())
    arc.extract(archive, tmp_path / "out")
    mode = stat.S_IMODE((tmp_path / "out" / "m" / "inference.pdmodel").stat().st_mode)
    assert not mode & (stat.S_ISUID | stat.S_IWGRP | stat.S_IWOTH), oct(mode)
    assert (tmp_path / "out" / "m" / "inference.pdmodel").read_bytes() == b"abc"


def test_tar_member_that_collides_with_a_folder_is_refused(tmp_path):
    archive = tmp_path / "clash.tar"
    archive.write_bytes(make_tar({"m/a/b": b"x", "m/a": b"y"}))
    with pytest.raises(ArchiveError, match="refused"):
        arc.extract(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()

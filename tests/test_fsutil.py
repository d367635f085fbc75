"""The one staging helper: a folder or file is written beside its target and swapped in whole, or not at all."""
from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from zoo.fsutil import SCRATCH_SUFFIX, StagedDir, staged_file


def _leftovers(folder: Path) -> list:
    return [p.name for p in folder.iterdir() if p.name.endswith(SCRATCH_SUFFIX)]


def test_commit_replaces_the_folder_whole(tmp_path: Path) -> None:
    target = tmp_path / "out"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with StagedDir(target) as stage:
        (stage.path / "new.txt").write_text("new")
        assert not (target / "new.txt").exists()  # nothing reaches the target before the commit
        assert stage.commit() == target
    assert sorted(p.name for p in target.iterdir()) == ["new.txt"] and _leftovers(tmp_path) == []


def test_a_failure_leaves_the_target_as_it_was(tmp_path: Path) -> None:
    target = tmp_path / "out"
    with pytest.raises(RuntimeError):
        with StagedDir(target) as stage:
            (stage.path / "half.bin").write_bytes(b"half")
            raise RuntimeError("killed mid-write")
    assert not target.exists() and _leftovers(tmp_path) == []


def test_merge_keeps_other_entries_and_moves_the_marker_last(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "out"
    target.mkdir()
    (target / "keep.txt").write_text("keep")
    (target / "sub").mkdir()
    (target / "sub" / "stale.txt").write_text("stale")
    with StagedDir(target) as stage:
        for name in ("a.pdiparams", "inference.pdmodel", "z.json"):
            (stage.path / name).write_text(name)
        (stage.path / "sub").mkdir()
        (stage.path / "sub" / "fresh.txt").write_text("fresh")
        moved = []
        real_replace = os.replace
        monkeypatch.setattr(os, "replace", lambda src, dst: (moved.append(Path(src).name), real_replace(src, dst)))
        stage.merge(last=["inference.pdmodel"])
        monkeypatch.undo()
    assert moved[-1] == "inference.pdmodel"
    assert sorted(p.name for p in target.iterdir()) == ["a.pdiparams", "inference.pdmodel", "keep.txt", "sub", "z.json"]
    assert [p.name for p in (target / "sub").iterdir()] == ["fresh.txt"] and _leftovers(tmp_path) == []


def test_staged_file_follows_the_umask_and_cleans_up(tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        with staged_file(tmp_path / "a.bin") as tmp:
            tmp.write_bytes(b"new")
        assert (tmp_path / "a.bin").read_bytes() == b"new"
        assert stat.S_IMODE((tmp_path / "a.bin").stat().st_mode) == 0o640
        with pytest.raises(OSError):
            with staged_file(tmp_path / "a.bin") as tmp:
                tmp.write_bytes(b"half")
                raise OSError("disk full")
        assert (tmp_path / "a.bin").read_bytes() == b"new" and _leftovers(tmp_path) == []
    finally:
        os.umask(old)

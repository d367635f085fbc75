"""Output folders: nothing a user made is overwritten, --resume only continues the same run, umask honoured."""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from zoo.errors import UsageError
from zoo.fsutil import atomic_write_text, clean_stale_scratch, scratch_dir
from zoo.runfolder import RUN_FILE, check_out, claim

FP = {"entry": "a", "data": "/d", "eval_images": 10, "epochs": None}


def test_out_naming_a_file_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "f"
    target.write_text("mine")
    with pytest.raises(UsageError, match="is a file"):
        check_out(target, "a", overwrite=True)
    assert target.read_text() == "mine"


def test_a_folder_of_user_files_needs_overwrite(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(UsageError, match="the zoo did not write.*notes.txt") as info:
        claim(tmp_path, "a", FP, resume=False, overwrite=False)
    assert "--overwrite" in info.value.hint
    assert not (tmp_path / RUN_FILE).exists()
    assert claim(tmp_path, "a", FP, resume=False, overwrite=True) is False
    assert (tmp_path / "notes.txt").read_text() == "mine"  # --overwrite never removes other files


def test_another_entrys_run_needs_overwrite(tmp_path: Path) -> None:
    claim(tmp_path, "a", FP, resume=False, overwrite=False)
    with pytest.raises(UsageError, match="holds a run of a, not b"):
        claim(tmp_path, "b", FP, resume=False, overwrite=False)
    claim(tmp_path, "a", FP, resume=False, overwrite=False)  # the same entry again: its own folder


def test_resume_checks_the_fingerprint(tmp_path: Path) -> None:
    claim(tmp_path, "a", FP, resume=False, overwrite=False)
    assert claim(tmp_path, "a", FP, resume=True, overwrite=False) is True
    changed = dict(FP, data="/other", eval_images=5)
    with pytest.raises(UsageError, match="other settings") as info:
        claim(tmp_path, "a", changed, resume=True, overwrite=False)
    assert "data: was '/d', now '/other'" in info.value.message and "eval_images: was 10, now 5" in info.value.message
    assert json.loads((tmp_path / RUN_FILE).read_text())["fingerprint"] == FP  # the refused run wrote nothing


def test_scratch_of_a_dead_process_is_cleaned_and_a_live_one_kept(tmp_path: Path) -> None:
    mine = scratch_dir(tmp_path, "int8")
    dead_pid = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True, check=True).stdout.strip()
    stale = tmp_path / f".int8.{dead_pid}-abc.zoo-tmp"
    stale.mkdir()
    (stale / "inference.pdiparams").write_bytes(b"half")
    removed = clean_stale_scratch(tmp_path)
    assert removed == [stale] and not stale.exists() and mine.is_dir()


def test_outputs_follow_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "report.json", "{}")
        folder = scratch_dir(tmp_path, "x")
        assert stat.S_IMODE((tmp_path / "report.json").stat().st_mode) == 0o644
        assert stat.S_IMODE(folder.stat().st_mode) == 0o755
        os.umask(0o077)
        atomic_write_text(tmp_path / "private.json", "{}")
        assert stat.S_IMODE((tmp_path / "private.json").stat().st_mode) == 0o600
    finally:
        os.umask(old)

"""No write replaces the model being read or a file the zoo did not write; --out is checked before
the work, and may be a mount point (the result is staged inside it)."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.quant_tiny import save_fp32, tiny_data, trained_tiny_net
from zoo.cli.main import app
from zoo.errors import UsageError
from zoo.fsutil import StagedDir
from zoo.outdir import RECORD, prepare_out, written_here

runner = CliRunner()


@pytest.fixture(scope="module")
def fp32(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_fp32(trained_tiny_net(), tmp_path_factory.mktemp("fp32"))


@pytest.fixture
def calib(tmp_path: Path) -> Path:
    x, _ = tiny_data(16)
    np.save(tmp_path / "calib.npy", x)
    return tmp_path / "calib.npy"


def _digest(folder: Path) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def _quantize(model: Path, calib: Path, out: Path, *extra: str):  # type: ignore[no-untyped-def]
    result = runner.invoke(app, ["quantize", str(model), "--calib-data", str(calib), "--algo", "abs_max",
                                 "--batch-size", "8", "--batch-nums", "2", "--out", str(out), *extra])
    result.text = " ".join(result.output.split())
    return result


@pytest.mark.parametrize("how", ["same", "symlink", "parent"])
def test_quantize_never_writes_over_its_source(fp32: Path, calib: Path, tmp_path: Path, how: str) -> None:
    before = _digest(fp32)
    out = {"same": fp32, "parent": fp32.parent, "symlink": tmp_path / "link"}[how]
    if how == "symlink":
        out.symlink_to(fp32, target_is_directory=True)
    result = _quantize(fp32, calib, out)
    assert result.exit_code == 2, result.output
    assert "the model being read" in result.text and "Pick another --out" in result.text
    assert _digest(fp32) == before


def test_a_users_files_are_replaced_only_with_overwrite(fp32: Path, calib: Path, tmp_path: Path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "inference.pdmodel").write_text("the user's own file")
    result = _quantize(fp32, calib, out)
    assert result.exit_code == 2 and "which the zoo did not write" in result.text and "--overwrite" in result.text
    assert (out / "inference.pdmodel").read_text() == "the user's own file"
    assert _quantize(fp32, calib, out, "--overwrite").exit_code == 0
    assert written_here(out) == ["inference.pdiparams", "inference.pdmodel", "zoo-quantize.json"]
    again = _quantize(fp32, calib, out)  # its own earlier output is replaced without --overwrite
    assert again.exit_code == 0, again.output


def test_export_refuses_to_replace_a_users_file_and_writes_nothing(fp32: Path, tmp_path: Path) -> None:
    out = tmp_path / "exp"
    out.mkdir()
    (out / "inference.pdiparams").write_bytes(b"precious")
    result = runner.invoke(app, ["export", str(fp32), "--target", "inference", "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert "which the zoo did not write" in " ".join(result.output.split())
    assert sorted(p.name for p in out.iterdir()) == ["inference.pdiparams"]
    assert (out / "inference.pdiparams").read_bytes() == b"precious"
    result = runner.invoke(app, ["export", str(fp32), "--target", "inference", "--out", str(out), "--overwrite"])
    assert result.exit_code == 0, result.output
    assert (out / RECORD).is_file() and "inference.pdmodel" in written_here(out)


def test_export_into_the_source_folder_is_refused(fp32: Path) -> None:
    before = _digest(fp32)
    result = runner.invoke(app, ["export", str(fp32), "--target", "inference", "--out", str(fp32)])
    assert result.exit_code == 2 and "the model being read" in " ".join(result.output.split())
    assert _digest(fp32) == before


def test_a_read_only_out_is_named_before_any_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = os.statvfs

    class _ReadOnly:
        def __init__(self, path: str) -> None:
            self._st = real(path)
            self.f_flag = self._st.f_flag | os.ST_RDONLY

    monkeypatch.setattr(os, "statvfs", _ReadOnly)
    with pytest.raises(UsageError, match="read-only file system"):
        prepare_out(tmp_path / "out")


def test_analyze_checks_its_out_before_the_analysis(fp32: Path, calib: Path, tmp_path: Path) -> None:
    out = tmp_path / "a"
    out.mkdir()
    (out / "analysis.json").write_text("{}")
    x, y = tiny_data(16)
    np.savez(tmp_path / "eval.npz", x=x, y=y)
    result = runner.invoke(app, ["analyze", str(fp32), "--calib-data", str(calib), "--eval-data", str(tmp_path / "eval.npz"),
                                 "--batch-size", "8", "--batch-nums", "2", "--out", str(out)])
    assert result.exit_code == 2 and "analysis.json" in result.output
    assert (out / "analysis.json").read_text() == "{}"


def test_a_merge_staged_inside_its_target_never_touches_the_parent(tmp_path: Path) -> None:
    target = tmp_path / "mnt"  # e.g. a mount point: a rename from beside it would cross file systems
    target.mkdir()
    with StagedDir(target, inside=True) as stage:
        assert stage.path.parent == target
        (stage.path / "a.txt").write_text("a")
        stage.merge()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mnt"] and (target / "a.txt").read_text() == "a"
    assert sorted(p.name for p in target.iterdir()) == ["a.txt"]
    with pytest.raises(ValueError), StagedDir(target, inside=True) as stage:
        stage.commit()
    fresh = tmp_path / "fresh"
    with StagedDir(fresh, inside=True):
        pass  # nothing merged: the folder created for it goes again
    assert not fresh.exists()


def test_a_second_reproduce_into_the_same_folder_is_refused_while_the_first_runs(tmp_path: Path) -> None:
    import subprocess
    import sys

    from zoo.runfolder import RUN_LOCK, holding

    out = tmp_path / "run"
    with holding(out, "digits_mobilenetv1_ptq"):  # as a running `zoo reproduce` holds it
        proc = subprocess.run([sys.executable, "-m", "zoo", "reproduce", "digits_mobilenetv1_ptq", "--out", str(out)],
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 2, proc.stderr
        assert "another run is writing into" in " ".join(proc.stderr.split())
        assert sorted(p.name for p in out.iterdir()) == [RUN_LOCK]  # the second run wrote nothing
    with holding(out, "digits_mobilenetv1_ptq"):  # released: the folder can be held again
        pass


@pytest.mark.parametrize("gpus, said", [("0,1", "--gpus 0,1:"), ("a,b", "not a comma-separated list"),
                                        ("0,0", "distinct GPU ids")])
def test_gpus_are_checked_before_any_rank_starts(tmp_path: Path, gpus: str, said: str) -> None:
    import paddle

    if gpus == "0,1" and paddle.device.is_compiled_with_cuda() and paddle.device.cuda.device_count() >= 2:
        gpus = "0,99"  # a machine with GPUs: ask for one that is not there
        said = "--gpus 0,99:"
    out = tmp_path / "o"
    result = runner.invoke(app, ["reproduce", "digits_mobilenetv1_qat", "--gpus", gpus, "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert said in " ".join(result.output.split()) and not out.exists()


def test_paths_with_brackets_are_printed_literally(fp32: Path, calib: Path, tmp_path: Path) -> None:
    out = tmp_path / "runs[red]" / "int8[/]"  # rich markup would eat the first and choke on the second
    result = _quantize(fp32, calib, out)
    assert result.exit_code == 0, result.output
    assert str(out) in result.text
    exported = tmp_path / "exp[bold]"
    result = runner.invoke(app, ["export", str(out), "--target", "inference", "--out", str(exported)])
    assert result.exit_code == 0, result.output
    assert str(exported) in result.output.replace("\n", "")


def test_export_data_that_would_be_ignored_is_refused(fp32: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["export", str(fp32), "--target", "inference", "--data", str(tmp_path),
                                 "--out", str(tmp_path / "e")])
    assert result.exit_code == 2, result.output
    assert "--data would not be used" in " ".join(result.output.split()) and not (tmp_path / "e").exists()


def test_reproduce_names_a_read_only_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from zoo.runfolder import holding

    real = os.statvfs

    class _ReadOnly:
        def __init__(self, path: str) -> None:
            self.f_flag = real(path).f_flag | os.ST_RDONLY

    out = tmp_path / "ro"
    out.mkdir()
    monkeypatch.setattr(os, "statvfs", _ReadOnly)
    with pytest.raises(UsageError, match="read-only file system"):
        with holding(out, "digits_mobilenetv1_ptq"):
            pass

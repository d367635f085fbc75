"""Failures named for what they are: a corrupt model before a bench worker loads it, a full disk at the report stage."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.quant_tiny import save_fp32, trained_tiny_net
from zoo.cli.main import app


@pytest.fixture(scope="module")
def fp32(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_fp32(trained_tiny_net(), tmp_path_factory.mktemp("fp32"))


def test_bench_of_a_truncated_model_is_a_clear_error(fp32: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(fp32, broken)
    params = broken / "inference.pdiparams"
    params.write_bytes(params.read_bytes()[: params.stat().st_size // 2])
    result = CliRunner().invoke(app, ["bench", str(broken), "--repeat", "2", "--warmup", "0"])
    assert result.exit_code == 1
    text = " ".join(result.output.split())
    assert "is truncated" in text and "Traceback" not in text and "failed (exit status" not in text


def test_a_full_disk_at_the_report_stage_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    import zoo.reproduce

    def full(report, folder):  # type: ignore[no-untyped-def]
        raise OSError(errno.ENOSPC, "No space left on device", str(folder / "report.json"))

    monkeypatch.setattr(zoo.reproduce, "write_report", full)
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["reproduce", "digits_mobilenetv1_ptq", "--out", str(out), "--quiet"])
    assert result.exit_code == 1
    text = " ".join(result.output.split())
    assert f"no space left on device while writing {out / 'report.json'}" in text
    assert "internal error" not in text and "--resume" in text
    assert (out / "int8" / "inference.pdmodel").is_file()  # the finished stages are kept

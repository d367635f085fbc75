"""`zoo bench` names a corrupt model itself, before any worker loads it (no worker traceback)."""
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

"""Data-parallel QAT through paddle.distributed.launch: two CPU ranks (gloo), one report."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from zoo.cli.main import app


@pytest.mark.slow
def test_two_ranks_train_one_model_and_rank0_reports(tmp_path: Path) -> None:
    import paddle

    out = tmp_path / "dist"
    proc = subprocess.run(
        [sys.executable, "-m", "zoo", "reproduce", "digits_mobilenetv1_qat", "--nproc", "2", "--out", str(out), "--json"],
        capture_output=True, text=True, timeout=600, env=dict(os.environ), cwd=tmp_path,
    )
    assert proc.returncode in (0, 3), proc.stderr + (out / "launch-logs" / "launcher.log").read_text(errors="replace")
    report = json.loads(proc.stdout)  # stdout holds only the report: the launcher's output went to its log
    assert report["training"]["world_size"] == 2
    assert report["status"] in ("PASS", "FAIL") and (out / "report.json").is_file()
    assert (out / "int8" / "inference.pdmodel").is_file()
    # rank 1 works beside the output folder, never in it, and writes no report
    assert sorted(p.name for p in out.iterdir()) == [".zoo-run.lock", "checkpoints", "fp32", "int8", "launch-logs",
                                                     "plot.png", "report.json", "report.md", "stages.json", "zoo-run.json"]
    assert (out / "launch-logs").stat().st_mode & 0o077 == 0  # the launcher's environment dumps: owner-only
    rank1 = tmp_path / ".dist.rank1"
    assert not (rank1 / "report.json").exists() and not (rank1 / "stages.json").read_text().count("eval_")
    # gradients were all-reduced: both ranks end the epoch with the same trainable weights
    mine = paddle.load(str(out / "checkpoints" / "epoch_1.pdparams"))
    other = paddle.load(str(rank1 / "checkpoints" / "epoch_1.pdparams"))
    weights = [k for k in mine if k.endswith("weight")]
    assert weights and all(np.array_equal(mine[k].numpy(), other[k].numpy()) for k in weights)


def test_distributed_run_is_for_qat_entries_only(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["reproduce", "digits_mobilenetv1_ptq", "--nproc", "2", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert not (tmp_path / "launch-logs").exists()


@pytest.mark.slow
def test_two_ranks_train_the_digits_detector_quant_aware(tmp_path: Path) -> None:
    """Detection QAT takes the same launcher path: two ranks, yolo_loss gradients all-reduced, rank 0 reports."""
    import paddle

    out = tmp_path / "det"
    proc = subprocess.run(
        [sys.executable, "-m", "zoo", "reproduce", "digits_yolov3_mobilenetv1_qat", "--nproc", "2", "--iterations", "2",
         "--batch-size", "4", "--max-samples", "16", "--out", str(out), "--json", "--quiet"],
        capture_output=True, text=True, timeout=600, env=dict(os.environ), cwd=tmp_path,
    )
    assert proc.returncode == 4, proc.stderr + (out / "launch-logs" / "launcher.log").read_text(errors="replace")
    report = json.loads(proc.stdout)
    assert report["training"]["world_size"] == 2 and report["status"] == "PARTIAL"
    assert [s["input_size"] for s in report["settings"]] == [160, 128, 96]
    mine = paddle.load(str(out / "checkpoints" / "epoch_1.pdparams"))
    other = paddle.load(str(tmp_path / ".det.rank1" / "checkpoints" / "epoch_1.pdparams"))
    weights = [k for k in mine if k.endswith("weight")]
    assert weights and all(np.array_equal(mine[k].numpy(), other[k].numpy()) for k in weights)

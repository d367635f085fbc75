"""zoo.deploy.bench: real Paddle Inference (oneDNN) and real Paddle Lite x86 timings on a tiny model."""
from __future__ import annotations

from pathlib import Path

import pytest

from zoo.deploy.bench import bench_model
from zoo.errors import UsageError

from .deploy_models import reproduce_folder


@pytest.fixture(scope="session")
def repro(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return reproduce_folder(tmp_path_factory)


def test_bench_reproduce_folder_side_by_side(repro: Path) -> None:
    result = bench_model(str(repro), backend="all", batch=2, warmup=1, repeat=5)
    rows = {(r.variant, r.backend): r for r in result.rows}
    assert set(rows) == {("fp32", "paddle-cpu-onednn"), ("int8", "paddle-cpu-onednn"),
                         ("fp32", "lite-x86"), ("int8", "lite-x86")}
    for key in [("fp32", "paddle-cpu-onednn"), ("int8", "paddle-cpu-onednn"), ("fp32", "lite-x86")]:
        row = rows[key]
        assert 0 < row.p50_ms <= row.p90_ms
        assert row.throughput == pytest.approx(2 * 1000 / row.mean_ms, rel=1e-3)
        assert row.peak_rss_mb > 10 and row.file_size > 1000
    int8 = rows[("int8", "paddle-cpu-onednn")]
    # the INT8 model must really run oneDNN INT8 kernels, not fake-quant ops in FP32
    assert int8.kernels["onednn_int8_ops"] > 0 and int8.kernels["fake_quant_ops_left"] == 0
    assert "used" in int8.note
    assert rows[("int8", "lite-x86")].p50_ms is None and "does not run INT8" in rows[("int8", "lite-x86")].note
    assert any("INT8 is" in n for n in result.notes)


def test_bench_rejects_bad_settings(repro: Path) -> None:
    with pytest.raises(UsageError):
        bench_model(str(repro), backend="tflite")
    with pytest.raises(UsageError):
        bench_model(str(repro), repeat=0)


def test_bench_recipe_without_int8_says_how_to_get_one() -> None:
    result = bench_model("digits_mobilenetv1_ptq", backend="paddle", threads=1, batch=1, warmup=1, repeat=2)
    assert [row.variant for row in result.rows] == ["fp32"]
    assert any("zoo reproduce digits_mobilenetv1_ptq" in note for note in result.notes)

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


@pytest.fixture(scope="session")
def bench_all(repro: Path):
    return bench_model(str(repro), backend="all", batch=2, warmup=1, repeat=5)


def test_bench_reproduce_folder_side_by_side(bench_all) -> None:
    result = bench_all
    rows = {(r.variant, r.backend): r for r in result.rows}
    assert set(rows) == {(v, b) for v in ("fp32", "int8")
                         for b in ("paddle-cpu-onednn", "lite-x86", "onnxruntime-cpu", "openvino-cpu", "paddle3-cpu")}
    timed = [k for k in rows if k != ("int8", "lite-x86")]
    for key in timed:
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


def test_bench_all_names_the_fastest_checked_int8_path(bench_all) -> None:
    rows = {(r.variant, r.backend): r for r in bench_all.rows}
    for backend in ("paddle-cpu-onednn", "onnxruntime-cpu", "openvino-cpu"):
        check = rows[("int8", backend)].check["noise_inputs"]
        assert 0.0 <= check["top1_agreement"] <= 1.0 and "max_abs_diff" in check
    assert "QDQ ONNX" in rows[("int8", "onnxruntime-cpu")].note
    fastest = bench_all.fastest
    assert fastest is not None and fastest["baseline"] == "paddle-cpu-onednn"
    int8_p50 = {b: r.p50_ms for (v, b), r in rows.items() if v == "int8" and r.p50_ms is not None
                and r.check["noise_inputs"]["passed"]}
    assert fastest["p50_ms"] == min(int8_p50.values()) and fastest["backend"] in int8_p50
    assert fastest["speedup"] == pytest.approx(rows[("fp32", "paddle-cpu-onednn")].p50_ms / fastest["p50_ms"], rel=1e-2)
    line = [n for n in bench_all.notes if n.startswith("fastest INT8 path:")]
    assert len(line) == 1 and fastest["backend"] in line[0] and "accuracy not measured" in line[0]


def test_bench_data_scores_each_int8_path(repro: Path) -> None:
    from zoo.data.digits import materialize

    # the tiny model takes 32x32 RGB and gives 10 classes, like the digits data: its accuracy is meaningless,
    # but every INT8 path must be scored on the same images and compared with the fake-quant graph there
    result = bench_model(str(repro), backend="onnxruntime", warmup=0, repeat=2, data=materialize(), max_samples=40)
    (row,) = [r for r in result.rows if r.variant == "int8"]
    assert result.reference_top1 is not None and row.top1 is not None
    data = row.check["data"]
    assert 0.0 <= data["top1_agreement"] <= 1.0 and data["passed"] == (data["top1_agreement"] >= 0.95)


def test_bench_refuses_missing_data_before_running(repro: Path, tmp_path: Path) -> None:
    with pytest.raises(UsageError) as err:
        bench_model(str(repro), backend="onnxruntime", data=tmp_path / "missing")
    assert "is not a folder" in err.value.message

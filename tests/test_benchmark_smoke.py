"""Every benchmark script at smoke size (`make test`): the code path runs end to end and writes its
results; the numbers are not asserted here (tests/test_benchmarks.py checks the README's claims)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any, List

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def _run(script: str, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / script), *args],
                          capture_output=True, text=True, timeout=timeout, cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return proc


def _results(path: Path) -> Any:
    assert path.is_file(), f"{path} was not written"
    return json.loads(path.read_text())


def test_bench_ptq_runs_both_engines(tmp_path: Path) -> None:
    _run("bench_ptq.py", "--case", "digits", "--repeat", "1", "--work", str(tmp_path / "w"), "--json", str(tmp_path / "r.json"))
    (case,) = _results(tmp_path / "r.json")
    run = case["runs"][0]
    assert {"zoo", "paddleslim", "max_output_diff"} <= run.keys()


def test_bench_ptq_records_the_test_histograms(tmp_path: Path) -> None:
    out = tmp_path / "hists.npz"
    _run("bench_ptq.py", "record-histograms", str(out))
    recorded = np.load(REPO / "tests" / "data" / "digits_mobilenetv1_act_hists.npz")
    with np.load(out) as made:
        assert made.files == recorded.files
        assert made["hists"].shape[1:] == recorded["hists"].shape[1:]


def test_bench_deploy_runs(tmp_path: Path) -> None:
    _run("bench_deploy.py", "--models", "digits_mobilenetv1_ptq", "--repeat", "2", "--warmup", "1",
         "--json", str(tmp_path / "r.json"))
    (res,) = _results(tmp_path / "r.json")
    assert res["bench"]["rows"]


def test_bench_x86_runs(tmp_path: Path) -> None:
    _run("bench_x86.py", "--models", "digits_mobilenetv1_ptq", "--batches", "1", "--threads", "1", "--repeat", "2",
         "--warmup", "1", "--work", str(tmp_path / "w"), "--json", str(tmp_path / "r.json"))
    (res,) = _results(tmp_path / "r.json")
    assert res["rows"]


def test_bench_search_runs(tmp_path: Path) -> None:
    _run("bench_search.py", "--case", "digits", "--work", str(tmp_path / "w"), "--json", str(tmp_path / "r.json"))
    rows: List[str] = list(_results(tmp_path / "r.json")["digits"])
    assert {"fp32", "plain KL", "search (all algos)", "search (KL only)"} <= set(rows)


def test_bench_check_memory_runs(tmp_path: Path) -> None:
    _run("bench_check_memory.py", "--side", "32", "--json", str(tmp_path / "m.json"))
    result = _results(tmp_path / "m.json")
    assert result["peak_rss_mb"] > 0 and set(result["checks"]) >= {"paddle-cpu-onednn", "onnxruntime-cpu"}


def test_bench_mse_runs_and_small_tensors_stay_exact(tmp_path: Path) -> None:
    _run("bench_mse.py", "--sizes", "4x80x80,8x200x200", "--repeat", "1", "--json", str(tmp_path / "m.json"))
    small, large = _results(tmp_path / "m.json")
    assert not small["sampled"] and small["sampled_threshold"] == small["exact_threshold"]  # Paddle's search itself
    assert large["sampled"] and large["threshold_rel_diff"] <= 0.02 / 0.3  # within one candidate step (2% of max|x|)


def test_bench_real_sizes_runs(tmp_path: Path) -> None:
    """At smoke size: a quarter-width YOLOv3-MobileNetV1 at 64 (the classifiers take bench_x86's path)."""
    _run("bench_real_sizes.py", "--models", "yolov3_mobilenet_v1@64", "--width", "0.25", "--repeat", "1",
         "--warmup", "0", "--work", str(tmp_path / "w"), "--json", str(tmp_path / "r.json"))
    (detector,) = _results(tmp_path / "r.json")
    timed = {(r["variant"], r["backend"]) for r in detector["rows"] if r["p50_ms"]}
    assert ("fp32", "paddle-cpu-onednn") in timed and ("int8", "onnxruntime-cpu") in timed
    # the stand-in went through `zoo quantize` and its INT8 paths were checked box by box
    assert any(r["check"] for r in detector["rows"] if r["variant"] == "int8")

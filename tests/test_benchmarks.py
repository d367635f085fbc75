"""The benchmarks the README quotes, run as tests of their claims (`make test-all`; minutes on 2 cores)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.bench


def _run(script: str, *args: str, json_out: Path) -> object:
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / script), *args, "--json", str(json_out)],
                          capture_output=True, text=True, timeout=1800, cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return json.loads(json_out.read_text())


def test_fast_calibration_gives_paddleslims_model_much_faster(tmp_path: Path) -> None:
    results = _run("bench_ptq.py", "--case", "digits", "--algo", "KL", "--repeat", "1", "--work", str(tmp_path),
                   json_out=tmp_path / "ptq.json")
    run = results[0]["runs"][0]  # type: ignore[index]
    assert run["max_output_diff"] == 0.0  # the same INT8 model
    # the README quotes 400-600x for the threshold phase and 17-23x end to end; allow for a busy machine
    assert run["paddleslim"]["threshold"] / run["zoo"]["threshold"] > 100
    assert run["paddleslim"]["wall"] / run["zoo"]["wall"] > 5


def test_deploy_bench_times_fp32_and_int8_and_exports_a_smaller_arm_file(tmp_path: Path) -> None:
    results = _run("bench_deploy.py", "--models", "digits_mobilenetv1_ptq", "--repeat", "20", "--warmup", "3",
                   json_out=tmp_path / "deploy.json")
    res = results[0]  # type: ignore[index]
    timed = {(r["variant"], r["backend"].split(" ")[0]) for r in res["bench"]["rows"] if r["p50_ms"]}
    assert {"fp32", "int8"} <= {variant for variant, _ in timed}
    assert all(r["p50_ms"] > 0 and r["p90_ms"] >= r["p50_ms"] for r in res["bench"]["rows"] if r["p50_ms"])
    sizes = res["arm_nb_bytes"]
    assert sizes["int8"] < 0.5 * sizes["fp32"]  # README: 0.39x for MobileNetV1


def test_accuracy_search_rescues_the_outlier_model_at_a_small_multiple_of_plain_ptq(tmp_path: Path) -> None:
    results = _run("bench_search.py", "--case", "digits-outlier", "--work", str(tmp_path), json_out=tmp_path / "s.json")
    case = results["digits-outlier"]  # type: ignore[index]
    assert case["plain KL"]["top1"] < case["fp32"] - 50  # plain PTQ collapses
    found = case["search (all algos)"]
    assert found["exit"] == 0 and found["top1"] >= case["fp32"] - 1.0
    int8, total = (int(v) for v in found["int8_layers"].split("/"))
    assert int8 >= 0.8 * total
    assert found["seconds"] < 25 * case["plain KL"]["seconds"]  # README: about 11x on a quiet machine

"""benchmarks/bench_x86.py run as a test of what the README quotes from it (`make test-all`; minutes on 2 cores)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.bench


def test_bench_x86_times_every_backend_and_names_a_checked_fastest_int8_path(tmp_path: Path) -> None:
    out = tmp_path / "x86.json"
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_x86.py"), "--models", "digits_mobilenetv1_ptq",
                           "--batches", "1", "--threads", "1", "--repeat", "20", "--warmup", "3",
                           "--work", str(tmp_path / "work"), "--json", str(out)],
                          capture_output=True, text=True, timeout=1800, cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    (res,) = json.loads(out.read_text())
    timed = {(r["variant"], r["backend"]) for r in res["rows"] if r["p50_ms"]}
    for backend in ("paddle-cpu-onednn", "onnxruntime-cpu", "openvino-cpu"):
        assert {("fp32", backend), ("int8", backend)} <= timed
    assert ("fp32", "lite-x86") in timed
    fastest = res["fastest"]
    # README: the fastest INT8 path that passes the check agrees with Paddle's fake-quant graph on >= 97% of
    # the val images (measured 97.3%, Paddle's oneDNN INT8; top-1 91.76 vs 92.86) and is faster than FP32
    assert fastest["top1_agreement"] >= 0.97
    assert abs(fastest["top1"] - res["reference_top1"]) <= 1.5
    assert fastest["speedup"] > 1.0
    # README: the ONNX INT8 paths of this model agree with the fake-quant graph on the val images
    onnx_int8 = [r for r in res["rows"] if r["variant"] == "int8" and r["backend"] in ("onnxruntime-cpu", "openvino-cpu")]
    assert onnx_int8 and all(r["check"]["data"]["passed"] for r in onnx_int8)
    assert "| digits_mobilenetv1_ptq | 1 | 1 |" in proc.stdout

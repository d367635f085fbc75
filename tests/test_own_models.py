"""Models of kinds the zoo's entries are not, through every command that takes a plain Paddle model: a text
detector (dynamic H and W, an int32 shape subgraph, a dense sigmoid map out) and a text recognizer (dynamic
width, matmul_v2 / layer_norm / transpose2, per-position softmax scores, a 0-d tensor on the way); see
tests/own_model_standins.py. Every calibration algorithm quantizes them; every export target writes and
validates them; `zoo bench --backend all` times and checks them; `zoo eval` refuses to score them as classifiers."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict

import numpy as np
import pytest

from zoo.cli.main import app
from zoo.modelfiles import find_model_files
from zoo.program import read_program

from .conftest import RUNNER
from .own_model_standins import inputs, text_detector, text_recognizer

pytestmark = pytest.mark.slow
SIZES = {"det": (64, 64), "rec": (16, 64)}
ALGOS = ("KL", "KL_paddle1", "hist", "mse", "avg", "abs_max")


def _run(*args: str):  # type: ignore[no-untyped-def]
    return RUNNER.invoke(app, list(args))


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Path]:
    root = tmp_path_factory.mktemp("own")
    made = {"det": text_detector(root / "det"), "rec": text_recognizer(root / "rec")}
    for name, (h, w) in SIZES.items():
        np.save(root / f"{name}_calib.npy", inputs(16, h, w, seed=1))
        np.save(root / f"{name}_check.npy", inputs(4, h, w, seed=2))
    return made


def _quantize(models: Dict[str, Path], name: str, algo: str, out: Path) -> Path:
    folder = models[name]
    res = _run("quantize", str(folder), "--calib-data", str(folder.parent / f"{name}_calib.npy"), "--algo", algo,
               "--batch-size", "4", "--batch-nums", "4", "--ops", "conv2d,matmul_v2", "--out", str(out), "--quiet")
    assert res.exit_code == 0, f"{name} {algo}: {res.stderr}"
    return out


@pytest.fixture(scope="module")
def int8(models: Dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Path]:
    root = tmp_path_factory.mktemp("own_int8")
    return {name: _quantize(models, name, "KL", root / name) for name in models}


@pytest.mark.parametrize("algo", ALGOS)
def test_every_algorithm_quantizes_both(models: Dict[str, Path], algo: str, tmp_path: Path) -> None:
    for name in models:
        out = _quantize(models, name, algo, tmp_path / name)
        info = read_program(find_model_files(out))
        assert info.is_int8 and len(info.quantized) >= (3 if name == "det" else 3), (name, algo)


def test_onnx_exports_are_validated_by_output_kind(int8: Dict[str, Path], tmp_path: Path) -> None:
    kinds = {"det": "dense map", "rec": "sequence of class scores"}
    for name, folder in int8.items():
        h, w = SIZES[name]
        res = _run("export", str(folder), "--target", "onnx", "--input-size", f"1,3,{h},{w}",
                   "--out", str(tmp_path / name), "--json")
        assert res.exit_code == 0, f"{name}: {res.stderr}"
        (art,) = [a for a in json.loads(res.stdout)["artifacts"] if a["precision"] == "int8"]
        for runtime in ("onnxruntime", "openvino"):
            verdict = art["validation"][runtime]
            assert verdict["kind"] == kinds[name] and verdict["passed"] and verdict["cosine"] >= 0.99, (name, runtime)
        assert (tmp_path / name / "model.int8.onnx").is_file()


def test_lite_and_inference_exports(int8: Dict[str, Path], tmp_path: Path) -> None:
    for name, folder in int8.items():
        h, w = SIZES[name]
        res = _run("export", str(folder), "--target", "lite", "--arch", "arm", "--input-size", f"{h},{w}",
                   "--out", str(tmp_path / f"{name}-lite"), "--json")
        assert res.exit_code == 0, f"{name}: {res.stderr}"
        nb = [a for a in json.loads(res.stdout)["artifacts"] if a["precision"] == "int8"]
        assert nb and nb[0]["validation"]["passed"], name  # every quantized op has an arm INT8 kernel
        res = _run("export", str(folder), "--target", "inference", "--input-size", f"{h},{w}",
                   "--out", str(tmp_path / f"{name}-inf"), "--json")
        assert res.exit_code == 0, f"{name}: {res.stderr}"
        assert all(a["validation"]["passed"] for a in json.loads(res.stdout)["artifacts"])


def test_bench_all_times_and_checks_them(int8: Dict[str, Path]) -> None:
    for name, folder in int8.items():
        h, w = SIZES[name]
        res = _run("bench", str(folder), "--backend", "all", "--input-size", f"{h},{w}", "--repeat", "3",
                   "--warmup", "1", "--json")
        assert res.exit_code == 0, f"{name}: {res.stderr}"
        out = json.loads(res.stdout)
        timed = {(r["variant"], r["backend"]) for r in out["rows"] if r["p50_ms"]}
        for backend in ("paddle-cpu-onednn", "onnxruntime-cpu", "openvino-cpu"):
            assert {("fp32", backend), ("int8", backend)} <= timed, (name, backend)
        checks = {r["backend"]: r["check"]["noise_inputs"] for r in out["rows"] if r["variant"] == "int8" and r["check"]}
        assert {"onnxruntime-cpu", "openvino-cpu"} <= set(checks), name
        assert all("cosine" in c for c in checks.values())  # judged as a dense map / a sequence, not top-1
        fastest = out["fastest"]
        assert fastest is not None and checks[fastest["backend"]]["passed"], name  # only a checked path is named


def test_eval_refuses_to_score_them_as_classifiers(models: Dict[str, Path], tmp_path: Path) -> None:
    from PIL import Image

    folder = tmp_path / "val" / "a"
    folder.mkdir(parents=True)
    Image.new("RGB", (80, 40), (200, 10, 10)).save(folder / "0.png")
    res = _run("eval", str(models["det"]), "--data", str(tmp_path), "--input-size", "64")
    assert res.exit_code != 0 and "Traceback" not in res.stderr
    assert "not (batch, classes) scores" in " ".join(res.stderr.split())

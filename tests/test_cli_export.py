"""`zoo export` and `zoo bench` from the command line: clean errors, tables and JSON."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from zoo.cli.main import app

from .deploy_models import fp32_model, int8_model, leftovers, pooled_classifier, script
from .conftest import RUNNER

runner = RUNNER
WIDE = {"COLUMNS": "200"}


@pytest.fixture(scope="session")
def fp32(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fp32_model(tmp_path_factory)


@pytest.fixture(scope="session")
def int8(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return int8_model(tmp_path_factory)


def _clean_failure(result, *needles: str, code: int = 1) -> None:
    text = result.stderr if hasattr(result, "stderr") else result.output
    assert result.exit_code == code, result.output
    assert "Traceback" not in text and "error:" in text
    for needle in needles:
        assert needle in text, text


def test_int8_for_x86_refused_cleanly(int8: Path, tmp_path: Path) -> None:
    out = tmp_path / "o"
    result = runner.invoke(app, ["export", str(int8), "--target", "lite", "--arch", "x86", "--out", str(out)], env=WIDE)
    _clean_failure(result, "does not run INT8", "--arch arm")
    assert not out.exists() and leftovers(tmp_path) == []


def test_crashing_converter_clean_error(fp32: Path, tmp_path: Path) -> None:
    crash = script(tmp_path / "bin", "opt-segv", "kill -SEGV $$")
    result = runner.invoke(app, ["export", str(fp32), "--target", "lite", "--opt-bin", str(crash),
                                 "--out", str(tmp_path / "o")], env=WIDE)
    _clean_failure(result, "SIGSEGV")
    assert not (tmp_path / "o").exists()


def test_converter_exit_3_with_unsupported_op(fp32: Path, tmp_path: Path) -> None:
    opt = script(tmp_path / "bin", "opt-3", "echo \"These unsupported ops are: 'warp_op'.\"; exit 3")
    result = runner.invoke(app, ["export", str(fp32), "--target", "lite", "--opt-bin", str(opt),
                                 "--out", str(tmp_path / "o")], env=WIDE)
    _clean_failure(result, "warp_op")


def test_not_a_model_folder(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = runner.invoke(app, ["export", str(tmp_path / "empty"), "--target", "inference"], env=WIDE)
    _clean_failure(result, "holds no Paddle inference model")
    result = runner.invoke(app, ["export", "no_such_model_anywhere", "--target", "inference"], env=WIDE)
    _clean_failure(result, "neither a folder nor a zoo entry")


def test_bad_target_and_arch(fp32: Path) -> None:
    _clean_failure(runner.invoke(app, ["export", str(fp32), "--target", "tflite"], env=WIDE), "unknown target", code=2)
    _clean_failure(runner.invoke(app, ["export", str(fp32), "--target", "onnx", "--opset", "7"], env=WIDE),
                   "--opset 7", code=2)
    _clean_failure(runner.invoke(app, ["export", str(fp32), "--target", "lite", "--arch", "arm,mips"], env=WIDE),
                   "mips", code=2)


def test_export_lite_json(fp32: Path, tmp_path: Path) -> None:
    out = tmp_path / "lite"
    result = runner.invoke(app, ["export", str(fp32), "--target", "lite", "--arch", "arm,x86", "--out", str(out),
                                 "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["target"] == "lite" and data["source"]["precision"] == "fp32"
    arts = {a["arch"]: a for a in data["artifacts"]}
    assert Path(arts["arm"]["path"]).name == "model.arm.fp32.nb" and Path(arts["arm"]["path"]).is_file()
    assert arts["x86"]["validation"]["max_rel_error"] < 1e-4


def test_export_table(int8: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["export", str(int8), "--target", "lite", "--arch", "arm", "--out", str(tmp_path / "o")],
                           env=WIDE)
    assert result.exit_code == 0, result.output
    assert "model.arm.int8.nb" in result.stdout and "conv2d:arm/int8 x2" in result.stdout


def test_bench_table_and_json(int8: Path) -> None:
    result = runner.invoke(app, ["bench", str(int8), "--repeat", "3", "--warmup", "1", "--wide"], env=WIDE)
    assert result.exit_code == 0, result.output
    assert "p50 ms" in result.stdout and "paddle-cpu-onednn" in result.stdout and "oneDNN INT8" in result.stdout
    assert "p90 ms" in result.stdout and "samples/s" in result.stdout
    # the default layout fits 80 columns: every header and backend name whole, one line a row
    narrow = runner.invoke(app, ["bench", str(int8), "--repeat", "3", "--warmup", "1"], env={"COLUMNS": "80"})
    assert narrow.exit_code == 0, narrow.output
    lines = narrow.stdout.splitlines()
    assert max(len(line.rstrip()) for line in lines) <= 80, narrow.stdout
    header = next(line for line in lines if line.startswith("variant"))
    assert header.split() == ["variant", "backend", "p50", "ms", "peak", "RSS", "vs", "fake-quant"]
    assert any(line.split()[:2] == ["int8", "paddle-cpu-onednn"] for line in lines)
    result = runner.invoke(app, ["bench", str(int8), "--repeat", "3", "--warmup", "1", "--batch", "2", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    row = data["rows"][0]
    for key in ("p50_ms", "p90_ms", "throughput", "peak_rss_mb", "file_size", "variant", "backend"):
        assert row[key] is not None, key
    assert data["batch"] == 2 and row["variant"] == "int8"


def test_bench_onnx_backends_and_fastest_line(int8: Path) -> None:
    result = runner.invoke(app, ["bench", str(int8), "--backend", "openvino", "--repeat", "3", "--warmup", "1",
                                 "--threads", "2"], env=WIDE)
    assert result.exit_code == 0, result.output
    assert "openvino-cpu" in result.stdout and "vs fake-quant" in result.stdout
    assert "fastest INT8 path: openvino-cpu" in result.stdout and "accuracy not measured" in result.stdout
    result = runner.invoke(app, ["bench", str(int8), "--backend", "onnx"], env=WIDE)
    _clean_failure(result, "unknown backend", code=2)


def test_real_process_stays_quiet(fp32: Path, tmp_path: Path) -> None:
    """As a real process: no GLOG or converter chatter reaches the terminal."""
    zoo = Path(sys.executable).with_name("zoo")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GLOG")}
    proc = subprocess.run([str(zoo), "export", str(fp32), "--target", "lite", "--arch", "x86",
                           "--out", str(tmp_path / "o")], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip() == ""
    assert "Loading topology" not in proc.stdout and "model.x86.fp32.nb" in proc.stdout


def test_export_recipe_name_through_the_hub(int8: Path, tmp_path: Path, monkeypatch) -> None:
    """A recipe name resolves to its published quantized archive through zoo.hub.fetch (served locally)."""
    import io
    import tarfile

    from .httpserver import FileServer

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name in ("inference.pdmodel", "inference.pdiparams"):
            tar.add(int8 / name, arcname=name)
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    (recipes / "tiny_deploy_ptq.yaml").write_text(RECIPE, encoding="utf-8")
    with FileServer() as srv:
        srv.add("/PaddleSlim/tiny_deploy_quant.tar", buf.getvalue())
        monkeypatch.setenv("ZOO_RECIPE_PATH", str(recipes))
        monkeypatch.setenv("ZOO_MIRROR", srv.base_url)
        out = tmp_path / "o"
        # no --arch: the entry's validated Lite targets (export.lite.valid_targets: [arm])
        result = runner.invoke(app, ["export", "tiny_deploy_ptq", "--target", "lite", "--out", str(out), "--json"])
        assert result.exit_code == 0, result.output
        other = runner.invoke(app, ["export", "tiny_deploy_ptq", "--target", "lite", "--arch", "opencl",
                                    "--out", str(tmp_path / "ocl"), "--json"])
    assert other.exit_code == 0, other.output
    assert any("opencl: not among tiny_deploy_ptq's validated Lite targets (arm)" in n
               for n in json.loads(other.stdout)["notes"])
    data = json.loads(result.stdout)
    assert [a["arch"] for a in data["artifacts"]] == ["arm"] and data["notes"] == []
    assert data["source"]["kind"] == "recipe" and data["source"]["precision"] == "int8"
    meta = json.loads((out / "zoo_export.json").read_text())
    assert meta["recipe"] == "tiny_deploy_ptq" and meta["preprocess"]["crop"] == 32
    assert (out / "model.arm.int8.nb").is_file()


RECIPE = """\
name: tiny_deploy_ptq
summary: tiny quantized model for the export tests
task: classification
arch: inference_model
strategy: ptq
source: {doc: test, url: "https://example.org/doc"}
artifacts:
  quantized:
    urls: ["https://paddlemodels.example.org/PaddleSlim/tiny_deploy_quant.tar"]
    layout: inference
  fp32:
    urls: ["https://paddlemodels.example.org/PaddleSlim/tiny_deploy_fp32.tar"]
    layout: inference
default_artifact: quantized
dataset: {kind: imagenet, split: val, num_classes: 10}
preprocess: {resize_short: 32, crop: 32}
quant: {algo: abs_max, batch_nums: 2}
published:
  - {input_size: 32, top1: 50.0, fp32_top1: 51.0}
"""


def test_export_onnx_table_and_json(int8: Path, tmp_path: Path) -> None:
    out = tmp_path / "onnx"
    result = runner.invoke(app, ["export", str(int8), "--target", "onnx", "--out", str(out)], env=WIDE)
    assert result.exit_code == 0, result.output
    assert "model.int8.onnx" in result.output and "ORT top-1" in result.output
    assert "rewritten as quantize_linear/dequantize_linear" in result.output
    assert (out / "model.int8.onnx").is_file()
    data = json.loads(runner.invoke(app, ["export", str(int8), "--target", "onnx", "--out", str(out), "--json"]).stdout)
    (art,) = data["artifacts"]
    assert art["precision"] == "int8" and art["validation"]["passed"] and art["validation"]["onnxruntime"]["top1_agreement"] >= 0.6


def test_export_onnx_relative_out(fp32: Path, tmp_path: Path, monkeypatch) -> None:
    """paddle2onnx runs in the output folder: a relative --out (and model path) must still land there."""
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["export", os.path.relpath(fp32, tmp_path), "--target", "onnx", "--out", "rel"], env=WIDE)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "rel" / "model.fp32.onnx").is_file() and not leftovers(tmp_path)


def _declared(model: Path) -> tuple:
    from zoo.modelfiles import find_model_files
    from zoo.program import read_program

    (spec,) = read_program(find_model_files(model)).inputs
    return tuple(3 if d < 0 else d for d in spec.shape)


def test_export_runs_the_inputs_it_is_given(fp32: Path, tmp_path: Path) -> None:
    import numpy as np

    shape = _declared(fp32)
    good = np.random.default_rng(0).random(shape, dtype=np.float32)
    np.save(tmp_path / "good.npy", good)
    ok = RUNNER.invoke(app, ["export", str(fp32), "--target", "inference", "--inputs", str(tmp_path / "good.npy"),
                             "--out", str(tmp_path / "ok"), "--json"])
    assert ok.exit_code == 0, ok.output
    # the same file with one wrong side, or with a NaN: refused, so the file is what the check runs
    np.save(tmp_path / "wide.npy", np.zeros(shape[:-1] + (shape[-1] + 1,), np.float32))
    bad = good.copy()
    bad[0, 0, 0, 0] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    for name, said in (("wide.npy", f"the model takes (N, {', '.join(map(str, shape[1:]))})"), ("nan.npy", "NaN")):
        result = RUNNER.invoke(app, ["export", str(fp32), "--target", "inference", "--inputs", str(tmp_path / name),
                                     "--out", str(tmp_path / name.replace(".npy", ""))])
        assert result.exit_code == 2, result.output
        assert said in " ".join(result.output.split()) and not (tmp_path / name.replace(".npy", "")).exists()


@pytest.fixture(scope="module")
def dynamic_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A classifier with a dynamic height and width (like a text recognizer's), 2 classes."""
    return pooled_classifier(tmp_path_factory.mktemp("dynamic"), [None, 3, None, None], classes=2)


def test_a_dynamic_model_exports_and_benches_at_the_input_size_given(dynamic_model: Path, tmp_path: Path) -> None:
    refused = RUNNER.invoke(app, ["export", str(dynamic_model), "--target", "inference", "--out", str(tmp_path / "n")])
    assert refused.exit_code != 0 and "--input-size" in " ".join(refused.output.split())
    exported = RUNNER.invoke(app, ["export", str(dynamic_model), "--target", "inference", "--input-size", "48,192",
                                   "--out", str(tmp_path / "e"), "--json"])
    assert exported.exit_code == 0, exported.output
    assert json.loads(exported.stdout)["artifacts"][0]["validation"]["passed"]
    bench = RUNNER.invoke(app, ["bench", str(dynamic_model), "--input-size", "48x192", "--repeat", "2", "--warmup", "0",
                                "--json"])
    assert bench.exit_code == 0, bench.output
    assert json.loads(bench.stdout)["rows"][0]["p50_ms"] > 0
    bad = RUNNER.invoke(app, ["bench", str(dynamic_model), "--input-size", "wide"])
    assert bad.exit_code == 2 and "--input-size takes one side, H,W or N,C,H,W" in " ".join(bad.output.split())


def test_bench_data_that_cannot_fit_the_model_is_refused_before_timing(tmp_path: Path, zoo_home: Path) -> None:
    from zoo.data.digits import materialize

    pooled_classifier(tmp_path / "wide", [None, 3, 48, 192])
    result = RUNNER.invoke(app, ["bench", str(tmp_path / "wide"), "--data", str(materialize()), "--repeat", "2"])
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    assert "takes 48x192 inputs" in text and "--resize direct" in text and "p50" not in text

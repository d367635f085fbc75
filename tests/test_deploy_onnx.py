"""ONNX export: the legacy fake-quant rewrite, paddle2onnx in a subprocess, ONNX Runtime vs Paddle Inference."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from zoo.tasks import get_task
from zoo.deploy.export import export_model
from zoo.deploy.onnx import OnnxSession, export_onnx, is_legacy_quant, legacy_to_qdq, onnx_ops, parse_unsupported
from zoo.program import read_program
from zoo.deploy.validate import compare_int8, paddle_outputs, validate_onnx
from zoo.errors import ConverterError, UsageError, ValidationError
from zoo.modelfiles import find_model_files

from .deploy_models import calibration, fp32_model, int8_model, leftovers, reproduce_folder, unsupported_model


@pytest.fixture(scope="session")
def fp32(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fp32_model(tmp_path_factory)


@pytest.fixture(scope="session")
def int8(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return int8_model(tmp_path_factory)


@pytest.fixture(scope="session")
def rewritten(int8: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return legacy_to_qdq(find_model_files(int8), tmp_path_factory.mktemp("qdq")).folder


def test_legacy_rewrite_keeps_outputs(int8: Path, rewritten: Path) -> None:
    source, converted = find_model_files(int8), find_model_files(rewritten)
    assert is_legacy_quant(read_program(source))
    info = read_program(converted)
    assert not is_legacy_quant(info)
    assert {"quantize_linear", "dequantize_linear"} <= set(info.op_types)
    assert info.quantized == read_program(source).quantized  # the same ops stay INT8
    x = calibration(16)
    before, after = paddle_outputs(source, [x])[0], paddle_outputs(converted, [x])[0]
    # same scales, computed in real units instead of integer units: equal up to float rounding
    assert np.abs(before - after).max() <= 1e-4 * np.abs(before).max()
    assert (before.argmax(1) == after.argmax(1)).all()


def test_paddle2onnx_refuses_legacy_format_but_reads_rewrite(int8: Path, rewritten: Path, tmp_path: Path) -> None:
    from zoo.deploy.onnx import paddle_to_onnx

    with pytest.raises(ConverterError) as err:
        paddle_to_onnx(find_model_files(int8), tmp_path / "legacy.onnx")
    assert "fake_quantize_range_abs_max" in err.value.message
    path = paddle_to_onnx(find_model_files(rewritten), tmp_path / "qdq.onnx")
    ops = onnx_ops(path)
    assert ops.get("QuantizeLinear", 0) > 0 and ops.get("DequantizeLinear", 0) > 0


def test_fp32_export_matches_paddle(fp32: Path, tmp_path: Path) -> None:
    out = tmp_path / "onnx"
    result = export_model(str(fp32), "onnx", out=out)
    (art,) = result.artifacts
    assert art.path == (out / "model.fp32.onnx").resolve() and art.validation["passed"]
    assert art.validation["max_rel_error"] < 1e-4
    x = calibration(4)
    got = OnnxSession(art.path, "onnxruntime").run([x])[0]
    want = paddle_outputs(find_model_files(fp32), [x])[0]
    assert np.allclose(got, want, rtol=1e-4, atol=1e-5)
    ov = OnnxSession(art.path, "openvino").run([x])[0]
    assert np.allclose(ov, want, rtol=1e-3, atol=1e-4)
    meta = json.loads((out / "zoo_export.json").read_text())
    assert meta["format"] == "onnx" and meta["opset"] == 13 and meta["toolchain"]["paddle2onnx"].startswith("1.3")
    assert not leftovers(tmp_path)


def test_int8_export_of_a_real_run_is_qdq_and_judged_on_its_images(tmp_path_factory: pytest.TempPathFactory,
                                                                     tmp_path: Path) -> None:
    """The legacy fake-quant graph of a `zoo reproduce` run converts to QuantizeLinear/DequantizeLinear, and
    the export judges the file on the run's own images: ONNX Runtime and OpenVINO agree with Paddle's fake-quant
    graph on at least 95% of them. (Before batch norms were kept out of paddle2onnx's conv folding, the folded
    int32 biases of dead channels cost this file about 45 points of top-1 and the export refused it.)"""
    repro = reproduce_folder(tmp_path_factory)
    conversion = export_onnx(find_model_files(repro / "int8"), tmp_path / "m.onnx", tmp_path / "work")
    assert conversion.rewritten_legacy and conversion.ops["QuantizeLinear"] > 0
    result = export_model(str(repro), "onnx", out=tmp_path / "o")
    (art,) = [a for a in result.artifacts if a.precision == "int8"]
    check = art.validation
    assert check["passed"] and "real images" in check["inputs"]
    for runtime in ("onnxruntime", "openvino"):
        assert check[runtime]["top1_agreement"] >= 0.95, (runtime, check[runtime])
    assert (tmp_path / "o" / "model.int8.onnx").is_file()


def test_a_batch_norm_folded_into_quantized_weights_is_what_the_check_refuses(
        tmp_path_factory: pytest.TempPathFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The negative control of the case above: with the batch norms left for paddle2onnx to fold (the old
    rewrite), the file is the broken one and the export refuses it, naming the runtimes and the limit missed."""
    import zoo.deploy.onnx as onnx_module

    monkeypatch.setattr(onnx_module, "_batch_norms_as_affine", lambda block, scope: None)
    repro = reproduce_folder(tmp_path_factory)
    with pytest.raises(ValidationError, match="real images.*top-1 agreement") as info:
        export_model(str(repro), "onnx", out=tmp_path / "o")
    assert "(>= 95%)" in info.value.message and "ONNX Runtime" in info.value.message
    assert not (tmp_path / "o").exists()


def test_quantize_linear_format_converts_without_rewrite(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> None:
    src = find_model_files(int8_model(tmp_path_factory, onnx_format=True))
    conversion = export_onnx(src, tmp_path / "m.onnx", tmp_path / "work")
    assert not conversion.rewritten_legacy and conversion.ops.get("DequantizeLinear", 0) > 0
    x = calibration(32)
    check = validate_onnx(src, conversion.path, [x], int8=True, real=False)
    assert check.passed and check.extra["onnxruntime"]["top1_agreement"] >= 0.6


def test_wrong_model_fails_validation(tmp_path_factory: pytest.TempPathFactory, fp32: Path, tmp_path: Path) -> None:
    other = find_model_files(fp32_model(tmp_path_factory, name="fp32-other", seed=7))
    conversion = export_onnx(other, tmp_path / "other.onnx", tmp_path / "work")
    x = calibration(16)
    with pytest.raises(ValidationError) as err:
        validate_onnx(find_model_files(fp32), conversion.path, [x], int8=False, real=False)
    assert "differs from Paddle Inference" in err.value.message
    # the INT8 limits refuse it too: a wrong model is not "close enough" for INT8
    ref = paddle_outputs(find_model_files(fp32), [x])
    shuffled = [ref[0][:, ::-1].copy()]
    assert not compare_int8(ref, shuffled, real=True)["passed"]
    assert compare_int8(ref, [ref[0] * 1.01], real=True)["passed"]


def test_unsupported_ops_are_named(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> None:
    with pytest.raises(ConverterError) as err:
        export_model(str(unsupported_model(tmp_path_factory)), "onnx", out=tmp_path / "o")
    assert "determinant" in err.value.message and "does not support" in err.value.message
    assert not (tmp_path / "o").exists() and not leftovers(tmp_path)


def test_parse_unsupported() -> None:
    text = "[Paddle2ONNX] Oops, there are some operators not supported yet, including fake_a,fake_b,\n[ERROR] x"
    assert parse_unsupported(text) == ["fake_a", "fake_b"]


def test_opset_checked_before_work(fp32: Path, tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        export_model(str(fp32), "onnx", out=tmp_path / "o", opset=9)
    with pytest.raises(UsageError):
        export_model(str(fp32), "inference", out=tmp_path / "o", opset=13)
    assert not (tmp_path / "o").exists()


def test_eval_runtime_scores_each_runtime(int8: Path) -> None:
    """`zoo eval --runtime`: the same images scored by Paddle's fake-quant graph and by each x86 runtime."""
    from zoo.data.digits import materialize
    from zoo.evaluate.run import EvalOptions, evaluate_target

    opts = dict(data=materialize(), max_samples=48, input_size=32, batch_size=16, threads=1, num_workers=0)
    scored = {rt: evaluate_target(str(int8), EvalOptions(runtime=rt, **opts))
              for rt in ("paddle", "paddle-int8", "onnxruntime", "openvino")}
    for rt, result in scored.items():
        assert result["runtime"] == rt and result["images"] == 48 and 0.0 <= result["top1"] <= 100.0
    # a tiny untrained model: the scores are meaningless, but the runtimes compute the same network,
    # so they may differ by a few flipped images at most
    assert abs(scored["onnxruntime"]["top1"] - scored["paddle"]["top1"]) <= 100.0 * 8 / 48
    with pytest.raises(Exception) as err:
        evaluate_target(str(int8), EvalOptions(runtime="lite", **opts))
    assert "does not run INT8" in str(err.value)


def test_eval_runtime_cli(fp32: Path) -> None:
    from zoo.cli.main import app
    from zoo.data.digits import materialize

    from .conftest import RUNNER

    args = ["eval", str(fp32), "--data", str(materialize()), "--input-size", "32", "--max-samples", "20"]
    result = RUNNER.invoke(app, args + ["--runtime", "onnxruntime", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    plain = json.loads(RUNNER.invoke(app, args + ["--json"]).stdout)
    assert data["runtime"] == "onnxruntime" and plain["runtime"] == "paddle"
    assert data["top1"] == plain["top1"]  # FP32: the ONNX export computes the same scores
    result = RUNNER.invoke(app, args + ["--runtime", "tvm"])
    assert result.exit_code == 2 and "unknown --runtime" in result.output


@pytest.fixture(scope="session")
def hardswish(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import paddle

    from .deploy_models import SHAPE, HardswishNet

    out = tmp_path_factory.mktemp("hardswish")
    paddle.seed(0)
    net = HardswishNet()
    net.eval()
    paddle.jit.save(net, str(out / "inference"), input_spec=[paddle.static.InputSpec([None, *SHAPE], "float32", "x")])
    return out


def test_default_opset_rises_for_ops_that_need_it(hardswish: Path, tmp_path: Path) -> None:
    result = export_model(str(hardswish), "onnx", out=tmp_path / "auto")
    assert json.loads((tmp_path / "auto" / "zoo_export.json").read_text())["opset"] == 14
    assert "(opset 14)" in result.artifacts[0].converter and result.artifacts[0].validation["passed"]
    with pytest.raises(ConverterError) as err:
        export_model(str(hardswish), "onnx", out=tmp_path / "pinned", opset=13)
    assert "hard_swish needs opset 14" in err.value.message and "--opset 14" in err.value.hint
    assert not (tmp_path / "pinned").exists()


@pytest.fixture(scope="session")
def qat_int8(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny QAT model: quantize-dequantize ops on activations and on float weights."""
    from zoo.quant.base import FP32Source, QuantData, QuantOptions, get_strategy

    from .quant_tiny import SHAPE as TINY_SHAPE
    from .quant_tiny import ArrayDataset, tiny_data, tiny_recipe, trained_tiny_net

    tmp = tmp_path_factory.mktemp("qat")
    x, y = tiny_data(96, seed=2)
    files = get_strategy("qat").quantize(tiny_recipe("qat"), FP32Source(input_shape=TINY_SHAPE, network=trained_tiny_net(),
                                                                   hooks=get_task("classification")),
                                         QuantData(train=ArrayDataset(x, y)), tmp / "int8",
                                         QuantOptions(work_dir=tmp / "checkpoints"))
    return files.folder


def test_qat_format_rewritten_and_exported(qat_int8: Path, tmp_path: Path) -> None:
    from .quant_tiny import tiny_data

    source = find_model_files(qat_int8)
    assert "fake_channel_wise_quantize_dequantize_abs_max" in read_program(source).op_types
    x, y = tiny_data(64, seed=5)
    conversion = export_onnx(source, tmp_path / "qat.onnx", tmp_path / "work")
    assert conversion.rewritten_legacy and conversion.ops.get("QuantizeLinear", 0) > 0
    rewritten = find_model_files(tmp_path / "work" / "qat-qdq")
    before, after = paddle_outputs(source, [x])[0], paddle_outputs(rewritten, [x])[0]
    # integer weights times their scale equal the quantize-dequantized weights: only rounding flips remain
    assert (before.argmax(1) == after.argmax(1)).mean() >= 0.95
    assert np.abs(before - after).max() <= 0.05 * np.abs(before).max()
    check = validate_onnx(source, conversion.path, [x], int8=True, real=True)
    assert check.passed and check.extra["onnxruntime"]["top1_agreement"] >= 0.95

"""`zoo quantize`: PTQ of any inference model from a .npy/.npz or an image folder; clear errors on bad input."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.quant_tiny import SHAPE, op_types, save_fp32, tiny_data, trained_tiny_net
from zoo.cli.main import app

runner = CliRunner()


@pytest.fixture(scope="module")
def fp32(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_fp32(trained_tiny_net(), tmp_path_factory.mktemp("fp32"))


def _quantize(*args: str):  # type: ignore[no-untyped-def]
    result = runner.invoke(app, ["quantize", *args])
    result.text = " ".join(result.output.split())  # rich wraps long messages
    return result


def test_quantize_from_npy(fp32: Path, tmp_path: Path) -> None:
    x, _ = tiny_data(32)
    np.save(tmp_path / "calib.npy", x)
    out = tmp_path / "int8"
    result = _quantize(str(fp32), "--calib-data", str(tmp_path / "calib.npy"), "--algo", "abs_max",
                       "--batch-size", "8", "--batch-nums", "2", "--out", str(out), "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["out"] == str(out) and info["algo"] == "abs_max"
    assert (out / "inference.pdmodel").is_file() and (out / "inference.pdiparams").is_file()
    assert any("quant" in op for op in op_types(out))


def test_quantize_from_npz_with_kl(fp32: Path, tmp_path: Path) -> None:
    x, _ = tiny_data(16)
    np.savez(tmp_path / "calib.npz", x=x)
    result = _quantize(str(fp32), "--calib-data", str(tmp_path / "calib.npz"), "--algo", "KL",
                       "--batch-size", "8", "--batch-nums", "2", "--out", str(tmp_path / "o"))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "o" / "inference.pdmodel").is_file()


def test_quantize_from_an_image_folder(tmp_path: Path) -> None:
    import paddle
    from paddle.vision.models import MobileNetV1

    from tests.repro_standins import make_imagenet

    net = MobileNetV1(scale=0.25, num_classes=10)
    net.eval()
    paddle.jit.save(net, str(tmp_path / "m" / "inference"),
                    input_spec=[paddle.static.InputSpec([None, 3, 224, 224], "float32", name="x")])
    data = make_imagenet(tmp_path / "data", classes=2, per_class=2)
    result = _quantize(str(tmp_path / "m"), "--calib-data", str(data), "--algo", "avg",
                       "--batch-size", "2", "--batch-nums", "2", "--out", str(tmp_path / "o"))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "o" / "inference.pdmodel").is_file()


def test_wrong_input_shape_is_a_clear_error(fp32: Path, tmp_path: Path) -> None:
    np.save(tmp_path / "bad.npy", np.zeros((4, 1, 16, 16), "float32"))
    result = _quantize(str(fp32), "--calib-data", str(tmp_path / "bad.npy"), "--out", str(tmp_path / "o"))
    assert result.exit_code == 1
    assert "do not fit the model's input" in result.text and "Traceback" not in result.text
    assert not (tmp_path / "o").exists()


def test_model_folder_without_model_files(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    np.save(tmp_path / "x.npy", np.zeros((4, *SHAPE), "float32"))
    result = _quantize(str(tmp_path / "empty"), "--calib-data", str(tmp_path / "x.npy"), "--out", str(tmp_path / "o"))
    assert result.exit_code == 1
    assert "holds no Paddle inference model" in result.text


def test_missing_or_empty_data_folder(fp32: Path, tmp_path: Path) -> None:
    result = _quantize(str(fp32), "--calib-data", str(tmp_path / "nope"), "--out", str(tmp_path / "o"))
    assert result.exit_code == 1 and "does not exist" in result.text
    (tmp_path / "empty").mkdir()
    result = _quantize(str(fp32), "--calib-data", str(tmp_path / "empty"), "--out", str(tmp_path / "o"))
    assert result.exit_code == 1 and "error:" in result.text and "Traceback" not in result.text


def test_unknown_algo(fp32: Path, tmp_path: Path) -> None:
    result = _quantize(str(fp32), "--calib-data", str(tmp_path), "--algo", "magic", "--out", str(tmp_path / "o"))
    assert result.exit_code == 2 and "unknown algo" in result.text


def test_ops_choose_what_is_quantized(fp32: Path, tmp_path: Path) -> None:
    from zoo.program import read_program
    from zoo.modelfiles import find_model_files

    x, _ = tiny_data(16)
    np.save(tmp_path / "calib.npy", x)
    quantized = {}
    for ops in ("conv2d", "conv2d,matmul_v2,mul"):
        out = tmp_path / ops.replace(",", "-")
        result = _quantize(str(fp32), "--calib-data", str(tmp_path / "calib.npy"), "--algo", "abs_max", "--ops", ops,
                           "--batch-size", "8", "--batch-nums", "2", "--out", str(out), "--json")
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["ops"] == ops.split(",")
        quantized[ops] = set(read_program(find_model_files(out)).quantized)
    assert quantized["conv2d"] == {"conv2d"}
    assert quantized["conv2d,matmul_v2,mul"] - {"conv2d"}, "the Linear layer is quantized only when asked for"


def test_ops_that_match_nothing_are_refused(fp32: Path, tmp_path: Path) -> None:
    x, _ = tiny_data(16)
    np.save(tmp_path / "calib.npy", x)
    result = _quantize(str(fp32), "--calib-data", str(tmp_path / "calib.npy"), "--ops", "lstm",
                       "--batch-size", "8", "--batch-nums", "2", "--out", str(tmp_path / "none"))
    assert result.exit_code == 1
    assert "nothing was quantized" in result.text and "conv2d" in result.text
    assert not (tmp_path / "none").exists()


def test_non_finite_calibration_data_is_refused_before_work(fp32: Path, tmp_path: Path) -> None:
    x, _ = tiny_data(16)
    x[5, 0, 1, 1] = np.nan
    x[9, 0, 0, 0] = np.inf
    np.save(tmp_path / "calib.npy", x)
    out = tmp_path / "int8"
    result = _quantize(str(fp32), "--calib-data", str(tmp_path / "calib.npy"), "--out", str(out))
    assert result.exit_code == 1
    assert "2 of 16 samples hold NaN or infinite values (first: sample 5)" in result.text
    assert not out.exists()


def test_fewer_calibration_samples_than_asked_are_said_and_recorded(fp32: Path, tmp_path: Path) -> None:
    x, _ = tiny_data(12)
    np.save(tmp_path / "calib.npy", x)
    result = runner.invoke(app, ["quantize", str(fp32), "--calib-data", str(tmp_path / "calib.npy"), "--algo", "abs_max",
                                 "--batch-size", "8", "--batch-nums", "4", "--out", str(tmp_path / "o"), "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["calib_samples"] == 12 and info["batches_used"] == 2
    assert "calibrating on 12 samples, fewer than" in " ".join(result.stderr.split())


@pytest.mark.parametrize("command", ["quantize", "analyze"])
def test_an_already_quantized_model_is_refused(fp32: Path, tmp_path: Path, command: str) -> None:
    x, y = tiny_data(16)
    np.save(tmp_path / "calib.npy", x)
    np.savez(tmp_path / "eval.npz", x=x, y=y)
    first = _quantize(str(fp32), "--calib-data", str(tmp_path / "calib.npy"), "--algo", "abs_max", "--batch-size", "8",
                      "--batch-nums", "2", "--out", str(tmp_path / "int8"))
    assert first.exit_code == 0, first.output
    extra = ["--out", str(tmp_path / "again")] if command == "quantize" else ["--eval-data", str(tmp_path / "eval.npz")]
    result = runner.invoke(app, [command, str(tmp_path / "int8"), "--calib-data", str(tmp_path / "calib.npy"), *extra])
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    assert "is already quantized" in text and "takes an FP32 model" in text and "Traceback" not in text


@pytest.mark.parametrize("drop", ["inf", "nan", "250"])
def test_a_max_drop_that_accepts_anything_is_refused(fp32: Path, tmp_path: Path, drop: str) -> None:
    x, y = tiny_data(16)
    np.save(tmp_path / "calib.npy", x)
    np.savez(tmp_path / "eval.npz", x=x, y=y)
    result = _quantize(str(fp32), "--calib-data", str(tmp_path / "calib.npy"), "--eval-data", str(tmp_path / "eval.npz"),
                       "--max-drop", drop, "--out", str(tmp_path / "o"))
    assert result.exit_code == 2, result.output
    # typer's own range check answers NaN first; the settings object answers the rest
    assert ("--max-drop must be from 0 to 100 points" in result.text or "Invalid value for '--max-drop'" in result.text)
    assert not (tmp_path / "o").exists()


def test_a_quantize_output_records_its_source_so_bench_pairs_them(fp32: Path, tmp_path: Path) -> None:
    x, _ = tiny_data(16)
    np.save(tmp_path / "calib.npy", x)
    out = tmp_path / "int8"
    result = _quantize(str(fp32), "--calib-data", str(tmp_path / "calib.npy"), "--algo", "abs_max", "--batch-size", "8",
                       "--batch-nums", "2", "--out", str(out))
    assert result.exit_code == 0, result.output
    record = json.loads((out / "zoo-quantize.json").read_text())
    assert record["model"] == str(fp32.resolve()) and record["settings"]["algo"] == "abs_max" and record["calib_samples"] == 16
    bench = runner.invoke(app, ["bench", str(out), "--repeat", "2", "--warmup", "0", "--json"])
    assert bench.exit_code == 0, bench.output
    assert {row["variant"] for row in json.loads(bench.stdout)["rows"]} == {"fp32", "int8"}  # FP32 found from the record


def test_zoo_info_describes_a_model_folder(fp32: Path, tmp_path: Path) -> None:
    x, _ = tiny_data(16)
    np.save(tmp_path / "calib.npy", x)
    out = tmp_path / "int8"
    assert _quantize(str(fp32), "--calib-data", str(tmp_path / "calib.npy"), "--algo", "abs_max", "--batch-size", "8",
                     "--batch-nums", "2", "--out", str(out)).exit_code == 0
    info = runner.invoke(app, ["info", str(out), "--json"])
    assert info.exit_code == 0, info.output
    summary = json.loads(info.stdout)
    assert summary["precision"] == "int8" and summary["quantized_ops"] > 0
    assert summary["inputs"][0]["shape"][1:] == list(SHAPE)
    assert summary["records"]["zoo-quantize.json"]["model"] == str(fp32.resolve())
    text = runner.invoke(app, ["info", str(fp32)])
    assert text.exit_code == 0 and "FP32 Paddle inference model" in text.output


def test_quantizable_layers_left_out_by_ops_are_reported(fp32: Path, tmp_path: Path) -> None:
    from zoo.cli.quantize import left_out_ops
    from zoo.modelfiles import find_model_files

    x, _ = tiny_data(16)
    np.save(tmp_path / "calib.npy", x)
    left = left_out_ops(find_model_files(fp32), ("conv2d",))
    assert left and "conv2d" not in left  # the tiny net's Linear layer (matmul_v2/mul) stays float under --ops conv2d
    result = _quantize(str(fp32), "--calib-data", str(tmp_path / "calib.npy"), "--algo", "abs_max", "--ops", "conv2d",
                       "--batch-size", "8", "--batch-nums", "2", "--out", str(tmp_path / "o"))
    assert result.exit_code == 0, result.output
    assert "--ops leaves these quantizable layers in float" in result.text and next(iter(left)) in result.text

"""Accuracy-targeted PTQ (`zoo quantize --max-drop`) and `zoo analyze` on tiny models, one with outlier channels."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Tuple

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.quant_tiny import accuracy, save_fp32, tiny_data, trained_tiny_net
from zoo.cli.main import app

runner = CliRunner()
OUTLIER = 1000.0  # one channel's activations are this much larger; the next conv's weights that much smaller


def with_outlier_channel(net, channel: int = 3):  # type: ignore[no-untyped-def]
    """The same FP32 function, hostile to a per-tensor activation scale: conv2 reads one channel 1000x larger.

    bn1's scale and shift of `channel` grow 1000x (ReLU is positively homogeneous, so its output does
    too) and conv2's weights reading that channel shrink 1000x.
    """
    import paddle

    with paddle.no_grad():
        for param in (net.bn1.weight, net.bn1.bias):
            value = param.numpy()
            value[channel] *= OUTLIER
            param.set_value(value)
        weight = net.conv2.weight.numpy()
        weight[:, channel] /= OUTLIER
        net.conv2.weight.set_value(weight)
    return net


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Tuple[Path, Path]:
    root = tmp_path_factory.mktemp("search")
    normal = save_fp32(trained_tiny_net(), root / "normal")
    outlier = save_fp32(with_outlier_channel(trained_tiny_net()), root / "outlier")
    return normal, outlier


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Tuple[Path, Path]:
    root = tmp_path_factory.mktemp("search_data")
    calib, _ = tiny_data(64, seed=3)
    x, y = tiny_data(200, seed=4)
    np.savez(root / "calib.npz", x=calib)
    np.savez(root / "eval.npz", x=x, y=y)
    return root / "calib.npz", root / "eval.npz"


def conv2_weight(model_dir: Path) -> str:
    """The weight of the conv that reads the outlier channel (names depend on how many nets the process built)."""
    from zoo.program import read_program
    from zoo.modelfiles import find_model_files

    convs = [op for op in read_program(find_model_files(model_dir)).ops if op.type == "conv2d"]
    return convs[1].inputs["Filter"][0]


def _run(*args: str):  # type: ignore[no-untyped-def]
    result = runner.invoke(app, list(args))
    result.text = " ".join(result.output.split())
    return result


def test_outlier_model_is_the_same_function(models, data) -> None:
    from zoo.predictor import Predictor

    x = np.load(data[1])["x"][:32]
    a, b = Predictor(models[0]).run(x)[0], Predictor(models[1]).run(x)[0]
    assert np.abs(a - b).max() < 1e-3 * np.abs(a).max()


def test_plain_ptq_collapses_and_the_search_recovers(models, data, tmp_path: Path) -> None:
    calib, evaluation = data
    x, y = np.load(evaluation)["x"], np.load(evaluation)["y"]
    plain = _run("quantize", str(models[1]), "--calib-data", str(calib), "--algo", "hist", "--ops", "conv2d,mul,matmul_v2",
                 "--batch-size", "16", "--batch-nums", "4", "--out", str(tmp_path / "plain"))
    assert plain.exit_code == 0, plain.output
    fp32 = accuracy(models[1], x, y)
    assert accuracy(tmp_path / "plain", x, y) < fp32 - 30  # per-tensor scales collapse it
    out = tmp_path / "searched"
    result = _run("quantize", str(models[1]), "--calib-data", str(calib), "--eval-data", str(evaluation),
                  "--max-drop", "1", "--ops", "conv2d,mul,matmul_v2", "--batch-size", "16", "--batch-nums", "4",
                  "--out", str(out), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["met"] and report["drop"] <= 1.0
    assert accuracy(out, x, y) >= fp32 - 1.0  # scored independently of the search
    assert [f["name"] for f in report["float_layers"]] == [conv2_weight(models[1])]  # the conv reading the outlier channel
    assert report["float_layers"][0]["reason"].startswith("rank 1 of 3")
    assert report["int8_layers"] == 2 == report["int8_ops_in_model"]
    assert json.loads((out / "quantize-report.json").read_text()) == report
    assert {t["phase"] for t in report["trials"]} >= {"global", "fallback"}
    assert all(t["int8_layers"] == 3 for t in report["trials"] if t["phase"] == "global")


def test_a_target_that_cannot_be_met_exits_3_with_the_best_model_written(models, data, tmp_path: Path) -> None:
    calib, evaluation = data
    out = tmp_path / "best"
    result = _run("quantize", str(models[1]), "--calib-data", str(calib), "--eval-data", str(evaluation),
                  "--max-drop", "1", "--max-float", "0", "--ops", "conv2d,mul,matmul_v2", "--batch-size", "16",
                  "--batch-nums", "4", "--out", str(out))
    assert result.exit_code == 3, result.output
    assert "NOT met" in result.text
    report = json.loads((out / "quantize-report.json").read_text())
    assert report["met"] is False and report["float_layers"] == [] and report["int8_layers"] == 3
    assert report["drop"] > 1.0
    assert (out / "inference.pdmodel").is_file()
    # AdaRound (PaddleSlim's) was the last resort, and its weights were snapped to integers
    assert any(t["rounding"] == "adaround" for t in report["trials"])


def test_normal_model_meets_the_target_with_every_layer_int8(models, data, tmp_path: Path) -> None:
    calib, evaluation = data
    result = _run("quantize", str(models[0]), "--calib-data", str(calib), "--eval-data", str(evaluation),
                  "--max-drop", "1", "--algo", "KL", "--ops", "conv2d,mul,matmul_v2", "--batch-size", "16",
                  "--batch-nums", "4", "--out", str(tmp_path / "n"), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["int8_share"] == 1.0 and len(report["trials"]) == 1  # the first trial met it: search stopped
    assert report["settings"]["algo"] == "KL"


def test_simulated_trials_match_the_written_model(models, data, tmp_path: Path) -> None:
    from zoo.modelfiles import find_model_files
    from zoo.predictor import Predictor
    from zoo.quant.calib_batches import calibration_batches, model_inputs
    from zoo.quant.ptq import quantize_static
    from zoo.quant.settings import PTQSettings
    from zoo.quant.sim import QuantSim

    files = find_model_files(models[0])
    calib = np.load(data[0])["x"]
    x = np.load(data[1])["x"]
    settings = PTQSettings(batch_size=16, batch_nums=4, ops=("conv2d", "mul", "matmul_v2"))
    sim = QuantSim(files, settings)
    batches = calibration_batches(calib, model_inputs(files)[0], 16)
    sim.collect(lambda: iter(batches), 4)
    for algo in ("KL", "abs_max"):
        written = quantize_static(files, tmp_path / algo, calib,
                                  settings.replace(algo=algo, skip=[conv2_weight(models[0])]))
        sim.configure(sim.thresholds(algo), sim.weight_levels(), [True, False, True])
        simulated = sim.run(x)
        real = Predictor(written).run(x)[0]
        scale = np.abs(real).max()
        assert np.abs(simulated - real).max() < 0.02 * scale, algo
        assert (simulated.argmax(1) == real.argmax(1)).mean() >= 0.99
    sim.configure(sim.thresholds("KL"), sim.weight_levels(), [False] * 3)
    assert np.abs(sim.run(x) - Predictor(files).run(x)[0]).max() < 1e-4  # all float is the FP32 model


def test_analyze_names_the_outlier_layer(models, data, tmp_path: Path) -> None:
    calib, evaluation = data
    result = _run("analyze", str(models[1]), "--calib-data", str(calib), "--eval-data", str(evaluation), "--algo", "hist",
                  "--ops", "conv2d,mul,matmul_v2", "--batch-size", "16", "--batch-nums", "4", "--out", str(tmp_path / "a"),
                  "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    conv2 = conv2_weight(models[1])
    assert info["layers"][0]["name"] == conv2
    assert info["layers"][0]["drop_only_this_int8"] > 30 and info["layers"][0]["gain_this_float"] > 30
    assert all(r["drop_only_this_int8"] <= 1.0 for r in info["layers"][1:])
    assert info["skip"] == [conv2]
    assert (tmp_path / "a" / "analysis.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((tmp_path / "a" / "analysis.json").read_text())["skip"] == [conv2]
    table = _run("analyze", str(models[1]), "--calib-data", str(calib), "--eval-data", str(evaluation), "--algo", "hist",
                 "--ops", "conv2d,mul,matmul_v2", "--batch-size", "16", "--batch-nums", "4", "--quiet")
    assert table.exit_code == 0 and "skip list for a drop <= 1" in table.text and conv2 in table.text


def test_eval_data_problems_are_clear_errors(models, data, tmp_path: Path) -> None:
    calib, evaluation = data
    np.savez(tmp_path / "nolabels.npz", x=np.load(evaluation)["x"])
    base = ["quantize", str(models[0]), "--calib-data", str(calib), "--out", str(tmp_path / "o"), "--max-drop", "1"]
    result = _run(*base, "--eval-data", str(tmp_path / "nolabels.npz"))
    assert result.exit_code == 1 and "has no labels" in result.text and "--metric cosine" in result.text
    assert "Traceback" not in result.text and not (tmp_path / "o").exists()
    np.savez(tmp_path / "floaty.npz", x=np.load(evaluation)["x"], y=np.load(evaluation)["y"].astype("float32"))
    result = _run(*base, "--eval-data", str(tmp_path / "floaty.npz"))
    assert result.exit_code == 1 and "not integers" in result.text
    result = _run("quantize", str(models[0]), "--calib-data", str(calib), "--out", str(tmp_path / "o"), "--max-drop", "1")
    assert result.exit_code == 2 and "go together" in result.text
    cosine = _run(*base, "--eval-data", str(tmp_path / "nolabels.npz"), "--metric", "cosine", "--ops", "conv2d,mul,matmul_v2",
                  "--batch-size", "16", "--batch-nums", "4", "--json")
    assert cosine.exit_code == 0, cosine.output
    assert json.loads(cosine.stdout)["fp32"] == pytest.approx(100.0)


def test_a_recipe_carries_the_search_result_into_reproduce(models, data, tmp_path: Path) -> None:
    """The ptq strategy applies a recipe's skip list, rounding and bias correction."""
    from tests.quant_tiny import tiny_recipe
    from zoo.modelfiles import find_model_files
    from zoo.quant.base import FP32Source, QuantData, QuantOptions, get_strategy

    calib, evaluation = data
    x, y = np.load(evaluation)["x"], np.load(evaluation)["y"]
    conv2 = conv2_weight(models[1])
    quant = {"ops": ["conv2d", "mul", "matmul_v2"], "algo": "hist", "batch_nums": 4, "batch_size": 16,
             "skip": [conv2], "bias_correction": True}
    recipe = tiny_recipe("ptq", quant=quant)
    assert recipe.quant.rounding == "round" and recipe.quant.bias_correction
    source = FP32Source(input_shape=(3, 16, 16), model=find_model_files(models[1]))
    batches = np.load(calib)["x"]
    out = get_strategy("ptq").quantize(recipe, source, QuantData(calib=lambda: iter([batches[i:i + 16] for i in range(0, 64, 16)])),
                                       tmp_path / "int8", QuantOptions())
    assert accuracy(out.folder, x, y) >= accuracy(models[1], x, y) - 1.0
    with pytest.raises(Exception) as info:
        tiny_recipe("ptq", quant={**quant, "rounding": "stochastic"})
    assert "rounding" in str(info.value)


def test_a_written_model_that_misses_a_simulated_target_sends_the_search_on(models, data, tmp_path: Path,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The written model decides. Here Paddle's scoring of written models with every layer INT8 is replaced by
    constant outputs (a test double standing for a written model that disagrees with its simulation): the
    simulated all-INT8 trial meets the target, its written model misses it, so the search puts the most
    damaging layer in float, writes again, and stops on a written model that meets it."""
    import zoo.quant.search as search_module
    from zoo.modelfiles import find_model_files
    from zoo.program import read_program

    real_outputs = search_module._outputs

    def disagreeing(files, eval_data, device):  # type: ignore[no-untyped-def]
        out = real_outputs(files, eval_data, device)
        if len(read_program(files).quantized) == 3:  # every layer INT8: the written model "misses"
            return np.zeros_like(out)
        return out

    monkeypatch.setattr(search_module, "_outputs", disagreeing)
    calib, evaluation = data
    out = tmp_path / "verified"
    result = _run("quantize", str(models[0]), "--calib-data", str(calib), "--eval-data", str(evaluation),
                  "--max-drop", "1", "--algo", "KL", "--ops", "conv2d,mul,matmul_v2", "--batch-size", "16",
                  "--batch-nums", "4", "--out", str(out), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    checks = report["written_checks"]
    assert [c["met"] for c in checks] == [False, True]
    assert checks[0]["float_layers"] == 0 and checks[0]["simulated"] >= report["fp32"] - 1.0  # simulation met it
    assert checks[1]["float_layers"] == 1 and report["met"] and len(report["float_layers"]) == 1
    assert len(read_program(find_model_files(out)).quantized) == 2  # the folder holds the model that met it
    x, y = np.load(evaluation)["x"], np.load(evaluation)["y"]
    assert accuracy(out, x, y) >= accuracy(models[0], x, y) - 1.0  # scored independently of the search

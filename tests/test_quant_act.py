"""ACT strategy: PaddleSlim AutoCompression on a tiny FP32 inference model, real Paddle Inference."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.quant_tiny import SHAPE, ArrayDataset, accuracy, op_types, save_fp32, tiny_data, tiny_recipe, trained_tiny_net
from zoo.modelfiles import find_model_files
from zoo.quant.act import act_config
from zoo.quant.base import FP32Source, QuantData, QuantOptions, get_strategy

ACT_QUANT = {"ops": ["conv2d", "depthwise_conv2d", "matmul_v2"], "skip": ["skip_quant"], "pact": True, "onnx_format": True}
ACT_TRAIN = {
    "epochs": 2,
    "eval_iter": 5000,
    "learning_rate": 0.001,
    "optimizer": "Momentum",
    "weight_decay": 5e-5,
    "batch_size": 16,
    "distill": {"loss": "soft_label", "alpha": 1.0},
}


def test_config_carries_the_recipe_settings() -> None:
    recipe = tiny_recipe("act", quant=ACT_QUANT, train=ACT_TRAIN)
    cfg = act_config(recipe, QuantOptions(iterations=7))
    assert cfg["Distillation"] == {"loss": "soft_label", "alpha": 1.0}
    qa = cfg["QuantAware"]
    assert qa["use_pact"] is True and qa["onnx_format"] is True
    assert qa["quantize_op_types"] == ["conv2d", "depthwise_conv2d", "matmul_v2"]
    assert qa["not_quant_pattern"] == ["skip_quant"]
    tc = cfg["TrainConfig"]
    assert tc["epochs"] == 2 and tc["eval_iter"] == 5000 and tc["learning_rate"] == 0.001 and tc["train_iter"] == 7
    assert tc["optimizer_builder"] == {"optimizer": {"type": "Momentum", "momentum": 0.9}, "weight_decay": 5e-5}


def test_act_quantizes_an_inference_model(tmp_path: Path, capfd: pytest.CaptureFixture) -> None:
    fp32 = save_fp32(trained_tiny_net(), tmp_path / "fp32")
    xv, yv = tiny_data(64, seed=5)
    base = accuracy(fp32, xv, yv)
    x, y = tiny_data(96, seed=3)
    recipe = tiny_recipe("act", quant=ACT_QUANT, train=ACT_TRAIN)
    capfd.readouterr()
    files = get_strategy("act").quantize(
        recipe,
        FP32Source(input_shape=SHAPE, model=find_model_files(fp32)),
        QuantData(train=ArrayDataset(x, y)),
        tmp_path / "int8",
        QuantOptions(work_dir=tmp_path / "work"),
    )
    out, err = capfd.readouterr()
    assert "Total iter" not in out + err  # PaddleSlim's progress stays hidden
    assert files.model_file == tmp_path / "int8" / "inference.pdmodel"
    assert "quantize_linear" in op_types(files.folder)  # onnx_format
    assert accuracy(files.folder, xv, yv) >= base - 10.0
    assert not any(p.name.startswith(".act-") for p in (tmp_path / "work").iterdir())
    import paddle

    assert paddle.in_dynamic_mode()

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


class _Compressor:
    """Stands in for AutoCompression: the intermittent cycle error cannot be triggered on demand."""

    def __init__(self, failures: list, out: Path, calls: list) -> None:
        self.failures, self.out, self.calls = failures, out, calls

    def compress(self) -> None:
        self.calls.append(self.out.exists())
        if self.failures:
            raise self.failures.pop(0)
        self.out.mkdir(parents=True)


CYCLE = ValueError("(InvalidArgument) Generated graph shouldn't contain cycle.")


def test_compress_retries_the_graph_cycle_error(tmp_path: Path) -> None:
    from zoo.quant.act import _compress_with_retry

    failures, calls = [CYCLE, CYCLE], []
    _compress_with_retry(lambda out: _Compressor(failures, out, calls), tmp_path / "out")
    assert len(calls) == 3 and not any(calls)  # every attempt starts from an empty output folder
    assert (tmp_path / "out").is_dir()


def test_compress_gives_up_with_a_clear_error(tmp_path: Path) -> None:
    from zoo.errors import TrainError
    from zoo.quant.act import ATTEMPTS, _compress_with_retry

    calls: list = []
    with pytest.raises(TrainError, match=f"failed {ATTEMPTS} times"):
        _compress_with_retry(lambda out: _Compressor([CYCLE] * ATTEMPTS, out, calls), tmp_path / "out")
    assert len(calls) == ATTEMPTS


def test_compress_other_errors_are_not_retried(tmp_path: Path) -> None:
    from zoo.errors import TrainError
    from zoo.quant.act import _compress_with_retry

    calls: list = []
    with pytest.raises(TrainError, match="auto-compression failed: shape mismatch"):
        _compress_with_retry(lambda out: _Compressor([RuntimeError("shape mismatch")], out, calls), tmp_path / "out")
    assert len(calls) == 1

"""ACT strategy: PaddleSlim AutoCompression on a tiny FP32 inference model, real Paddle Inference."""
from __future__ import annotations

import math
from pathlib import Path

import pytest

from tests.quant_tiny import SHAPE, ArrayDataset, accuracy, op_types, save_fp32, tiny_data, tiny_recipe, trained_tiny_net
from zoo.modelfiles import find_model_files
from zoo.quant.act import act_config
from zoo.quant.base import FP32Source, QuantData, QuantOptions, TrainProgress, get_strategy

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
    progress = Recorder()
    files = get_strategy("act").quantize(
        recipe,
        FP32Source(input_shape=SHAPE, model=find_model_files(fp32)),
        QuantData(train=ArrayDataset(x, y)),
        tmp_path / "int8",
        QuantOptions(work_dir=tmp_path / "work", progress=progress),
    )
    out, err = capfd.readouterr()
    assert "Total iter" not in out + err  # PaddleSlim's progress stays hidden; the zoo's listener reads it
    # 96 images in batches of 16, 2 epochs; a retry of the final conversion starts the count again
    last_start = max(i for i, e in enumerate(progress.events) if e[0] == "start")
    assert progress.events[last_start] == ("start", 12, 2, 0)
    run = progress.events[last_start:]
    steps = [e for e in run if e[0] == "step"]
    assert [s[2] for s in steps] == list(range(1, 13)) and [s[1] for s in steps] == [1] * 6 + [2] * 6
    assert all(s[3] is not None and s[3] == s[3] for s in steps)  # a loss, not NaN
    ends = [e for e in run if e[0] == "epoch"]
    assert [(e[1], e[2]["steps"]) for e in ends] == [(1, 6), (2, 6)]
    assert ends[0][2]["loss"] == pytest.approx(sum(s[3] for s in steps[:6]) / 6)
    assert files.model_file == tmp_path / "int8" / "inference.pdmodel"
    assert "quantize_linear" in op_types(files.folder)  # onnx_format
    assert accuracy(files.folder, xv, yv) >= base - 10.0
    assert not any(p.name.startswith(".act-") for p in (tmp_path / "work").iterdir())
    import paddle

    assert paddle.in_dynamic_mode()


class Recorder(TrainProgress):
    def __init__(self) -> None:
        self.events: list = []

    def start(self, total_steps: int, epochs: int, done_steps: int = 0) -> None:
        self.events.append(("start", total_steps, epochs, done_steps))

    def step(self, epoch: int, step: int, loss) -> None:  # type: ignore[no-untyped-def]
        self.events.append(("step", epoch, step, loss))

    def epoch_end(self, epoch: int, metrics) -> None:  # type: ignore[no-untyped-def]
        self.events.append(("epoch", epoch, dict(metrics)))


def test_step_lines_become_progress_reports() -> None:
    """AutoCompression's own log format (compressor._start_train), counted from 0, through the real logger."""
    import logging

    from zoo.quant.act import COMPRESSOR_LOGGER, StepLog, planned_steps, watch_steps

    logger = logging.getLogger(COMPRESSOR_LOGGER)
    progress = Recorder()
    lines = ["Total iter: 0, epoch: 0, batch: 0, loss: [2.5] ", "Total iter: 1, epoch: 0, batch: 1, loss: 1.5 ",
             "Total iter: 0, epoch: 0, batch: 0, loss: [2.0] ",  # a retry starts over
             "Total iter: 1, epoch: 0, batch: 1, loss: [1.0] ", "epoch: 0 metric of compressed model is: 0.5",
             "Total iter: 2, epoch: 1, batch: 0, loss: [nan] distill_loss: 0.1"]
    with watch_steps(progress, total_steps=3, epochs=2):
        for line in lines:
            logger.info(line)
    for event in progress.events:
        if event[0] == "epoch":
            assert event[2].pop("seconds") >= 0
    *events, (_, _, _, nan), (_, _, last) = progress.events
    assert events == [
        ("start", 3, 2, 0), ("step", 1, 1, 2.5), ("step", 1, 2, 1.5), ("epoch", 1, {"steps": 2, "loss": 2.0}),
        ("start", 3, 2, 0), ("step", 1, 1, 2.0), ("step", 1, 2, 1.0), ("epoch", 1, {"steps": 2, "loss": 1.5}),
    ]
    assert progress.events[-2][:3] == ("step", 2, 3) and math.isnan(nan)  # a diverged loss arrives as NaN
    assert progress.events[-1][:2] == ("epoch", 2) and last["steps"] == 1 and math.isnan(last["loss"])
    assert not any(isinstance(h, StepLog) for h in logger.handlers)  # the listener leaves with the block
    assert planned_steps({"epochs": 2}, 6) == (12, 2)
    assert planned_steps({"epochs": None, "train_iter": 7}, 6) == (7, 2)
    assert planned_steps({"epochs": 3, "train_iter": 100}, 6) == (18, 3)


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

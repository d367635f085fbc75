"""QAT strategy: tiny network, synthetic data, real PaddleSlim + Paddle Inference."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, List, Mapping, Optional

import pytest

from tests.quant_tiny import SHAPE, ArrayDataset, accuracy, op_types, tiny_data, tiny_recipe, trained_tiny_net
from zoo.errors import TrainError
from zoo.quant.base import FP32Source, QuantData, QuantOptions, TrainProgress, get_strategy
from zoo.quant.qat import INTERRUPT_ENV, quant_layer_types
from zoo.tasks import get_task


def _run(tmp: Path, recipe, resume: bool = False, **opts):  # type: ignore[no-untyped-def]
    x, y = tiny_data(96, seed=2)
    strategy = get_strategy("qat")
    source = FP32Source(input_shape=SHAPE, network=trained_tiny_net(), hooks=get_task("classification"))
    files = strategy.quantize(
        recipe,
        source,
        QuantData(train=ArrayDataset(x, y)),
        tmp / "int8",
        QuantOptions(work_dir=tmp / "checkpoints", resume=resume, **opts),
    )
    return strategy, files


class Recorder(TrainProgress):
    """Every progress report, in order."""

    def __init__(self) -> None:
        self.events: List[tuple] = []

    def start(self, total_steps: int, epochs: int, done_steps: int = 0) -> None:
        self.events.append(("start", total_steps, epochs, done_steps))

    def step(self, epoch: int, step: int, loss: Optional[float]) -> None:
        self.events.append(("step", epoch, step, loss))

    def epoch_end(self, epoch: int, metrics: Mapping[str, Any]) -> None:
        self.events.append(("epoch", epoch, dict(metrics)))

    def of(self, kind: str) -> List[tuple]:
        return [e for e in self.events if e[0] == kind]


def test_layer_types_map_static_op_names() -> None:
    assert quant_layer_types(["conv2d", "depthwise_conv2d", "mul"]) == ["Conv2D", "Linear"]
    assert quant_layer_types(["Conv2D", "Linear"]) == ["Conv2D", "Linear"]


def test_qat_writes_a_quantized_model_that_still_classifies(tmp_path: Path) -> None:
    strategy, files = _run(tmp_path, tiny_recipe("qat"))
    assert files.model_file == tmp_path / "int8" / "inference.pdmodel"
    assert files.params_file is not None and files.params_file.is_file()
    ops = op_types(files.folder)
    assert any("quant" in op for op in ops), ops
    xv, yv = tiny_data(64, seed=5)
    assert accuracy(files.folder, xv, yv) >= 80.0
    assert strategy.info["epochs_run"] == [1, 2]
    state = json.loads((tmp_path / "checkpoints" / "state.json").read_text())
    assert state["epochs_done"] == 2


def test_qat_reports_every_step_and_epoch_with_its_loss(tmp_path: Path) -> None:
    progress = Recorder()
    strategy, _ = _run(tmp_path, tiny_recipe("qat"), progress=progress)
    assert progress.events[0] == ("start", 12, 2, 0)  # 96 images in batches of 16, 2 epochs
    steps = progress.of("step")
    assert [s[2] for s in steps] == list(range(1, 13))
    assert [s[1] for s in steps] == [1] * 6 + [2] * 6
    assert all(isinstance(s[3], float) and math.isfinite(s[3]) for s in steps)
    ends = progress.of("epoch")
    assert [e[1] for e in ends] == [1, 2]
    for (_, epoch, metrics), record in zip(ends, strategy.info["history"]):
        losses = [s[3] for s in steps if s[1] == epoch]
        assert metrics["steps"] == 6 and metrics["loss"] == pytest.approx(sum(losses) / 6)
        assert metrics["loss"] == pytest.approx(record["loss"]) and metrics["seconds"] >= 0


def test_pact_option_trains_and_exports(tmp_path: Path) -> None:
    recipe = tiny_recipe("qat", quant={"pact": True, "pact_alpha_init": 6.0, "pact_alpha_lr_mult": 10.0})
    _, files = _run(tmp_path, recipe, epochs=1)
    import paddle

    assert paddle.in_dynamic_mode()  # PaddleSlim's PACT export must not leak static mode
    xv, yv = tiny_data(64, seed=5)
    assert accuracy(files.folder, xv, yv) >= 70.0


def test_interrupted_run_resumes_without_redoing_a_finished_epoch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    recipe = tiny_recipe("qat", train={"epochs": 3})
    monkeypatch.setenv(INTERRUPT_ENV, "1")
    with pytest.raises(TrainError, match="interrupted after epoch 1"):
        _run(tmp_path, recipe)
    assert not (tmp_path / "int8").exists()  # nothing half-written
    first = json.loads((tmp_path / "checkpoints" / "state.json").read_text())
    assert first["epochs_done"] == 1
    monkeypatch.delenv(INTERRUPT_ENV)

    progress = Recorder()
    strategy, files = _run(tmp_path, recipe, resume=True, progress=progress)
    assert progress.events[0] == ("start", 18, 3, 6)  # the bar starts where the finished epoch left it
    assert [s[2] for s in progress.of("step")] == list(range(7, 19))
    assert strategy.info["resumed_after_epoch"] == 1
    assert strategy.info["epochs_run"] == [2, 3]
    history = strategy.info["history"]
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert history[0] == first["history"][0]  # epoch 1's record is the one written before the interruption
    assert files.model_file.is_file()


def test_resume_refuses_checkpoints_of_other_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(INTERRUPT_ENV, "1")
    with pytest.raises(TrainError):
        _run(tmp_path, tiny_recipe("qat"), epochs=2)
    monkeypatch.delenv(INTERRUPT_ENV)
    with pytest.raises(TrainError, match="different settings"):
        _run(tmp_path, tiny_recipe("qat"), resume=True, epochs=3)


def test_pact_layer_takes_alpha_init_and_lr_multiplier_from_the_recipe() -> None:
    import numpy as np
    import paddle

    from zoo.quant.pact import pact_layer

    layer = pact_layer(6.0, 10.0)()
    assert float(layer.alpha.numpy()[0]) == 6.0
    assert layer.alpha.optimize_attr["learning_rate"] == 10.0
    out = layer(paddle.to_tensor(np.array([-9.0, -1.0, 2.0, 7.0], dtype="float32"))).numpy()
    assert out.tolist() == [-6.0, -1.0, 2.0, 6.0]


def test_network_weights_load_from_an_inference_model(tmp_path: Path) -> None:
    import numpy as np

    from tests.quant_tiny import save_fp32, tiny_net
    from zoo.modelfiles import find_model_files
    from zoo.quant.from_inference import load_from_inference

    trained = trained_tiny_net()
    fp32 = save_fp32(trained, tmp_path / "fp32")
    fresh = tiny_net()
    load_from_inference(fresh, find_model_files(fp32), SHAPE)
    for key, value in trained.state_dict().items():
        np.testing.assert_array_equal(fresh.state_dict()[key].numpy(), value.numpy(), err_msg=key)


def test_a_strategy_leaves_the_process_as_it_found_it(tmp_path: Path) -> None:
    """QAT seeds the global RNGs and switches Paddle to dynamic mode for its run; the caller sees neither."""
    import random

    import numpy as np
    import paddle

    from zoo.program import static_mode

    random.seed(123)
    np.random.seed(123)
    expected = (random.random(), np.random.rand())
    x, y = tiny_data(64)
    source = FP32Source(input_shape=SHAPE, network=trained_tiny_net(), hooks=get_task("classification"))
    random.seed(123)
    np.random.seed(123)
    with static_mode():  # a caller in static mode stays in static mode
        get_strategy("qat").quantize(tiny_recipe("qat"), source,
                                     QuantData(train=ArrayDataset(x, y)), tmp_path / "int8",
                                     QuantOptions(work_dir=tmp_path / "ckpt", iterations=2, seed=7))
        assert not paddle.in_dynamic_mode()
    assert (random.random(), np.random.rand()) == expected

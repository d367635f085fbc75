"""The `qat` strategy: dygraph quant-aware training (PaddleSlim QAT), optionally with PACT.

Weights are fake-quantized per channel (channel_wise_abs_max), activations with a moving
average of their absolute max; the recipe's optimizer, L2 decay, label smoothing and
learning-rate schedule drive the fine-tuning. A checkpoint is written after every epoch and
`resume` continues from the newest one, so an interruption never loses a finished epoch.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, List, Optional

from zoo.device import Device, require_device
from zoo.errors import TrainError
from zoo.fsutil import StagedDir
from zoo.modelcheck import writing_model
from zoo.modelfiles import ModelFiles
from zoo.quant.base import TRAINING, FP32Source, StrategyNeeds, QuantData, QuantOptions, QuantStrategy, TrainProgress, commit_model, register_strategy, seed_everything
from zoo.quant.checkpoint import Checkpoints
from zoo.quant.pact import DEFAULT_ALPHA_INIT, DEFAULT_ALPHA_LR_MULT, pact_layer
from zoo.schema import QuantConfig, Recipe, TrainConfig
from zoo.quiet import silenced

# Test hook: raise after the checkpoint of this epoch is written, as an interruption would.
INTERRUPT_ENV = "ZOO_QAT_INTERRUPT_AFTER_EPOCH"

_LAYER_TYPES = {"conv2d": "Conv2D", "depthwise_conv2d": "Conv2D", "linear": "Linear", "mul": "Linear", "matmul": "Linear"}


def quant_layer_types(ops: List[str]) -> List[str]:
    """Dygraph layer types to quantize; static op names in a recipe map onto their layers."""
    out: List[str] = []
    for op in ops:
        name = _LAYER_TYPES.get(op.lower(), op)
        if name not in out:
            out.append(name)
    return out


def make_quanter(q: QuantConfig) -> Any:
    """A PaddleSlim QAT object configured from the recipe's quant section."""
    from paddleslim.dygraph.quant import QAT

    config = {
        "weight_quantize_type": q.weight,
        "activation_quantize_type": q.activation,
        "weight_bits": int(q.bits[0]),
        "activation_bits": int(q.bits[1]),
        "window_size": int(q.window_size or 10000),
        "moving_rate": float(q.moving_rate or 0.9),
        "quantizable_layer_type": quant_layer_types(q.ops),
        "onnx_format": bool(q.onnx_format),
    }
    act_pre = None
    if q.pact:
        act_pre = pact_layer(q.pact_alpha_init or DEFAULT_ALPHA_INIT, q.pact_alpha_lr_mult or DEFAULT_ALPHA_LR_MULT)
    return QAT(config=config, act_preprocess=act_pre)


def make_schedule(train: TrainConfig, steps_per_epoch: int, total_steps: int) -> Any:
    """The recipe's learning-rate schedule, stepped once per iteration."""
    import paddle

    lr = float(train.learning_rate)
    sched = train.schedule
    if sched.kind == "piecewise" and sched.boundaries:
        scale = steps_per_epoch if sched.unit == "epoch" else 1
        bounds = [max(1, int(round(b * scale))) for b in sched.boundaries]
        values = [lr * sched.gamma**i for i in range(len(bounds) + 1)]
        return paddle.optimizer.lr.PiecewiseDecay(boundaries=bounds, values=values)
    if sched.kind == "cosine":
        return paddle.optimizer.lr.CosineAnnealingDecay(learning_rate=lr, T_max=max(1, total_steps))
    return paddle.optimizer.lr.PiecewiseDecay(boundaries=[10**9], values=[lr, lr])


def make_optimizer(train: TrainConfig, schedule: Any, parameters: Any) -> Any:
    """The recipe's optimizer with L2 weight decay."""
    import paddle

    decay = paddle.regularizer.L2Decay(float(train.weight_decay)) if train.weight_decay else None
    if train.optimizer == "Momentum":
        return paddle.optimizer.Momentum(
            learning_rate=schedule, momentum=float(train.momentum), parameters=parameters, weight_decay=decay
        )
    if train.optimizer == "Adam":
        return paddle.optimizer.Adam(learning_rate=schedule, parameters=parameters, weight_decay=decay)
    return paddle.optimizer.SGD(learning_rate=schedule, parameters=parameters, weight_decay=decay)


def _interrupt_epoch() -> Optional[int]:
    value = os.environ.get(INTERRUPT_ENV, "").strip()
    return int(value) if value.isdigit() else None


@dataclass(frozen=True)
class _Plan:
    """How long and on what the fine-tuning runs: batches, steps and ranks."""

    device: Device
    batch_size: int  # the global batch
    world: int  # ranks under paddle.distributed.launch
    rank_batch: int
    steps_per_epoch: int
    epochs: int
    max_steps: Optional[int]
    total_steps: int


def _plan(train: TrainConfig, options: QuantOptions, samples: int) -> _Plan:
    """The run's length from the recipe and the command line; TrainError when not one batch fits."""
    import paddle

    device = require_device(options.device)
    batch_size = max(1, min(options.batch_size or train.batch_size, samples))
    # Under paddle.distributed.launch each rank trains on its shard with a share of the recipe's
    # batch, so the global batch stays the recipe's; gradients are averaged by DataParallel.
    world = max(1, paddle.distributed.get_world_size())
    if world > 1 and device.is_gpu:
        device = Device("gpu")  # each rank on the GPU the launcher selected for it, whatever index was asked
    rank_batch = max(1, batch_size // world)
    steps_per_epoch = samples // (rank_batch * world)
    if steps_per_epoch == 0:
        raise TrainError(f"the training set ({samples} images) is smaller than one batch ({batch_size})",
                         hint="Give more training images or a smaller --batch-size.")
    epochs = options.epochs or (int(math.ceil(train.epochs)) if train.epochs else 0)
    if not epochs:
        epochs = max(1, int(math.ceil((train.iterations or 1) / steps_per_epoch)))
    max_steps = options.iterations or train.iterations
    total_steps = min(epochs * steps_per_epoch, max_steps or 10**12)
    return _Plan(device, batch_size, world, rank_batch, steps_per_epoch, epochs, max_steps, total_steps)


@register_strategy("qat")
class QATStrategy(QuantStrategy):
    """Quant-aware fine-tuning of a network that carries its FP32 weights."""

    needs = StrategyNeeds(data=TRAINING, network=True, checkpoints=True, ranks=True, recipe_fields=("train",))

    def quantize(
        self,
        recipe: Recipe,
        source: FP32Source,
        data: QuantData,
        out_dir: Path,
        options: QuantOptions,
    ) -> ModelFiles:
        import paddle

        train = recipe.train
        if train is None:
            raise TrainError(f"recipe {recipe.name!r} has no `train` section")
        network = source.require_network(self.name)
        dataset = data.require_train(self.name)
        if len(dataset) == 0:
            raise TrainError("the training set is empty")
        plan = _plan(train, options, len(dataset))
        work = Path(options.work_dir) if options.work_dir else Path(out_dir).parent / "checkpoints"
        ckpt = Checkpoints(work, {"recipe": recipe.name, "epochs": plan.epochs, "batch_size": plan.batch_size,
                                  "samples": len(dataset), "pact": recipe.quant.pact})
        if not options.resume:
            ckpt.clear()

        task = source.require_hooks(self.name)
        seed_everything(options.seed)
        paddle.disable_static()
        plan.device.activate()
        network.to(device=str(plan.device))  # a network built before the device was chosen moves with it
        quanter = make_quanter(recipe.quant)
        task.prepare_qat(recipe, network)
        with _quiet():
            quanter.quantize(network)
        schedule = make_schedule(train, plan.steps_per_epoch, plan.total_steps)
        optimizer = make_optimizer(train, schedule, network.parameters())
        start = ckpt.load_latest(network, optimizer) if options.resume else 0
        if start:
            options.log(f"resuming after epoch {start} from {work}")
        run_epochs = _train_epochs(plan, network, task.training_loss(recipe, network), dataset, optimizer, schedule,
                                   ckpt, start, options)
        self.info = {
            "epochs": plan.epochs,
            "resumed_after_epoch": start,
            "epochs_run": run_epochs,
            "history": ckpt.history(),
            "checkpoints": str(work),
            "batch_size": plan.batch_size,
            "world_size": plan.world,
            "device": str(plan.device),
        }
        return _save(recipe, task, network, quanter, Path(out_dir), source)


def _train_epochs(plan: _Plan, network: Any, objective: Any, dataset: Any, optimizer: Any, schedule: Any,
                  ckpt: Checkpoints, start: int, options: QuantOptions) -> List[int]:
    """Fine-tune from epoch `start` (the same shuffles whether resumed or not), checkpointing every epoch;
    returns the epochs run."""
    import paddle

    trainee = network
    if plan.world > 1:
        paddle.distributed.init_parallel_env()
        trainee = paddle.DataParallel(network)
        sampler = paddle.io.DistributedBatchSampler(dataset, batch_size=plan.rank_batch, shuffle=True, drop_last=True)
    else:
        sampler = paddle.io.BatchSampler(dataset, batch_size=plan.rank_batch, shuffle=True, drop_last=True)
    loader = paddle.io.DataLoader(dataset, batch_sampler=sampler, num_workers=0, return_list=True)
    interrupt = _interrupt_epoch()
    steps_done = start * plan.steps_per_epoch
    run_epochs: List[int] = []
    progress = options.progress or TrainProgress()
    progress.start(plan.total_steps, min(plan.epochs, math.ceil(plan.total_steps / plan.steps_per_epoch)),
                   done_steps=min(steps_done, plan.total_steps))
    for epoch in range(start, plan.epochs):
        if plan.max_steps and steps_done >= plan.max_steps:
            break
        seed_everything(options.seed + epoch)
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)
        network.train()
        began, losses = time.time(), []
        for batch in loader:
            loss = objective(trainee, batch)
            loss.backward()
            optimizer.step()
            optimizer.clear_grad()
            schedule.step()
            losses.append(float(loss))
            steps_done += 1
            progress.step(epoch + 1, steps_done, losses[-1])
            if plan.max_steps and steps_done >= plan.max_steps:
                break
        if not losses or not math.isfinite(sum(losses)):
            raise TrainError(f"QAT epoch {epoch + 1} diverged (loss {losses[-1:] or 'n/a'})")
        record = {"loss": sum(losses) / len(losses), "steps": len(losses), "seconds": round(time.time() - began, 2)}
        ckpt.save(epoch + 1, network, optimizer, record)
        run_epochs.append(epoch + 1)
        progress.epoch_end(epoch + 1, record)
        if interrupt is not None and epoch + 1 == interrupt:
            raise TrainError(f"training interrupted after epoch {interrupt} ({INTERRUPT_ENV} is set)")
    return run_epochs


def _save(recipe: Recipe, task: Any, network: Any, quanter: Any, out_dir: Path, source: FP32Source) -> ModelFiles:
    """Export the fine-tuned network with its quant ops through the task, staged, then swapped in whole."""
    import paddle

    network.eval()
    try:
        with StagedDir(out_dir) as stage:
            with _quiet(), writing_model(out_dir, TrainError):
                task.save_quantized(recipe, network, quanter, stage.path, source.input_shape)
            return commit_model(stage)
    finally:
        # PaddleSlim's PACT export leaves paddle in static mode.
        if not paddle.in_dynamic_mode():
            paddle.disable_static()


def _quiet() -> Any:
    return silenced()

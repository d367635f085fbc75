"""The `act` strategy: PaddleSlim AutoCompression (quant-aware training + distillation) on an FP32 inference model.

No network definition is needed: the FP32 model is both the student's starting point and the
distillation teacher. The recipe's Distillation, QuantAware and TrainConfig settings are passed
through unchanged; only the training length can be shortened by the run options.
"""
from __future__ import annotations

import contextlib
import logging
import math
import re
import shutil
import time
from pathlib import Path
from typing import Any, Callable, ContextManager, Dict, Iterator, List, Mapping, Optional, Tuple

import numpy as np

from zoo.device import Device, require_device
from zoo import quiet
from zoo.fsutil import StagedDir, scratch_dir
from zoo.errors import TrainError
from zoo.modelcheck import is_no_space, no_space_error
from zoo.modelfiles import ModelFiles, find_model_files
from zoo.quant.base import (
    TRAINING,
    FP32Source,
    QuantData,
    QuantOptions,
    QuantStrategy,
    TrainProgress,
    commit_model,
    model_input,
    StrategyNeeds,
    register_strategy,
    seed_everything,
)
from zoo.program import open_program
from zoo.schema import Distill, Recipe
from zoo.errors import paddle_message
from zoo.quiet import silenced

EVAL_BATCHES = 4  # batches ACT keeps for its own (unused) progress evaluation


def act_config(recipe: Recipe, options: QuantOptions) -> Dict[str, Any]:
    """The AutoCompression config dict (Distillation, QuantAware, TrainConfig) of a recipe."""
    train = recipe.train
    if train is None:
        raise TrainError(f"recipe {recipe.name!r} has no `train` section")
    q = recipe.quant
    distill = train.distill or Distill()
    distillation: Dict[str, Any] = {"loss": distill.loss, "alpha": float(distill.alpha)}
    if distill.node:
        distillation["node"] = [distill.node]
    quant_aware = {
        "use_pact": bool(q.pact),
        "onnx_format": bool(q.onnx_format),
        "activation_quantize_type": q.activation,
        "weight_quantize_type": q.weight,
        "weight_bits": int(q.bits[0]),
        "activation_bits": int(q.bits[1]),
        "quantize_op_types": list(q.ops),
        "not_quant_pattern": list(q.skip),
    }
    optimizer: Dict[str, Any] = {"type": train.optimizer}
    if train.optimizer == "Momentum":
        optimizer["momentum"] = float(train.momentum)
    builder: Dict[str, Any] = {"optimizer": optimizer}
    if train.weight_decay:
        builder["weight_decay"] = float(train.weight_decay)
    epochs = options.epochs or (int(math.ceil(train.epochs)) if train.epochs else None)
    train_config: Dict[str, Any] = {
        "epochs": epochs,
        "eval_iter": int(train.eval_iter or 1000),
        "learning_rate": float(train.learning_rate),
        "optimizer_builder": builder,
        # AutoCompression reports its loss only through this log line: every step when someone listens
        "logging_iter": 1 if options.progress is not None else 10,
    }
    iterations = options.iterations or train.iterations
    if iterations:
        train_config["train_iter"] = int(iterations)
    if epochs is None and not iterations:
        raise TrainError(f"recipe {recipe.name!r}: ACT needs train.epochs or train.iterations")
    return {"Distillation": distillation, "QuantAware": quant_aware, "TrainConfig": train_config}


def feed_loader(loader: Any, input_name: str) -> Callable[[], Iterator[Dict[str, np.ndarray]]]:
    """A callable yielding {input_name: batch} from a loader of (images, labels) batches."""

    def gen() -> Iterator[Dict[str, np.ndarray]]:
        for batch in loader():
            images = batch[0] if isinstance(batch, (list, tuple)) else batch
            yield {input_name: np.ascontiguousarray(np.asarray(images), dtype=np.float32)}

    return gen


def train_loader(dataset: Any, batch_size: int, seed: int) -> Callable[[], Iterator[Any]]:
    """Shuffled (images, labels) batches from a paddle.io.DataLoader, as numpy, whatever mode paddle is in."""
    import paddle

    sampler = paddle.io.BatchSampler(dataset, batch_size=batch_size, shuffle=True, drop_last=True)
    loader = paddle.io.DataLoader(dataset, batch_sampler=sampler, num_workers=0, return_list=True)
    epoch = [0]

    def gen() -> Iterator[Any]:
        # paddle.io.DataLoader yields tensors in dygraph mode; ACT iterates in static mode, where
        # converting through numpy is the portable path.
        np.random.seed(seed + epoch[0])
        epoch[0] += 1
        for images, labels in loader:
            yield np.asarray(images), np.asarray(labels)

    return gen


def trainable_copy(model: ModelFiles, folder: Path) -> ModelFiles:
    """A copy of the model whose ops can be cloned for training, or `model` itself if it already is.

    Inference exports (paddle.jit.save in eval mode) carry `dropout` ops without their `Mask`
    output; ACT builds a training program from the model and Paddle refuses such ops there.
    """
    import paddle

    with open_program(model) as opened:
        block = opened.program.global_block()
        fixed = 0
        for op in block.ops:
            if op.type == "dropout" and ("Mask" not in op.output_names or not op.output("Mask")):
                out = op.output("Out")[0]
                mask = block.create_var(name=out + ".mask", dtype="uint8", shape=block.var(out).shape)
                op.desc.set_output("Mask", [mask.name])
                fixed += 1
        if not fixed:
            return model
        folder.mkdir(parents=True, exist_ok=True)
        paddle.static.save_inference_model(str(folder / "inference"), [block.var(n) for n in opened.feeds],
                                           opened.fetches, opened.executor, program=opened.program, clip_extra=False)
    return find_model_files(folder)


def planned_steps(train_config: Dict[str, Any], steps_per_epoch: int) -> Tuple[int, int]:
    """(steps, epochs) AutoCompression will train: its epochs (100 when only train_iter is set), capped by train_iter."""
    steps_per_epoch = max(1, steps_per_epoch)
    epochs = int(train_config.get("epochs") or 100)
    total = epochs * steps_per_epoch
    if train_config.get("train_iter"):
        total = min(total, int(train_config["train_iter"]))
    return total, min(epochs, math.ceil(total / steps_per_epoch))


# AutoCompression's training loop has no callback: its per-step log line is the one report of its progress.
COMPRESSOR_LOGGER = "paddleslim.auto_compression.compressor"
_STEP_LINE = re.compile(r"Total iter: (\d+), epoch: (\d+), batch: (\d+), loss: \[?\s*([^\s\]]+)")


class StepLog(logging.Handler):
    """Turns AutoCompression's "Total iter: N, epoch: E, batch: B, loss: L" lines into TrainProgress calls.

    ACT counts from 0, TrainProgress from 1. A line with iteration 0 starts the run again (a retry).
    """

    def __init__(self, progress: TrainProgress, total_steps: int, epochs: int) -> None:
        super().__init__(level=logging.INFO)
        self.progress, self.total_steps, self.epochs = progress, total_steps, epochs
        self._epoch: Optional[int] = None
        self._steps = 0
        self._losses: List[float] = []
        self._began = 0.0

    def emit(self, record: logging.LogRecord) -> None:
        match = _STEP_LINE.search(record.getMessage())
        if match is None:
            return
        step, epoch = int(match.group(1)) + 1, int(match.group(2)) + 1
        try:
            loss: Optional[float] = float(match.group(4))
        except ValueError:
            loss = None
        if step == 1 or epoch != self._epoch:
            self.finish()
        if step == 1:
            self.progress.start(self.total_steps, self.epochs)
        if self._epoch is None:
            self._epoch, self._steps, self._losses, self._began = epoch, 0, [], time.time()
        self._steps += 1
        if loss is not None:
            self._losses.append(loss)
        self.progress.step(epoch, step, loss)

    def finish(self) -> None:
        """Report the open epoch as finished (training moved on to the next, or stopped at its iteration cap)."""
        if self._epoch is None:
            return
        metrics: Dict[str, float] = {"steps": self._steps, "seconds": round(time.time() - self._began, 2)}
        if self._losses:
            metrics["loss"] = sum(self._losses) / len(self._losses)
        epoch, self._epoch = self._epoch, None
        self.progress.epoch_end(epoch, metrics)


class AudibleProgress(TrainProgress):
    """Forwards progress reports made inside zoo.quiet.silenced() with the terminal's stdout/stderr back in place."""

    def __init__(self, progress: TrainProgress) -> None:
        self.progress = progress

    def start(self, total_steps: int, epochs: int, done_steps: int = 0) -> None:
        with quiet.audible():
            self.progress.start(total_steps, epochs, done_steps)

    def step(self, epoch: int, step: int, loss: Optional[float]) -> None:
        with quiet.audible():
            self.progress.step(epoch, step, loss)

    def epoch_end(self, epoch: int, metrics: Mapping[str, float]) -> None:
        with quiet.audible():
            self.progress.epoch_end(epoch, metrics)


@contextlib.contextmanager
def watch_steps(progress: TrainProgress, total_steps: int, epochs: int) -> Iterator[StepLog]:
    """Listen to AutoCompression's step lines meanwhile; what reaches the terminal stays as zoo.quiet set it.

    Entered inside zoo.quiet.silenced(), which disables PaddleSlim's loggers: the compressor's is
    enabled again with only the listener attached (and its own handler too under --verbose). The
    listener's reports reach the terminal (AudibleProgress); PaddleSlim's own output does not.
    """
    logger = logging.getLogger(COMPRESSOR_LOGGER)
    disabled, level, handlers = logger.disabled, logger.level, list(logger.handlers)
    listener = StepLog(AudibleProgress(progress), total_steps, epochs)
    if not quiet.is_verbose():
        for handler in handlers:
            logger.removeHandler(handler)
    logger.disabled = False
    logger.setLevel(logging.INFO)
    logger.addHandler(listener)
    try:
        yield listener
        listener.finish()
    finally:
        logger.removeHandler(listener)
        for handler in handlers:
            if handler not in logger.handlers:
                logger.addHandler(handler)
        logger.disabled, logger.level = disabled, level


def placed_compression(device: Device) -> Any:
    """The AutoCompression class, training on `device`.

    Upstream builds its executor from the kind of paddle.get_device() alone ("gpu" becomes the
    process's default GPU), so `gpu:N` would train on GPU 0: its one place-choosing method is replaced.
    """
    import paddle
    from paddleslim.auto_compression import AutoCompression

    class PlacedAutoCompression(AutoCompression):  # type: ignore[misc,valid-type]
        def _prepare_envs(self) -> Any:
            _, _, fleet = super()._prepare_envs()
            place = device.place()
            return paddle.static.Executor(place), place, fleet

    return PlacedAutoCompression


CYCLE_MESSAGE = "shouldn't contain cycle"
ATTEMPTS = 3


def _compress_with_retry(make: Callable[[Path], Any], out: Path,
                         watch: Callable[[], ContextManager[Any]] = contextlib.nullcontext) -> None:
    """Run AutoCompression, again from the start when its final conversion trips Paddle's graph-cycle check.

    Paddle's quantization passes walk the graph's op nodes as a Python set, whose order follows memory
    addresses, so the freeze/convert step at the end of `compress()` intermittently builds a graph
    with a cycle (seen on CPU with paddle 2.6.2 + paddleslim 2.6.0). Training again from the FP32
    model is the only clean retry: the failed conversion may already have rewritten weights in the scope.
    """
    import paddle

    for attempt in range(1, ATTEMPTS + 1):
        shutil.rmtree(out, ignore_errors=True)
        try:
            # A fresh name generator, default programs and scope for every attempt: AutoCompression builds its
            # graphs in Paddle's global static state, which earlier work in the same process has used.
            with silenced(), watch(), paddle.utils.unique_name.guard(), \
                    paddle.static.program_guard(paddle.static.Program(), paddle.static.Program()), \
                    paddle.static.scope_guard(paddle.static.Scope()):
                make(out).compress()
            return
        except (ValueError, RuntimeError) as exc:
            if CYCLE_MESSAGE not in str(exc):
                raise TrainError(f"auto-compression failed: {paddle_message(exc)}",
                                 hint="Rerun with --verbose to see PaddleSlim's log.") from exc
            if attempt == ATTEMPTS:
                raise TrainError(
                    f"auto-compression trained but its final INT8 conversion failed {ATTEMPTS} times "
                    f"(Paddle: {paddle_message(exc)})",
                    hint="This Paddle conversion step is intermittent; run the command again.",
                ) from exc


@register_strategy("act")
class ACTStrategy(QuantStrategy):
    """Auto-compression of an FP32 inference model."""

    # it distils the teacher's class scores, which only a classifier's output is
    needs = StrategyNeeds(data=TRAINING, recipe_fields=("train",), tasks=frozenset({"classification"}))

    def quantize(
        self,
        recipe: Recipe,
        source: FP32Source,
        data: QuantData,
        out_dir: Path,
        options: QuantOptions,
    ) -> ModelFiles:
        # long by its signature only (every option is declared there); the body is one job under 60 lines
        import paddle

        model = source.require_model(self.name)
        dataset = data.require_train(self.name)
        device = require_device(options.device)
        config = act_config(recipe, options)
        batch_size = max(1, min(options.batch_size or recipe.train.batch_size, len(dataset)))  # type: ignore[union-attr]
        AutoCompression = placed_compression(device)
        input_name, _ = model_input(model)
        seed_everything(options.seed)
        loader = feed_loader(train_loader(dataset, batch_size, options.seed), input_name)
        eval_batches: List[Dict[str, np.ndarray]] = []
        for i, feed in enumerate(loader()):
            if i >= EVAL_BATCHES:
                break
            eval_batches.append(feed)
        if not eval_batches:
            raise TrainError("the training set yields no batch", hint="Give more training images or a smaller batch size.")

        work_root = Path(options.work_dir) if options.work_dir else Path(out_dir).parent
        work_root.mkdir(parents=True, exist_ok=True)
        scratch = scratch_dir(work_root, "act")
        stage = StagedDir(Path(out_dir))
        c, h, w = source.input_shape
        watch: Callable[[], ContextManager[Any]] = contextlib.nullcontext
        if options.progress is not None:
            steps, epochs = planned_steps(config["TrainConfig"], len(dataset) // batch_size)
            progress = options.progress
            watch = lambda: watch_steps(progress, steps, epochs)  # noqa: E731
        try:
            model = trainable_copy(model, scratch / "fp32")
            device.activate()
            _compress_with_retry(lambda out: AutoCompression(
                model_dir=str(model.folder),
                model_filename=model.model_filename,
                params_filename=model.params_filename,
                save_dir=str(out),
                config=config,
                train_dataloader=loader,
                eval_dataloader=lambda: iter(eval_batches),
                input_shapes=[-1, c, h, w],
            ), scratch / "out", watch)
            produced = find_model_files(scratch / "out")
            shutil.copyfile(produced.model_file, stage.path / "inference.pdmodel")
            if produced.params_file is None:
                raise TrainError(f"AutoCompression wrote no params file in {scratch / 'out'}")
            shutil.copyfile(produced.params_file, stage.path / "inference.pdiparams")
            self.info = {"config": config, "batch_size": batch_size, "device": str(device)}
            return commit_model(stage)
        except BaseException as exc:
            if is_no_space(exc):  # the FP32 copy, PaddleSlim's save or the copy into the stage
                raise no_space_error(Path(out_dir), TrainError) from exc
            raise
        finally:
            stage.discard()
            shutil.rmtree(scratch, ignore_errors=True)
            if not paddle.in_dynamic_mode():
                paddle.disable_static()

"""The `act` strategy: PaddleSlim AutoCompression (quant-aware training + distillation) on an FP32 inference model.

No network definition is needed: the FP32 model is both the student's starting point and the
distillation teacher. The recipe's Distillation, QuantAware and TrainConfig settings are passed
through unchanged; only the training length can be shortened by the run options.
"""
from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List

import numpy as np

from zoo.fsutil import scratch_dir
from zoo.errors import TrainError
from zoo.modelfiles import ModelFiles, find_model_files
from zoo.quant.base import (
    FP32Source,
    QuantData,
    QuantOptions,
    QuantStrategy,
    model_input,
    register_strategy,
    seed_everything,
    staging_dir,
)
from zoo.schema import Distill, Recipe

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
        "logging_iter": 10,
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

    from zoo.quant.base import static_mode

    with static_mode():
        exe = paddle.static.Executor(paddle.CPUPlace())
        scope = paddle.static.Scope()
        with paddle.static.scope_guard(scope):
            prefix = str(model.folder / model.model_file.stem)
            program, feeds, fetches = paddle.static.load_inference_model(
                prefix if model.model_file.suffix == ".pdmodel" else str(model.folder),
                exe,
                **({} if model.model_file.suffix == ".pdmodel" else
                   {"model_filename": model.model_filename, "params_filename": model.params_filename}),
            )
            block = program.global_block()
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
            paddle.static.save_inference_model(
                str(folder / "inference"), [block.var(n) for n in feeds], fetches, exe, program=program, clip_extra=False
            )
    return find_model_files(folder)


CYCLE_MESSAGE = "shouldn't contain cycle"
ATTEMPTS = 3


def _compress_with_retry(make: Callable[[Path], Any], out: Path) -> None:
    """Run AutoCompression, again from the start when its final conversion trips Paddle's graph-cycle check.

    Paddle's quantization passes walk the graph's op nodes as a Python set, whose order follows memory
    addresses, so the freeze/convert step at the end of `compress()` intermittently builds a graph
    with a cycle (seen on CPU with paddle 2.6.2 + paddleslim 2.6.0). Training again from the FP32
    model is the only clean retry: the failed conversion may already have rewritten weights in the scope.
    """
    import paddle

    from zoo.errors import paddle_message
    from zoo.quiet import silenced

    for attempt in range(1, ATTEMPTS + 1):
        shutil.rmtree(out, ignore_errors=True)
        try:
            # A fresh name generator, default programs and scope for every attempt: AutoCompression builds its
            # graphs in Paddle's global static state, which earlier work in the same process has used.
            with silenced(), paddle.utils.unique_name.guard(), \
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

    def __init__(self) -> None:
        self.info: Dict[str, Any] = {}

    def quantize(
        self,
        recipe: Recipe,
        source: FP32Source,
        data: QuantData,
        out_dir: Path,
        options: QuantOptions,
    ) -> ModelFiles:
        import paddle
        from paddleslim.auto_compression import AutoCompression

        model = source.require_model(self.name)
        dataset = data.require_train(self.name)
        config = act_config(recipe, options)
        batch_size = max(1, min(options.batch_size or recipe.train.batch_size, len(dataset)))  # type: ignore[union-attr]
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
        stage = staging_dir(Path(out_dir))
        c, h, w = source.input_shape
        try:
            model = trainable_copy(model, scratch / "fp32")
            _compress_with_retry(lambda out: AutoCompression(
                model_dir=str(model.folder),
                model_filename=model.model_filename,
                params_filename=model.params_filename,
                save_dir=str(out),
                config=config,
                train_dataloader=loader,
                eval_dataloader=lambda: iter(eval_batches),
                input_shapes=[-1, c, h, w],
            ), scratch / "out")
            produced = find_model_files(scratch / "out")
            shutil.copyfile(produced.model_file, stage.path / "inference.pdmodel")
            if produced.params_file is None:
                raise TrainError(f"AutoCompression wrote no params file in {scratch / 'out'}")
            shutil.copyfile(produced.params_file, stage.path / "inference.pdiparams")
            self.info = {"config": config, "batch_size": batch_size}
            return stage.commit()
        except BaseException:
            stage.discard()
            raise
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
            if not paddle.in_dynamic_mode():
                paddle.disable_static()

"""fetch -> build -> quantize -> evaluate -> compare -> report, for one zoo entry.

Output folder (read by deploy):
    OUT/fp32/          the FP32 inference model that was quantized and evaluated
    OUT/int8/          the quantized inference model (inference.pdmodel + inference.pdiparams)
    OUT/checkpoints/   QAT epoch checkpoints
    OUT/stages.json    finished stages, reused by `resume`
    OUT/report.json, OUT/report.md, OUT/plot.png
"""
from __future__ import annotations

import json
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple, Union

from zoo.errors import DataError, UsageError
from zoo.modelfiles import ModelFiles, find_model_files
from zoo.quant.base import FP32Source, QuantData, QuantOptions, copy_model, get_strategy, set_device
from zoo.fsutil import atomic_write_text
from zoo.report import compare, status_of, versions, write_report
from zoo.schema import Recipe, Role, Strategy, Task

STAGES_FILE = "stages.json"
EVAL_BATCH = 32


@dataclass
class ReproduceOptions:
    """How to run a reproduction (none of these change the recipe's method)."""

    data: Optional[Path] = None
    out: Optional[Path] = None
    device: str = "cpu"
    max_samples: Optional[int] = None  # evaluate (and train on) at most this many images
    resume: bool = False
    epochs: Optional[int] = None  # shorten QAT/ACT training
    iterations: Optional[int] = None
    batch_size: Optional[int] = None  # training batch size override
    engine: str = "fast"
    threads: int = 2
    mirror: Optional[str] = None
    write: bool = True  # False on non-zero distributed ranks
    log: Callable[[str], None] = field(default=lambda message: None)


def default_out(name: str) -> Path:
    return Path("zoo-out") / name


def input_shape(recipe: Recipe) -> Tuple[int, int, int]:
    """(C, H, W) of the network input: the center crop, else the square resize, else the setting."""
    pre = recipe.preprocess
    side = pre.crop or pre.resize or recipe.headline().input_size
    channels = 1 if pre.channels == "L" else 3
    return channels, side, side


class _Stages:
    """OUT/stages.json: which stages finished, with what they measured."""

    def __init__(self, out: Path, resume: bool) -> None:
        self.path = out / STAGES_FILE
        self.done: Dict[str, Any] = {}
        if resume and self.path.is_file():
            try:
                self.done = json.loads(self.path.read_text(encoding="utf-8"))
            except ValueError:
                self.done = {}

    def get(self, key: str) -> Any:
        return self.done.get(key)

    def mark(self, key: str, value: Any) -> None:
        self.done[key] = value
        atomic_write_text(self.path, json.dumps(self.done, indent=2, default=str))

    def forget(self, *keys: str) -> None:
        for key in keys:
            self.done.pop(key, None)
        atomic_write_text(self.path, json.dumps(self.done, indent=2, default=str))


def _has_split(root: Path, split: str) -> bool:
    from zoo.data.imagenet import find_samples

    try:
        return bool(find_samples(root, split))
    except DataError:
        return False


def _build_network(recipe: Recipe, out: Path, opts: ReproduceOptions) -> Any:
    """The recipe's network with its published FP32 weights loaded."""
    from zoo.hub import fetch
    from zoo.models import build_model
    from zoo.models.weights import load_pretrained

    kwargs = dict(recipe.extra.get("model_kwargs", {}) or {})  # type: ignore[call-overload]
    kwargs.setdefault("num_classes", recipe.dataset.num_classes)
    network = build_model(recipe.arch, **kwargs)
    if Role.pretrained in recipe.artifacts:
        fetched = fetch(recipe, Role.pretrained, mirror=opts.mirror)
        load_pretrained(network, recipe, fetched.path, trusted=True)  # zoo.hub verified it against its pin
    else:  # only an FP32 inference model is published: take the weights from it
        from zoo.quant.from_inference import load_from_inference

        fetched = fetch(recipe, Role.fp32, mirror=opts.mirror)
        load_from_inference(network, find_model_files(fetched.path), input_shape(recipe))
    network.eval()
    return network


def _fp32_stage(recipe: Recipe, out: Path, opts: ReproduceOptions, stages: _Stages) -> Tuple[ModelFiles, Any]:
    """OUT/fp32 (fetched, or exported from the network) and, for QAT, the network itself."""
    from zoo.hub import fetch
    from zoo.models import save_inference

    shape = input_shape(recipe)
    needs_network = recipe.strategy is Strategy.qat or Role.fp32 not in recipe.artifacts
    network = _build_network(recipe, out, opts) if needs_network else None
    if stages.get("fp32") and (out / "fp32" / "inference.pdmodel").is_file():
        return find_model_files(out / "fp32"), network
    if network is not None:
        files = save_inference(network, out / "fp32", shape)
    else:
        fetched = fetch(recipe, Role.fp32, mirror=opts.mirror)
        files = copy_model(find_model_files(fetched.path), out / "fp32")
    stages.mark("fp32", {"path": str(files.folder)})
    return files, network


def _datasets(recipe: Recipe, root: Path, opts: ReproduceOptions) -> Dict[str, Any]:
    from zoo.data.imagenet import ImageListDataset
    from zoo.data.transforms import eval_transform, train_transform

    size = recipe.headline().input_size
    evaluation = ImageListDataset(root, recipe.dataset.split, eval_transform(recipe.preprocess, size), opts.max_samples)
    out: Dict[str, Any] = {"eval": evaluation}
    has_train = _has_split(root, "train")
    if recipe.strategy is Strategy.ptq:
        q = recipe.quant
        split = str(recipe.extra.get("calib_split") or ("train" if has_train else recipe.dataset.split))
        wanted = (q.batch_size or 32) * (q.batch_nums or 10)
        out["calib"] = ImageListDataset(root, split, eval_transform(recipe.preprocess, size), wanted)
    else:
        if not has_train:
            raise DataError(
                f"{root} has no train split; {recipe.strategy.value.upper()} trains on it",
                hint="Add train_list.txt or train/<class>/ folders to the data folder.",
            )
        augment = recipe.train.augment if recipe.train else None
        out["train"] = ImageListDataset(root, "train", train_transform(recipe.preprocess, augment), opts.max_samples)
    return out


def _evaluate(files: ModelFiles, dataset: Any, threads: int) -> Dict[str, float]:
    from zoo.data.imagenet import iterate_batches
    from zoo.evaluate.classification import evaluate

    return evaluate(files, iterate_batches(dataset, EVAL_BATCH), threads=threads)


def reproduce(recipe: Union[str, Recipe], opts: ReproduceOptions) -> Dict[str, Any]:
    """Run one reproduction end to end and write its report; return the report dict.

    Raises ZooError subclasses on bad input; a finished run returns status PASS or FAIL.
    """
    from zoo.data import resolve_data
    from zoo.data.imagenet import image_batches
    from zoo.registry import get_recipe

    recipe = get_recipe(recipe) if isinstance(recipe, str) else recipe
    if recipe.task is not Task.classification:
        raise UsageError(
            f"{recipe.name} is a {recipe.task.value} entry; `zoo reproduce` runs classification entries",
            hint="Evaluate the published archive with `zoo eval` instead.",
        )
    set_device(opts.device)
    out = Path(opts.out) if opts.out else default_out(recipe.name)
    rank = int(os.environ.get("PADDLE_TRAINER_ID", "0") or 0)
    if rank > 0:  # under paddle.distributed.launch: only rank 0 writes the real output folder
        out = out / f".rank{rank}"
    timings: Dict[str, float] = {}
    began = time.time()

    root = resolve_data(recipe, opts.data)
    datasets = _datasets(recipe, root, opts)  # validates the data folder before any download
    out.mkdir(parents=True, exist_ok=True)
    stages = _Stages(out, opts.resume)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = time.time()
        fp32, network = _fp32_stage(recipe, out, opts, stages)
        timings["fp32"] = round(time.time() - t, 2)
        opts.log(f"FP32 model: {fp32.folder}")

        t = time.time()
        evaluated = stages.get("eval_fp32")
        if evaluated and evaluated.get("max_samples") == opts.max_samples:
            fp32_metrics = evaluated["metrics"]
        else:
            fp32_metrics = _evaluate(fp32, datasets["eval"], opts.threads)
            stages.mark("eval_fp32", {"metrics": fp32_metrics, "max_samples": opts.max_samples})
        timings["eval_fp32"] = round(time.time() - t, 2)
        opts.log(f"FP32 top-1 {fp32_metrics['top1']:.2f}")

        strategy = get_strategy(recipe.strategy.value)
        int8_dir = out / "int8"
        t = time.time()
        if stages.get("int8") and (int8_dir / "inference.pdmodel").is_file():
            int8 = find_model_files(int8_dir)
            strategy_info = stages.get("int8").get("info", {})
        else:
            stages.forget("int8", "eval_int8")
            q = recipe.quant
            calib = None
            if "calib" in datasets:
                calib = image_batches(datasets["calib"], q.batch_size or 32)
            data = QuantData(calib=calib, train=datasets.get("train"), eval=datasets["eval"])
            source = FP32Source(input_shape=input_shape(recipe), model=fp32, network=network)
            qopts = QuantOptions(
                device=opts.device,
                work_dir=out / "checkpoints" if recipe.strategy is Strategy.qat else out,
                resume=opts.resume,
                epochs=opts.epochs,
                iterations=opts.iterations,
                batch_size=opts.batch_size,
                engine=opts.engine,
                log=opts.log,
            )
            int8 = strategy.quantize(recipe, source, data, int8_dir, qopts)
            strategy_info = _jsonable(getattr(strategy, "info", {}))
            stages.mark("int8", {"path": str(int8.folder), "info": strategy_info})
        timings["quantize"] = round(time.time() - t, 2)

        t = time.time()
        int8_metrics = _evaluate(int8, datasets["eval"], opts.threads)
        stages.mark("eval_int8", {"metrics": int8_metrics, "max_samples": opts.max_samples})
        timings["eval_int8"] = round(time.time() - t, 2)
    timings["total"] = round(time.time() - began, 2)

    size = recipe.headline().input_size
    settings = compare(recipe, {size: int8_metrics}, {size: fp32_metrics})
    report: Dict[str, Any] = {
        "name": recipe.name,
        "recipe": recipe.model_dump(mode="json", exclude_none=True),
        "status": status_of(settings),
        "strategy": recipe.strategy.value,
        "settings": settings,
        "artifacts": {"fp32": str(fp32.folder.resolve()), "int8": str(int8.folder.resolve()), "out": str(out.resolve())},
        "preprocess": recipe.preprocess.model_dump(mode="json"),
        "data": {
            "root": str(root),
            "split": recipe.dataset.split,
            "images": int8_metrics.get("images"),
            "max_samples": opts.max_samples,
            "published_images": recipe.dataset.eval_images,
        },
        "training": strategy_info,
        "timings": timings,
        "versions": versions(),
        "options": {"device": opts.device, "resume": opts.resume, "epochs": opts.epochs, "iterations": opts.iterations},
    }
    if opts.write:
        paths = write_report(report, out)
        report["report_files"] = {k: str(v) for k, v in paths.items()}
    return report


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))

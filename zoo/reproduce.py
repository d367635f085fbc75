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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

from zoo.errors import Interrupted, UsageError
from zoo.fsutil import atomic_write_text
from zoo.modelfiles import ModelFiles, find_model_files, model_sha256
from zoo.protocol import PARTIAL, Deviation, RunFacts, eval_deviations
from zoo.protocol import as_json as deviations_json
from zoo.protocol import status as protocol_status
from zoo.device import require_device
from zoo.quant.base import FP32Source, QuantData, QuantOptions, QuantStrategy, TrainProgress, copy_model, get_strategy
from zoo.report import all_within, compare, compared_with, published_int8, versions, write_report
from zoo.runfolder import claim, holding, recipe_hash
from zoo.schema import DatasetKind, Recipe, Role
from zoo.tasks import ScoreOptions, get_task
from zoo.hub import fetch
from zoo.models.weights import load_pretrained
from zoo.quant.from_inference import load_from_inference
from zoo.fsutil import StagedDir
from zoo.registry import get_recipe

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
    calib_on_eval: bool = False  # calibrate on the evaluation split when the data has no calibration split
    overwrite: bool = False  # write into an --out folder holding other files or another entry's run
    seed: int = 0
    write: bool = True  # False on non-zero distributed ranks
    log: Callable[[str], None] = field(default=lambda message: None)
    progress: Optional[TrainProgress] = None  # QAT/ACT training progress, for a caller that shows it


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


def _build_network(recipe: Recipe, out: Path, opts: ReproduceOptions) -> Any:
    """The recipe's network with the FP32 weights quant-aware training starts from (the task says which)."""

    task = get_task(recipe.task)
    network = task.build_network(recipe)
    role = task.start_weights(recipe)
    fetched = fetch(recipe, role, mirror=opts.mirror)
    if recipe.artifacts[role].layout.is_inference_model:
        load_from_inference(network, find_model_files(fetched.path), input_shape(recipe))
    else:
        load_pretrained(network, recipe, fetched.path, verify=lambda _: True, role=role)  # zoo.hub verified it against its pin
    network.eval()
    return network


def _fp32_stage(recipe: Recipe, out: Path, opts: ReproduceOptions, stages: _Stages) -> Tuple[ModelFiles, Any]:
    """OUT/fp32 (fetched, or exported from the network or the published weights) and, for QAT, the network itself."""

    shape = input_shape(recipe)
    needs_network = get_strategy(recipe.strategy).needs.network or Role.fp32 not in recipe.artifacts
    network = _build_network(recipe, out, opts) if needs_network else None
    if stages.get("fp32") and (out / "fp32" / "inference.pdmodel").is_file():
        return find_model_files(out / "fp32"), network
    if network is not None:
        files = get_task(recipe.task).save_network(recipe, network, out / "fp32", shape)
    else:
        fetched = fetch(recipe, Role.fp32, mirror=opts.mirror)
        if recipe.artifacts[Role.fp32].layout.is_inference_model:
            files = copy_model(find_model_files(fetched.path), out / "fp32")
        else:  # published training weights (e.g. 0.x persistables): the task exports its network with them
            files = _export_weights(recipe, fetched.path, out / "fp32")
    stages.mark("fp32", {"path": str(files.folder)})
    return files, network


def _export_weights(recipe: Recipe, weights: Path, out_dir: Path) -> ModelFiles:
    """The task's inference export of the recipe's network with `weights`, moved into `out_dir` atomically."""

    with StagedDir(out_dir) as stage:
        get_task(recipe.task).export_network(recipe, weights, stage.path)
        return find_model_files(stage.commit())


def _datasets(recipe: Recipe, root: Path, opts: ReproduceOptions) -> Dict[str, Any]:
    """The recipe task's evaluation data and its calibration (PTQ) or training (QAT/ACT) data."""
    data = get_strategy(recipe.strategy).needs.data
    return get_task(recipe.task).reproduce_datasets(recipe, root, opts.max_samples, opts.calib_on_eval, data)


def protocol_deviations(recipe: Recipe, facts: RunFacts) -> List[Deviation]:
    """Every difference between a run and its recipe's protocol: the evaluation's, then the strategy's own
    (calibration or training); empty when the full protocol was run."""
    return eval_deviations(recipe, facts) + get_strategy(recipe.strategy).deviations(recipe, facts)


def reproducing_strategy(recipe: Recipe) -> QuantStrategy:
    """The recipe's strategy, refused (UsageError) when it cannot quantize a model of the recipe's task."""
    strategy = get_strategy(recipe.strategy)
    if not strategy.supports(recipe.task):
        data = "" if recipe.dataset.kind is DatasetKind.digits else " --data DATA_DIR"
        raise UsageError(
            f"{recipe.name} is a {recipe.task} entry of strategy {recipe.strategy!r}, which quantizes "
            f"{', '.join(sorted(strategy.needs.tasks or ()))} models only; `zoo reproduce` cannot run it",
            hint=f"Evaluate its published model with `zoo eval {recipe.name}{data}` instead.",
        )
    return strategy


def _sizes(recipe: Recipe) -> List[int]:
    """The input sides a reproduction scores at: every published one for detection, the headline for classification."""
    return [int(size) for size in get_task(recipe.task).entry_sizes(recipe, None)]


def _evaluate(recipe: Recipe, files: ModelFiles, dataset: Any, opts: ReproduceOptions) -> Dict[int, Dict[str, float]]:
    """The recipe task's metrics of `files` on `dataset`, per input size the recipe publishes."""
    task = get_task(recipe.task)
    out: Dict[int, Dict[str, float]] = {}
    for size in _sizes(recipe):
        metrics = task.score(files, dataset, recipe.preprocess, size,
                             ScoreOptions(batch_size=EVAL_BATCH, threads=opts.threads, device=opts.device, num_workers=0))
        out[size] = {k: metrics[k] for k in (*task.metrics, "ap50", "images") if k in metrics}
    return out


def _stored(stage: Any, max_samples: Optional[int]) -> Optional[Dict[int, Dict[str, float]]]:
    """Per-size metrics of a finished evaluation stage run with the same --max-samples (None: run it again)."""
    if not stage or stage.get("max_samples") != max_samples or not isinstance(stage.get("sizes"), dict):
        return None
    return {int(size): metrics for size, metrics in stage["sizes"].items()}


def _metric_text(recipe: Recipe, metrics: Dict[int, Dict[str, float]]) -> str:
    name = recipe.primary_metric()
    return ", ".join(f"{metrics[size][name]:.2f} @{size}" for size in metrics)


def _rank() -> int:
    return int(os.environ.get("PADDLE_TRAINER_ID", "0") or 0)


def rank_work_dir(out: Path, rank: int) -> Path:
    """Where rank `rank` > 0 of a distributed run keeps its own files: beside the output folder, not in it."""
    return out.parent / f".{out.name}.rank{rank}"


def _facts(recipe: Recipe, root: Path, datasets: Dict[str, Any], opts: ReproduceOptions) -> RunFacts:
    evaluation = datasets["eval"]
    calib = datasets.get("calib")
    return RunFacts(
        eval_split=evaluation.split, eval_images=len(evaluation), split_images=evaluation.split_size,
        max_samples=opts.max_samples,
        calib_split=calib.split if calib is not None else None, calib_images=len(calib) if calib is not None else None,
        epochs=opts.epochs, iterations=opts.iterations, batch_size=opts.batch_size,
    )


def _fingerprint(recipe: Recipe, root: Path, facts: RunFacts, datasets: Dict[str, Any]) -> Dict[str, Any]:
    """What must not change between a run and its `--resume`: entry, recipe, data, counts, result-changing options."""
    train = datasets.get("train")
    return {
        "entry": recipe.name,
        "recipe_sha256": recipe_hash(recipe),
        "data": str(Path(root).resolve()),
        "eval_split": facts.eval_split,
        "eval_images": facts.eval_images,
        "calib_split": facts.calib_split,
        "calib_images": facts.calib_images,
        "train_images": len(train) if train is not None else None,
        "max_samples": facts.max_samples,
        "epochs": facts.epochs,
        "iterations": facts.iterations,
        "batch_size": facts.batch_size,
    }


def reproduce(recipe: Union[str, Recipe], opts: ReproduceOptions) -> Dict[str, Any]:
    """Run one reproduction end to end and write its report; return the report dict.

    Raises ZooError subclasses on bad input (Interrupted on Ctrl-C, finished stages kept); a finished
    run returns status PASS or FAIL, or PARTIAL when it did not follow the recipe's protocol.
    """

    recipe = get_recipe(recipe) if isinstance(recipe, str) else recipe
    task = get_task(recipe.task)
    reproducing_strategy(recipe)
    task.require_reproducible(recipe)
    require_device(opts.device).activate()
    out = Path(opts.out) if opts.out else default_out(recipe.name)
    rank = _rank()
    root = task.resolve_data(recipe, opts.data)
    datasets = _datasets(recipe, root, opts)  # validates the data folder before any download
    facts = _facts(recipe, root, datasets, opts)
    if rank > 0:  # under paddle.distributed.launch: only rank 0 writes (and evaluates into) the output folder
        work = rank_work_dir(out, rank)
        work.mkdir(parents=True, exist_ok=True)
        return _run_interruptible(recipe, opts, root, datasets, facts, work, opts.resume, rank, out)
    with holding(out, recipe.name):  # one run at a time per folder
        resuming = claim(out, recipe.name, _fingerprint(recipe, root, facts, datasets), opts.resume, opts.overwrite)
        return _run_interruptible(recipe, opts, root, datasets, facts, out, resuming, rank, out)


def _run_interruptible(recipe: Recipe, opts: ReproduceOptions, root: Path, datasets: Dict[str, Any], facts: RunFacts,
                       work: Path, resuming: bool, rank: int, out: Path) -> Dict[str, Any]:
    try:
        return _run(recipe, opts, root, datasets, facts, work, resuming, evaluate=rank == 0)
    except KeyboardInterrupt:
        raise Interrupted(
            f"interrupted; the finished stages are kept in {out}",
            hint=f"Continue with: zoo reproduce {recipe.name} --out {out} --resume (with the same data and options).",
        ) from None


def _quantize(recipe: Recipe, opts: ReproduceOptions, datasets: Dict[str, Any], fp32: ModelFiles, network: Any,
              work: Path, resuming: bool) -> Tuple[ModelFiles, Dict[str, Any]]:
    """Run the recipe's strategy into WORK/int8; return the model and what the strategy reports."""
    strategy = get_strategy(recipe.strategy)
    task = get_task(recipe.task)
    calib = task.calibration_batches(datasets["calib"], recipe.quant.batch_size or 32) if "calib" in datasets else None
    data = QuantData(calib=calib, train=datasets.get("train"), eval=datasets["eval"])
    source = FP32Source(input_shape=input_shape(recipe), model=fp32, network=network, hooks=get_task(recipe.task))
    qopts = QuantOptions(
        device=opts.device,
        work_dir=work / "checkpoints" if strategy.needs.checkpoints else work,
        resume=resuming,
        epochs=opts.epochs,
        iterations=opts.iterations,
        batch_size=opts.batch_size,
        engine=opts.engine,
        seed=opts.seed,
        log=opts.log,
        progress=opts.progress,
    )
    int8 = strategy.quantize(recipe, source, data, work / "int8", qopts)
    return int8, _jsonable(getattr(strategy, "info", {}))


def _run(recipe: Recipe, opts: ReproduceOptions, root: Path, datasets: Dict[str, Any], facts: RunFacts, work: Path,
         resuming: bool, evaluate: bool) -> Dict[str, Any]:
    """FP32 model, its score, the INT8 model, its score (each stage skipped when a resumed run finished it),
    then the report."""
    stages = _Stages(work, resuming)
    timings: Dict[str, float] = {}
    began = time.time()

    t = time.time()
    fp32, network = _fp32_stage(recipe, work, opts, stages)
    timings["fp32"] = round(time.time() - t, 2)
    opts.log(f"FP32 model: {fp32.folder}")

    fp32_metrics: Dict[int, Dict[str, float]] = {}
    if evaluate:
        t = time.time()
        stored = _stored(stages.get("eval_fp32"), opts.max_samples)
        if stored is not None:
            fp32_metrics = stored
        else:
            fp32_metrics = _evaluate(recipe, fp32, datasets["eval"], opts)
            stages.mark("eval_fp32", {"sizes": fp32_metrics, "max_samples": opts.max_samples})
        timings["eval_fp32"] = round(time.time() - t, 2)
        opts.log(f"FP32 {recipe.primary_metric()} {_metric_text(recipe, fp32_metrics)}")

    t = time.time()
    done = stages.get("int8")
    if done and (work / "int8" / "inference.pdmodel").is_file():
        int8, strategy_info = find_model_files(work / "int8"), done.get("info", {})
    else:
        stages.forget("int8", "eval_int8")
        int8, strategy_info = _quantize(recipe, opts, datasets, fp32, network, work, resuming)
        stages.mark("int8", {"path": str(int8.folder), "info": strategy_info})
    timings["quantize"] = round(time.time() - t, 2)

    int8_metrics: Dict[int, Dict[str, float]] = {}
    if evaluate:
        t = time.time()
        int8_metrics = _evaluate(recipe, int8, datasets["eval"], opts)
        stages.mark("eval_int8", {"sizes": int8_metrics, "max_samples": opts.max_samples})
        timings["eval_int8"] = round(time.time() - t, 2)
        opts.log(f"INT8 {recipe.primary_metric()} {_metric_text(recipe, int8_metrics)}")
    timings["total"] = round(time.time() - began, 2)

    report = _report(recipe, opts, root, datasets, facts, work, resuming, fp32, int8, fp32_metrics, int8_metrics,
                     strategy_info, timings)
    if opts.write and evaluate:
        paths = write_report(report, work)
        report["report_files"] = {k: str(v) for k, v in paths.items()}
    return report


def _report(recipe: Recipe, opts: ReproduceOptions, root: Path, datasets: Dict[str, Any], facts: RunFacts, work: Path,
            resuming: bool, fp32: ModelFiles, int8: ModelFiles, fp32_metrics: Dict[int, Dict[str, float]],
            int8_metrics: Dict[int, Dict[str, float]], strategy_info: Any, timings: Dict[str, float]) -> Dict[str, Any]:
    """The report of a run: the comparison with the published row and its status, what was run, on what."""
    settings = compare(recipe, int8_metrics, fp32_metrics)
    found = protocol_deviations(recipe, facts)
    published = published_int8(recipe)
    return {
        "name": recipe.name,
        "recipe": recipe.model_dump(mode="json", exclude_none=True),
        "recipe_sha256": recipe_hash(recipe),
        "status": protocol_status(all_within(settings), found) if published else PARTIAL,
        "strategy": recipe.strategy,
        "compared_with": compared_with(recipe, published),
        "settings": settings,
        "protocol": {"followed": not found, "deviations": deviations_json(found)},
        "artifacts": {"fp32": str(fp32.folder.resolve()), "int8": str(int8.folder.resolve()), "out": str(work.resolve())},
        "fp32_sha256": model_sha256(fp32),
        "preprocess": recipe.preprocess.model_dump(mode="json"),
        "data": {
            "root": str(root),
            "split": facts.eval_split,
            "images": facts.eval_images,
            "split_images": facts.split_images,
            "max_samples": opts.max_samples,
            "published_images": recipe.dataset.eval_images,
            "calib_split": facts.calib_split,
            "calib_images": facts.calib_images,
            "train_images": len(datasets["train"]) if "train" in datasets else None,
        },
        "training": strategy_info,
        "timings": timings,
        "versions": versions(),
        "options": {"device": opts.device, "engine": opts.engine, "seed": opts.seed, "resumed": resuming,
                    "epochs": opts.epochs, "iterations": opts.iterations, "batch_size": opts.batch_size},
    }


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))

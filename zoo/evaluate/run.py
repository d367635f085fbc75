"""Score a zoo entry or a model folder with its task's data, preprocessing and metric (what `zoo eval` runs)."""
from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

from zoo.data.infer_cfg import read_infer_cfg
from zoo.data.transforms import image_library
from zoo.device import DeviceLike, require_device
from zoo.errors import ModelError, UnknownNameError, UsageError
from zoo.modelfiles import ModelFiles, find_model_files
from zoo.protocol import Deviation, RunFacts, eval_deviations
from zoo.protocol import as_json as deviations_json
from zoo.protocol import status as protocol_status
from zoo.schema import Recipe, Role
from zoo.tasks import ScoreOptions, get_task, task_of_model
from zoo.registry import load_registry
from zoo.hub import fetch


@dataclass
class EvalOptions:
    data: Optional[Path] = None
    split: Optional[str] = None
    max_samples: Optional[int] = None
    batch_size: int = 32
    threads: int = 2
    device: DeviceLike = "cpu"
    input_size: Optional[int] = None
    role: Optional[Role] = None
    mirror: Optional[str] = None
    num_workers: int = 2
    overrides: Dict[str, Any] = field(default_factory=dict)  # Preprocess fields given on the command line
    task: Optional[str] = None  # a model folder's task; None: detected from its program
    sizes: Optional[List[int]] = None  # input sides to score at; None: the task's default
    runtime: str = "paddle"  # zoo.runtime name: score on the runtime that will serve the model


def resolve_target(target: str) -> Tuple[Optional[Recipe], Optional[Path]]:
    """A recipe name/alias, or an existing model path (a path wins when both exist)."""

    path = Path(target).expanduser()
    if path.exists():
        return None, path
    registry = load_registry()
    if target in registry:
        return registry.get(target), None
    if "/" in target or target.startswith("."):
        raise ModelError(f"{path} does not exist", hint="Pass a Paddle inference model folder or a zoo entry name (`zoo list`).")
    try:
        registry.get(target)
    except UnknownNameError as exc:
        raise UnknownNameError(f"{target!r} is neither a zoo entry nor an existing model folder", hint=exc.hint) from None
    raise AssertionError("unreachable")


def _pick_role(recipe: Recipe, role: Optional[Role]) -> Role:
    if role is not None:
        if role not in recipe.artifacts:
            have = ", ".join(r.value for r in recipe.artifacts)
            raise UsageError(f"{recipe.name} has no {role.value} artifact (it has: {have})")
        return role
    return recipe.default_artifact


def recipe_model(recipe: Recipe, role: Role, workdir: Path, mirror: Optional[str] = None) -> ModelFiles:
    """The inference model of a recipe's artifact: fetched, or exported from published weights by its task."""

    artifact = recipe.artifacts[role]
    fetched = fetch(recipe, role, mirror=mirror)
    if artifact.layout.is_inference_model:
        return find_model_files(fetched.path)
    return get_task(recipe.task).export_network(recipe, fetched.path, workdir / "exported")


def published_for(recipe: Recipe, role: Role, input_size: int) -> Dict[str, float]:
    """The published numbers matching what is scored: INT8 for the quantized archive, else FP32."""
    for row in recipe.published:
        if row.input_size == input_size:
            return row.metrics() if role is Role.quantized else row.fp32()
    return {}


def evaluate_target(target: str, opts: EvalOptions,
                    progress: Optional[Callable[[int, int], None]] = None) -> Dict[str, Any]:
    """Score a zoo entry (its default or `opts.role` artifact) or an inference model folder with its task's metric.

    Classification: {"model", "top1", "top5", "images", "data", "split", "input_size", "preprocess", ...};
    detection: {"model", "box_ap": {size: %}, "ap50": {size: %}, "sizes": [row per size], "contract", ...}.
    An entry's rows carry "published" and "comparison" (within `tolerance.eval`, PARTIAL off the protocol).
    `progress(done, total)` is called after each batch.
    """
    # long by its signature only (every option is declared there); the body is one job under 60 lines
    device = require_device(opts.device)
    recipe, path = resolve_target(target)
    if opts.batch_size <= 0:
        raise UsageError(f"--batch-size must be positive, got {opts.batch_size}")
    asked = opts.sizes or ([opts.input_size] if opts.input_size else None)
    with tempfile.TemporaryDirectory(prefix="zoo-eval-") as tmp:
        result: Dict[str, Any] = {}
        if recipe is not None:
            task = get_task(recipe.task)
            if opts.task is not None and opts.task != task.name:
                raise UsageError(f"{recipe.name} is a {task.name} entry, not {opts.task}", hint="Drop --task for entries.")
            role = _pick_role(recipe, opts.role)
            sizes: List[Optional[int]] = list(task.entry_sizes(recipe, asked))
            data = task.resolve_data(recipe, opts.data)
            pre = task.preprocess(recipe.preprocess, opts.overrides)
            split = opts.split or recipe.dataset.split
            # the data is read before anything is downloaded: a wrong --data fails fast
            dataset = task.eval_dataset(data, split, pre, sizes[0], opts.max_samples)
            files = recipe_model(recipe, role, Path(tmp), opts.mirror)
            task.check_entry_model(recipe, files)
            result.update(model=recipe.name, artifact=role.value, path=str(files.folder))
        else:
            files = find_model_files(path)  # type: ignore[arg-type]
            task = task_of_model(files, opts.task)
            if opts.data is None:
                raise UsageError("evaluating a model folder needs --data DIR",
                                 hint="Pass an ImageNet-layout folder (classification) or a COCO folder (detection).")
            data = Path(opts.data).expanduser()
            exported = read_infer_cfg(files.folder)  # an export folder's own preprocessing; flags still override it
            pre, sizes = task.folder_inputs(files, exported.preprocess if exported else task.folder_preprocess(),
                                            asked or ([exported.size] if exported else None), opts.overrides)
            split = opts.split or task.folder_split
            result.update(model=str(files.folder), path=str(files.folder))
            if exported:
                result["preprocess_source"] = str(exported.path)
            dataset = task.eval_dataset(data, split, pre, sizes[0], opts.max_samples)
        total, done = len(dataset) * len(sizes), 0

        def tick(n: int) -> None:
            nonlocal done
            done += n
            if progress is not None:
                progress(done, total)

        task.check_runtime(opts.runtime)
        score = ScoreOptions(batch_size=opts.batch_size, threads=opts.threads, device=device,
                             num_workers=opts.num_workers, progress=tick, runtime=opts.runtime)
        task.check_inputs(files, dataset, sizes)  # before any size is scored
        rows = [task.score(files, dataset, pre, size, score) for size in sizes]
    if recipe is not None:
        found = eval_deviations(recipe, RunFacts(eval_split=split, eval_images=len(dataset),
                                                 split_images=dataset.split_size, max_samples=opts.max_samples))
        if pre != recipe.preprocess:
            found.append(Deviation("preprocessing", "the recipe's", "overridden on the command line"))
        for row in rows:
            published = published_for(recipe, role, int(row["input_size"]))
            if published:
                row["published"] = published
                row["comparison"] = compare_published(row, published, recipe.tolerance.eval, found)
    result.update(task.summarize(rows))
    result.update(task=task.name, data=str(data), split=split, device=str(device), runtime=opts.runtime,
                  image_library=image_library(pre))
    return result


def compare_published(metrics: Dict[str, Any], published: Dict[str, float], tolerance: float,
                      found: List[Deviation]) -> Dict[str, Any]:
    """Measured against published within the recipe's `tolerance.eval`; PARTIAL when not on the full protocol."""
    rows = {}
    for name, value in published.items():
        if name not in metrics:
            continue
        diff = round(float(metrics[name]) - float(value), 4)
        rows[name] = {"measured": metrics[name], "published": value, "diff": diff,
                      "within": abs(diff) <= tolerance + 1e-9}
    within = bool(rows) and all(r["within"] for r in rows.values())
    return {"tolerance": tolerance, "metrics": rows, "status": protocol_status(within, found),
            "deviations": deviations_json(found)}

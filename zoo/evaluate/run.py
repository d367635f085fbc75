"""Score a zoo entry or a model folder on an ImageNet-layout dataset (what `zoo eval` runs)."""
from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

from pydantic import ValidationError as PydanticValidationError

from zoo.device import DeviceLike, require_device
from zoo.errors import ModelError, UnknownModelError, UsageError
from zoo.modelfiles import ModelFiles, find_model_files
from zoo.protocol import Deviation, RunFacts, eval_deviations
from zoo.protocol import as_json as deviations_json
from zoo.protocol import status as protocol_status
from zoo.schema import Layout, Preprocess, Recipe, Role, Task, validation_messages


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


def apply_overrides(pre: Preprocess, overrides: Dict[str, Any]) -> Preprocess:
    """The preprocessing with command-line overrides, validated like a recipe's."""
    given = {k: v for k, v in overrides.items() if v is not None}
    if not given:
        return pre
    data = pre.model_dump()
    if "resize_short" in given:
        data["resize"] = None
    data.update(given)
    try:
        return Preprocess.model_validate(data)
    except PydanticValidationError as exc:  # a usage problem: name the flag's field and what is wrong
        raise UsageError(f"invalid preprocessing flags: {'; '.join(validation_messages(exc))}",
                         hint="See `zoo eval --help`.") from None


def resolve_target(target: str) -> Tuple[Optional[Recipe], Optional[Path]]:
    """A recipe name/alias, or an existing model path (a path wins when both exist)."""
    from zoo.registry import load_registry

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
    except UnknownModelError as exc:
        raise UnknownModelError(f"{target!r} is neither a zoo entry nor an existing model folder", hint=exc.hint) from None
    raise AssertionError("unreachable")


def _pick_role(recipe: Recipe, role: Optional[Role]) -> Role:
    if role is not None:
        if role not in recipe.artifacts:
            have = ", ".join(r.value for r in recipe.artifacts)
            raise UsageError(f"{recipe.name} has no {role.value} artifact (it has: {have})")
        return role
    return recipe.default_artifact


def recipe_model(recipe: Recipe, role: Role, workdir: Path, mirror: Optional[str] = None) -> ModelFiles:
    """The inference model of a recipe's artifact: fetched, or exported from published weights."""
    from zoo.hub import fetch
    from zoo.quiet import silenced

    artifact = recipe.artifacts[role]
    fetched = fetch(recipe, role, mirror=mirror)
    if artifact.layout in (Layout.inference, Layout.legacy_inference):
        return find_model_files(fetched.path)
    from zoo.models import build_model, save_inference
    from zoo.models.weights import load_pretrained

    size = recipe.headline().input_size
    with silenced():
        kwargs = dict(recipe.extra.get("model_kwargs", {}) or {})  # type: ignore[call-overload]
        kwargs.setdefault("num_classes", recipe.dataset.num_classes)
        network = build_model(recipe.arch, **kwargs)
        load_pretrained(network, recipe, fetched.path, trusted=True)  # fetch verified it against its pin
    return save_inference(network, workdir / "exported", (3, size, size))


def declared_side(files: ModelFiles) -> Optional[int]:
    """The square H = W of the model's image input as its program declares it; None when dynamic."""
    from zoo.modelcheck import read_program_desc

    block = read_program_desc(files.model_file).blocks[0]
    feeds = [name for op in block.ops if op.type == "feed" for slot in op.outputs for name in slot.arguments]
    shapes = {v.name: list(v.type.lod_tensor.tensor.dims) for v in block.vars}
    dims = [shapes.get(name, []) for name in feeds]
    images = [d for d in dims if len(d) == 4]
    if len(images) != 1:
        return None
    h, w = int(images[0][2]), int(images[0][3])
    return h if h > 0 and h == w else None


def folder_input_size(files: ModelFiles, input_size: Optional[int], crop: Optional[int]) -> Optional[int]:
    """The evaluation side of a model folder: the one it declares; a contradicting request is a UsageError."""
    side = declared_side(files)
    asked = input_size or crop
    if side is not None and asked is not None and asked != side:
        flag = "--input-size" if input_size else "--crop"
        raise UsageError(f"{flag} {asked} contradicts the model's declared {side}x{side} input ({files.model_file})",
                         hint=f"Drop {flag}: the declared size is used, or export the model with a dynamic input.")
    return input_size or side


def published_for(recipe: Recipe, role: Role, input_size: int) -> Dict[str, float]:
    """The published numbers matching what is scored: INT8 for the quantized archive, else FP32."""
    for row in recipe.published:
        if row.input_size == input_size:
            return row.metrics() if role is Role.quantized else row.fp32()
    return {}


def evaluate_target(target: str, opts: EvalOptions,
                    progress: Optional[Callable[[int, int], None]] = None) -> Dict[str, Any]:
    """Top-1/top-5 of a zoo entry (its default or `opts.role` artifact) or an inference model folder.

    Returns {"model", "top1", "top5", "images", "data", "split", "input_size", "preprocess", ...};
    `progress(done, total)` is called after each batch.
    """
    from zoo.data import resolve_data
    from zoo.data.imagenet import ImageListDataset, iterate_batches
    from zoo.data.transforms import DEFAULT_PREPROCESS, effective_preprocess, eval_transform
    from zoo.evaluate.classification import evaluate

    device = require_device(opts.device)
    recipe, path = resolve_target(target)
    if opts.batch_size <= 0:
        raise UsageError(f"--batch-size must be positive, got {opts.batch_size}")
    if recipe is not None and recipe.task is not Task.classification:
        raise UsageError(f"{recipe.name} is a {recipe.task.value} entry; `zoo eval` scores classification models",
                         hint="Pick a classification entry (`zoo list --task classification`).")
    with tempfile.TemporaryDirectory(prefix="zoo-eval-") as tmp:
        result: Dict[str, Any] = {}
        if recipe is not None:
            role = _pick_role(recipe, opts.role)
            size = opts.input_size or recipe.headline().input_size
            data = resolve_data(recipe, opts.data)
            pre = apply_overrides(recipe.preprocess, opts.overrides)
            split = opts.split or recipe.dataset.split
            # the data is read before anything is downloaded: a wrong --data fails fast
            dataset = ImageListDataset(data, split, eval_transform(pre, size), opts.max_samples)
            files = recipe_model(recipe, role, Path(tmp), opts.mirror)
            result.update(model=recipe.name, artifact=role.value, path=str(files.folder))
        else:
            files = find_model_files(path)  # type: ignore[arg-type]
            if opts.data is None:
                raise UsageError("evaluating a model folder needs --data DIR", hint="Pass an ImageNet-layout folder with --data.")
            data = Path(opts.data).expanduser()
            pre = apply_overrides(DEFAULT_PREPROCESS, opts.overrides)
            size = folder_input_size(files, opts.input_size, opts.overrides.get("crop"))
            split = opts.split or "val"
            result.update(model=str(files.folder), path=str(files.folder))
            dataset = ImageListDataset(data, split, eval_transform(pre, size), opts.max_samples)
        total, done = len(dataset), 0

        def tick(n: int) -> None:
            nonlocal done
            done += n
            if progress is not None:
                progress(done, total)

        metrics = evaluate(files, iterate_batches(dataset, opts.batch_size, opts.num_workers), threads=opts.threads,
                           device=device, progress=tick, origin=dataset.origin_of_label)
    final = effective_preprocess(pre, size)
    result.update(metrics)
    result.update(data=str(data), split=split, input_size=final.crop or final.resize or final.resize_short,
                  preprocess=final.model_dump(mode="json"), device=str(device))
    if recipe is not None:
        published = published_for(recipe, role, size)
        if published:
            result["published"] = published
            found = eval_deviations(recipe, RunFacts(eval_split=split, eval_images=len(dataset),
                                                     split_images=dataset.split_size, max_samples=opts.max_samples))
            if pre != recipe.preprocess:
                found.append(Deviation("preprocessing", "the recipe's", "overridden on the command line"))
            result["comparison"] = compare_published(metrics, published, recipe.tolerance.eval, found)
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

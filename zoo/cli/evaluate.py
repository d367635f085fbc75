"""`zoo eval`: top-1/top-5 or COCO box AP of a zoo entry or a Paddle inference model folder."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from zoo.cli.common import console, err_console, handle_errors, print_json
from zoo.cli.image_flags import CHANNELS, RESIZE, image_overrides, parse_input_size, square_or_hw
from zoo.errors import UsageError
from zoo.schema import Interpolation, Role
from zoo.device import parse_device
from zoo.runtime import RUNTIME_NAMES as RUNTIMES


MAX_SIDE = 2048  # larger inputs exhaust memory long before they help a 608-trained detector


def _sizes(sizes: Optional[str], size: Optional[int]) -> Optional[List[int]]:
    if sizes is not None and size is not None:
        raise UsageError("give --sizes or --size, not both")
    if size is not None:
        values = [size]
    elif sizes is None:
        return None
    else:
        try:
            values = [int(p) for p in sizes.replace(",", " ").split()]
        except ValueError:
            raise UsageError(f"--sizes takes input sides, got {sizes!r}", hint="Example: --sizes 608,416,320") from None
    if not values or any(v <= 0 for v in values):
        raise UsageError(f"--sizes takes positive input sides, got {sizes!r}", hint="Example: --sizes 608,416,320")
    if max(values) > MAX_SIDE:
        raise UsageError(f"input side {max(values)} is larger than {MAX_SIDE}: it would exhaust memory",
                         hint="The published detection sides are 608, 416 and 320.")
    return values


@handle_errors
def eval_cmd(
    model: str = typer.Argument(..., help="Zoo entry name (scores its default artifact) or a Paddle inference model folder."),
    data: Optional[Path] = typer.Option(None, "--data", help="ImageNet-layout folder, or COCO folder for detection "
                                                              "(not needed for digits entries)."),
    task: Optional[str] = typer.Option(None, "--task", metavar="classification|detection",
                                       help="A folder's task (default: detected from its program's ops)."),
    sizes: Optional[str] = typer.Option(None, "--sizes", help="Detection: input sides to score, e.g. 608,416,320 "
                                                               "(default: every published size)."),
    size: Optional[int] = typer.Option(None, "--size", min=1, help="Detection: one input side (a folder's default: "
                                                                    "the side it declares)."),
    split: Optional[str] = typer.Option(None, "--split", help="Which split to score (default: the recipe's, or val)."),
    max_samples: Optional[int] = typer.Option(None, "--max-samples", min=1, help="Score an evenly spaced subsample of N images."),
    batch_size: int = typer.Option(32, "--batch-size", min=1, help="Images per predictor call."),
    threads: int = typer.Option(2, "--threads", min=1, help="CPU math threads of the predictor."),
    device: str = typer.Option("cpu", "--device", metavar="cpu|gpu|gpu:N", help="Where the predictor runs."),
    runtime: str = typer.Option("paddle", "--runtime", metavar="|".join(RUNTIMES),
                                help="Classification: the runtime that scores the model: Paddle Inference (plain kernels, an INT8 model's fake-quant graph), its oneDNN INT8 path, the ONNX export on ONNX Runtime or OpenVINO, the Lite x86 .nb (FP32), or Paddle Inference 3.x (plain kernels)."),
    workers: int = typer.Option(2, "--workers", min=0, help="Image decoding threads (0: decode inline)."),
    artifact: Optional[Role] = typer.Option(None, "--artifact", help="Which artifact of an entry to score (default: the entry's default)."),
    input_size: Optional[str] = typer.Option(None, "--input-size", help="Evaluation input: a side (crop; resize for "
                                             "square-resize recipes), or H,W for a non-square model with --resize."),
    channels: Optional[str] = CHANNELS,
    resize: Optional[str] = RESIZE,
    resize_short: Optional[int] = typer.Option(None, "--resize-short", min=1, help="Override: resize the short side to N."),
    crop: Optional[int] = typer.Option(None, "--crop", min=1, help="Override: center crop side."),
    interpolation: Optional[Interpolation] = typer.Option(None, "--interpolation", help="Override: resize filter."),
    mean: Optional[str] = typer.Option(None, "--mean", help="Override: per-channel mean, e.g. 0.485,0.456,0.406."),
    std: Optional[str] = typer.Option(None, "--std", help="Override: per-channel std, e.g. 0.229,0.224,0.225."),
    no_scale: bool = typer.Option(False, "--no-scale", help="Override: normalize raw 0..255 pixels (no division by 255)."),
    mirror: Optional[str] = typer.Option(None, "--mirror", help="Base URL replacing scheme+host of download URLs (default: ZOO_MIRROR)."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Score a model: top-1 / top-5 accuracy, or COCO box AP per input size, in percent over the data folder's split.

    An entry's score is compared with its published number within the recipe's eval tolerance when the
    whole evaluation split was scored with the recipe's preprocessing (exit 3 when outside); otherwise
    the comparison is marked indicative.

    A folder gets the ImageNet default preprocessing (short side 256 bilinear, center crop 224,
    scale to [0,1], ImageNet mean/std); a detection folder gets PaddleDetection 0.x's (cv2 bicubic resize to
    the square input side, scale to [0,1], ImageNet mean/std); an entry gets its recipe's. Flags override either.
    """
    # long by its signature only (every option is declared there); the body is one job under 60 lines
    from zoo.evaluate.run import EvalOptions, evaluate_target

    target = parse_device(device)  # a misspelt device is refused before anything is read or fetched

    if runtime not in RUNTIMES:
        raise UsageError(f"unknown --runtime {runtime!r}", hint=f"Use one of {', '.join(RUNTIMES)}.")
    overrides = image_overrides(channels, resize, mean, std, resize_short=resize_short, crop=crop,
                                interpolation=interpolation, scale=False if no_scale else None)
    if task is not None:
        from zoo.tasks import task_names

        if task not in task_names():
            raise UsageError(f"unknown --task {task!r}", hint=f"Known tasks: {', '.join(task_names())}.")
    opts = EvalOptions(data=data, split=split, max_samples=max_samples, batch_size=batch_size, threads=threads, device=target,
                       input_size=square_or_hw(parse_input_size(input_size)), role=artifact, mirror=mirror, num_workers=workers, overrides=overrides,
                       task=task, sizes=_sizes(sizes, size), runtime=runtime)
    show = not as_json and err_console.is_terminal
    if show:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

        with Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                      TimeRemainingColumn(), console=err_console, transient=True) as bar:
            bar_task = bar.add_task("evaluating", total=None)
            result = evaluate_target(model, opts, lambda done, total: bar.update(bar_task, completed=done, total=total))
    else:
        result = evaluate_target(model, opts)
    if as_json:
        print_json(result)
        _exit_on_miss(result)
        return
    _render(result)
    _exit_on_miss(result)


def _render(result: dict) -> None:
    """The result as text: what was scored, then per input size the task's metrics and the comparison."""
    from rich.markup import escape

    from zoo.tasks import get_task

    task = get_task(result["task"])
    console.print(f"[bold]{escape(str(result['model']))}[/]" + (f" ({result['artifact']} artifact)" if "artifact" in result else ""))
    shown = result["input_size"] if not isinstance(result["input_size"], list) else ", ".join(map(str, result["input_size"]))
    console.print(escape(f"  data      {result['data']} (split {result['split']}), {result['images']} images, input {shown}"))
    if result.get("preprocess_source"):
        console.print(escape(f"  preprocessing from {result['preprocess_source']}"))
    if result.get("image_library"):
        console.print(escape(f"  images    {result['image_library']}"))
    if result.get("dropped_boxes"):
        console.print(escape(f"  note      {result['dropped_boxes']} empty box(es) (zero width or height) left out of "
                             "the reader's ground truth, as the published reader leaves them out"))
    if result.get("runtime", "paddle") != "paddle":
        console.print(escape(f"  runtime   {result['runtime']}"))
    kind = "INT8" if result.get("artifact") == "quantized" else "FP32"
    headline = task.metrics[0]
    for row in task.rows(result):
        console.print(escape(task.metric_line(row)))
        published = row.get("published") or {}
        if headline in published and row.get("comparison"):
            diff = round(row[headline] - published[headline], 2) + 0.0  # no "-0.00"
            console.print(f"  published {kind} {task.labels[headline]} {published[headline]:.2f} % (diff {diff:+.2f})")
    comparison = result.get("comparison")
    if comparison:
        tol = comparison["tolerance"]
        if comparison["status"] == "PARTIAL":
            reasons = "; ".join(f"{d['setting']}: {d['run']}" for d in comparison["deviations"])
            console.print(escape(f"  indicative only (not the recipe's evaluation: {reasons}); "
                                 f"tolerance {tol:.2f} not applied"))
        elif comparison["status"] == "PASS":
            console.print(f"  [green]within[/] the recipe's eval tolerance ({tol:.2f} points)")
        else:
            console.print(f"  [red]outside[/] the recipe's eval tolerance ({tol:.2f} points)")


def _exit_on_miss(result: dict) -> None:
    """Exit 3 when the published artifact, scored on the full evaluation split, is outside tolerance.eval."""
    comparison = result.get("comparison") or {}
    if comparison.get("status") == "FAIL":
        raise typer.Exit(3)


def register(app: typer.Typer) -> None:
    """Add `zoo eval` to the app."""
    app.command("eval")(eval_cmd)

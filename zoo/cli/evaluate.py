"""`zoo eval`: top-1/top-5 of a zoo entry or a Paddle inference model folder."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Tuple

import typer

from zoo.cli.common import console, err_console, handle_errors, print_json
from zoo.errors import UsageError
from zoo.schema import Interpolation, Role


def _triple(text: Optional[str], flag: str) -> Optional[Tuple[float, float, float]]:
    if text is None:
        return None
    parts: List[str] = [p for p in text.replace(",", " ").split() if p]
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        raise UsageError(f"{flag} takes three numbers, got {text!r}", hint=f"Example: {flag} 0.485,0.456,0.406") from None
    if len(values) != 3:
        raise UsageError(f"{flag} takes three numbers, got {len(values)}", hint=f"Example: {flag} 0.485,0.456,0.406")
    return values  # type: ignore[return-value]


@handle_errors
def eval_cmd(
    model: str = typer.Argument(..., help="Zoo entry name (scores its default artifact) or a Paddle inference model folder."),
    data: Optional[Path] = typer.Option(None, "--data", help="ImageNet-layout folder (not needed for digits entries)."),
    split: Optional[str] = typer.Option(None, "--split", help="Which split to score (default: the recipe's, or val)."),
    max_samples: Optional[int] = typer.Option(None, "--max-samples", min=1, help="Score an evenly spaced subsample of N images."),
    batch_size: int = typer.Option(32, "--batch-size", min=1, help="Images per predictor call."),
    threads: int = typer.Option(2, "--threads", min=1, help="CPU math threads of the predictor."),
    device: str = typer.Option("cpu", "--device", metavar="cpu|gpu|gpu:N", help="Where the predictor runs."),
    workers: int = typer.Option(2, "--workers", min=0, help="Image decoding threads (0: decode inline)."),
    artifact: Optional[Role] = typer.Option(None, "--artifact", help="Which artifact of an entry to score (default: the entry's default)."),
    input_size: Optional[int] = typer.Option(None, "--input-size", min=1, help="Evaluation input side (crop; resize for square-resize recipes)."),
    resize_short: Optional[int] = typer.Option(None, "--resize-short", min=1, help="Override: resize the short side to N."),
    crop: Optional[int] = typer.Option(None, "--crop", min=1, help="Override: center crop side."),
    interpolation: Optional[Interpolation] = typer.Option(None, "--interpolation", help="Override: resize filter."),
    mean: Optional[str] = typer.Option(None, "--mean", help="Override: per-channel mean, e.g. 0.485,0.456,0.406."),
    std: Optional[str] = typer.Option(None, "--std", help="Override: per-channel std, e.g. 0.229,0.224,0.225."),
    no_scale: bool = typer.Option(False, "--no-scale", help="Override: normalize raw 0..255 pixels (no division by 255)."),
    mirror: Optional[str] = typer.Option(None, "--mirror", help="Base URL replacing scheme+host of download URLs (default: ZOO_MIRROR)."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Score a model: top-1 / top-5 accuracy in percent over the data folder's split.

    An entry's score is compared with its published number within the recipe's eval tolerance when the
    whole evaluation split was scored with the recipe's preprocessing (exit 3 when outside); otherwise
    the comparison is marked indicative.

    A folder gets the ImageNet default preprocessing (short side 256 bilinear, center crop 224,
    scale to [0,1], ImageNet mean/std); an entry gets its recipe's. Flags override either.
    """
    from zoo.device import parse_device
    from zoo.evaluate.run import EvalOptions, evaluate_target

    target = parse_device(device)  # a misspelt device is refused before anything is read or fetched
    overrides = {
        "resize_short": resize_short,
        "crop": crop,
        "interpolation": interpolation,
        "mean": _triple(mean, "--mean"),
        "std": _triple(std, "--std"),
        "scale": False if no_scale else None,
    }
    opts = EvalOptions(data=data, split=split, max_samples=max_samples, batch_size=batch_size, threads=threads, device=target,
                       input_size=input_size, role=artifact, mirror=mirror, num_workers=workers, overrides=overrides)
    show = not as_json and err_console.is_terminal
    if show:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

        with Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                      TimeRemainingColumn(), console=err_console, transient=True) as bar:
            task = bar.add_task("evaluating", total=None)
            result = evaluate_target(model, opts, lambda done, total: bar.update(task, completed=done, total=total))
    else:
        result = evaluate_target(model, opts)
    if as_json:
        print_json(result)
        _exit_on_miss(result)
        return
    from rich.markup import escape

    console.print(f"[bold]{escape(str(result['model']))}[/]" + (f" ({result['artifact']} artifact)" if "artifact" in result else ""))
    console.print(escape(f"  data      {result['data']} (split {result['split']}), {result['images']} images, input {result['input_size']}"))
    line = f"  top-1     {result['top1']:.2f} %    top-5 {result['top5']:.2f} %"
    console.print(line)
    published = result.get("published") or {}
    comparison = result.get("comparison")
    if "top1" in published and comparison:
        diff = round(result["top1"] - published["top1"], 2) + 0.0  # no "-0.00"
        kind = "INT8" if result.get("artifact") == "quantized" else "FP32"
        console.print(f"  published {kind} top-1 {published['top1']:.2f} % (diff {diff:+.2f})")
        tol = comparison["tolerance"]
        if comparison["status"] == "PARTIAL":
            reasons = "; ".join(f"{d['setting']}: {d['run']}" for d in comparison["deviations"])
            console.print(escape(f"  indicative only (not the recipe's evaluation: {reasons}); "
                                 f"tolerance {tol:.2f} not applied"))
        elif comparison["status"] == "PASS":
            console.print(f"  [green]within[/] the recipe's eval tolerance ({tol:.2f} points)")
        else:
            console.print(f"  [red]outside[/] the recipe's eval tolerance ({tol:.2f} points)")
    _exit_on_miss(result)


def _exit_on_miss(result: dict) -> None:
    """Exit 3 when the published artifact, scored on the full evaluation split, is outside tolerance.eval."""
    comparison = result.get("comparison") or {}
    if comparison.get("status") == "FAIL":
        raise typer.Exit(3)


def register(app: typer.Typer) -> None:
    """Add `zoo eval` to the app."""
    app.command("eval")(eval_cmd)

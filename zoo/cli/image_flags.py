"""The command-line flags that say how images become a model's inputs, declared once for every command that
reads an image folder for a plain model (eval, quantize, analyze, bench) or sizes a dynamic model (export)."""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple, Union

import typer

from zoo.data.folder_inputs import ImageChoices
from zoo.data.transforms import RESIZE_MODES
from zoo.errors import UsageError

INPUT_SIZE_HELP = ("Input size for a model with a dynamic (or to check a declared) input: one side N, H,W, or the "
                   "whole shape N,C,H,W (e.g. 1,3,640,640).")
FOLDER_INPUT_SIZE = typer.Option(None, "--input-size",
                                 help=INPUT_SIZE_HELP + " Sizes the images of a data folder (or checks an array's).")
CHANNELS = typer.Option(None, "--channels", metavar="rgb|bgr",
                        help="Channel order the model was trained on (images from a folder; default rgb).")
RESIZE = typer.Option(None, "--resize", metavar="|".join(RESIZE_MODES),
                      help="How folder images are resized: short-crop (short side to size/0.875, center crop; the "
                           "default), direct (to H x W), height-pad (to H keeping the aspect, zero-pad the width).")
MEAN = typer.Option(None, "--mean", help="Per-channel mean, e.g. 0.485,0.456,0.406 (0.5,0.5,0.5 for text models).")
STD = typer.Option(None, "--std", help="Per-channel std, e.g. 0.229,0.224,0.225.")


def parse_input_size(text: Optional[str]) -> Optional[Tuple[int, int]]:
    """--input-size: "N" (square), "H,W" / "HxW", or "N,C,H,W"; as (height, width); None when not given."""
    if text is None:
        return None
    parts = [p for p in text.lower().replace("x", ",").split(",") if p.strip()]
    try:
        sides = [int(p) for p in parts]
    except ValueError:
        sides = []
    if len(sides) not in (1, 2, 4) or min(sides) < 1:
        raise UsageError(f"--input-size takes one side, H,W or N,C,H,W, got {text!r}",
                         hint="For example --input-size 224, 48,192 or 1,3,640,640.")
    return (sides[-2], sides[-1]) if len(sides) > 1 else (sides[0], sides[0])


def square_or_hw(size: Optional[Tuple[int, int]]) -> Optional[Union[int, Tuple[int, int]]]:
    """A side for a square size, (height, width) otherwise."""
    if size is None:
        return None
    return size[0] if size[0] == size[1] else size


def parse_triple(text: Optional[str], flag: str) -> Optional[Tuple[float, float, float]]:
    """Three comma- or space-separated numbers (--mean, --std); None when not given."""
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


def image_overrides(channels: Optional[str], resize: Optional[str], mean: Optional[str] = None,
                    std: Optional[str] = None, **more: Any) -> Dict[str, Any]:
    """Preprocess overrides from the image flags (None: not given); `more` are further Preprocess fields."""
    if channels is not None and channels.lower() not in ("rgb", "bgr"):
        raise UsageError(f"unknown --channels {channels!r}", hint="Use rgb or bgr.")
    if resize is not None and resize not in RESIZE_MODES:
        raise UsageError(f"unknown --resize {resize!r}", hint=f"Use one of {', '.join(RESIZE_MODES)}.")
    return {"channels": channels.upper() if channels else None, "resize_mode": resize,
            "mean": parse_triple(mean, "--mean"), "std": parse_triple(std, "--std"), **more}


def image_choices(input_size: Optional[str], channels: Optional[str], resize: Optional[str],
                  mean: Optional[str] = None, std: Optional[str] = None) -> ImageChoices:
    """The image flags of quantize, analyze and bench --data as one ImageChoices."""
    return ImageChoices(square_or_hw(parse_input_size(input_size)), image_overrides(channels, resize, mean, std))

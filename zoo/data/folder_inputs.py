"""The preprocessing a plain model folder's images get, in every command that feeds it images from a folder
(`zoo eval PATH`, `zoo quantize` / `zoo analyze` with an image folder, `zoo bench --data`).

The base is the folder's exported `infer_cfg.yml` where it has one, else the task's default (ImageNet's short
side + center crop); the command-line choices (`--channels`, `--resize`, `--mean`, ...) are applied to it; the
size is the one the model declares, or `--input-size` where the model leaves it open. A request that contradicts
the declared input, or a non-square input with a resize that makes square images, is refused here, before any
image is read, so that no folder is scored or calibrated on inputs of another shape than the model was made for.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Tuple

from zoo.data.infer_cfg import read_infer_cfg
from zoo.data.transforms import DEFAULT_PREPROCESS, InputSize, apply_overrides, effective_preprocess
from zoo.errors import UsageError
from zoo.modelfiles import ModelFiles
from zoo.program import image_shapes, read_program
from zoo.schema import Preprocess


def declared_hw(files: ModelFiles) -> Tuple[Optional[int], Optional[int]]:
    """(height, width) of the model's one image input as its program declares them (None where dynamic or when
    the model has no single image input)."""
    images = image_shapes(read_program(files))
    if len(images) != 1:
        return None, None
    h, w = (int(d) if int(d) > 0 else None for d in images[0][2:4])
    return h, w


def as_hw(size: Optional[InputSize]) -> Optional[Tuple[int, int]]:
    """A side or (height, width) as (height, width)."""
    if size is None or isinstance(size, tuple):
        return size
    return int(size), int(size)


def _size_text(hw: Tuple[Optional[int], Optional[int]]) -> str:
    return "x".join(str(d) if d else "?" for d in hw)


def folder_preprocess(files: ModelFiles, base: Preprocess, overrides: Mapping[str, Any],
                      asked: Optional[InputSize] = None) -> Tuple[Preprocess, Optional[InputSize]]:
    """(the preprocessing, the input size: a side or (height, width); None: the preprocessing's own) with
    which images from a folder feed the model in `files`."""
    pre = apply_overrides(base, dict(overrides))
    declared = declared_hw(files)
    want = as_hw(asked)
    crop = overrides.get("crop")
    if want is None and crop is not None:
        want, flag = (crop, crop), "--crop"
    else:
        flag = "--input-size"
    for got, need, name in zip(want or (None, None), declared, ("height", "width")):
        if got is not None and need is not None and got != need:
            shown = str(want[0]) if want[0] == want[1] else _size_text(want)
            raise UsageError(f"{flag} {shown} contradicts the model's declared {_size_text(declared)} input "
                             f"({name} {need}; {files.model_file})",
                             hint=f"Drop {flag}: the declared size is used, or export the model with a dynamic input.")
    hw = want or (declared if None not in declared else None)
    if hw is None and declared != (None, None):  # one side declared, the other open
        made = pre.output_hw()
        if made is None or any(d is not None and d != m for d, m in zip(declared, made)):
            raise UsageError(f"{files.model_file} declares a {_size_text(declared)} input (one side open) that this "
                             "preprocessing does not make", hint="Pass --input-size H,W (e.g. --input-size 48,320).")
        hw = made
    if hw is None:
        return pre, None
    if hw[0] != hw[1] and pre.resize_hw is None and pre.resize_pad is None:
        raise UsageError(f"{files.model_file} takes {_size_text(hw)} inputs, and this preprocessing makes square "
                         "images (short side + center crop, or a square resize), so its score would be of other "
                         "inputs than the model was made for",
                         hint="Pass --resize direct (resize to H x W) or --resize height-pad (resize to H, pad the "
                              "width, as text models do), and --channels bgr if the model was trained on BGR images.")
    size: InputSize = hw[0] if hw[0] == hw[1] else hw
    effective_preprocess(pre, size)  # refuses what cannot be sized now, not after the data is read
    return pre, size


def size_label(size: Optional[InputSize]) -> Optional[str]:
    """How results name an input size: "224" for a side, "48x192" for (height, width)."""
    if size is None:
        return None
    return str(size) if not isinstance(size, tuple) else f"{size[0]}x{size[1]}"


@dataclass(frozen=True)
class ImageChoices:
    """What the command line says about how a folder's images become a classifier's inputs: an input size (a side
    or (height, width)) and Preprocess overrides (`resize_mode`, `channels`, `mean`, ...)."""

    size: Optional[InputSize] = None
    overrides: Mapping[str, Any] = field(default_factory=dict)

    def resolve(self, files: ModelFiles) -> Tuple[Preprocess, Optional[InputSize]]:
        """The preprocessing and size for `files`: its export's infer_cfg.yml, else the ImageNet default."""
        exported = read_infer_cfg(files.folder)
        base = exported.preprocess if exported else DEFAULT_PREPROCESS
        return folder_preprocess(files, base, self.overrides, self.size or (exported.size if exported else None))

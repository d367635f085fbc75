"""Paddle Inference export: a normalized folder (inference.pdmodel + inference.pdiparams + metadata)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Sequence

from zoo.program import ProgramInfo, open_program
from zoo.errors import ExportError, ZooError, paddle_message
from zoo.modelcheck import check_model, verify_saved
from zoo.modelfiles import ModelFiles
from zoo.quiet import silenced

METADATA_NAME = "zoo_export.json"


def write_inference_folder(source: ModelFiles, out_dir: Path, target: Optional[Path] = None) -> ModelFiles:
    """Write `source` as out_dir/inference.pdmodel + inference.pdiparams (parameters combined into one file).

    The source is checked before it is read and the copy after it is written; errors about the
    copy name `target` (the final folder when `out_dir` is a staging folder), else `out_dir`.
    """
    check_model(source)
    out_dir.mkdir(parents=True, exist_ok=True)
    model, params = out_dir / "inference.pdmodel", out_dir / "inference.pdiparams"
    if source.params_file is not None:
        shutil.copyfile(source.model_file, model)
        shutil.copyfile(source.params_file, params)
    else:
        _combine_parameters(source, out_dir)
    written = ModelFiles(out_dir, model, params)
    verify_saved(written, target or out_dir, ExportError)
    return written


def _combine_parameters(source: ModelFiles, out_dir: Path) -> None:
    """A legacy folder with one file per parameter: load it and save it again with one params file."""
    resave_program(source, out_dir, "combine the parameters of")


def resave_program(source: ModelFiles, out_dir: Path, doing: str,
                   transform: Optional[Callable[[Any, Any], Optional[Sequence[str]]]] = None) -> None:
    """Load `source` into a fresh scope, let `transform(program, scope)` edit it, and save it as
    out_dir/inference.pdmodel + .pdiparams; a Paddle failure is an ExportError saying what was being done.

    A transform that returns variable names makes them the saved program's outputs (the save prunes every op
    they do not need); one that returns None keeps the source's outputs."""
    import paddle

    try:
        with open_program(source) as opened:
            outputs = transform(opened.program, opened.scope) if transform is not None else None
            block = opened.program.global_block()
            fetches = [block.var(n) for n in outputs] if outputs is not None else opened.fetches
            with silenced():  # the save's program passes log past GLOG's settings
                paddle.static.save_inference_model(str(out_dir / "inference"), [block.var(n) for n in opened.feeds],
                                                   fetches, opened.executor, program=opened.program)
    except ZooError:
        raise
    except Exception as exc:  # paddle raises plain RuntimeError/ValueError from C++
        raise ExportError(f"cannot {doing} {source.folder}: {paddle_message(exc)}") from exc


def rewrite_model(source: ModelFiles, out_dir: Path, doing: str,
                  transform: Callable[[Any, Any], Optional[Sequence[str]]]) -> ModelFiles:
    """`source` (checked first) edited by `transform` (see resave_program) and saved as out_dir/inference.pdmodel +
    .pdiparams, verified once written."""
    check_model(source)
    out_dir.mkdir(parents=True, exist_ok=True)
    resave_program(source, out_dir, doing, transform)
    written = ModelFiles(out_dir, out_dir / "inference.pdmodel", out_dir / "inference.pdiparams")
    verify_saved(written, out_dir, ExportError)
    return written


def metadata(source: ModelFiles, info: ProgramInfo, source_hash: str, extra: Dict[str, Any]) -> Dict[str, Any]:
    """What a deployment needs to know beside the files: where it came from and how to feed it."""
    import zoo

    data: Dict[str, Any] = {
        "format": "paddle-inference",
        "zoo_version": zoo.__version__,
        "source": str(source.folder.resolve()),
        "source_sha256": source_hash,
        "precision": info.precision,
        "inputs": [{"name": s.name, "shape": list(s.shape), "dtype": s.dtype} for s in info.inputs],
        "outputs": list(info.outputs),
        "quantized_ops": len(info.quantized),
    }
    data.update({k: v for k, v in extra.items() if v is not None})
    return data


def produced_by() -> Dict[str, str]:
    """The versions of what wrote an export: the zoo, Paddle and PaddleSlim (converters are named per artifact)."""
    from importlib import metadata as importlib_metadata

    import zoo

    found = {"zoo": zoo.__version__}
    for name in ("paddlepaddle", "paddlepaddle-gpu", "paddleslim"):
        try:
            found[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            continue
    return found


def write_metadata(out_dir: Path, data: Dict[str, Any]) -> Path:
    """zoo_export.json: `data` and the versions that produced the export (`produced_by`)."""
    path = out_dir / METADATA_NAME
    path.write_text(json.dumps({**data, "produced_by": produced_by()}, indent=2, default=str) + "\n", encoding="utf-8")
    return path

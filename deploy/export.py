"""`zoo export`: convert, validate against the source, then move the artifacts into place.

Everything is written into a staging folder beside the output folder and moved in only when every
artifact converted and validated, so a failure leaves nothing half-written.
"""
from __future__ import annotations

import dataclasses

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from zoo.fsutil import StagedDir
from zoo.deploy.inference import metadata, write_inference_folder, write_metadata
from zoo.deploy.lite import convert, converter_version
from zoo.deploy.onnx import DEFAULT_OPSET, MAX_OPSET, MIN_OPSET
from zoo.program import ProgramInfo, read_program
from zoo.deploy.resolve import Source, resolve_source
from zoo.deploy.toolchain import ARCHES, find_converter
from zoo.contracts import detection_contract
from zoo.deploy.validate import (check_nb_structure, load_inputs, make_inputs, real_detection_inputs,
                                 real_images, validate_inference, validate_lite_x86, validate_onnx)
from zoo.errors import ExportError, UsageError
from zoo.modelcheck import check_model, writing_model
from zoo.modelfiles import model_sha256
from zoo.outdir import prepare_out, record_written, written_here
from zoo.errors import UnknownNameError
from zoo.registry import load_registry

TARGETS = ("inference", "lite", "onnx")
ONNX_CHECK_BATCH = 32  # noise inputs for an ONNX export when no real images are at hand


@dataclass
class Artifact:
    path: Path
    target: str
    precision: str
    arch: Optional[str] = None
    size: int = 0
    converter: Optional[str] = None
    validation: Optional[Dict[str, Any]] = None
    size_vs_fp32: Optional[float] = None

    def as_dict(self) -> Dict[str, Any]:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in self.__dict__.items() if v is not None}


@dataclass
class ExportResult:
    target: str
    out: Path
    source: Dict[str, Any]
    artifacts: List[Artifact] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)

    def as_dict(self) -> Dict[str, Any]:
        return {"target": self.target, "out": str(self.out), "source": self.source,
                "artifacts": [a.as_dict() for a in self.artifacts], "notes": self.notes}


def recipe_lite_targets(name: Any) -> List[str]:
    """The Lite targets an entry was published for (`export.lite.valid_targets`); [] for a plain folder.

    `name` is an entry name, or the recipe a `zoo reproduce` report carries.
    """

    if isinstance(name, dict):
        return list(name.get("export", {}).get("lite", {}).get("valid_targets", []))
    if not name:
        return []
    try:
        return list(load_registry().get(str(name)).export.lite.valid_targets)
    except UnknownNameError:  # a reproduce folder of a recipe that is no longer registered
        return []


def default_out(source: Source, target: str) -> Path:
    return Path(f"{source.label}-{target}")


def refuse_int8_x86(info: ProgramInfo, arches: Sequence[str], source: Source) -> None:
    """Lite's x86 backend returns NaN for INT8 models: never write one."""
    if "x86" in arches and info.is_int8:
        fp32_hint = ""
        if source.kind == "reproduce" and source.fp32 is not None:
            fp32_hint = f" or export the FP32 model for x86 (`zoo export {source.fp32.folder} --target lite --arch x86`)"
        elif source.fp32 is not None:
            fp32_hint = f" or export the FP32 baseline for x86 ({source.fp32.folder})"
        else:
            fp32_hint = " or export its FP32 source model for x86"
        raise ExportError(
            "this model is INT8 and Paddle Lite's x86 backend does not run INT8 models (it returns NaN); "
            "no x86 .nb was written",
            hint=f"Export it for --arch arm (or opencl){fp32_hint}.",
        )


def export_model(
    model: str,
    target: str,
    arches: Optional[Sequence[str]] = None,
    out: Optional[Path] = None,
    opt_bin: Optional[Path] = None,
    validate: bool = True,
    inputs_path: Optional[Path] = None,
    batch: int = 2,
    opset: Optional[int] = None,
    data: Optional[Path] = None,
    overwrite: bool = False,
    input_size: Optional[Tuple[int, int]] = None,
) -> ExportResult:
    """Export MODEL (recipe name, reproduce folder or model folder) to `target` and validate it.

    `arches` defaults to the recipe's `export.lite.valid_targets` (arm for a plain folder). `opset` and
    `data` (real validation images for an entry whose data is not bundled) apply to --target onnx.
    Files already in `out` that the zoo did not write are replaced only with `overwrite`. `input_size`
    (height, width) sizes the generated validation inputs of a model with a dynamic height and width.
    """
    # long by its signature only (every option is declared there); the body is one job under 60 lines
    if target not in TARGETS:
        raise UsageError(f"unknown target {target!r}", hint="Use --target inference, lite or onnx.")
    if opset is not None and target != "onnx":
        raise UsageError("--opset applies to --target onnx")
    if opset is not None and not MIN_OPSET <= opset <= MAX_OPSET:
        raise UsageError(f"--opset {opset} is outside {MIN_OPSET}..{MAX_OPSET}",
                         hint=f"QuantizeLinear/DequantizeLinear need opset {MIN_OPSET} or later; the default is {DEFAULT_OPSET}.")
    if arches is not None:
        arches = list(dict.fromkeys(a.strip().lower() for a in arches if a.strip()))
        bad = [a for a in arches if a not in ARCHES]
        if target == "lite" and (bad or not arches):
            raise UsageError(f"unknown Lite arch(es) {bad or arches}", hint=f"Use a comma-separated subset of {','.join(ARCHES)}.")
    source = resolve_source(model)
    if input_size is not None:  # the generated validation inputs take it wherever the model's size is dynamic
        source = dataclasses.replace(source, fill_size=input_size)
    valid = recipe_lite_targets(source.recipe)
    arches = list(arches) if arches is not None else (valid or ["arm"])
    check_model(source.primary)  # before Paddle or the Lite converter reads it
    info = read_program(source.primary)
    if target == "lite":
        refuse_int8_x86(info, arches, source)
    out = Path(out) if out is not None else default_out(source, target)
    read = [source.primary.folder] + ([source.fp32.folder] if source.fp32 is not None else [])
    out = prepare_out(out, sources=read, overwrite=overwrite)
    inputs = (load_inputs(inputs_path, info) if inputs_path else
              make_inputs(info, batch=batch, size=source.fill)) if validate else []
    detector = validate and not inputs_path and detection_contract(info) is not None
    if data is not None and not (detector or (validate and target == "onnx")):
        why = ("--no-validate checks nothing" if not validate else "--inputs replaces it" if inputs_path else
               f"a {target} export of a classifier is checked on --inputs or generated inputs")
        raise UsageError(f"--data would not be used: {why}",
                         hint="--data gives real images to a detector's export (every target) and to --target onnx; "
                              "drop it here.")
    real_det = real_detection_inputs(source.recipe, info, data=data) if detector else None
    if real_det is not None:  # boxes on noise images say little: a detector is checked on real images when at hand
        inputs = real_det
    src_hash = model_sha256(source.primary)
    result = ExportResult(target=target, out=out, source={
        "model": model, "kind": source.kind, "path": str(source.primary.folder), "precision": info.precision,
        "sha256": src_hash, "recipe": source.recipe, "quantized_ops": len(info.quantized),
    })
    if detector:
        result.notes += _detection_notes(target, arches, len(inputs[0]), real_det is not None,
                                         data if data is not None else f"{source.label}'s data")
    if target == "lite" and valid:
        entry = source.recipe.get("name") if isinstance(source.recipe, dict) else source.recipe  # a report carries the recipe
        result.notes += [f"{arch}: not among {entry}'s validated Lite targets ({', '.join(valid)}); "
                         "the artifact is checked here, but the entry was not published for it"
                         for arch in arches if arch not in valid]
    # staged inside `out`: it may be a mount point, or sit in a folder this user cannot write
    with StagedDir(out, inside=True) as stage, writing_model(out, ExportError):
        if target == "inference":
            _export_inference(source, info, src_hash, stage.path, inputs, validate, result)
        elif target == "onnx":
            _export_onnx(source, info, stage.path, opset, inputs_path is not None, inputs, validate, data, result)
        else:
            _export_lite(source, info, arches, stage.path, opt_bin, inputs, validate, result)
        _commit(stage, result, overwrite)
    return result


def _detection_notes(target: str, arches: Sequence[str], images: int, real: bool, where: object) -> List[str]:
    """What the export checked of a detector's boxes: only artifacts that run here (inference folders, ONNX
    files, x86 .nb files) are compared box by box; arm/opencl .nb files get their kernels listed."""
    notes = []
    remote = [a for a in arches if a != "x86"] if target == "lite" else []
    if target != "lite" or "x86" in arches:
        what = "x86 .nb detections" if target == "lite" else "detections"
        notes.append(f"{what} validated on {images} real images ({where})" if real else
                     f"{what} validated on generated inputs (noise images, valid im_size / scale_factor): "
                     "pass --data DIR for real images")
    if remote:
        notes.append(f"{'/'.join(remote)} .nb files cannot run on this machine: their kernels were listed, "
                     "their detections were not checked (run them on the device, or add --arch x86 for a box check)")
    return notes


def _export_inference(source: Source, info: ProgramInfo, src_hash: str, stage: Path, inputs: list,
                      validate: bool, result: ExportResult) -> None:
    exported = write_inference_folder(source.primary, stage, target=result.out)
    check = validate_inference(source.primary, exported, inputs).as_dict() if validate else None
    write_metadata(stage, metadata(source.primary, info, src_hash, {
        "recipe": source.recipe, "preprocess": source.preprocess, "input_size": source.input_size,
        "validation": check,
    }))
    size = exported.model_file.stat().st_size + exported.params_file.stat().st_size  # type: ignore[union-attr]
    result.artifacts.append(Artifact(path=Path("."), target="inference", precision=info.precision, size=size,
                                     validation=check))


def _nb_name(arch: str, precision: str) -> str:
    return f"model.{arch}.{precision}.nb"


def _export_lite(source: Source, info: ProgramInfo, arches: Sequence[str], stage: Path, opt_bin: Optional[Path],
                 inputs: list, validate: bool, result: ExportResult) -> None:
    jobs: List[tuple] = [(source.primary, info)]
    # the FP32 baseline of a quantized model is converted too, so the .nb sizes can be compared
    if info.is_int8 and source.fp32 is not None and source.fp32 != source.primary:
        check_model(source.fp32)
        jobs.append((source.fp32, read_program(source.fp32)))
    fp32_sizes: Dict[str, int] = {}
    made: List[Artifact] = []
    for files, prog in jobs:
        for arch in arches:
            if arch == "x86" and prog.is_int8:
                continue
            converter = find_converter(arch, opt_bin)
            name = _nb_name(arch, prog.precision)
            nb = convert(files, stage / name[: -len(".nb")], arch, converter)
            art = Artifact(path=Path(name), target="lite", precision=prog.precision, arch=arch,
                           size=nb.stat().st_size, converter=f"paddlelite {converter_version(converter)}")
            if validate:
                check = (validate_lite_x86(files, nb, inputs if files == source.primary else
                                           make_inputs(prog, size=source.fill))
                         if arch == "x86" else check_nb_structure(nb, prog, arch))
                art.validation = check.as_dict()
            if prog.precision == "fp32":
                fp32_sizes[arch] = art.size
            made.append(art)
    for art in made:
        if art.precision == "int8" and art.arch in fp32_sizes:
            art.size_vs_fp32 = round(art.size / fp32_sizes[art.arch], 4)
    result.artifacts.extend(made)
    write_metadata(stage, {
        "format": "paddle-lite-naive-buffer", "source": result.source, "recipe": source.recipe,
        "preprocess": source.preprocess, "input_size": source.input_size,
        "inputs": [{"name": s.name, "shape": list(s.shape), "dtype": s.dtype} for s in info.inputs],
        "artifacts": [a.as_dict() for a in made],
    })


def _export_onnx(source: Source, info: ProgramInfo, stage: Path, opset: Optional[int], user_inputs: bool,
                 inputs: list, validate: bool, data: Optional[Path], result: ExportResult) -> None:
    """model.<precision>.onnx for the model and (for an INT8 one) its FP32 baseline, each run by ONNX Runtime.

    Without `opset` the default (13) is raised where an op needs a later one (hard_swish: 14).
    """
    from zoo.deploy import onnx as onnx_export

    jobs: List[tuple] = [(source.primary, info)]
    if info.is_int8 and source.fp32 is not None and source.fp32 != source.primary:
        check_model(source.fp32)
        jobs.append((source.fp32, read_program(source.fp32)))
    real = None if (user_inputs or not validate) else real_images(source.recipe, source.input_size, data=data)
    if validate and real is not None and len(info.inputs) == 1:
        inputs, kind = [real], "real"
    else:
        kind = "user" if user_inputs else "random"
        if validate and not user_inputs:
            # an agreement rate over two rows means little: INT8 is checked on a batch of noise
            inputs = make_inputs(info, batch=ONNX_CHECK_BATCH, size=source.fill)
        if validate and not user_inputs and info.is_int8:
            result.notes.append("INT8 validated on random inputs (no real images at hand: pass --data DIR or "
                                "--inputs FILE); random inputs sit outside the calibrated ranges")
    work = stage / ".work"
    made: List[Artifact] = []
    opsets: List[int] = []
    for files, prog in jobs:
        name = f"model.{prog.precision}.onnx"
        conversion = onnx_export.export_onnx(files, stage / name, work, opset=opset, info=prog)
        opsets.append(conversion.opset)
        art = Artifact(path=Path(name), target="onnx", precision=prog.precision, size=conversion.path.stat().st_size,
                       converter=f"paddle2onnx {onnx_export.versions().get('paddle2onnx', '?')} (opset {conversion.opset})")
        if validate:
            check = validate_onnx(files, conversion.path, inputs, int8=prog.is_int8, real=kind != "random")
            check.extra["onnx_ops"] = {k: v for k, v in conversion.ops.items() if k in ("QuantizeLinear", "DequantizeLinear")}
            if conversion.rewritten_legacy:
                check.extra["rewritten"] = "legacy fake-quant ops rewritten as quantize_linear/dequantize_linear (same scales)"
            art.validation = check.as_dict()
        made.append(art)
    shutil.rmtree(work, ignore_errors=True)
    fp32 = next((a.size for a in made if a.precision == "fp32"), None)
    for art in made:
        if art.precision == "int8" and fp32:
            art.size_vs_fp32 = round(art.size / fp32, 4)
    result.artifacts.extend(made)
    write_metadata(stage, {
        "format": "onnx", "opset": max(opsets), "source": result.source, "recipe": source.recipe,
        "preprocess": source.preprocess, "input_size": source.input_size, "toolchain": onnx_export.versions(),
        "inputs": [{"name": s.name, "shape": list(s.shape), "dtype": s.dtype} for s in info.inputs],
        "artifacts": [a.as_dict() for a in made],
    })


def _commit(stage: StagedDir, result: ExportResult, overwrite: bool) -> None:
    """Move every staged file into the output folder; a same-named file the zoo did not write there is
    replaced only with `overwrite`."""
    names = sorted(p.name for p in stage.path.iterdir())
    theirs = sorted(n for n in names if (stage.target / n).exists() and n not in written_here(stage.target))
    if theirs and not overwrite:
        raise UsageError(f"--out {stage.target} already holds {', '.join(theirs)}, which the zoo did not write there; "
                         "nothing was written",
                         hint="Pick another --out folder, or pass --overwrite to replace them.")
    out = stage.merge()
    record_written(out, names)
    for art in result.artifacts:
        art.path = (out / art.path).resolve()
    result.out = out.resolve()

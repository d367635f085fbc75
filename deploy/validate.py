"""Check an exported artifact against its source: same outputs on the same inputs, or the right kernels."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from zoo.contracts import DETECTION_OPS, detection_contract
from zoo.deploy.lite import int8_compute_kernels, kernel_summary, nb_kernels, run_nb, run_nb_lod
from zoo.program import Side, ProgramInfo, concrete_shape
from zoo.errors import ExportError, ModelError, UsageError, ValidationError
from zoo.modelfiles import ModelFiles
from zoo.quiet import silenced
from zoo.predictor import Predictor
from zoo.program import read_program
from zoo.deploy.onnx import OnnxSession
from zoo.errors import DataError, UnknownNameError
from zoo.registry import load_registry
from zoo.data import resolve_data

INFERENCE_RTOL = 1e-5
LITE_RTOL = 1e-4


@dataclass
class Check:
    """The outcome of one validation."""

    kind: str  # "outputs" (ran both) or "structure" (inspected only)
    passed: bool
    detail: str
    max_rel_error: Optional[float] = None
    tolerance: Optional[float] = None
    extra: Dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> Dict[str, Any]:
        data = {"kind": self.kind, "passed": self.passed, "detail": self.detail}
        if self.max_rel_error is not None:
            data["max_rel_error"] = self.max_rel_error
            data["tolerance"] = self.tolerance
        data.update(self.extra)
        return data


def _image_side(info: ProgramInfo, size: Optional[Side]) -> int:
    image = next((s for s in info.inputs if len(s.shape) == 4), None)
    side = image.shape[2] if image is not None and image.shape[2] > 0 else (size[0] if isinstance(size, tuple) else size)
    if not side:
        raise ModelError("the detection model's image input has no fixed size", hint="Pass --input-size.")
    return int(side)


def make_inputs(info: ProgramInfo, batch: int = 2, seed: int = 0, size: Optional[Side] = None) -> List[np.ndarray]:
    """Deterministic inputs for every model input: normal noise for floats, image sizes for ints.

    A detection model gets noise images and valid original sizes (integer im_size; im_shape and a
    positive scale_factor) for its contract.
    """
    contract = detection_contract(info)
    if contract is not None:
        from zoo.evaluate.detection import generated_feeds

        feeds = generated_feeds(contract, _image_side(info, size), batch=batch, seed=seed)
        return [np.ascontiguousarray(feeds[s.name].astype(s.dtype)) for s in info.inputs]
    rng = np.random.RandomState(seed)
    arrays: List[np.ndarray] = []
    spatial: Optional[Sequence[int]] = None
    for spec in info.inputs:
        shape = concrete_shape(spec, batch, fallback=size)
        if spec.dtype.startswith("float"):
            array = rng.standard_normal(shape).astype(spec.dtype)
            if len(shape) == 4 and spatial is None:
                spatial = shape[2:]
        else:
            # integer inputs of detection models are image sizes (h, w) or scale factors
            fill = list(spatial) if spatial is not None and shape[-1] == 2 else [1]
            array = np.broadcast_to(np.array(fill * (shape[-1] // len(fill) or 1))[: shape[-1]], shape).astype(spec.dtype)
        arrays.append(np.ascontiguousarray(array))
    return arrays


def load_inputs(path: Path, info: ProgramInfo) -> List[np.ndarray]:
    """Inputs given by the user: a .npy for a one-input model, or a .npz keyed by input name."""
    try:
        data = np.load(path)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read inputs from {path}: {exc}", hint="Give a .npy (one input) or .npz file.") from exc
    if isinstance(data, np.ndarray):
        if len(info.inputs) != 1:
            raise ModelError(f"{path} holds one array but the model takes {[s.name for s in info.inputs]}",
                             hint="Give a .npz keyed by input name.")
        arrays = [data]
    else:
        missing = [s.name for s in info.inputs if s.name not in data.files]
        if missing:
            raise ModelError(f"{path} lacks model input(s) {missing}", hint=f"Its keys are {data.files}.")
        arrays = [data[s.name] for s in info.inputs]
    return [_fitting(path, spec, array) for spec, array in zip(info.inputs, arrays)]


def _fitting(path: Path, spec: Any, array: np.ndarray) -> np.ndarray:
    """`array` as the model's input `spec` takes it: same rank, the declared fixed sizes, its dtype, finite."""
    shape = tuple(spec.shape)
    fits = array.ndim == len(shape) and all(d < 0 or d == n for d, n in zip(shape, array.shape))
    if not fits:
        wanted = "(" + ", ".join("N" if d < 0 else str(d) for d in shape) + ")"
        raise UsageError(f"{path}: input {spec.name!r} has shape {tuple(array.shape)}, the model takes {wanted}",
                         hint="Give inputs of the model's declared shape (N: any size).")
    if np.issubdtype(array.dtype, np.floating) and not np.all(np.isfinite(array)):
        raise UsageError(f"{path}: input {spec.name!r} holds NaN or infinite values",
                         hint="Validation compares outputs: give finite inputs.")
    return np.ascontiguousarray(array.astype(spec.dtype, copy=False))


def max_rel_error(reference: Sequence[np.ndarray], candidate: Sequence[np.ndarray]) -> float:
    """Largest |a - b| / max|a| over all outputs (scale-free, safe for near-zero elements)."""
    if len(reference) != len(candidate):
        raise ValidationError(f"the artifact gives {len(candidate)} output(s), its source {len(reference)}")
    worst = 0.0
    for i, (a, b) in enumerate(zip(reference, candidate)):
        a = np.asarray(a, dtype=np.float64)
        b = np.asarray(b, dtype=np.float64)
        if a.shape != b.shape:
            raise ValidationError(f"output {i}: the artifact gives shape {b.shape}, its source {a.shape}")
        if not np.all(np.isfinite(b)):
            return float("inf")
        scale = max(float(np.max(np.abs(a))) if a.size else 0.0, 1e-12)
        worst = max(worst, float(np.max(np.abs(a - b))) / scale if a.size else 0.0)
    return worst


def paddle_outputs(files: ModelFiles, inputs: Sequence[np.ndarray]) -> List[np.ndarray]:
    """The reference outputs: Paddle Inference on CPU, plain kernels."""

    predictor = Predictor(files, threads=1)
    with silenced():
        return predictor.run(list(inputs))


def validate_inference(source: ModelFiles, exported: ModelFiles, inputs: Sequence[np.ndarray]) -> Check:
    """The exported inference folder must compute what its source computes (rel. error < 1e-5), on this
    Paddle and on Paddle Inference 3.x where `make setup` built its environment (both versions reported)."""
    import paddle

    reference = paddle_outputs(source, inputs)
    err = max_rel_error(reference, paddle_outputs(exported, inputs))
    paddle3 = paddle3_agreement(exported, inputs, reference)
    passed = err < INFERENCE_RTOL and paddle3.get("passed", True)
    detail = f"Paddle Inference {paddle.__version__}: export vs source" + (
        f"; Paddle Inference {paddle3['version']}: rel.err {paddle3['max_rel_error']:.1e}" if "version" in paddle3 else "")
    check = Check("outputs", passed, detail, err, INFERENCE_RTOL,
                  extra={"paddle": paddle.__version__, "paddle3": paddle3})
    if err >= INFERENCE_RTOL:
        raise ValidationError(f"the exported inference model differs from its source: relative error {err:.3g} "
                              f"(tolerance {INFERENCE_RTOL:g})", hint="Report this with the model; nothing was written.")
    if not passed:
        raise ValidationError(f"the exported inference model computes differently on Paddle Inference "
                              f"{paddle3.get('version', '3.x')}: {paddle3.get('error') or 'relative error %.3g' % paddle3['max_rel_error']} "
                              f"(tolerance {INFERENCE_RTOL:g})", hint="Report this with the model; nothing was written.")
    return check


def validate_onnx_detections(source: ModelFiles, onnx_file: Path, inputs: Sequence[np.ndarray], contract: Any,
                             int8: bool, runtimes: Sequence[str]) -> Check:
    """A detector's ONNX file against Paddle Inference, box by box (image by image: the converted NMS takes one).

    FP32: every top box found again (same label, IoU >= 0.95, score within 1e-3). INT8 against the fake-quant
    graph: 80% of the top boxes within IoU 0.5 and score 0.1, the rule oneDNN INT8 is held to. Every runtime that
    runs the file must pass; one that cannot load it is named with its reason.
    """
    from zoo.deploy.onnx_nms import run_per_image
    from zoo.evaluate.detection import match_detections, split_outputs

    reference = paddle_detections(source, inputs, contract)
    extra: Dict[str, Any] = {"inputs": f"{len(inputs[0])} images"}
    failed: List[str] = []
    for runtime in runtimes:
        try:
            session = OnnxSession(onnx_file, runtime, threads=1)
            lods: List[List[List[int]]] = []
            candidate = split_outputs(contract, run_per_image(session.run, inputs, lods), lods, len(inputs[0]))
        except (ImportError, ExportError, ModelError) as exc:
            extra[runtime] = {"passed": False, "error": str(exc)[:300]}
            failed.append(runtime)
            continue
        found = (int8_box_match(reference, candidate) if int8 else
                 match_detections(reference, candidate, score_tol=LITE_SCORE_TOL))
        extra[runtime] = found
        if not found["passed"]:
            failed.append(runtime)
    names = {"onnxruntime": "ONNX Runtime", "openvino": "OpenVINO"}
    detail = "; ".join(f"{names[r]}: {extra[r].get('detail') or extra[r].get('error')}" for r in runtimes)
    check = Check("detections", not failed, f"ONNX vs Paddle Inference ({extra['inputs']}), detections matched: {detail}",
                  extra=extra)
    if failed:
        raise ValidationError(f"{onnx_file.name} does not find the boxes Paddle Inference finds on "
                              f"{' and '.join(names[r] for r in failed)}: {detail}",
                              hint="Nothing was written; the other runtimes and targets may still take the model.")
    return check


def paddle3_agreement(files: ModelFiles, inputs: Sequence[np.ndarray], reference: Sequence[np.ndarray]) -> Dict[str, Any]:
    """`files` run by Paddle Inference 3.x against `reference`: {"version", "max_rel_error", "passed"}, or
    {"skipped": why} when its environment is absent, or {"error", "passed": False} when it cannot run it."""
    import tempfile

    from zoo.deploy.runtimes import Paddle3Runner
    from zoo.deploy.toolchain import paddle3_python

    if paddle3_python(required=False) is None:
        return {"skipped": "no Paddle 3.x environment (`make setup` builds .venv-paddle3)"}
    with tempfile.TemporaryDirectory(prefix="zoo-paddle3-") as tmp:
        try:
            runner = Paddle3Runner(files, threads=1, workdir=Path(tmp))
        except ExportError as exc:
            return {"error": exc.message, "passed": False}
        try:
            outputs = runner.run(list(inputs))
        except ExportError as exc:
            return {"version": runner.version, "error": exc.message, "passed": False}
        finally:
            runner.close()
    err = max_rel_error(reference, outputs)
    return {"version": runner.version, "max_rel_error": err, "passed": err < INFERENCE_RTOL}


def paddle_detections(files: ModelFiles, inputs: Sequence[np.ndarray], contract: Any,
                      threads: int = 1) -> List[np.ndarray]:
    """Per image of the batch, the (K, 6) detection rows Paddle Inference returns (plain kernels: an INT8 model's
    fake-quant graph, the reference every INT8 runtime's boxes are matched against)."""
    from zoo.evaluate.detection import split_outputs

    predictor = Predictor(files, threads=threads)
    with silenced():
        outputs = predictor.run(list(inputs))
    return split_outputs(contract, outputs, predictor.output_lods(), len(inputs[0]))


def int8_box_match(reference: Sequence[np.ndarray], candidate: Sequence[np.ndarray]) -> Dict[str, Any]:
    """An INT8 runtime's boxes against the fake-quant graph's: match_detections at IoU 0.5 and score 0.1, passed
    when at least 80% of the top boxes are found again (single quantization steps move boxes a little)."""
    from zoo.evaluate.detection import match_detections

    found = match_detections(reference, candidate, iou=INT8_DET_IOU, score_tol=INT8_DET_SCORE_TOL)
    share = found["matched"] / found["top_boxes"] if found["top_boxes"] else 1.0
    found.update(matched_share=round(share, 4), min_matched_share=INT8_DET_MIN_MATCHED,
                 passed=share >= INT8_DET_MIN_MATCHED)
    return found


LITE_SCORE_TOL = 1e-3  # FP32 against FP32: only summation order differs
# INT8 kernels against Paddle's fake-quant graph: single quantization steps flip, so boxes move a little
# (IoU 0.5: the same object, as COCO counts it; most of the top boxes, not every low-score one)
INT8_DET_IOU, INT8_DET_SCORE_TOL, INT8_DET_MIN_MATCHED = 0.5, 0.1, 0.8


def validate_lite_x86_detections(source: ModelFiles, nb: Path, inputs: Sequence[np.ndarray], contract: Any) -> Check:
    """A detection `.nb` run by Lite against Paddle Inference, box by box: NMS output order is not compared,
    the top boxes of every image must be found again (same label, IoU >= 0.95, score within 1e-3)."""
    from zoo.evaluate.detection import match_detections, split_outputs

    reference = paddle_detections(source, inputs, contract)
    outputs, lods = run_nb_lod(nb, inputs)
    candidate = split_outputs(contract, outputs, lods, len(inputs[0]))
    if not all(np.isfinite(np.asarray(c)).all() for c in candidate):
        raise ValidationError(f"{nb.name} run by Paddle Lite returns NaN or infinite boxes",
                              hint="Nothing was written; try --arch arm or report the model.")
    result = match_detections(reference, candidate, score_tol=LITE_SCORE_TOL)
    detail = f"Paddle Lite x86 (MobileConfig) vs Paddle Inference, detections matched: {result['detail']}"
    extra = {k: v for k, v in result.items() if k not in ("passed", "detail")}
    extra["kernels"] = kernel_summary(nb_kernels(nb))
    check = Check("detections", bool(result["passed"]), detail, extra=extra)
    if not check.passed:
        raise ValidationError(f"{nb.name} run by Paddle Lite does not find the boxes Paddle Inference finds: "
                              f"{result['detail']}", hint="Nothing was written; try --arch arm or report the model.")
    return check


def validate_lite_x86(source: ModelFiles, nb: Path, inputs: Sequence[np.ndarray]) -> Check:
    """An FP32 x86 `.nb`, run by Lite's MobileConfig, against Paddle Inference (rel. error < 1e-4; a detection
    model's boxes are matched instead)."""

    contract = detection_contract(read_program(source))
    if contract is not None:
        return validate_lite_x86_detections(source, nb, inputs, contract)
    reference = paddle_outputs(source, inputs)
    err = max_rel_error(reference, run_nb(nb, inputs))
    check = Check("outputs", err < LITE_RTOL, "Paddle Lite x86 (MobileConfig) vs Paddle Inference", err, LITE_RTOL,
                  extra={"kernels": kernel_summary(nb_kernels(nb))})
    if not check.passed:
        raise ValidationError(f"{nb.name} run by Paddle Lite differs from Paddle Inference: relative error {err:.3g} "
                              f"(tolerance {LITE_RTOL:g})", hint="Nothing was written; try --arch arm or report the model.")
    return check


def check_nb_structure(nb: Path, info: ProgramInfo, arch: str) -> Check:
    """A `.nb` that cannot run here: list its kernels and check the INT8 ops the source asks for are there."""
    kernels = nb_kernels(nb)
    if not kernels:
        raise ValidationError(f"{nb.name} holds no kernel that Paddle Lite could run (not a naive-buffer model?)")
    int8_kernels = int8_compute_kernels(kernels)
    wanted = len(info.quantized)
    extra: Dict[str, Any] = {"kernels": kernel_summary(kernels), "int8_kernels": len(int8_kernels),
                             "int8_ops_in_source": wanted}
    decoding = sorted({op.type for op in info.ops} & DETECTION_OPS)
    if decoding:  # a detector's .nb must still decode and suppress boxes itself
        have = {k.op for k in kernels}
        missing = [op for op in decoding if op not in have]
        if missing:
            raise ValidationError(f"{nb.name}: the source's {', '.join(missing)} op(s) have no kernel in the .nb",
                                  hint="The converter dropped the detection post-processing; check the Lite version.")
        extra["detection_ops"] = {op: sum(1 for k in kernels if k.op == op) for op in decoding}
    if info.is_int8 and wanted and not int8_kernels:
        raise ValidationError(
            f"{nb.name}: the source quantizes {wanted} op(s) ({', '.join(sorted(set(info.quantized)))}) but the .nb "
            f"runs none of them in INT8 on {arch}",
            hint="The converter fell back to float kernels; check the quantized model's format and the Lite version.",
        )
    if info.is_int8 and len(int8_kernels) < wanted:
        # Lite may keep a few quantized ops in float (seen: matmul_v2 fused into an arm fc kernel); the artifact is
        # still valid, so this is reported rather than refused.
        fp = sorted({k.as_text() for k in kernels if k.op in ("conv2d", "depthwise_conv2d", "fc", "mul", "matmul", "matmul_v2")
                     and k.precision != "int8"})
        extra["float_fallback"] = fp
        detail = (f"{len(int8_kernels)} of {wanted} quantized op(s) run INT8; left in float by the converter: "
                  f"{', '.join(fp) or 'none found'}; cannot run on this machine")
    elif info.is_int8:
        detail = f"{len(int8_kernels)} INT8 kernel(s) for {wanted} quantized op(s) of the source; cannot run on this machine"
    else:
        detail = "FP32 model; cannot run on this machine, kernels listed"
    return Check("structure", True, detail, extra=extra)


ONNX_FP32_RTOL = 1e-4
# INT8: ONNX Runtime computes in integers where Paddle's fake-quant graph computes in float, so single
# quantization steps flip; what must hold is the decision (top-1) and the scale of the outputs.
INT8_MIN_AGREEMENT_REAL = 0.95
INT8_MIN_AGREEMENT_RANDOM = 0.6  # noise inputs sit outside the calibrated ranges: more flips, still far above chance
INT8_RTOL = 0.5


def decisive_rows(scores: np.ndarray) -> np.ndarray:
    """Rows of (rows, classes) scores whose top class leads the runner-up by more than the output's 8-bit step
    ((max - min) / 255 over the whole output): a decision INT8 arithmetic is expected to keep. A row led by less
    (a tie, or a near-constant output such as a random-weight softmax) can flip by one rounding and says nothing."""
    top2 = np.sort(scores, axis=1)[:, -2:]
    step = (float(scores.max()) - float(scores.min())) / 255.0
    return (top2[:, 1] - top2[:, 0]) > step


def _agreement(a: np.ndarray, b: np.ndarray) -> Optional[float]:
    """Share of decisive rows of `a` whose arg-max `b` keeps; None when no row is decisive."""
    keep = decisive_rows(a)
    if not keep.any():
        return None
    return float((a.argmax(axis=1) == b.argmax(axis=1))[keep].mean())


def top1_agreement(reference: Sequence[np.ndarray], candidate: Sequence[np.ndarray]) -> Optional[float]:
    """Share of decisive rows (`decisive_rows`) whose arg-max agrees in the first output, when it is (batch,
    classes) scores; None otherwise, or when no row is decisive (the output is then judged by its error)."""
    a, b = np.asarray(reference[0], np.float64), np.asarray(candidate[0], np.float64)
    if a.ndim != 2 or a.shape != b.shape or a.shape[1] < 2:
        return None
    return _agreement(a, b)


INT8_MIN_COSINE = 0.99  # dense and sequence outputs: the whole output must point the same way
# ... and nearly every element must sit within INT8_CLOSE of the output's scale. Two right INT8 runtimes differ
# by rounding (ONNX Runtime's QuantizeLinear rounds half to even, Paddle's fake-quant half away from zero), and
# a flipped step early in a network moves a few elements of a dense map a long way: measured on a text-detector
# stand-in (tests/own_model_standins.py) on its calibration inputs, ONNX Runtime 99.85% of elements close
# (cosine 0.9993), OpenVINO 99.99%; a runtime that computes something else scores near 0.5 and cosine < 0.1.
# On noise inputs, which sit outside the calibrated ranges, more values reach the clip, where the runtimes differ
# too (ONNX's int8 range is [-128, 127], Paddle's fake-quant [-127, 127]): measured 98.05-98.9% there.
INT8_MIN_CLOSE_SHARE = 0.99
INT8_MIN_CLOSE_SHARE_RANDOM = 0.95
INT8_CLOSE = 0.1


def dense_agreement(reference: Sequence[np.ndarray], candidate: Sequence[np.ndarray]) -> Dict[str, float]:
    """For outputs that are not (batch, classes) scores (probability maps, sequences): the lowest cosine
    similarity over the outputs and the lowest share of elements within INT8_CLOSE x the output's scale.
    One INT8 step that moves one element of 400,000 does not fail them; a runtime that computes something
    else does."""
    cosines, shares = [], []
    for a, b in zip(reference, candidate):
        a = np.asarray(a, np.float64).ravel()
        b = np.asarray(b, np.float64).ravel()
        if a.size == 0:
            continue
        if not np.all(np.isfinite(b)):
            return {"cosine": 0.0, "close_share": 0.0}
        norm = float(np.linalg.norm(a) * np.linalg.norm(b))
        cosines.append(float(a @ b) / norm if norm > 0 else float(np.allclose(a, b)))
        scale = max(float(np.abs(a).max()), 1e-12)
        shares.append(float((np.abs(a - b) <= INT8_CLOSE * scale).mean()))
    return {"cosine": min(cosines, default=1.0), "close_share": min(shares, default=1.0)}


def compare_int8(reference: Sequence[np.ndarray], candidate: Sequence[np.ndarray], real: bool) -> Dict[str, Any]:
    """Top-1 agreement, max abs/rel difference, and whether they are within the INT8 limits."""
    rel = max_rel_error(reference, candidate)
    abs_diff = max(float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))
                   for a, b in zip(reference, candidate))
    agreement = top1_agreement(reference, candidate)
    minimum = INT8_MIN_AGREEMENT_REAL if real else INT8_MIN_AGREEMENT_RANDOM
    result: Dict[str, Any] = {"max_rel_error": rel, "max_abs_diff": abs_diff, "top1_agreement": agreement,
                              "min_agreement": minimum, "tolerance": INT8_RTOL}
    kind = output_kind(reference)
    result["kind"] = kind
    if agreement is not None:  # class scores with decisive rows: the classes must agree, the scores stay close
        passed = rel <= INT8_RTOL and agreement >= minimum
    else:  # a dense map, a sequence, or scores with no decisive row: judged as a whole, not by its worst element
        dense = dense_agreement(reference, candidate)
        close_share = INT8_MIN_CLOSE_SHARE if real else INT8_MIN_CLOSE_SHARE_RANDOM
        result.update(dense, min_cosine=INT8_MIN_COSINE, min_close_share=close_share, close=INT8_CLOSE)
        passed = dense["cosine"] >= INT8_MIN_COSINE and dense["close_share"] >= close_share
        positions = position_agreement(reference, candidate) if kind == "sequence of class scores" else None
        if positions is not None:  # a sequence: each decisive position's class must agree too
            result.update(position_agreement=positions)
            passed = passed and positions >= minimum
    result["passed"] = bool(passed)
    return result


def int8_limits(result: Dict[str, Any]) -> str:
    """The limits `compare_int8` applied to `result`, and where it stood, in words."""
    if result.get("top1_agreement") is not None:
        return (f"top-1 agreement {result['top1_agreement']:.1%} (>= {result['min_agreement']:.0%}), relative error "
                f"{result['max_rel_error']:.3g} (<= {INT8_RTOL:g})")
    text = (f"cosine {result['cosine']:.4f} (>= {INT8_MIN_COSINE}), elements within {INT8_CLOSE:g} of the output's "
            f"scale {result['close_share']:.2%} (>= {result['min_close_share']:.0%})")
    if result.get("position_agreement") is not None:
        text += f", per-position agreement {result['position_agreement']:.1%} (>= {result['min_agreement']:.0%})"
    return f"{result.get('kind', 'output')}: {text}"


def output_kind(reference: Sequence[np.ndarray]) -> str:
    """What the first output holds: "class scores" (batch, classes), "sequence of class scores" (batch, positions,
    classes) whose rows sum to 1, or "dense map" (anything else)."""
    a = np.asarray(reference[0])
    if a.ndim == 2 and a.shape[1] >= 2:
        return "class scores"
    if a.ndim == 3 and a.shape[2] >= 2 and np.allclose(np.asarray(a, np.float64).sum(axis=2), 1.0, atol=1e-3):
        return "sequence of class scores"
    return "dense map"


def position_agreement(reference: Sequence[np.ndarray], candidate: Sequence[np.ndarray]) -> Optional[float]:
    """Share of decisive positions (`decisive_rows`) whose arg-max agrees when the first output is a sequence of
    class scores (batch, positions, classes) whose rows sum to 1; else None."""
    a, b = np.asarray(reference[0], np.float64), np.asarray(candidate[0], np.float64)
    if output_kind(reference) != "sequence of class scores" or a.shape != b.shape:
        return None
    return _agreement(a.reshape(-1, a.shape[2]), b.reshape(-1, b.shape[2]))


def validate_onnx(source: ModelFiles, onnx_file: Path, inputs: Sequence[np.ndarray], int8: bool, real: bool,
                  runtimes: Sequence[str] = ("onnxruntime", "openvino")) -> Check:
    """An ONNX file run by ONNX Runtime (and OpenVINO, reported) against Paddle Inference on the same inputs.

    FP32: relative error < 1e-4. INT8 (QDQ vs Paddle's fake-quant graph): `compare_int8`, by what the output
    holds. Every runtime that runs the file must pass; one that cannot run it (not installed) is recorded.
    """

    contract = detection_contract(read_program(source))
    if contract is not None:
        return validate_onnx_detections(source, onnx_file, inputs, contract, int8, runtimes)
    reference = paddle_outputs(source, inputs)
    extra: Dict[str, Any] = {"inputs": f"{len(inputs[0])} {'real images' if real else 'random inputs'}"}
    verdict: Optional[Dict[str, Any]] = None
    failed: List[str] = []
    for runtime in runtimes:
        try:
            outputs = OnnxSession(onnx_file, runtime, threads=1).run(list(inputs))
        except (ImportError, ExportError, ModelError) as exc:
            if runtime == "onnxruntime":
                raise ValidationError(f"ONNX Runtime cannot run {onnx_file.name}: {exc}") from exc
            extra[runtime] = {"error": str(exc)[:300]}
            continue
        if int8:
            result = compare_int8(reference, outputs, real)
        else:
            err = max_rel_error(reference, outputs)
            result = {"passed": err < ONNX_FP32_RTOL, "max_rel_error": err, "tolerance": ONNX_FP32_RTOL,
                      "top1_agreement": top1_agreement(reference, outputs)}
        extra[runtime] = result
        if not result["passed"]:
            failed.append(runtime)
        if runtime == "onnxruntime":
            verdict = result
    assert verdict is not None
    what = "top-1 agreement {:.1%}, ".format(verdict["top1_agreement"]) if verdict.get("top1_agreement") is not None else ""
    detail = (f"ONNX Runtime vs Paddle Inference ({extra['inputs']}): {what}"
              f"relative error {verdict['max_rel_error']:.3g}")
    # passed only when every runtime that ran it passed: a file one of them runs wrong is not a validated file
    check = Check("outputs", not failed, detail, verdict["max_rel_error"], verdict["tolerance"], extra=extra)
    if not check.passed:
        names = {"onnxruntime": "ONNX Runtime", "openvino": "OpenVINO"}
        why = "; ".join(f"{names[r]}: " + (int8_limits(extra[r]) if int8 else
                                          f"relative error {extra[r]['max_rel_error']:.3g} (< {ONNX_FP32_RTOL:g})")
                        for r in failed)
        raise ValidationError(f"{onnx_file.name} run by {' and '.join(names[r] for r in failed)} differs from Paddle "
                              f"Inference ({extra['inputs']}): {why}",
                              hint="Nothing was written; report the model with the command that made it.")
    return check


def real_detection_inputs(recipe: Any, info: ProgramInfo, count: int = 8,
                          data: Optional[Path] = None) -> Optional[List[np.ndarray]]:
    """The first `count` validation images of a detection entry (name or recipe), fed as the model's contract
    says at its declared size with the entry's preprocessing; None when the data is not at hand."""
    contract = detection_contract(info)
    if contract is None or (not recipe and data is None):
        return None
    from zoo.data.coco import CocoDataset
    from zoo.evaluate.detection import real_feeds
    from zoo.tasks import get_task

    try:
        if recipe:  # an entry: its data (bundled for digits, else `data`) and its preprocessing
            entry = load_registry().get(str(recipe.get("name") if isinstance(recipe, dict) else recipe))
            if entry.task != "detection":
                return None
            task = get_task(entry.task)
            folder, split, pre = task.resolve_data(entry, data), entry.dataset.split, entry.preprocess
        else:  # a plain folder: the COCO folder given, the task's folder convention
            task = get_task("detection")
            folder, split, pre = Path(data), task.folder_split, task.folder_preprocess()  # type: ignore[arg-type]
        dataset = CocoDataset(folder, split, count)
        feeds = real_feeds(dataset, contract, pre, _image_side(info, None), count)
    except (DataError, UnknownNameError, ModelError):
        return None
    return [np.ascontiguousarray(feeds[s.name].astype(s.dtype)) for s in info.inputs]


def real_images(recipe: Any, input_size: Optional[int], count: int = 64,
                data: Optional[Path] = None) -> Optional[np.ndarray]:
    """Up to `count` preprocessed validation images of an entry (name or recipe), when its data is at hand.

    The digits data ships with the zoo; other data needs `data` (an ImageNet-layout folder).
    """
    if not recipe:
        return None
    from zoo.data.imagenet import ImageListDataset, iterate_batches
    from zoo.data.transforms import eval_transform

    name = recipe.get("name") if isinstance(recipe, dict) else recipe  # a reproduce report carries the recipe
    try:
        entry = load_registry().get(str(name))
        folder = resolve_data(entry, data)
        size = input_size or entry.headline().input_size
        dataset = ImageListDataset(folder, entry.dataset.split, eval_transform(entry.preprocess, size), count)
        images = [np.asarray(x, dtype=np.float32) for x, _ in iterate_batches(dataset, count, 0)]
    except (DataError, UnknownNameError, ModelError):
        return None
    return np.ascontiguousarray(np.concatenate(images)) if images else None

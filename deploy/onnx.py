"""ONNX: convert a Paddle inference model to ONNX (QDQ for INT8) and run it with ONNX Runtime or OpenVINO.

paddle2onnx 1.3 reads FP32 programs and the `quantize_linear`/`dequantize_linear` INT8 format; it aborts
(SIGABRT) on the legacy fake-quant format (`fake_quantize_range_abs_max` + `fake_channel_wise_dequantize_max_abs`),
so `legacy_to_qdq` first rewrites such a program into the format it reads, with the same scales. The
converter always runs in a subprocess: an abort there becomes a ConverterError naming the ops it refused.
"""
from __future__ import annotations

import re
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from zoo.deploy.inference import rewrite_model
from zoo.deploy.onnx_nms import NMS_OPS, append_nms, cut_before_nms, returned_as
from zoo.deploy.signal_stack import kept_signal_stack
from zoo.program import ProgramInfo, read_program, read_program_desc
from zoo.errors import ConverterError, ExportError, ModelError, ZooError
from zoo.modelfiles import ModelFiles

DEFAULT_OPSET = 13
MIN_OPSET = 10  # QuantizeLinear/DequantizeLinear appear in opset 10; per-channel scales need 13
MAX_OPSET = 19  # the newest paddle2onnx 1.3 writes
CONVERT_TIMEOUT_S = 900
ONNX_RUNTIMES = ("onnxruntime", "openvino")

# The legacy formats. Frozen PTQ: activations quantized to integer values, weights stored as integers,
# compute ops followed by a dequantize op that multiplies both scales back in. QAT: quantize-dequantize
# ops on activations (stored scale) and on float weights (scale computed from the weight at run time).
LEGACY_ACT_QUANT = ("fake_quantize_range_abs_max", "fake_quantize_moving_average_abs_max",
                    "fake_quantize_dequantize_moving_average_abs_max")
LEGACY_CHANNEL_DEQUANT = "fake_channel_wise_dequantize_max_abs"
LEGACY_TENSOR_DEQUANT = "fake_dequantize_max_abs"
LEGACY_WEIGHT_QDQ = "fake_channel_wise_quantize_dequantize_abs_max"
_WEIGHT_SLOT = {"conv2d": "Filter", "depthwise_conv2d": "Filter", "conv2d_transpose": "Filter",
                "mul": "Y", "matmul": "Y", "matmul_v2": "Y"}


def is_legacy_quant(info: ProgramInfo) -> bool:
    """Whether the program uses the legacy fake-quant ops that paddle2onnx refuses."""
    return any(op.type.startswith("fake_") for op in info.ops)


def versions() -> Dict[str, str]:
    """Versions of the ONNX toolchain installed here (missing packages left out)."""
    from importlib import metadata as importlib_metadata

    found = {}
    for name in ("paddle2onnx", "onnx", "onnxruntime", "openvino"):
        try:
            found[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            continue
    return found


RUNTIME_FAILURE_HINT = ("The ONNX file was written; this runtime cannot run it. Use another runtime "
                        "(`zoo matrix` shows which serve this model), or report the model with the command.")


def cause_line(text: str) -> str:
    """The line of a runtime's multi-line exception that says what is wrong (OpenVINO puts it after a stack of
    "Exception from src/..." lines)."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    meaningful = [ln for ln in lines if not ln.startswith("Exception from ")]
    return (meaningful[-1] if meaningful else lines[-1] if lines else "no message")[:300]


def require(package: str) -> None:
    """ExportError with the install hint when an ONNX toolchain package is missing."""
    import importlib.util

    if importlib.util.find_spec(package) is None:
        raise ExportError(f"{package} is not installed in this environment",
                          hint="Run `make setup` (it installs paddle2onnx, onnx, onnxruntime and openvino).")


# ---------------------------------------------------------------------------------------------------------------
# legacy fake-quant -> quantize_linear / dequantize_linear


def legacy_to_qdq(source: ModelFiles, out_dir: Path) -> ModelFiles:
    """Rewrite a legacy fake-quant program as a quantize_linear/dequantize_linear one with the same scales.

    Activation `fake_quantize_*` ops become a quantize_linear + dequantize_linear pair on the same scale;
    each `fake_channel_wise_dequantize_max_abs` after a conv/matmul becomes a dequantize_linear on that
    op's (integer-valued) weight with the weight's per-channel scales. The result computes the same
    function in real units instead of integer units. Written as out_dir/inference.pdmodel + .pdiparams.
    """
    return rewrite_model(source, out_dir, "rewrite the fake-quant program of", _rewrite_legacy)


def image_sized(source: ModelFiles, out_dir: Path, hw: Tuple[int, int]) -> ModelFiles:
    """The program with its image input declared H x W and every shape after it inferred again.

    paddle2onnx writes the shapes a program declares into the ONNX graph, so a file converted from a model saved at
    one size refuses another; a model scored at several sizes (the detectors) is converted once per size, as
    `zoo export` would write it for that size."""

    def resize(program: Any, scope: Any) -> None:
        block = program.global_block()
        image = next(s for s in read_program(source).inputs if len(s.shape) == 4)
        block.var(image.name).desc.set_shape(list(image.shape[:2]) + list(hw))
        for op in block.ops:
            if op.type not in ("feed", "fetch"):
                op.desc.infer_shape(block.desc)

    return rewrite_model(source, out_dir, f"declare a {hw[0]}x{hw[1]} input for", resize)


def qdq_for_onnx(source: ModelFiles, out_dir: Path) -> ModelFiles:
    """A `quantize_linear`-format INT8 program as ONNX should get it: batch norms as float per-channel affines
    (`_batch_norms_as_affine`) and only the observer pairs that keep ops in INT8, on the next quantization's grid
    (`_settle_observers`).
    """

    def rewrite(program: Any, scope: Any) -> None:
        block = program.global_block()
        _settle_observers(block)
        _batch_norms_as_affine(block, scope)
        program._sync_with_cpp()

    return rewrite_model(source, out_dir, "prepare the quantized ops of", rewrite)


def _is_observer_pair(block: Any, i: int) -> bool:
    q, dq = block.ops[i], block.ops[i + 1]
    return (q.type == "quantize_linear" and dq.type == "dequantize_linear" and bool(_attr(q, "only_observer", False))
            and dq.input("X")[0] == q.output("Y")[0])


def _next_quantizations(block: Any, var: str, start: int) -> List[Any]:
    """The quantize_linear ops (not observers) that `var` (written by op `start` - 1) reaches through any ops but
    float compute ops (a conv or matmul with no quantized input computes in float)."""
    found, pending, seen = [], [var], set()
    while pending:
        name = pending.pop()
        seen.add(name)
        for op in block.ops[start:]:
            if name not in op.input_arg_names:
                continue
            if op.type == "quantize_linear" and not _attr(op, "only_observer", False):
                found.append(op)
            elif op.type not in _WEIGHT_SLOT and op.type != "fetch":
                pending.extend(v for v in op.output_arg_names if v not in seen and not block.var(v).persistable)
    return found


def _settle_observers(block: Any) -> None:
    """Keep only the observer quantize/dequantize pairs (`only_observer`) that keep ops in INT8, on the grid of the
    quantization that follows them.

    Paddle passes an observer's tensor through; ONNX rounds it to 8 bits. paddle2onnx keeps an op in INT8 only where
    its inputs and output have scales, so a pair is needed wherever its tensor goes on to an INT8 op. Its own scale
    (the op's output range) would round the tensor on one grid and the next op's quantization on another; taking the
    next quantization's scale instead makes the first rounding the one Paddle's graph does (exactly so through
    ReLU, pooling, reshapes and concats, which map that grid onto itself). Dropped are pairs whose tensor reaches
    no INT8 op (a detector head's output on its way to yolo_box, a classifier's logits on their way out: there the
    rounding would only cost accuracy, 5.6 box AP on the bundled PTQ detector), and pairs read by a batch norm,
    which reads the observed tensor itself (rounded per tensor, then scaled per channel, it would lose its dead
    channels' precision)."""
    i = 0
    while i + 1 < len(block.ops):
        if not _is_observer_pair(block, i):
            i += 1
            continue
        q, dq = block.ops[i], block.ops[i + 1]
        observed, out = q.input("X")[0], dq.output("Y")[0]
        consumers = [c for c in block.ops[i + 2:] if out in c.input_arg_names]
        into_batch_norm = bool(consumers) and all(c.type == "batch_norm" for c in consumers)
        following = _next_quantizations(block, out, i + 2)
        if into_batch_norm or not following:
            for consumer in consumers:
                consumer._rename_input(out, observed)
            block._remove_op(i + 1)
            block._remove_op(i)
            continue
        scales = {(f.input("Scale")[0], f.input("ZeroPoint")[0]) for f in following}
        if len(scales) == 1:
            scale, zero_point = scales.pop()
            for op in (q, dq):
                op._rename_input(op.input("Scale")[0], scale)
                op._rename_input(op.input("ZeroPoint")[0], zero_point)
        i += 2


def _attr(op: Any, name: str, default: Any) -> Any:
    return op.attr(name) if op.has_attr(name) else default


def _rewrite_legacy(program: Any, scope: Any) -> None:
    import paddle

    block = program.global_block()
    place = paddle.CPUPlace()
    zero_points: Dict[str, str] = {}

    def zero_point(for_var: str) -> str:
        name = f"{for_var}@zero_point"
        if name not in zero_points:
            block.create_var(name=name, shape=[1], dtype="int32", persistable=True)
            scope.var(name).get_tensor().set(np.zeros([1], dtype=np.int32), place)
            zero_points[name] = name
        return name

    unknown = sorted({op.type for op in block.ops if op.type.startswith("fake_")
                      and op.type not in LEGACY_ACT_QUANT + (LEGACY_CHANNEL_DEQUANT, LEGACY_TENSOR_DEQUANT, LEGACY_WEIGHT_QDQ)})
    if unknown:
        raise ExportError(f"the fake-quant op(s) {', '.join(unknown)} have no quantize_linear equivalent here",
                          hint="Quantize the FP32 model again with `zoo quantize --onnx-format`, then export that.")
    quantized_acts: Dict[str, Tuple[str, int]] = {}  # var holding integer values -> its scale var, bits
    i = 0
    while i < len(block.ops):
        op = block.ops[i]
        if op.type in LEGACY_ACT_QUANT:
            x, scale, out = op.input("X")[0], op.input("InScale")[0], op.output("Out")[0]
            bits, round_type = _attr(op, "bit_length", 8), _attr(op, "round_type", 1)
            ref = block.var(out)
            held = block.create_var(name=f"{out}@int", shape=ref.shape, dtype=ref.dtype)
            zp = zero_point(scale)
            block._remove_op(i)
            block._insert_op(i, type="quantize_linear", inputs={"X": [x], "Scale": [scale], "ZeroPoint": [zp]},
                             outputs={"Y": [held]}, attrs={"bit_length": bits, "quant_axis": -1,
                                                           "round_type": round_type})
            block._insert_op(i + 1, type="dequantize_linear",
                             inputs={"X": [held], "Scale": [scale], "ZeroPoint": [zp]},
                             outputs={"Y": [out]}, attrs={"bit_length": bits, "quant_axis": -1,
                                                          "round_type": round_type})
            quantized_acts[out] = (scale, bits)
            i += 2
            continue
        if op.type in (LEGACY_CHANNEL_DEQUANT, LEGACY_TENSOR_DEQUANT):
            i = _rewrite_dequant(block, i, scope, quantized_acts, zero_point)
            continue
        if op.type == LEGACY_WEIGHT_QDQ:
            _rewrite_weight_qdq(block, i, scope, zero_point)
        i += 1
    _batch_norms_as_affine(block, scope)
    _add_observers(block, scope, zero_point)
    _settle_observers(block)
    program._sync_with_cpp()


def _batch_norms_as_affine(block: Any, scope: Any) -> None:
    """Each inference batch_norm becomes x * k + b per channel (k = scale / sqrt(var + eps), b = bias - mean * k),
    kept in float as in Paddle's fake-quant graph.

    paddle2onnx would fold a batch_norm into the quantized conv before it: the conv's weight scales grow by k
    and its bias becomes an int32 at the unit input scale x weight scale. A channel whose training variance was
    0 (a dead input channel) has k = scale / sqrt(eps), about 300, so its bias unit grows to about 1: on the
    digits PTQ model such channels alone moved the first depthwise layer's outputs by up to 0.27 and, compounded,
    cost ONNX Runtime 45 points of top-1.

    The price: paddle2onnx keeps a conv in INT8 only where its output has a scale, and a conv read by a float
    affine has none, so ONNX Runtime and OpenVINO run these convs in float (the fake-quant graph's numbers, not INT8
    speed). Folding the batch norm into the per-channel weight scales instead (|k| into the scale, its sign into the
    integer weights, the shift as the bias) makes 27 of the 28 convs of the digits QAT classifier INT8 and computes
    the fake-quant graph's function (98% top-1 agreement with ONNX Runtime's graph optimizations off), but on an
    AVX2 CPU without VNNI both runtimes' u8 x s8 INT8 kernels saturate on full-range 8-bit weights (46% agreement);
    only 7-bit weights avoid that, which is another model (README, "What the INT8 ONNX files run in INT8").
    """
    import paddle

    place = paddle.CPUPlace()
    i = 0
    while i < len(block.ops):
        op = block.ops[i]
        if op.type != "batch_norm" or _attr(op, "data_layout", "NCHW") != "NCHW":
            i += 1
            continue
        x, y = op.input("X")[0], op.output("Y")[0]
        stats = {k: np.array(scope.find_var(op.input(k)[0]).get_tensor(), dtype=np.float64)
                 for k in ("Scale", "Bias", "Mean", "Variance")}
        k = stats["Scale"] / np.sqrt(stats["Variance"] + float(_attr(op, "epsilon", 1e-5)))
        shift = stats["Bias"] - stats["Mean"] * k
        params = []
        for suffix, values in (("bn_scale", k), ("bn_shift", shift)):
            var = block.create_var(name=f"{y}@{suffix}", shape=[len(values)], dtype="float32", persistable=True)
            scope.var(var.name).get_tensor().set(values.astype(np.float32), place)
            params.append(var.name)
        ref = block.var(y)
        scaled = block.create_var(name=f"{y}@scaled", shape=ref.shape, dtype=ref.dtype)
        threshold = _attr(op, "out_threshold", None)
        block._remove_op(i)
        block._insert_op(i, type="elementwise_mul", inputs={"X": [x], "Y": [params[0]]}, outputs={"Out": [scaled]},
                         attrs={"axis": 1})
        add = block._insert_op(i + 1, type="elementwise_add", inputs={"X": [scaled], "Y": [params[1]]},
                               outputs={"Out": [y]}, attrs={"axis": 1})
        if threshold:
            add._set_attr("out_threshold", float(threshold))
        i += 2


def _add_observers(block: Any, scope: Any, zero_point: Any) -> None:
    """Observer quantize/dequantize pairs (pass-through in Paddle) carrying the legacy `out_threshold`s.

    paddle2onnx places ONNX QDQ nodes only around ops whose outputs have a scale too; the quantize_linear
    format records them as `only_observer` pairs, the legacy one as the ops' `out_threshold` attributes.
    """
    import paddle

    place = paddle.CPUPlace()
    fetched = {v for op in block.ops if op.type == "fetch" for v in op.input_arg_names}
    i = 0
    while i < len(block.ops):
        op = block.ops[i]
        threshold = op.attr("out_threshold") if op.has_attr("out_threshold") else None
        # the outputs later ops read (batch_norm also writes its saved statistics, read by nothing)
        outs = [v for v in op.output_arg_names if not block.var(v).persistable
                and any(v in c.input_arg_names for c in block.ops[i + 1:])]
        consumers = [c for c in block.ops[i + 1:] if outs and outs[0] in c.input_arg_names]
        # an output the program returns (through the identity scales a save puts before each fetch): rounding it
        # would change what the model returns, as no Paddle kernel does
        # ... a conv's output read by batch_norm: paddle2onnx folds the batch norm into the conv, and the observer's
        # range (the conv's, before the batch norm) would then clip the folded output
        # ... and an output that is quantized already (its fake-quant op, rewritten above as a quantize_linear
        # pair with the activation's own scale): a second pair on another grid would round it twice
        if (not threshold or op.type.endswith("quantize_linear") or len(outs) != 1
                or returned_as(block, outs[0]) in fetched
                or any(c.type in LEGACY_ACT_QUANT + ("batch_norm", "quantize_linear") for c in consumers)
                or any(v.endswith("@bn_scale") for c in consumers for v in c.input_arg_names)):
            i += 1
            continue
        out = outs[0]
        ref = block.var(out)
        scale = block.create_var(name=f"{out}@out_scale", shape=[1], dtype="float32", persistable=True)
        scope.var(scale.name).get_tensor().set(np.array([threshold], dtype=np.float32), place)
        held = block.create_var(name=f"{out}@observed_int", shape=ref.shape, dtype=ref.dtype)
        observed = block.create_var(name=f"{out}@observed", shape=ref.shape, dtype=ref.dtype)
        zp = zero_point(scale.name)
        attrs = {"bit_length": 8, "quant_axis": -1, "only_observer": True}
        for consumer in block.ops[i + 1:]:
            if out in consumer.input_arg_names:
                consumer._rename_input(out, observed.name)
        block._insert_op(i + 1, type="quantize_linear", inputs={"X": [out], "Scale": [scale], "ZeroPoint": [zp]},
                         outputs={"Y": [held]}, attrs=attrs)
        block._insert_op(i + 2, type="dequantize_linear", inputs={"X": [held], "Scale": [scale], "ZeroPoint": [zp]},
                         outputs={"Y": [observed]}, attrs=attrs)
        i += 3


def _rewrite_weight_qdq(block: Any, index: int, scope: Any, zero_point: Any) -> None:
    """A QAT weight quantize-dequantize op becomes integer weights + dequantize_linear with the same scales.

    The scale is what the op computes at run time: the absolute maximum of each channel of the weight.
    """
    import paddle

    op = block.ops[index]
    weight, out = op.input("X")[0], op.output("Out")[0]
    bits, axis, round_type = _attr(op, "bit_length", 8), _attr(op, "quant_axis", 0), _attr(op, "round_type", 1)
    tensor = scope.find_var(weight).get_tensor()
    values = np.array(tensor, dtype=np.float32)
    qmax = float(2 ** (bits - 1) - 1)
    scale = np.abs(values).max(axis=tuple(d for d in range(values.ndim) if d != axis)).astype(np.float32)
    shape = [1] * values.ndim
    shape[axis] = -1
    ratio = values / np.where(scale == 0, 1.0, scale).reshape(shape) * qmax
    # round_type 0 rounds half to even, 1 half away from zero (Paddle's two modes)
    rounded = np.round(ratio) if round_type == 0 else np.sign(ratio) * np.floor(np.abs(ratio) + 0.5)
    place = paddle.CPUPlace()
    tensor.set(np.clip(rounded, -qmax, qmax).astype(np.float32), place)
    scale_var = block.create_var(name=f"{weight}@channel_scale", shape=[len(scale)], dtype="float32", persistable=True)
    scope.var(scale_var.name).get_tensor().set(scale, place)
    block._remove_op(index)
    block._insert_op(index, type="dequantize_linear",
                     inputs={"X": [weight], "Scale": [scale_var], "ZeroPoint": [zero_point(scale_var.name)]},
                     outputs={"Y": [out]}, attrs={"bit_length": bits, "quant_axis": axis})


def _rewrite_dequant(block: Any, index: int, scope: Any, quantized_acts: Dict[str, Tuple[str, int]], zero_point: Any) -> int:
    """Move a dequantize from a compute op's output onto its weight; returns the next op index.

    `fake_channel_wise_dequantize_max_abs` carries the weight's per-channel scales (and the activation's);
    `fake_dequantize_max_abs` (per-tensor PTQ archives) carries the activation scale and
    max_range = act_range x weight_range / weight_scale, from which the weight's one scale is recovered."""
    import paddle

    op = block.ops[index]
    x, out = op.input("X")[0], op.output("Out")[0]
    per_channel = op.type == LEGACY_CHANNEL_DEQUANT
    scales = op.input("Scales") if per_channel else [None, op.input("Scale")[0]]
    producer_index = next((j for j in range(index - 1, -1, -1) if x in block.ops[j].output_arg_names), None)
    producer = block.ops[producer_index] if producer_index is not None else None
    slot = _WEIGHT_SLOT.get(producer.type) if producer is not None else None
    if producer is None or slot is None:
        raise ExportError(f"{op.type} on {x!r} does not follow a conv or matmul op",
                          hint="Quantize the FP32 model again with `zoo quantize --onnx-format`, then export that.")
    acts = [v for v in producer.input_arg_names if v in quantized_acts]
    if len(scales) == 2:
        # the activation scale must be the one its quantize op used, or the rewrite would change the result
        if not acts or quantized_acts[acts[0]][0] != scales[1]:
            raise ExportError(f"{producer.type} -> {op.type}: the activation scale {scales[1]!r} "
                              "is not the scale its input was quantized with",
                              hint="Quantize the FP32 model again with `zoo quantize --onnx-format`, then export that.")
    weight = producer.input(slot)[0]
    if per_channel:
        weight_scale, bits, axis = scales[0], list(_attr(op, "quant_bits", [8]))[0], _attr(op, "quant_axis", 0)
    else:
        act_range = float(2 ** (quantized_acts[acts[0]][1] - 1) - 1)
        value = act_range * 127.0 / float(op.attr("max_range"))
        weight_scale, bits, axis = f"{weight}@tensor_scale", 8, -1
        block.create_var(name=weight_scale, shape=[1], dtype="float32", persistable=True)
        scope.var(weight_scale).get_tensor().set(np.array([value], dtype=np.float32), paddle.CPUPlace())
    ref = block.var(weight)
    dequantized = block.create_var(name=f"{weight}@dequantized", shape=ref.shape, dtype=ref.dtype)
    block._insert_op(producer_index, type="dequantize_linear",
                     inputs={"X": [weight], "Scale": [weight_scale], "ZeroPoint": [zero_point(weight_scale)]},
                     outputs={"Y": [dequantized]}, attrs={"bit_length": bits, "quant_axis": axis})
    producer._rename_input(weight, dequantized.name)
    producer._rename_output(x, out)  # the compute op now yields real units: its consumers read it directly
    block._remove_op(index + 1)  # the dequantize op, shifted by the insertion
    return index + 1


# ---------------------------------------------------------------------------------------------------------------
# paddle2onnx


_UNSUPPORTED_RE = re.compile(r"operators not supported yet, including\s+([A-Za-z0-9_,\s]+)")


def parse_unsupported(output: str) -> List[str]:
    """The op types paddle2onnx says it cannot convert."""
    found: List[str] = []
    for m in _UNSUPPORTED_RE.finditer(output):
        for name in m.group(1).replace("\n", ",").split(","):
            name = name.strip()
            if name and name not in found:
                found.append(name)
    return found


_OPSET_RE = re.compile(r"operator: (\w+), requires opset_version >= (\d+)")


def _reason(text: str, lines: int = 6) -> str:
    """paddle2onnx's own account of a failure (its log lines), without the C++ stack that follows."""
    kept = [ln.strip() for ln in text.splitlines() if ("[ERROR]" in ln or "Due to" in ln or "Please" in ln
                                                       or "Oops" in ln or "Error" in ln) and "Traceback" not in ln]
    return "\n".join("  " + ln[:300] for ln in kept[-lines:])


def paddle_to_onnx(files: ModelFiles, out_file: Path, opset: int = DEFAULT_OPSET, auto_opset: bool = False) -> Path:
    """Run paddle2onnx on `files` in a subprocess; ConverterError naming the unsupported ops on failure.

    `auto_opset` lets paddle2onnx raise the opset when an op needs a later one (hard_swish needs 14).
    """
    require("paddle2onnx")
    if opset < MIN_OPSET:
        raise ExportError(f"--opset {opset} is below {MIN_OPSET}, the first with QuantizeLinear/DequantizeLinear",
                          hint=f"Use --opset {DEFAULT_OPSET} (the default) or higher.")
    if files.params_file is None:
        raise ExportError(f"{files.folder} keeps one file per parameter; paddle2onnx reads a combined params file",
                          hint="Export it with `zoo export MODEL --target inference` first, then export that folder.")
    out_file = out_file.resolve()  # the converter runs in the output folder: no path may stay relative
    argv = [sys.executable, "-c", "from paddle2onnx.command import main; main()",
            "--model_dir", str(files.folder.resolve()), "--model_filename", files.model_file.name,
            "--params_filename", files.params_file.name, "--save_file", str(out_file),
            "--opset_version", str(opset), "--enable_onnx_checker", "True", "--enable_auto_update_opset", str(auto_opset),
            "--deploy_backend", "onnxruntime"]
    try:
        proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace",
                              timeout=CONVERT_TIMEOUT_S, cwd=str(out_file.parent))
    except subprocess.TimeoutExpired as exc:
        raise ConverterError(f"paddle2onnx ran past {CONVERT_TIMEOUT_S} s on {files.folder}") from exc
    output = proc.stdout or ""
    unsupported = parse_unsupported(output)
    version = versions().get("paddle2onnx", "?")
    if unsupported:
        raise ConverterError(f"paddle2onnx {version} does not support {len(unsupported)} op type(s) of this model: "
                             f"{', '.join(unsupported)}",
                             hint="These ops have no ONNX converter; change the model to avoid them, or deploy it "
                                  "with --target inference.")
    needs = _OPSET_RE.findall(output)
    if needs and not auto_opset and (proc.returncode != 0 or not out_file.is_file()):
        wanted = max(int(n) for _, n in needs)
        raise ConverterError(f"paddle2onnx {version}: {', '.join(sorted({op for op, _ in needs}))} needs opset {wanted} or "
                             f"later, --opset {opset} was asked", hint=f"Pass --opset {wanted}, or leave --opset out.")
    if proc.returncode != 0 or not out_file.is_file():
        status = (f"crashed ({signal.Signals(-proc.returncode).name})" if proc.returncode < 0
                  else f"failed (exit status {proc.returncode})" if proc.returncode else "wrote no file")
        raise ConverterError(f"paddle2onnx {version} {status} converting {files.folder}\n" + _reason(output),
                             hint="Run it again with ZOO_DEBUG=1 and report the model; `--target inference` "
                                  "deploys it without conversion.")
    return out_file


def onnx_opset(path: Path) -> int:
    """The default-domain opset an ONNX file declares."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return max((int(o.version) for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)


def onnx_ops(path: Path) -> Dict[str, int]:
    """Counts of the ONNX op types in a model file."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    counts: Dict[str, int] = {}
    for node in model.graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return dict(sorted(counts.items()))


@dataclass
class OnnxConversion:
    """One ONNX file and how it was made."""

    path: Path
    precision: str
    rewritten_legacy: bool
    ops: Dict[str, int]
    opset: int


def export_onnx(files: ModelFiles, out_file: Path, workdir: Path, opset: Optional[int] = None,
                info: Optional[ProgramInfo] = None) -> OnnxConversion:
    """Convert `files` to `out_file`; a legacy fake-quant program is rewritten under `workdir` first.

    Without `opset`, the default (13) is raised where an op needs a later one; an explicit one is kept.
    """
    info = info if info is not None else read_program(files)
    nms = None
    if set(info.op_types) & set(NMS_OPS):
        # cut first: the INT8 rewrites below then see the boxes and scores as what the program returns
        files, nms = cut_before_nms(files, workdir / f"{out_file.stem}-cut")
    rewritten = is_legacy_quant(info)
    if rewritten:
        convert_from = legacy_to_qdq(files, workdir / f"{out_file.stem}-qdq")
    elif info.is_int8:
        convert_from = qdq_for_onnx(files, workdir / f"{out_file.stem}-qdq")
    else:
        convert_from = files
    path = paddle_to_onnx(convert_from, out_file, opset or DEFAULT_OPSET, auto_opset=opset is None)
    if nms is not None:
        append_nms(path, nms)
    ops = onnx_ops(path)
    if info.is_int8 and not ops.get("QuantizeLinear") and not ops.get("DequantizeLinear"):
        scales = sum(o.type == "quantize_linear" and any(a.name == "only_observer" and a.b for a in o.attrs)
                     for o in read_program_desc(convert_from.model_file).blocks[0].ops)
        raise ExportError(f"{out_file.name}: the source is INT8 but paddle2onnx wrote every quantized op in float: it "
                          "keeps an op in INT8 only where its output has a scale too, and this program records "
                          f"{scales} such output scale(s) (out_threshold or observer)",
                          hint="Quantize the FP32 model with `zoo quantize` (it records them) and export that, or deploy "
                               "this one with --target inference (oneDNN INT8) or lite.")
    return OnnxConversion(out_file, info.precision, rewritten, ops, onnx_opset(path))


# ---------------------------------------------------------------------------------------------------------------
# runtimes


class OnnxSession:
    """An ONNX model loaded by ONNX Runtime or OpenVINO (CPU): a list of inputs in, a list of outputs out."""

    def __init__(self, path: Path, runtime: str = "onnxruntime", threads: int = 1, fp32_precision: bool = True) -> None:
        if runtime not in ONNX_RUNTIMES:
            raise ExportError(f"unknown ONNX runtime {runtime!r}", hint=f"Use one of {', '.join(ONNX_RUNTIMES)}.")
        require(runtime)
        self.runtime = runtime
        try:
            with kept_signal_stack():  # only loading moves it (measured: runs, new shapes included, do not)
                self._load(path, threads, fp32_precision)
        except ZooError:
            raise
        except Exception as exc:  # both runtimes raise their own exception types from C++
            raise ModelError(f"{runtime} cannot load {path.name}: {cause_line(str(exc))}",
                             hint=RUNTIME_FAILURE_HINT) from exc

    def _load(self, path: Path, threads: int, fp32_precision: bool) -> None:
        if self.runtime == "onnxruntime":
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            options.log_severity_level = 3
            self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            self.input_names = [i.name for i in self._session.get_inputs()]
        else:
            import openvino as ov

            core = ov.Core()
            config: Dict[str, Any] = {"INFERENCE_NUM_THREADS": threads, "NUM_STREAMS": 1}
            if fp32_precision:
                # OpenVINO runs FP32 models in bf16 on CPUs that have it unless told otherwise
                config["INFERENCE_PRECISION_HINT"] = "f32"
            self._compiled = core.compile_model(str(path), "CPU", config)
            self._request = self._compiled.create_infer_request()
            self.input_names = [p.any_name for p in self._compiled.inputs]

    def run(self, inputs: Sequence[np.ndarray]) -> List[np.ndarray]:
        """Run one batch; inputs in the model's input order."""
        if len(inputs) != len(self.input_names):
            raise ModelError(f"the model takes {len(self.input_names)} input(s) {self.input_names}, got {len(inputs)}")
        feed = {n: np.ascontiguousarray(a) for n, a in zip(self.input_names, inputs)}
        try:
            if self.runtime == "onnxruntime":
                return [np.asarray(o) for o in self._session.run(None, feed)]
            result = self._request.infer(feed)
            return [np.array(result[o], copy=True) for o in self._compiled.outputs]
        except Exception as exc:
            shapes = {k: tuple(v.shape) for k, v in feed.items()}
            raise ModelError(f"{self.runtime} failed on inputs of shape {shapes}: {cause_line(str(exc))}",
                             hint=RUNTIME_FAILURE_HINT) from exc

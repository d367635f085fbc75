"""Detectors on ONNX: the program is cut where its NMS starts, converted, and the NMS is appended as an ONNX graph
written here.

paddle2onnx's own mapping of `multiclass_nms3` breaks on some images in ONNX Runtime and holds a `Squeeze` of
dynamic rank that OpenVINO's CPU plug-in refuses; on INT8 programs the conversion fails outright. The program
up to the NMS (backbone, head, `yolo_box`) converts cleanly, so the zoo converts that and writes the suppression
itself from standard ops (TopK, NonMaxSuppression, Gather), for one image per run.

What the graph computes is Paddle's `multiclass_nms` / `multiclass_nms3` (CPU kernel), step by step:

1. per class, the boxes scoring above `score_threshold`, best first, at most `nms_top_k` of them;
2. greedy suppression per class: a box is dropped when its IoU with a kept box of its class exceeds
   `nms_threshold` (`nms_eta` = 1: a fixed threshold; an adaptive one is refused);
3. the `background_label` class dropped;
4. across classes, the `keep_top_k` best rows [label, score, x1, y1, x2, y2].

With `normalized` false Paddle measures a box as (x2 - x1 + 1) x (y2 - y1 + 1) pixels. Growing every box by half a
pixel on each side before ONNX's NonMaxSuppression (which measures x2 - x1) gives the same intersections and
areas, so the same IoU; the rows keep the original corners. The one difference: boxes less than a pixel apart
count as disjoint in Paddle and as barely overlapping here, an IoU far below any NMS threshold.

Rows come out best score first; Paddle groups them by label. Consumers of detections (COCO scoring, the box
matching of the export check) do not depend on row order.

Only standard ops of opset 10 are used, so the graph runs at any opset the exporter accepts.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, List, Optional, Sequence, Tuple

import numpy as np

from zoo.deploy.inference import rewrite_model
from zoo.errors import ExportError
from zoo.modelfiles import ModelFiles
from zoo.program import read_program

NMS_OPS = ("multiclass_nms", "multiclass_nms3")
PREFIX = "zoo_nms/"


@dataclass(frozen=True)
class NmsSpec:
    """One NMS op of a program: what it reads, what it wrote, and its settings."""

    boxes: str  # (1, M, 4) corners
    scores: str  # (1, C, M)
    rows: str  # its (K, 6) output
    counts: Optional[str]  # multiclass_nms3's per-image box count, where the program returns it
    outputs: Tuple[str, ...]  # the source program's outputs, in order
    score_threshold: float
    nms_top_k: int
    keep_top_k: int
    nms_threshold: float
    normalized: bool
    background_label: int


def find_nms(program: Any, outputs: Sequence[str]) -> NmsSpec:
    """The spec of the program's one NMS op; ExportError when the program has several, an adaptive threshold,
    or uses the NMS output for anything but returning it."""
    block = program.global_block()
    found = [op for op in block.ops if op.type in NMS_OPS]
    if len(found) != 1:
        raise ExportError(f"the detector has {len(found)} NMS ops; the ONNX export writes one",
                          hint="Deploy it with --target inference or lite.")
    op = found[0]
    eta = float(op.attr("nms_eta")) if op.has_attr("nms_eta") else 1.0
    if eta != 1.0:
        raise ExportError(f"{op.type} uses an adaptive threshold (nms_eta {eta:g}), which ONNX NonMaxSuppression "
                          "cannot compute", hint="Deploy it with --target inference or lite.")
    rows, counts = returned_as(block, op.output("Out")[0]), None
    if op.type == "multiclass_nms3" and op.output("NmsRoisNum"):
        counts = returned_as(block, op.output("NmsRoisNum")[0])
    made = set(op.output_arg_names) | {rows, counts}
    read_later = sorted({o.type for o in block.ops if o.type != "fetch" and made & set(o.input_arg_names)
                         and not _identity(o)})
    unsupported = [o for o in outputs if o in made and o not in (rows, counts)]
    if read_later or unsupported:
        raise ExportError(f"the detector uses its {op.type} output beyond returning the boxes "
                          f"({', '.join(read_later + unsupported)})", hint="Deploy it with --target inference or lite.")
    return NmsSpec(boxes=op.input("BBoxes")[0], scores=op.input("Scores")[0], rows=rows,
                   counts=counts if counts in outputs else None, outputs=tuple(outputs),
                   score_threshold=float(op.attr("score_threshold")), nms_top_k=int(op.attr("nms_top_k")),
                   keep_top_k=int(op.attr("keep_top_k")), nms_threshold=float(op.attr("nms_threshold")),
                   normalized=bool(op.attr("normalized")), background_label=int(op.attr("background_label")))


def _identity(op: Any) -> bool:
    """A `scale` by 1 plus 0: what Paddle's save puts before each returned variable."""
    return (op.type == "scale" and float(op.attr("scale")) == 1.0 and float(op.attr("bias")) == 0.0
            and not op.input("ScaleTensor"))


def returned_as(block: Any, var: str) -> str:
    """The name `var` is returned under: followed through the identity scales a save puts before a fetch."""
    while True:
        readers = [o for o in block.ops if var in o.input_arg_names]
        if len(readers) != 1 or not _identity(readers[0]):
            return var
        var = readers[0].output("Out")[0]


def cut_before_nms(source: ModelFiles, out_dir: Path) -> Tuple[ModelFiles, NmsSpec]:
    """The program up to its NMS: it returns the boxes and scores the NMS reads, then its other outputs."""
    specs: List[NmsSpec] = []
    outputs = read_program(source).outputs

    def cut(program: Any, scope: Any) -> List[str]:
        spec = find_nms(program, outputs)
        specs.append(spec)
        return [spec.boxes, spec.scores] + [o for o in spec.outputs if o not in (spec.rows, spec.counts)]

    written = rewrite_model(source, out_dir, "cut the NMS from", cut)
    return written, specs[0]


def append_nms(onnx_file: Path, spec: NmsSpec) -> None:
    """Rewrite `onnx_file` (the converted cut program) with the NMS graph on its boxes and scores; its outputs
    become the source program's, in order and by name."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(onnx_file))
    graph = model.graph
    passthrough = list(graph.output)[2:]  # cut_before_nms returns boxes, scores, then the other outputs
    if len(passthrough) != len(spec.outputs) - 1 - (spec.counts is not None):
        raise ExportError(f"the converted detector returns {len(graph.output)} outputs, not the NMS inputs and "
                          f"{len(spec.outputs)} others", hint="Report the model; --target inference deploys it.")
    in_boxes, in_scores = graph.output[0].name, graph.output[1].name
    taken = {o for n in graph.node for o in n.output} | {i.name for i in graph.input}
    nodes: List[Any] = []
    consts: List[Any] = []

    def const(name: str, values: Any, dtype: Any = np.int64) -> str:
        consts.append(numpy_helper.from_array(np.asarray(values, dtype=dtype), PREFIX + name))
        return PREFIX + name

    def node(op: str, inputs: Sequence[str], outputs: Sequence[str], **attrs: Any) -> List[str]:
        names = [PREFIX + o for o in outputs]
        nodes.append(helper.make_node(op, list(inputs), names, name=PREFIX + outputs[0], **attrs))
        return names

    # (1, C, M) scores and (1, M, 4) boxes of the one image -> (C, M) and (M, 4)
    zero = const("zero", 0)
    scores, = node("Gather", [in_scores, zero], ["scores"], axis=0)
    boxes, = node("Gather", [in_boxes, zero], ["boxes"], axis=0)
    # 1. per class the nms_top_k best scores: k = min(M, nms_top_k)
    shape, = node("Shape", [scores], ["shape"])
    m, = node("Slice", [shape, const("one_1d", [1]), const("two_1d", [2])], ["m"])
    k = _min_int64(node, const, m, spec.nms_top_k if spec.nms_top_k > -1 else None, "k")
    top_scores, top_index = node("TopK", [scores, k], ["top_scores", "top_index"], axis=1)
    class_boxes, = node("Gather", [boxes, top_index], ["class_boxes"], axis=0)  # (C, k, 4)
    measured = class_boxes
    if not spec.normalized:
        measured, = node("Add", [class_boxes, const("half_pixel", [-0.5, -0.5, 0.5, 0.5], np.float32)], ["measured"])
    # 2. suppression: each class is one "batch" of ONNX NMS, with its own top boxes
    nms_scores, = node("Reshape", [top_scores, const("c_1_k", [0, 1, -1])], ["nms_scores"])
    selected, = node("NonMaxSuppression", [measured, nms_scores, k, const("iou", [spec.nms_threshold], np.float32),
                                           const("score", [spec.score_threshold], np.float32)], ["selected"])
    label, = node("Gather", [selected, zero], ["label"], axis=1)  # (K,): the class ("batch") index
    pos, = node("Gather", [selected, const("two", 2)], ["pos"], axis=1)  # (K,): place among its class's top k
    # 3. the background class
    if spec.background_label >= 0:
        keep, = node("Not", [node("Equal", [label, const("background", spec.background_label)], ["is_bg"])[0]],
                     ["keep"])
        label, = node("Compress", [label, keep], ["label_fg"], axis=0)
        pos, = node("Compress", [pos, keep], ["pos_fg"], axis=0)
    flat, = node("Add", [node("Mul", [label, k], ["label_k"])[0], pos], ["flat"])  # (K,) * (1,): broadcast
    kept_scores, = node("Gather", [node("Reshape", [top_scores, const("minus_1", [-1])], ["all_scores"])[0], flat],
                        ["kept_scores"], axis=0)
    kept_boxes, = node("Gather", [node("Reshape", [class_boxes, const("n_4", [-1, 4])], ["all_boxes"])[0], flat],
                       ["kept_boxes"], axis=0)
    # 4. the keep_top_k best across classes
    count, = node("Shape", [kept_scores], ["count"])
    final_k = _min_int64(node, const, count, spec.keep_top_k if spec.keep_top_k > -1 else None, "final_k")
    best_scores, best = node("TopK", [kept_scores, final_k], ["best_scores", "best"], axis=0)
    best_labels, = node("Cast", [node("Gather", [label, best], ["best_labels_i"], axis=0)[0]], ["best_labels"],
                        to=TensorProto.FLOAT)
    column = const("column", [-1, 1])
    parts = [node("Reshape", [best_labels, column], ["label_col"])[0],
             node("Reshape", [best_scores, column], ["score_col"])[0],
             node("Gather", [kept_boxes, best], ["best_boxes"], axis=0)[0]]
    # the source's names where the converted graph has not used them (it names its own outputs anew)
    rows_name = spec.rows if spec.rows not in taken else PREFIX + "rows"
    nodes.append(helper.make_node("Concat", parts, [rows_name], name=PREFIX + "rows", axis=1))
    counts_name = None
    if spec.counts is not None:
        counts_name = spec.counts if spec.counts not in taken else PREFIX + "counts"
        nodes.append(helper.make_node("Cast", [final_k], [counts_name], name=PREFIX + "counts", to=TensorProto.INT32))

    graph.node.extend(nodes)
    graph.initializer.extend(consts)
    del graph.output[:]
    for name in spec.outputs:
        if name == spec.rows:
            graph.output.append(helper.make_tensor_value_info(rows_name, TensorProto.FLOAT, ["boxes", 6]))
        elif name == spec.counts:
            graph.output.append(helper.make_tensor_value_info(counts_name, TensorProto.INT32, [1]))
        else:
            graph.output.append(passthrough.pop(0))
    for value in graph.input:  # one image per run, declared: a batch of several is refused, not cut to its first
        dims = value.type.tensor_type.shape.dim
        if dims:
            dims[0].ClearField("dim_param")
            dims[0].dim_value = 1
    onnx.checker.check_model(model)
    onnx.save(model, str(onnx_file))


def run_per_image(run: Any, inputs: Sequence[np.ndarray], lods: List[List[List[int]]]) -> List[np.ndarray]:
    """`run` a detector's ONNX file one image at a time and join the results as Paddle returns a batch: (K, 6)
    detection rows end to end, with the per-image offsets as the rows' LoD (put in `lods`); per-image box counts
    (the 2.x `bbox_num`) end to end. An image with no box gives no row."""
    runs = [run([np.ascontiguousarray(x[i:i + 1]) for x in inputs]) for i in range(len(inputs[0]))]
    joined: List[np.ndarray] = []
    for j, first in enumerate(runs[0]):
        if np.ndim(first) != 2:
            joined.append(np.concatenate([np.asarray(r[j]).reshape(-1) for r in runs]))
            continue
        parts = [np.asarray(r[j]) if np.shape(r[j])[-1] == 6 else np.zeros((0, 6), np.float32) for r in runs]
        offsets = np.cumsum([0] + [len(p) for p in parts]).tolist()
        if not lods:
            lods.append([offsets])
        joined.append(np.concatenate(parts).astype(np.float32, copy=False))
    return joined


def has_nms_graph(onnx_file: Path) -> bool:
    """Whether an ONNX file ends in the NMS graph written here (it takes one image per run)."""
    import onnx

    model = onnx.load(str(onnx_file), load_external_data=False)
    return any(node.name.startswith(PREFIX) for node in model.graph.node)


def _min_int64(node: Any, const: Any, value: str, cap: Optional[int], name: str) -> str:
    """min(value, cap) of a 1-element int64 tensor (via float: ONNX's Min takes integers only from opset 12)."""
    if cap is None:
        return value
    from onnx import TensorProto

    as_float, = node("Cast", [value], [f"{name}_f"], to=TensorProto.FLOAT)
    low, = node("Min", [as_float, const(f"{name}_cap", [cap], np.float32)], [f"{name}_min"])
    return node("Cast", [low], [name], to=TensorProto.INT64)[0]

"""Paddle inference programs: read one without running it (ops, inputs, which ops are INT8), or open it to run.

`read_program` parses the `.pdmodel` protobuf (`ProgramDesc`) directly: cheap, no executor. `open_program`
loads a model (any layout zoo.modelfiles finds) into a fresh scope in static-graph mode, for code that
edits or runs the program; `static_mode` is the one way the zoo enters static-graph mode.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

from zoo.errors import ModelError
from zoo.modelcheck import dtype_name, load_inference_program, persistables, read_program_desc
from zoo.modelfiles import ModelFiles
from zoo.schema import QUANTIZABLE_OPS

# Ops that carry quantization in the two formats PaddleSlim writes.
QUANT_OP_PREFIXES = ("fake_quantize_", "fake_dequantize_", "fake_channel_wise_")
QUANT_OPS = ("quantize_linear", "dequantize_linear")
# Compute ops that PaddleSlim turns into INT8 (activation and weight both quantized).
QUANTIZABLE = QUANTIZABLE_OPS


@dataclass(frozen=True)
class Op:
    """One op of the main block: its type and its argument names."""

    type: str
    inputs: Dict[str, Tuple[str, ...]]
    outputs: Dict[str, Tuple[str, ...]]

    def input_vars(self) -> List[str]:
        return [v for args in self.inputs.values() for v in args]

    def output_vars(self) -> List[str]:
        return [v for args in self.outputs.values() for v in args]


@dataclass(frozen=True)
class InputSpec:
    name: str
    shape: Tuple[int, ...]  # -1 for a dynamic dimension
    dtype: str


@dataclass
class ProgramInfo:
    """What the zoo needs to know about an inference program."""

    ops: List[Op]
    inputs: List[InputSpec]
    outputs: List[str]
    quantized: List[str] = field(default_factory=list)  # types of the compute ops run in INT8, in program order

    @property
    def is_int8(self) -> bool:
        return any(is_quant_op(op.type) for op in self.ops)

    @property
    def op_types(self) -> List[str]:
        return sorted({op.type for op in self.ops})

    @property
    def precision(self) -> str:
        return "int8" if self.is_int8 else "fp32"


def is_quant_op(op_type: str) -> bool:
    """Whether `op_type` is a quantize/dequantize op of either PaddleSlim format."""
    return op_type in QUANT_OPS or op_type.startswith(QUANT_OP_PREFIXES)


def int8_typed_weights(desc: Any) -> List[str]:
    """Persistables declared int8 that a compute op reads as its weight: the `int/` model of PaddleSlim 1.x's
    quant-aware export (ConvertToInt8Pass), which Paddle Lite runs and Paddle Inference does not."""
    int8 = {p.name for p in persistables(desc) if dtype_name(p.dtype) == "int8"}
    used: List[str] = []
    for block in desc.blocks if int8 else ():
        for op in block.ops:
            if is_quant_op(op.type):
                continue
            for slot in op.inputs:
                used += [name for name in slot.arguments if name in int8 and name not in used]
    return used


def lite_only_error(files: ModelFiles, weights: Sequence[str]) -> ModelError:
    """The error for a model with int8-typed weights, naming the weights and where it can run."""
    shown = ", ".join(weights[:3]) + (f" and {len(weights) - 3} more" if len(weights) > 3 else "")
    sibling = Path(files.folder).parent / "float"
    where = f" or evaluate the float/ model beside it ({sibling})" if sibling.is_dir() else ""
    return ModelError(
        f"{files.folder} stores its weights as int8 ({shown}): it is the int/ model of a PaddleSlim 1.x "
        "quant-aware export, which only Paddle Lite runs (Paddle Inference fails on int8 weights)",
        hint=f"Convert it with `zoo export {files.folder} --target lite --arch arm`{where}.")


def int_attrs(files: ModelFiles, op_type: str, name: str) -> List[int]:
    """The integer attribute `name` of every `op_type` op of the model's main block, in program order."""
    desc = read_program_desc(files.model_file)
    return [a.i for o in desc.blocks[0].ops if o.type == op_type for a in o.attrs if a.name == name]


def read_program(files: ModelFiles) -> ProgramInfo:
    """Parse the model file of `files`; ModelError when it is not a usable Paddle program."""
    desc = read_program_desc(files.model_file)
    block = desc.blocks[0]
    ops = [
        Op(
            type=o.type,
            inputs={i.parameter: tuple(i.arguments) for i in o.inputs},
            outputs={i.parameter: tuple(i.arguments) for i in o.outputs},
        )
        for o in block.ops
    ]
    var_desc = {v.name: v for v in block.vars}

    def col(o: object) -> int:
        for a in o.attrs:  # type: ignore[attr-defined]
            if a.name == "col":
                return int(a.i)
        return 0

    feeds = sorted((col(o), o.outputs[0].arguments[0]) for o in block.ops if o.type == "feed" and o.outputs)
    fetches = sorted((col(o), o.inputs[0].arguments[0]) for o in block.ops if o.type == "fetch" and o.inputs)
    inputs = []
    for _, name in feeds:
        tensor = var_desc[name].type.lod_tensor.tensor if name in var_desc else None
        shape = tuple(int(d) for d in tensor.dims) if tensor is not None else ()
        dtype = dtype_name(int(tensor.data_type)) if tensor is not None else "float32"
        inputs.append(InputSpec(name, shape, dtype))
    info = ProgramInfo(ops=ops, inputs=inputs, outputs=[n for _, n in fetches])
    info.quantized = quantized_compute_ops(ops)
    return info


def quantized_compute_ops(ops: Sequence[Op]) -> List[str]:
    """Types of the quantizable ops whose inputs or outputs pass through quantize/dequantize ops."""
    producer: Dict[str, str] = {}
    consumers: Dict[str, List[str]] = {}
    for op in ops:
        for v in op.output_vars():
            producer[v] = op.type
        for v in op.input_vars():
            consumers.setdefault(v, []).append(op.type)
    found = []
    for op in ops:
        if op.type not in QUANTIZABLE:
            continue
        fed = any(is_quant_op(producer.get(v, "")) for v in op.input_vars())
        # the old format dequantizes the weights after the op (fake_*dequantize* on its output)
        drained = any(is_quant_op(c) for v in op.output_vars() for c in consumers.get(v, []))
        if fed or drained:
            found.append(op.type)
    return found


Side = Union[int, Tuple[int, int]]  # an input side, or (height, width)


def concrete_shape(spec: InputSpec, batch: int, fallback: Optional[Side] = None) -> Tuple[int, ...]:
    """The input shape with the batch dimension set and no dynamic dimension left: a dynamic height and
    width of an image input (rank 4) take `fallback`'s (h, w), any other dynamic dimension its height."""
    if not spec.shape:
        raise ModelError(f"model input {spec.name!r} has no declared shape", hint="Give the input shape explicitly.")
    dims = list(spec.shape)
    dims[0] = batch
    for i, d in enumerate(dims[1:], start=1):
        if d < 0:
            if fallback is None:
                raise ModelError(
                    f"model input {spec.name!r} has a dynamic dimension {i} (shape {list(spec.shape)})",
                    hint="Export the model with a fixed input size, or pass --input-size.",
                )
            hw = fallback if isinstance(fallback, tuple) else (fallback, fallback)
            dims[i] = hw[i - 2] if len(dims) == 4 and i in (2, 3) else hw[0]
    return tuple(dims)


@contextlib.contextmanager
def static_mode() -> Iterator[None]:
    """Static-graph mode inside, the caller's mode after (Paddle's mode is process-wide state)."""
    import paddle

    was_dynamic = paddle.in_dynamic_mode()
    if was_dynamic:
        paddle.enable_static()
    try:
        yield
    finally:
        if was_dynamic:
            paddle.disable_static()


@dataclass
class OpenProgram:
    """An inference program loaded into its own scope: edit or run it while open_program's block lasts."""

    program: Any  # paddle.static.Program
    feeds: List[str]
    fetches: List[Any]  # the fetch variables
    executor: Any  # paddle.static.Executor
    scope: Any  # paddle.static.Scope holding the parameters


@contextlib.contextmanager
def open_program(files: ModelFiles) -> Iterator[OpenProgram]:
    """Load `files` (checked first) on the CPU into a fresh scope, in static-graph mode for the block's duration."""
    import paddle

    with static_mode():
        executor = paddle.static.Executor(paddle.CPUPlace())
        scope = paddle.static.Scope()
        with paddle.static.scope_guard(scope):
            program, feeds, fetches = load_inference_program(files, executor)
            yield OpenProgram(program, feeds, fetches, executor, scope)


def image_shapes(info: ProgramInfo) -> List[Tuple[int, ...]]:
    """The declared shapes of a program's image (rank-4) inputs."""
    return [spec.shape for spec in info.inputs if len(spec.shape) == 4]


def square_side(info: ProgramInfo) -> Optional[int]:
    """The square H = W of the program's one image input as declared; None when dynamic, non-square or several."""
    images = image_shapes(info)
    if len(images) != 1:
        return None
    h, w = int(images[0][2]), int(images[0][3])
    return h if h > 0 and h == w else None


def declared_side(files: ModelFiles) -> Optional[int]:
    """The square H = W of the model's image input as its program declares it; None when dynamic."""
    return square_side(read_program(files))

"""Check a Paddle inference model's files before Paddle reads them, and after Paddle writes them.

Paddle trusts its files. An empty or undecodable `.pdmodel`, a params file in its place, or a
program whose ops name undeclared variables or blocks crashes Paddle Inference natively
(SIGSEGV, no message); a params file cut short by a full disk loads without a word, its last
tensor half garbage. So every load goes through `check_model` first: the program is parsed with
the framework protobuf alone (no native Paddle load) and its structure checked, and the params
are walked tensor by tensor against the program's persistable variables (headers only, data is
seeked over). Every model the zoo has Paddle write goes through `verify_saved` before it is moved
into place, and `writing_model` turns a full disk into one plain sentence.

The combined params layout (Paddle's save_combine, what load_combine reads back): the program's
persistable variables sorted by name, each a serialized LoDTensor: uint32 version, uint64 LoD
level count, per level a uint64 byte count and the offsets, uint32 tensor version, int32 size of
a TensorDesc protobuf, the TensorDesc, then the raw data. A legacy folder holds one such tensor
per file, named after its variable.
"""
from __future__ import annotations

import contextlib
import errno
import functools
import os
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Dict, Iterator, List, Optional, Sequence, Tuple, Type

import numpy as np

from zoo.errors import ModelError, ZooError
from zoo.modelfiles import ModelFiles

if TYPE_CHECKING:
    from paddle.base.proto.framework_pb2 import ProgramDesc

# VarType.Type codes of framework.proto -> numpy dtype (bfloat16 has none: kept as raw uint16)
DTYPES: Dict[int, str] = {0: "bool", 1: "int16", 2: "int32", 3: "int64", 4: "float16", 5: "float32",
                          6: "float64", 20: "uint8", 21: "int8", 22: "uint16", 23: "complex64", 24: "complex128"}
_DTYPE_NAMES = {**DTYPES, 22: "bfloat16"}
# Variable types that are persistable but never saved (Paddle's own is_persistable filter)
_NOT_SAVED = {9, 10, 15, 17}  # FEED_MINIBATCH, FETCH_LIST, READER, RAW
_LOD_TENSOR = 7
_ATTR_BLOCK, _ATTR_BLOCKS = 8, 10
_EMPTY_VAR_NAMES = ("", "@EMPTY@")  # Paddle's placeholder for an unused optional argument
_MAX_LOD_LEVELS = 64
_MAX_DESC_BYTES = 1 << 20

CORRUPT_HINT = "The file is damaged or incomplete: export the model again, or download it again (`zoo fetch NAME --force`)."
FOREIGN_HINT = "Use the .pdiparams saved together with this .pdmodel (the two files come from different models)."
DISK_HINT = "Free some space on that file system (or pick another output folder) and run again; nothing was written there."


class _Malformed(ValueError):
    """A tensor record that is not what Paddle writes (internal: turned into ModelError with the file named)."""


class _Truncated(_Malformed):
    """The file ends inside a tensor header."""


@dataclass(frozen=True)
class TensorRecord:
    """The header of one serialized tensor and where its data lies in the file."""

    dtype: int  # VarType.Type code
    dims: Tuple[int, ...]
    data_offset: int
    nbytes: int

    @property
    def end(self) -> int:
        return self.data_offset + self.nbytes


@dataclass(frozen=True)
class Param:
    """A persistable variable of the program: what its saved tensor must be."""

    name: str
    dtype: int
    dims: Tuple[int, ...]  # -1: any size
    lod_tensor: bool

    def matches(self, record: TensorRecord) -> bool:
        """Whether the saved tensor can be this variable: the same element count.

        Not the same dtype and dims: Paddle takes both from the file, and PaddleSlim relies on it
        (its ONNX-format models save INT8 weights under float32 variables, and [1]-declared scales
        as 0-D tensors). A size left open (-1) matches any count.
        """
        return any(d < 0 for d in self.dims) or _numel(self.dims) == _numel(record.dims)


def _numel(dims: Sequence[int]) -> int:
    return int(np.prod(dims, dtype=np.int64))


def dtype_name(dtype: int) -> str:
    """The name of a VarType.Type data type code (`float32`)."""
    return _DTYPE_NAMES.get(dtype, f"dtype {dtype}")


def describe(dtype: int, dims: Sequence[int]) -> str:
    """`float32 [8, 3, 3, 3]`."""
    return f"{dtype_name(dtype)} {list(dims)}"


def read_tensor_record(fh: IO[bytes], size: int) -> TensorRecord:
    """Read the tensor header at the current position of `fh` (a file of `size` bytes); leave it at the data.

    Raises _Malformed when the bytes are not a Paddle tensor or the file ends early.
    """
    start = fh.tell()

    def take(n: int, what: str) -> bytes:
        data = fh.read(n)
        if len(data) != n:
            raise _Truncated(f"the file ends inside the {what} (byte {start})")
        return data

    (version,) = struct.unpack("<I", take(4, "tensor header"))
    if version != 0:
        raise _Malformed(f"LoDTensor version {version} at byte {start} (Paddle writes 0)")
    (levels,) = struct.unpack("<Q", take(8, "tensor header"))
    if levels > _MAX_LOD_LEVELS:
        raise _Malformed(f"{levels} LoD levels at byte {start}")
    for _ in range(levels):
        (nbytes,) = struct.unpack("<Q", take(8, "LoD"))
        if nbytes % 8 or fh.tell() + nbytes > size:
            raise _Malformed(f"a LoD level of {nbytes} bytes at byte {start}")
        fh.seek(nbytes, os.SEEK_CUR)
    (tensor_version,) = struct.unpack("<I", take(4, "tensor header"))
    if tensor_version != 0:
        raise _Malformed(f"tensor version {tensor_version} at byte {start} (Paddle writes 0)")
    (desc_size,) = struct.unpack("<i", take(4, "tensor header"))
    if not 0 < desc_size <= _MAX_DESC_BYTES:
        raise _Malformed(f"a tensor description of {desc_size} bytes at byte {start}")
    raw = take(desc_size, "tensor description")
    from paddle.base.proto import framework_pb2  # pure protobuf; heavy import kept lazy

    desc = framework_pb2.VarType.TensorDesc()
    try:
        desc.ParseFromString(raw)
    except Exception:  # protobuf's DecodeError, or a missing required field
        raise _Malformed(f"an undecodable tensor description at byte {start}") from None
    dtype, dims = int(desc.data_type), tuple(int(d) for d in desc.dims)
    if dtype not in DTYPES:
        raise _Malformed(f"unknown data type {dtype} at byte {start}")
    if any(d < 0 for d in dims):
        raise _Malformed(f"negative dimensions {list(dims)} at byte {start}")
    nbytes = _numel(dims) * np.dtype(DTYPES[dtype]).itemsize
    return TensorRecord(dtype, dims, fh.tell(), nbytes)


def read_lod_tensor(path: Path) -> np.ndarray:
    """The one tensor of a legacy per-variable file as a numpy array; ModelError if it is not one."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            record = read_tensor_record(fh, size)
            if record.end > size:
                raise _Malformed(f"it holds {size - record.data_offset} of the {record.nbytes} data bytes its header declares")
            data = fh.read(record.nbytes)
    except _Malformed as exc:
        raise ModelError(f"{path} is not a Paddle tensor file: {exc}",
                         hint="Static-graph persistables hold one LoDTensor file per variable.") from None
    except OSError as exc:
        raise ModelError(f"cannot read {path}: {exc.strerror}") from None
    return np.frombuffer(data, dtype=DTYPES[record.dtype]).reshape(record.dims).copy()


def _looks_like_tensor(data: bytes) -> bool:
    import io

    try:
        read_tensor_record(io.BytesIO(data), len(data))
        return True
    except _Malformed:
        return False


def read_program_desc(model_file: Path) -> "ProgramDesc":
    """Parse a `.pdmodel` (or `__model__`) with the framework protobuf and check its structure.

    ModelError naming the file when it is empty, undecodable, has no ops, no feed or fetch op, or
    ops that use variables or blocks the program does not declare (Paddle crashes on those).
    """
    from paddle.base.proto import framework_pb2  # pure protobuf; heavy import kept lazy

    model_file = Path(model_file)
    try:
        data = model_file.read_bytes()
    except OSError as exc:
        raise ModelError(f"cannot read {model_file}: {exc.strerror}") from None
    if not data:
        raise ModelError(f"{model_file} is empty (0 bytes)", hint=CORRUPT_HINT)
    desc = framework_pb2.ProgramDesc()
    try:
        with warnings.catch_warnings():
            # the C++ parser stops at a stray end-group tag with only a RuntimeWarning, keeping what it read
            warnings.simplefilter("error")
            desc.ParseFromString(data)
        decoded = True
    except Exception:  # DecodeError, a missing required field, or that warning
        decoded = False
    if (not decoded or not desc.blocks) and _looks_like_tensor(data):
        raise ModelError(f"{model_file} holds parameter data, not a Paddle program",
                         hint="The .pdmodel and .pdiparams files look swapped: the program is the smaller file; "
                              "rename them back.")
    if not decoded:
        raise ModelError(f"{model_file} is not a Paddle program: protobuf cannot decode its {len(data)} bytes",
                         hint=CORRUPT_HINT)
    _check_structure(model_file, desc)
    return desc


def _check_structure(model_file: Path, desc: "ProgramDesc") -> None:
    """What Paddle dereferences without looking: blocks, declared variables, slot names, data flow."""
    try:
        _check_blocks(desc)
        for i in range(len(desc.blocks)):
            _check_ops(desc, i)
        _check_main_block(desc.blocks[0])
    except _Malformed as exc:
        raise ModelError(f"{model_file} is not a usable Paddle program: {exc}", hint=CORRUPT_HINT) from None


def _check_blocks(desc: "ProgramDesc") -> None:
    if not desc.blocks:
        raise _Malformed("it has no blocks")
    for i, block in enumerate(desc.blocks):
        if block.idx != i:
            raise _Malformed(f"block {i} says it is block {block.idx}")
        parent = block.parent_idx
        if (i == 0 and parent != -1) or (i > 0 and not 0 <= parent < i):
            raise _Malformed(f"block {i} names block {parent} as its parent")
    if not desc.blocks[0].ops:
        raise _Malformed("its main block has no ops")


def _check_ops(desc: "ProgramDesc", index: int) -> None:
    """Every op of block `index` has a type, the slots its definition has, declared variables and blocks."""
    blocks = desc.blocks
    visible = set()
    i = index
    while i >= 0:  # a block sees its own variables and its ancestors' (parents precede children)
        visible.update(v.name for v in blocks[i].vars)
        i = blocks[i].parent_idx
    slots = _op_slots()
    for k, op in enumerate(blocks[index].ops):
        where = f"op {k} ({op.type}) of block {index}"
        if not op.type:
            raise _Malformed(f"op {k} of block {index} has no type")
        known = slots.get(op.type)
        for kind, args in (("input", op.inputs), ("output", op.outputs)):
            for slot in args:
                # Paddle finds an op's arguments by slot name: a renamed slot leaves the real one
                # absent, and some kernels then dereference nothing (SIGSEGV)
                if known is not None and slot.arguments and slot.parameter not in known[kind]:
                    raise _Malformed(f"{where} has an {kind} {slot.parameter!r}, which {op.type} does not take")
                for name in slot.arguments:
                    if name not in visible and name not in _EMPTY_VAR_NAMES:
                        raise _Malformed(f"{where} uses variable {name!r}, which is not declared")
        for attr in op.attrs:
            refs = [attr.block_idx] if attr.type == _ATTR_BLOCK else list(attr.blocks_idx) if attr.type == _ATTR_BLOCKS else []
            if any(not 0 <= r < len(blocks) for r in refs):
                raise _Malformed(f"{where} refers to block {refs}, the program has {len(blocks)}")


def _check_main_block(block: Any) -> None:
    """Inputs and outputs declared, and every variable an op reads is a parameter or written before."""
    types = [op.type for op in block.ops]
    if "feed" not in types:
        raise _Malformed("it declares no inputs (no feed op)")
    if "fetch" not in types:
        raise _Malformed("it declares no outputs (no fetch op)")
    # an op whose output argument was lost leaves its consumer reading a tensor nobody allocated (SIGSEGV)
    available = {v.name for v in block.vars if v.persistable} | set(_EMPTY_VAR_NAMES)
    for k, op in enumerate(block.ops):
        for slot in op.inputs:
            for name in slot.arguments:
                if name not in available:
                    raise _Malformed(f"op {k} ({op.type}) reads {name!r}, which no earlier op writes")
        available.update(name for slot in op.outputs for name in slot.arguments)


@functools.lru_cache(maxsize=1)
def _op_slots() -> Dict[str, Dict[str, frozenset]]:
    """Op type -> the input and output slot names its registered definition has (Paddle's op registry)."""
    from paddle.base import core
    from paddle.base.proto import framework_pb2

    slots: Dict[str, Dict[str, frozenset]] = {}
    for raw in core.get_all_op_protos():
        proto = framework_pb2.OpProto()
        proto.ParseFromString(raw)
        slots[proto.type] = {"input": frozenset(v.name for v in proto.inputs),
                             "output": frozenset(v.name for v in proto.outputs)}
    return slots


def persistables(desc: "ProgramDesc") -> List[Param]:
    """The variables Paddle saves with the program, in save_combine order (sorted by name)."""
    found: Dict[str, Param] = {}
    for block in desc.blocks:
        for var in block.vars:
            if not var.persistable or var.type.type in _NOT_SAVED or var.name in found:
                continue
            tensor = var.type.lod_tensor.tensor
            found[var.name] = Param(var.name, int(tensor.data_type), tuple(int(d) for d in tensor.dims),
                                    var.type.type == _LOD_TENSOR)
    return [found[name] for name in sorted(found)]


def check_params_file(path: Path, params: Sequence[Param], model_file: Path) -> None:
    """Walk a combined params file against the program's persistables; ModelError naming what is wrong."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ModelError(f"cannot read {path}: {exc.strerror}") from None
    if not params:
        if size:
            raise ModelError(f"{path} holds {size} bytes but {model_file.name} has no parameters", hint=FOREIGN_HINT)
        return
    if size == 0:
        raise ModelError(f"{path} is empty (0 bytes); {model_file.name} has {len(params)} parameters", hint=CORRUPT_HINT)
    if not all(p.lod_tensor for p in params):
        return  # another tensor kind (selected rows, vocabularies) has its own layout: the walk stops being exact
    with open(path, "rb") as fh:
        for index, param in enumerate(params):
            where = f"tensor {index + 1} of {len(params)} ({param.name})"
            if fh.tell() == size:
                raise ModelError(f"{path} is truncated: it ends after {index} of the {len(params)} tensors "
                                 f"{model_file.name} declares (next: {param.name})", hint=CORRUPT_HINT)
            try:
                record = read_tensor_record(fh, size)
            except _Truncated as exc:
                raise ModelError(f"{path} is truncated: {where}: {exc}", hint=CORRUPT_HINT) from None
            except _Malformed as exc:
                raise ModelError(f"{path} is not a Paddle params file for {model_file.name}: {where}: {exc}",
                                 hint=CORRUPT_HINT) from None
            if not param.matches(record):
                raise ModelError(
                    f"{path} does not belong to {model_file.name}: {where} is {describe(record.dtype, record.dims)}, "
                    f"the program declares {describe(param.dtype, param.dims)}", hint=FOREIGN_HINT)
            if record.end > size:
                raise ModelError(f"{path} is truncated: it ends inside {where}, {record.end - size} bytes short",
                                 hint=CORRUPT_HINT)
            fh.seek(record.end)
    if size > record.end:
        raise ModelError(f"{path} has {size - record.end} bytes after the last of the {len(params)} tensors "
                         f"{model_file.name} declares", hint=FOREIGN_HINT)


def check_param_folder(folder: Path, params: Sequence[Param], model_file: Path) -> None:
    """A legacy folder with one file per parameter: each file present and holding exactly its tensor."""
    missing = [p.name for p in params if not (Path(folder) / p.name).is_file()]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise ModelError(f"{folder} lacks the parameter file(s) {shown} that {model_file.name} needs "
                         f"(and holds no combined params file)", hint=CORRUPT_HINT)
    for param in params:
        if not param.lod_tensor:
            continue
        path = Path(folder) / param.name
        size = path.stat().st_size
        with open(path, "rb") as fh:
            try:
                record = read_tensor_record(fh, size) if size else None
            except _Malformed as exc:
                raise ModelError(f"{path} is not a Paddle tensor file: {exc}", hint=CORRUPT_HINT) from None
        if record is None:
            raise ModelError(f"{path} is empty (0 bytes)", hint=CORRUPT_HINT)
        if not param.matches(record):
            raise ModelError(f"{path} does not belong to {model_file.name}: it is {describe(record.dtype, record.dims)}, "
                             f"the program declares {describe(param.dtype, param.dims)}", hint=FOREIGN_HINT)
        if record.end != size:
            state = f"{record.end - size} bytes short" if record.end > size else f"{size - record.end} bytes too long"
            raise ModelError(f"{path} is {'truncated' if record.end > size else 'not one tensor'}: {state}",
                             hint=CORRUPT_HINT)


def check_model(files: ModelFiles) -> "ProgramDesc":
    """Check the program and its parameters before Paddle loads them; return the parsed program.

    Pure protobuf and header reads (the tensor data is seeked over), so it is cheap enough for
    every load. Raises ModelError naming the file and what is wrong.
    """
    desc = read_program_desc(files.model_file)
    params = persistables(desc)
    if files.params_file is not None:
        check_params_file(files.params_file, params, files.model_file)
    else:
        check_param_folder(files.folder, params, files.model_file)
    return desc


def expected_params_bytes(desc: "ProgramDesc") -> Optional[int]:
    """The data bytes of every persistable (headers left out), or None when a size is not fixed."""
    total = 0
    for param in persistables(desc):
        if not param.lod_tensor or any(d < 0 for d in param.dims) or param.dtype not in DTYPES:
            return None
        total += _numel(param.dims) * np.dtype(DTYPES[param.dtype]).itemsize
    return total


def is_no_space(exc: BaseException) -> bool:
    """Whether `exc`, or an exception it was raised from, says the disk (or the quota) is full."""
    seen = set()
    current: Optional[BaseException] = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        text = str(current)
        if "No space left on device" in text or "Disk quota exceeded" in text:  # Paddle's C++ wraps errno in text
            return True
        current = current.__cause__ or current.__context__
    return False


def free_bytes(folder: Path) -> Optional[int]:
    """Bytes this user may still write on the file system of `folder` (None where that cannot be asked)."""
    try:
        stat = os.statvfs(folder)
    except (OSError, AttributeError):  # statvfs is POSIX-only
        return None
    return stat.f_bavail * stat.f_frsize


def no_space_error(target: Path, error: Type[ZooError] = ModelError) -> ZooError:
    """The one wording of a full disk."""
    return error(f"no space left on device while writing {target}", hint=DISK_HINT)


@contextlib.contextmanager
def writing_model(target: Path, error: Type[ZooError] = ModelError) -> Iterator[None]:
    """Turn a full disk or quota (an OSError, or Paddle's RuntimeError about it) into `error` naming `target`."""
    try:
        yield
    except Exception as exc:
        if is_no_space(exc):
            raise no_space_error(target, error) from exc
        raise


def verify_saved(files: ModelFiles, target: Path, error: Type[ZooError] = ModelError) -> "ProgramDesc":
    """Check a model Paddle has just written (still staged) before it is moved to `target`.

    Paddle does not notice a short write of its params file; this does. A failed check on a full
    file system is reported as "no space left on device", anything else as an incomplete write;
    either way as `error`, naming `target`.
    """
    try:
        return check_model(files)
    except ModelError as exc:
        if _looks_full(files):
            raise no_space_error(target, error) from exc
        raise error(f"the model written for {target} is incomplete: {exc.message}",
                    hint="A short write (full disk or quota?): check the free space and run again; "
                         "nothing was written there.") from exc


def _looks_full(files: ModelFiles) -> bool:
    """Whether the file system of a short-written model has less room than the bytes that are missing."""
    free = free_bytes(files.folder)
    if free is None:
        return False
    missing = 0
    try:
        expected = expected_params_bytes(read_program_desc(files.model_file))
        if expected is not None and files.params_file is not None and files.params_file.exists():
            missing = expected - files.params_file.stat().st_size
    except ModelError:
        pass  # the program itself was cut short: nothing to measure the params against
    return free < max(missing, 64 * 1024)  # a full disk keeps a few blocks at most


def load_inference_program(files: ModelFiles, executor: Any) -> Tuple[Any, List[str], List[Any]]:
    """paddle.static.load_inference_model of `files`, checked first: (program, feed names, fetch vars).

    Call it in static mode, inside the scope that should receive the parameters.
    """
    import paddle

    check_model(files)
    if files.model_file.suffix == ".pdmodel" and files.params_file is not None \
            and files.params_file.name == files.model_file.stem + ".pdiparams":
        return paddle.static.load_inference_model(str(files.folder / files.model_file.stem), executor)
    return paddle.static.load_inference_model(str(files.folder), executor, model_filename=files.model_filename,
                                              params_filename=files.params_filename)

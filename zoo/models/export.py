"""Export a dygraph network as a Paddle inference model."""
from __future__ import annotations

from pathlib import Path
from typing import Tuple

from zoo.errors import ModelError
from zoo.modelcheck import is_no_space, no_space_error, verify_saved
from zoo.modelfiles import ModelFiles, find_model_files
from zoo.fsutil import StagedDir
from zoo.quiet import silenced


def strip_callstacks(model_file: Path) -> None:
    """Drop the `op_callstack` attributes paddle records on every op.

    They hold the Python traceback of the export (local file paths and line numbers): useless to
    a predictor, they leak the exporting machine's paths and make the same network export to
    different bytes from different scripts.
    """
    from paddle.base.proto import framework_pb2

    program = framework_pb2.ProgramDesc()
    program.ParseFromString(Path(model_file).read_bytes())
    for block in program.blocks:
        for op in block.ops:
            keep = [attr for attr in op.attrs if attr.name != "op_callstack"]
            if len(keep) != len(op.attrs):
                del op.attrs[:]
                op.attrs.extend(keep)
    Path(model_file).write_bytes(program.SerializeToString())


def save_inference(model, out_dir: Path, input_shape: Tuple[int, int, int]) -> ModelFiles:
    """Write `out_dir/inference.pdmodel` + `inference.pdiparams` (input spec [None, C, H, W] float32).

    The model is put in eval mode; the files appear only once both are written and verified (a
    short write, e.g. on a full disk, leaves `out_dir` as it was).
    """
    import paddle

    out_dir = Path(out_dir)
    was_training = model.training
    model.eval()
    try:
        with StagedDir(out_dir) as stage:
            spec = [paddle.static.InputSpec(shape=[None, *input_shape], dtype="float32", name="x")]
            with silenced():
                paddle.jit.save(model, str(stage.path / "inference"), input_spec=spec)
            for name in ("inference.pdmodel", "inference.pdiparams"):
                if not (stage.path / name).is_file():
                    raise ModelError(f"paddle.jit.save did not write {name}")
            strip_callstacks(stage.path / "inference.pdmodel")
            staged = ModelFiles(stage.path, stage.path / "inference.pdmodel", stage.path / "inference.pdiparams")
            verify_saved(staged, out_dir)
            stage.merge(last=["inference.pdmodel"])  # the model file marks completion: it moves last
    except ModelError:
        raise
    except Exception as exc:  # paddle's dy2static errors are plain exceptions
        if is_no_space(exc):
            raise no_space_error(out_dir) from exc
        raise ModelError(f"cannot export the network to {out_dir}: {exc}",
                         hint="The network must be traceable by paddle.jit.save.") from exc
    finally:
        if was_training:
            model.train()
    return find_model_files(out_dir)

"""Corrupt model files are refused before Paddle reads them; a short write is never reported as written.

One tiny model is built per session and corrupted every way a file gets damaged: emptied,
truncated, zero-filled, overwritten with random bytes, the two files swapped, the params of
another model, trailing bytes, and programs whose ops name variables, slots or blocks that do not
exist (each of those crashed Paddle Inference natively before the check). Both the library
(zoo.modelcheck, Predictor, PTQ, export) and the CLI (`zoo eval`, `zoo quantize`) are asserted.
"""
from __future__ import annotations

import errno
import os
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable, Dict, Tuple

import numpy as np
import paddle
import pytest
from PIL import Image

from tests.deploy_models import SHAPE, calibration, fp32_model
from zoo.cli.main import app
from zoo.errors import ExportError, ModelError, QuantizeError
from zoo.modelcheck import check_model, is_no_space, read_lod_tensor
from zoo.modelfiles import find_model_files

from .conftest import RUNNER

M, P = "inference.pdmodel", "inference.pdiparams"
OPS = ("conv2d", "depthwise_conv2d", "mul", "matmul_v2")


class OtherNet(paddle.nn.Layer):
    """Another architecture with the same input: its params cannot belong to the tiny conv net."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = paddle.nn.Linear(3 * 32 * 32, 5)

    def forward(self, x):  # type: ignore[no-untyped-def]
        return self.fc(paddle.flatten(x, 1))


@pytest.fixture(scope="session")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fp32_model(tmp_path_factory)


@pytest.fixture(scope="session")
def other_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("other-model")
    paddle.seed(1)
    net = OtherNet()
    net.eval()
    paddle.jit.save(net, str(out / "inference"), input_spec=[paddle.static.InputSpec([None, *SHAPE], "float32", "x")])
    return out


@pytest.fixture(scope="session")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An ImageNet-layout folder of two classes, enough for `zoo eval` to reach the model."""
    root = tmp_path_factory.mktemp("images")
    for name, rgb in {"blue": (20, 20, 230), "red": (230, 20, 20)}.items():
        (root / "val" / name).mkdir(parents=True)
        Image.new("RGB", (32, 32), rgb).save(root / "val" / name / "0.png")
    return root


@pytest.fixture(scope="session")
def calib_npy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("calib") / "calib.npy"
    np.save(path, calibration(16))
    return path


# ---- the corruptions ------------------------------------------------------------------------


def _truncate(name: str, keep: float) -> Callable[[Path, Path], None]:
    def apply(d: Path, other: Path) -> None:
        data = (d / name).read_bytes()
        (d / name).write_bytes(data[: int(len(data) * keep)])
    return apply


def _fill(name: str, how: str) -> Callable[[Path, Path], None]:
    def apply(d: Path, other: Path) -> None:
        size = (d / name).stat().st_size
        data = bytes(size) if how == "zeros" else bytes(random.Random(7).randrange(256) for _ in range(size))
        (d / name).write_bytes(data)
    return apply


def _swap(d: Path, other: Path) -> None:
    model, params = (d / M).read_bytes(), (d / P).read_bytes()
    (d / M).write_bytes(params)
    (d / P).write_bytes(model)


def _foreign_params(d: Path, other: Path) -> None:
    shutil.copyfile(other / P, d / P)


def _foreign_program(d: Path, other: Path) -> None:
    shutil.copyfile(other / M, d / M)


def _trailing(d: Path, other: Path) -> None:
    with open(d / P, "ab") as fh:
        fh.write(b"\0" * 16)


def _short_by_one(d: Path, other: Path) -> None:
    (d / P).write_bytes((d / P).read_bytes()[:-1])


def _edit_program(edit: Callable[[object], None]) -> Callable[[Path, Path], None]:
    def apply(d: Path, other: Path) -> None:
        from paddle.base.proto import framework_pb2

        desc = framework_pb2.ProgramDesc()
        desc.ParseFromString((d / M).read_bytes())
        edit(desc)
        (d / M).write_bytes(desc.SerializeToString())
    return apply


def _first(desc, op_type: str):  # type: ignore[no-untyped-def]
    return next(op for op in desc.blocks[0].ops if op.type == op_type)


def _undeclared_input(desc) -> None:  # type: ignore[no-untyped-def]
    _first(desc, "relu").inputs[0].arguments[0] = "nowhere"


def _renamed_slot(desc) -> None:  # type: ignore[no-untyped-def]
    next(s for s in _first(desc, "batch_norm").inputs if s.parameter == "Scale").parameter = "Scxle"


def _lost_output(desc) -> None:  # type: ignore[no-untyped-def]
    del _first(desc, "relu").outputs[0].arguments[:]


def _missing_block(desc) -> None:  # type: ignore[no-untyped-def]
    attr = _first(desc, "relu").attrs.add()
    attr.name, attr.type, attr.block_idx = "sub_block", 8, 99  # 8: AttrType.BLOCK


def _bad_parent(desc) -> None:  # type: ignore[no-untyped-def]
    desc.blocks[0].parent_idx = 7


# name -> (corruption, the file the error must name, what the message says)
CORRUPTIONS: Dict[str, Tuple[Callable[[Path, Path], None], str, str]] = {
    "empty-program": (_truncate(M, 0), M, "is empty (0 bytes)"),
    "empty-params": (_truncate(P, 0), P, "is empty (0 bytes)"),
    "truncated-program": (_truncate(M, 0.5), M, "protobuf cannot decode"),
    "truncated-params": (_truncate(P, 0.5), P, "is truncated"),
    "params-short-by-one-byte": (_short_by_one, P, "is truncated: it ends inside tensor 10 of 10"),
    "zero-filled-program": (_fill(M, "zeros"), M, "protobuf cannot decode"),
    "zero-filled-params": (_fill(P, "zeros"), P, "is not a Paddle params file"),
    "random-program": (_fill(M, "random"), M, "is not a Paddle program"),
    "random-params": (_fill(P, "random"), P, "is not a Paddle params file"),
    "swapped": (_swap, M, "holds parameter data, not a Paddle program"),
    "params-of-another-model": (_foreign_params, P, "does not belong to inference.pdmodel"),
    "program-of-another-model": (_foreign_program, P, "does not belong to inference.pdmodel"),
    "trailing-bytes": (_trailing, P, "has 16 bytes after the last of the 10 tensors"),
    "undeclared-variable": (_edit_program(_undeclared_input), M, "uses variable 'nowhere', which is not declared"),
    "renamed-slot": (_edit_program(_renamed_slot), M, "has an input 'Scxle', which batch_norm does not take"),
    "lost-output": (_edit_program(_lost_output), M, "which no earlier op writes"),
    "missing-block": (_edit_program(_missing_block), M, "refers to block [99]"),
    "bad-parent-block": (_edit_program(_bad_parent), M, "names block 7 as its parent"),
}


def _corrupted(kind: str, model: Path, other: Path, tmp_path: Path) -> Path:
    folder = tmp_path / kind
    shutil.copytree(model, folder)
    CORRUPTIONS[kind][0](folder, other)
    return folder


def _err(result) -> str:  # type: ignore[no-untyped-def]
    return " ".join(result.stderr.split())  # rich wraps long messages


# ---- the library ----------------------------------------------------------------------------


def test_a_sound_model_passes_and_loads(model: Path) -> None:
    from zoo.predictor import Predictor

    desc = check_model(find_model_files(model))
    assert [op.type for op in desc.blocks[0].ops][0] == "feed"
    out = Predictor(model).run(calibration(2))[0]
    assert out.shape == (2, 10)


@pytest.mark.parametrize("kind", sorted(CORRUPTIONS))
def test_corruption_is_refused_naming_the_file(kind: str, model: Path, other_model: Path, tmp_path: Path) -> None:
    folder = _corrupted(kind, model, other_model, tmp_path)
    _, name, says = CORRUPTIONS[kind]
    with pytest.raises(ModelError) as info:
        check_model(find_model_files(folder))
    assert str(folder / name) in info.value.message and says in info.value.message
    assert info.value.hint


@pytest.mark.parametrize("kind", ["truncated-params", "params-short-by-one-byte", "swapped", "renamed-slot"])
def test_predictor_checks_before_paddle_loads(kind: str, model: Path, other_model: Path, tmp_path: Path) -> None:
    """Paddle Inference loads a params file one byte short without a word, and segfaults on the other two."""
    from zoo.predictor import Predictor

    folder = _corrupted(kind, model, other_model, tmp_path)
    with pytest.raises(ModelError, match=re.escape(CORRUPTIONS[kind][2])):
        Predictor(folder)


@pytest.fixture(scope="session")
def legacy_folder(model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same model as a 1.x folder: `__model__` and one file per parameter, written by Paddle."""
    from zoo.program import static_mode

    out = tmp_path_factory.mktemp("legacy")
    with static_mode():
        exe = paddle.static.Executor(paddle.CPUPlace())
        scope = paddle.static.Scope()
        with paddle.static.scope_guard(scope):
            program, _, _ = paddle.static.load_inference_model(str(model / "inference"), exe)
            params = [v for v in program.list_vars() if v.persistable and v.name not in ("feed", "fetch")]
            paddle.static.save_vars(exe, str(out), main_program=program, vars=params)
    shutil.copyfile(model / M, out / "__model__")
    return out


def test_legacy_folder_is_checked_per_file(legacy_folder: Path, model: Path, tmp_path: Path) -> None:
    from zoo.predictor import Predictor

    files = find_model_files(legacy_folder)
    assert files.params_file is None
    check_model(files)
    batch = calibration(2)
    np.testing.assert_allclose(Predictor(legacy_folder).run(batch)[0], Predictor(model).run(batch)[0], rtol=1e-6)

    broken = tmp_path / "broken"
    shutil.copytree(legacy_folder, broken)
    weight = broken / _largest_parameter(broken)
    weight.write_bytes(weight.read_bytes()[:-4])
    with pytest.raises(ModelError, match="is truncated: 4 bytes short") as info:
        check_model(find_model_files(broken))
    assert str(weight) in info.value.message
    weight.unlink()
    with pytest.raises(ModelError, match="lacks the parameter file"):
        check_model(find_model_files(broken))


def _largest_parameter(folder: Path) -> str:
    """Parameter names come from a session-wide counter: pick one by size, not by name."""
    return max((p for p in folder.iterdir() if p.name != "__model__"), key=lambda p: p.stat().st_size).name


def test_one_tensor_reader_reads_what_paddle_wrote(legacy_folder: Path) -> None:
    from zoo.program import static_mode

    name = _largest_parameter(legacy_folder)
    with static_mode():
        scope = paddle.static.Scope()
        with paddle.static.scope_guard(scope):
            paddle.static.load_inference_model(str(legacy_folder), paddle.static.Executor(paddle.CPUPlace()),
                                               model_filename="__model__", params_filename=None)
            expected = np.array(scope.find_var(name).get_tensor())
    assert expected.ndim == 4  # a conv filter, the largest tensor of the tiny net
    np.testing.assert_array_equal(read_lod_tensor(legacy_folder / name), expected)


# ---- the CLI --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(CORRUPTIONS))
def test_eval_exits_1_naming_the_file(kind: str, model: Path, other_model: Path, images: Path, tmp_path: Path) -> None:
    folder = _corrupted(kind, model, other_model, tmp_path)
    res = RUNNER.invoke(app, ["eval", str(folder), "--data", str(images), "--resize-short", "32", "--crop", "32"])
    assert res.exit_code == 1
    err = _err(res)
    assert str(folder / CORRUPTIONS[kind][1]) in err and CORRUPTIONS[kind][2] in err
    assert "Traceback" not in err and "C++" not in err


@pytest.mark.parametrize("kind", ["zero-filled-program", "swapped"])
def test_eval_process_no_longer_segfaults(kind: str, model: Path, other_model: Path, images: Path, tmp_path: Path) -> None:
    """The same in a real process: these two killed `zoo eval` with SIGSEGV (exit 139) before the check."""
    folder = _corrupted(kind, model, other_model, tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "ZOO_DEBUG"}
    proc = subprocess.run([sys.executable, "-m", "zoo", "eval", str(folder), "--data", str(images),
                           "--resize-short", "32", "--crop", "32"], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 1, proc.stderr[-2000:]
    err = " ".join(proc.stderr.split())
    assert str(folder / M) in err and CORRUPTIONS[kind][2] in err
    assert "Traceback" not in err and "SIGSEGV" not in err


@pytest.mark.parametrize("kind", ["truncated-params", "swapped", "params-of-another-model", "lost-output"])
def test_quantize_exits_1_naming_the_file(kind: str, model: Path, other_model: Path, calib_npy: Path,
                                          tmp_path: Path) -> None:
    folder = _corrupted(kind, model, other_model, tmp_path)
    out = tmp_path / "int8"
    res = RUNNER.invoke(app, ["quantize", str(folder), "--calib-data", str(calib_npy), "--algo", "abs_max",
                              "--batch-size", "8", "--batch-nums", "2", "--out", str(out)])
    assert res.exit_code == 1
    err = _err(res)
    assert str(folder / CORRUPTIONS[kind][1]) in err and CORRUPTIONS[kind][2] in err and "Traceback" not in err
    assert not out.exists()


# ---- verified writes ------------------------------------------------------------------------


def _work_folder(args: tuple) -> Path:
    return next(a for a in args if isinstance(a, Path) and (a / P).is_file())


def _quantize(model: Path, out: Path):  # type: ignore[no-untyped-def]
    from zoo.quant.ptq import quantize_static
    from zoo.quant.settings import PTQSettings

    return quantize_static(model, out, calibration(16), PTQSettings(algo="abs_max", batch_size=8, batch_nums=2, ops=OPS))


def _leftovers(out: Path) -> list:
    return [p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}")]


def test_short_write_of_ptq_is_never_committed(model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Paddle's save_combine ignores a failed write: the params file comes out short and PTQ used to report success."""
    import zoo.modelcheck
    import zoo.quant.ptq as ptq

    real = ptq._run_engine

    def short_write(*args, **kwargs):  # type: ignore[no-untyped-def]
        real(*args, **kwargs)
        params = _work_folder(args) / P
        params.write_bytes(params.read_bytes()[:-100])

    monkeypatch.setattr(ptq, "_run_engine", short_write)
    out = tmp_path / "int8"
    with pytest.raises(QuantizeError, match=f"the model written for {out} is incomplete: .* is truncated"):
        _quantize(model, out)
    assert not out.exists() and not _leftovers(out)

    monkeypatch.setattr(zoo.modelcheck, "free_bytes", lambda folder: 0)  # what a full disk looks like after it
    with pytest.raises(QuantizeError, match=f"^no space left on device while writing {out}$"):
        _quantize(model, out)
    assert not out.exists() and not _leftovers(out)


@pytest.mark.parametrize("failure", [
    OSError(errno.ENOSPC, "No space left on device"),
    OSError(errno.EDQUOT, "Disk quota exceeded"),
    RuntimeError("(Unavailable) Cannot write tensor data: No space left on device [Hint: ...]"),
])
def test_full_disk_while_quantizing_is_one_plain_sentence(failure: Exception, model: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import zoo.quant.ptq as ptq

    def fails(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise failure

    monkeypatch.setattr(ptq, "_run_engine", fails)
    out = tmp_path / "int8"
    with pytest.raises(QuantizeError) as info:
        _quantize(model, out)
    assert info.value.message == f"no space left on device while writing {out}"
    assert "space" in info.value.hint and info.value.__cause__ is failure
    assert not out.exists() and not _leftovers(out)


def test_short_write_of_an_export_leaves_no_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from zoo.models import save_inference

    real = paddle.jit.save

    def short_write(layer, path, **kwargs):  # type: ignore[no-untyped-def]
        real(layer, path, **kwargs)
        params = Path(path + ".pdiparams")
        params.write_bytes(params.read_bytes()[: params.stat().st_size // 2])

    monkeypatch.setattr(paddle.jit, "save", short_write)
    out = tmp_path / "exported"
    with pytest.raises(ModelError, match="incomplete: .*inference.pdiparams is truncated"):
        save_inference(OtherNet(), out, SHAPE)
    assert not out.exists()


def test_full_disk_during_inference_export(model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from zoo.deploy.export import export_model

    real = shutil.copyfile

    def copy(src, dst, **kwargs):  # type: ignore[no-untyped-def]
        if str(dst).endswith(".pdiparams"):
            raise OSError(errno.ENOSPC, "No space left on device", str(dst))
        return real(src, dst, **kwargs)

    monkeypatch.setattr(shutil, "copyfile", copy)
    out = tmp_path / "exported"
    with pytest.raises(ExportError, match=f"^no space left on device while writing {out}$"):
        export_model(str(model), "inference", out=out, validate=False)
    assert not out.exists() and not _leftovers(out)


def test_copy_with_a_short_write_is_not_committed(model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from zoo.quant.base import copy_model

    real = shutil.copyfile

    def short_copy(src, dst, **kwargs):  # type: ignore[no-untyped-def]
        real(src, dst, **kwargs)
        if str(dst).endswith(".pdiparams"):
            os.truncate(dst, os.path.getsize(dst) - 8)

    monkeypatch.setattr(shutil, "copyfile", short_copy)
    out = tmp_path / "fp32"
    with pytest.raises(QuantizeError, match="incomplete"):
        copy_model(find_model_files(model), out)
    assert not out.exists() and not _leftovers(out)


def test_no_space_is_found_through_wrapped_errors() -> None:
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as inner:
            raise QuantizeError("post-training quantization failed") from inner
    except QuantizeError as outer:
        assert is_no_space(outer)
    assert not is_no_space(QuantizeError("nothing was quantized"))
    assert not is_no_space(OSError(errno.EACCES, "Permission denied"))


@pytest.fixture
def small_tmpfs(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Mount a tmpfs of a given size (root only); unmounted after the test."""
    mounted = []

    def mount(kib: int) -> Path:
        where = tmp_path / f"disk{len(mounted)}"
        where.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={kib}k", "tmpfs", str(where)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or 'not root'}); "
                        "the monkeypatched short-write tests above cover the behaviour")
        mounted.append(where)
        return where

    yield mount
    for where in mounted:
        subprocess.run(["umount", str(where)], check=False)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_real_full_disk_on_a_small_tmpfs(model: Path, calib_npy: Path, tmp_path: Path, small_tmpfs) -> None:  # type: ignore[no-untyped-def]
    """A real short write: the program fits, the params do not (Paddle writes them last, silently short)."""
    reference = _quantize(model, tmp_path / "reference")
    program_pages = -(-reference.model_file.stat().st_size // 4096)
    assert reference.params_file is not None and reference.params_file.stat().st_size > 4096
    for free_pages in (program_pages, program_pages + 1):  # params: nothing written, then a part
        disk = small_tmpfs(4 * free_pages)
        out = disk / "int8"
        with pytest.raises(QuantizeError, match=f"^no space left on device while writing {out}$") as info:
            _quantize(model, out)
        # no OSError: Paddle wrote the params short without a word, the check after the save caught it
        assert isinstance(info.value.__cause__, ModelError) and P in info.value.__cause__.message
        assert os.listdir(disk) == []
    disk = small_tmpfs(4 * program_pages)
    res = RUNNER.invoke(app, ["quantize", str(model), "--calib-data", str(calib_npy), "--algo", "abs_max",
                              "--batch-size", "8", "--batch-nums", "2", "--out", str(disk / "int8")])
    assert res.exit_code == 1 and "no space left on device while writing" in _err(res)
    assert os.listdir(disk) == []

"""Paddle Lite converter failures become ConverterError; the toolchain is found by configuration."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from zoo.deploy.export import export_model
from zoo.deploy.lite import nb_kernels, parse_unsupported_ops
from zoo.deploy.toolchain import find_converter, lite_python
from zoo.errors import ConverterError

from .deploy_models import fp32_model, leftovers, script, unsupported_model


@pytest.fixture(scope="session")
def fp32(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fp32_model(tmp_path_factory)


def test_parse_unsupported_ops() -> None:
    text = ("1. Model is successfully loaded!\nError: This model is not supported, because 2 ops are not supported on "
            "'arm'. These unsupported ops are: 'determinant', 'yolo_box_head'.\n")
    assert parse_unsupported_ops(text) == ["determinant", "yolo_box_head"]
    assert parse_unsupported_ops("Check failed: op foo_op is not supported on x86") == ["foo_op"]
    assert parse_unsupported_ops("2. Model is optimized and saved into m.nb successfully") == []


def test_converter_that_segfaults(fp32: Path, tmp_path: Path) -> None:
    crash = script(tmp_path / "bin", "opt-crash", "kill -SEGV $$")
    out = tmp_path / "o"
    with pytest.raises(ConverterError, match="crashed \\(SIGSEGV") as info:
        export_model(str(fp32), "lite", arches=["arm"], out=out, opt_bin=crash)
    assert "opt-crash" in info.value.message
    assert not out.exists() and leftovers(tmp_path) == []


def test_converter_that_exits_3_with_unsupported_ops(fp32: Path, tmp_path: Path) -> None:
    body = ('case "$1" in --version) echo "v2.99-test"; exit 0;; esac\n'
            "echo \"Error: This model is not supported, because 1 ops are not supported on 'arm'. "
            "These unsupported ops are: 'fancy_op'.\"\nexit 3")
    opt = script(tmp_path / "bin", "opt-unsupported", body)
    with pytest.raises(ConverterError) as info:
        export_model(str(fp32), "lite", arches=["arm"], out=tmp_path / "o", opt_bin=opt)
    msg = info.value.message
    assert "fancy_op" in msg and "v2.99-test" in msg and "on arm" in msg
    assert not (tmp_path / "o").exists()


def test_converter_that_exits_nonzero_silently(fp32: Path, tmp_path: Path) -> None:
    opt = script(tmp_path / "bin", "opt-fail", "echo something went wrong >&2; exit 5")
    with pytest.raises(ConverterError, match="exit status 5") as info:
        export_model(str(fp32), "lite", arches=["arm"], out=tmp_path / "o", opt_bin=opt)
    assert "something went wrong" in info.value.message


def test_real_converter_rejects_an_unsupported_op(tmp_path_factory, tmp_path: Path) -> None:
    model = unsupported_model(tmp_path_factory)
    with pytest.raises(ConverterError) as info:
        export_model(str(model), "lite", arches=["arm"], out=tmp_path / "o")
    assert "determinant" in info.value.message and "2.13" in info.value.message


def test_real_213_converter_crash_on_x86_is_caught(fp32: Path, tmp_path: Path, monkeypatch) -> None:
    opt = Path(sys.prefix) / "bin" / "paddle_lite_opt"
    assert opt.is_file(), "make setup installs paddlelite 2.13rc0 with its paddle_lite_opt"
    monkeypatch.setenv("ZOO_LITE_OPT", str(opt))
    with pytest.raises(ConverterError, match="crashed") as info:
        export_model(str(fp32), "lite", arches=["x86"], out=tmp_path / "o")
    assert "3.7" in info.value.hint  # points at the x86 toolchain
    assert not (tmp_path / "o").exists()


def test_toolchain_discovery(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.delenv("ZOO_LITE_OPT", raising=False)
    monkeypatch.delenv("ZOO_LITE_PYTHON", raising=False)
    python = lite_python()
    assert python is not None and ".venv-lite" in str(python)
    assert find_converter("x86").argv[0] == str(python)
    assert find_converter("arm").argv[0] == sys.executable
    monkeypatch.setenv("ZOO_LITE_PYTHON", str(tmp_path / "nope"))
    with pytest.raises(ConverterError, match="ZOO_LITE_PYTHON"):
        find_converter("x86")
    with pytest.raises(ConverterError, match="not an executable"):
        find_converter("arm", opt_bin=tmp_path / "missing")
    with pytest.raises(ConverterError, match="unknown Lite target"):
        find_converter("riscv")


def test_nb_kernels_reads_targets_and_precisions(fp32: Path, tmp_path: Path) -> None:
    export_model(str(fp32), "lite", arches=["x86"], out=tmp_path / "o", validate=False)
    kernels = nb_kernels(tmp_path / "o" / "model.x86.fp32.nb")
    assert {k.target for k in kernels} >= {"x86", "host"}
    assert any(k.op == "softmax" and k.precision == "fp32" for k in kernels)


def test_a_relative_converter_path_is_run(fp32: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script(tmp_path / "bin", "opt-fail", "echo relative converter ran >&2; exit 5")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConverterError, match="exit status 5") as info:  # it ran: the path was found
        export_model(str(fp32), "lite", arches=["arm"], out=tmp_path / "o", opt_bin=Path("./bin/opt-fail"))
    assert "relative converter ran" in info.value.message


def test_a_full_disk_is_named_as_such_not_as_a_converter_failure(fp32: Path, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    import zoo.deploy.lite as lite
    from zoo.errors import ExportError

    opt = script(tmp_path / "bin", "opt-full", "echo 'Check failed: (fwrite(src, 1, size, file_) == size)' >&2; exit 134")
    monkeypatch.setattr(lite, "free_bytes", lambda folder: 0)  # what the converter's folder looks like on a full disk
    out = tmp_path / "o"
    with pytest.raises(ExportError, match="no space left on device while writing") as info:
        export_model(str(fp32), "lite", arches=["arm"], out=out, opt_bin=opt)
    assert str(out) in info.value.message and "Free some space" in (info.value.hint or "")
    assert not out.exists()

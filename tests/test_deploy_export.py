"""zoo.deploy: exports to Paddle Inference and Paddle Lite, validated against the source (real Paddle, real Lite)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from zoo.deploy.export import export_model
from zoo.deploy.lite import nb_kernels
from zoo.program import read_program
from zoo.deploy.validate import check_nb_structure, make_inputs, validate_inference
from zoo.errors import ExportError, ModelError, ValidationError
from zoo.modelfiles import find_model_files

from .deploy_models import fp32_model, int8_model, leftovers, reproduce_folder


@pytest.fixture(scope="session")
def fp32(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fp32_model(tmp_path_factory)


@pytest.fixture(scope="session")
def int8(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return int8_model(tmp_path_factory)


def test_program_reading_tells_fp32_from_int8(fp32: Path, int8: Path, tmp_path_factory) -> None:
    f, q = read_program(find_model_files(fp32)), read_program(find_model_files(int8))
    assert not f.is_int8 and f.quantized == []
    assert [(s.name, s.shape) for s in f.inputs] == [("x", (-1, 3, 32, 32))]
    assert q.is_int8 and sorted(q.quantized) == ["conv2d", "conv2d", "matmul_v2"]
    onnx = read_program(find_model_files(int8_model(tmp_path_factory, onnx_format=True)))
    assert onnx.is_int8 and "quantize_linear" in onnx.op_types and len(onnx.quantized) == 3


def test_inference_export_fp32_is_normalized_and_validated(fp32: Path, tmp_path: Path) -> None:
    out = tmp_path / "inf"
    result = export_model(str(fp32), "inference", out=out)
    assert sorted(p.name for p in out.iterdir()) == [".zoo-written.json", "inference.pdiparams", "inference.pdmodel", "zoo_export.json"]
    check = result.artifacts[0].validation
    assert check["passed"] and check["max_rel_error"] < 1e-5
    meta = json.loads((out / "zoo_export.json").read_text())
    assert meta["precision"] == "fp32" and len(meta["source_sha256"]) == 64
    assert meta["inputs"] == [{"name": "x", "shape": [-1, 3, 32, 32], "dtype": "float32"}]
    assert leftovers(tmp_path) == []


def test_inference_export_int8_keeps_the_quantized_program(int8: Path, tmp_path: Path) -> None:
    result = export_model(str(int8), "inference", out=tmp_path / "inf8")
    meta = json.loads((tmp_path / "inf8" / "zoo_export.json").read_text())
    assert meta["precision"] == "int8" and meta["quantized_ops"] == 3
    assert result.artifacts[0].validation["passed"]
    assert read_program(find_model_files(tmp_path / "inf8")).is_int8


def test_lite_fp32_for_arm_and_x86(fp32: Path, tmp_path: Path) -> None:
    out = tmp_path / "lite"
    result = export_model(str(fp32), "lite", arches=["arm", "x86"], out=out)
    by_arch = {a.arch: a for a in result.artifacts}
    assert (out / "model.arm.fp32.nb").is_file() and (out / "model.x86.fp32.nb").is_file()
    x86 = by_arch["x86"].validation
    assert x86["kind"] == "outputs" and x86["max_rel_error"] < 1e-4  # run by Lite's MobileConfig
    assert "2.12" in by_arch["x86"].converter and "2.13" in by_arch["arm"].converter
    arm = by_arch["arm"].validation
    assert arm["kind"] == "structure" and any(k.startswith("conv2d:arm/fp32") for k in arm["kernels"])
    assert by_arch["arm"].size == (out / "model.arm.fp32.nb").stat().st_size > 1000


def test_lite_int8_for_arm_runs_int8_kernels(int8: Path, tmp_path: Path) -> None:
    out = tmp_path / "lite8"
    result = export_model(str(int8), "lite", arches=["arm"], out=out)
    art = result.artifacts[0]
    assert art.path.name == "model.arm.int8.nb" and art.precision == "int8"
    assert art.validation["int8_kernels"] >= art.validation["int8_ops_in_source"] == 3
    assert art.validation["kernels"]["conv2d:arm/int8"] == 2


def test_int8_for_x86_is_refused_and_nothing_written(int8: Path, tmp_path: Path) -> None:
    out = tmp_path / "never"
    with pytest.raises(ExportError, match="x86 backend does not run INT8") as info:
        export_model(str(int8), "lite", arches=["arm", "x86"], out=out)
    assert "arm" in info.value.hint
    assert not out.exists() and leftovers(tmp_path) == []


def test_reproduce_folder_exports_int8_and_compares_with_fp32(tmp_path_factory, tmp_path: Path) -> None:
    repro = reproduce_folder(tmp_path_factory)
    result = export_model(str(repro), "lite", arches=["arm"], out=tmp_path / "r")
    names = sorted(a.path.name for a in result.artifacts)
    assert names == ["model.arm.fp32.nb", "model.arm.int8.nb"]
    int8_art = next(a for a in result.artifacts if a.precision == "int8")
    fp32_size = (tmp_path / "r" / "model.arm.fp32.nb").stat().st_size
    assert int8_art.size_vs_fp32 == pytest.approx(int8_art.size / fp32_size, abs=1e-3)
    inf = export_model(str(repro), "inference", out=tmp_path / "ri")
    meta = json.loads((tmp_path / "ri" / "zoo_export.json").read_text())
    # the run's report.json carries its whole recipe and preprocessing; the export keeps them
    assert meta["recipe"]["name"] == "digits_mobilenetv1_ptq" and meta["preprocess"]["crop"] == 32
    assert meta["precision"] == "int8"
    assert inf.source["kind"] == "reproduce"
    with pytest.raises(ExportError, match="INT8") as refused:
        export_model(str(repro), "lite", arches=["x86"], out=tmp_path / "rx")
    assert "fp32" in refused.value.hint  # points at the reproduce folder's FP32 model


def test_folder_that_is_not_a_model(tmp_path: Path) -> None:
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.txt").write_text("hello")
    with pytest.raises(ModelError, match="no Paddle inference model"):
        export_model(str(tmp_path / "junk"), "inference", out=tmp_path / "o")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "inference.pdmodel").write_bytes(b"\xff\xfe not a protobuf \x00" * 10)
    with pytest.raises(ModelError):
        export_model(str(bad), "lite", out=tmp_path / "o2")
    assert not (tmp_path / "o").exists() and not (tmp_path / "o2").exists()


def test_validation_catches_a_different_model(fp32: Path, tmp_path_factory) -> None:
    other = fp32_model(tmp_path_factory, name="fp32-other", seed=7)
    inputs = make_inputs(read_program(find_model_files(fp32)), batch=2)
    with pytest.raises(ValidationError, match="relative error"):
        validate_inference(find_model_files(fp32), find_model_files(other), inputs)


def test_structure_check_catches_missing_int8_kernels(fp32: Path, int8: Path, tmp_path: Path) -> None:
    export_model(str(fp32), "lite", arches=["arm"], out=tmp_path / "f", validate=False)
    nb = tmp_path / "f" / "model.arm.fp32.nb"
    assert all(k.precision != "int8" for k in nb_kernels(nb))
    with pytest.raises(ValidationError, match="runs none of them in INT8"):
        check_nb_structure(nb, read_program(find_model_files(int8)), "arm")


def test_structure_check_reports_ops_left_in_float(int8: Path, tmp_path: Path) -> None:
    export_model(str(int8), "lite", arches=["arm"], out=tmp_path / "q", validate=False)
    nb = tmp_path / "q" / "model.arm.int8.nb"
    info = read_program(find_model_files(int8))
    full = check_nb_structure(nb, info, "arm")
    assert "float_fallback" not in full.extra
    # the source asks for one more INT8 op than the converter produced: reported, not refused
    info.quantized.append("matmul_v2")
    partial = check_nb_structure(nb, info, "arm")
    assert partial.passed
    assert f"{full.extra['int8_kernels']} of {len(info.quantized)} quantized op(s) run INT8" in partial.detail
    assert "float_fallback" in partial.extra


def test_provided_inputs_are_used(fp32: Path, tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", np.ones((3, 3, 32, 32), dtype="float32"))
    result = export_model(str(fp32), "lite", arches=["x86"], out=tmp_path / "o", inputs_path=tmp_path / "x.npy")
    assert result.artifacts[0].validation["passed"]


def test_a_model_folder_of_a_reproduction_keeps_its_run(tmp_path_factory) -> None:
    """OUT/fp32 and OUT/int8 resolve as that model of the run, with the run's recipe (its data validates the export)."""
    from zoo.deploy.resolve import resolve_source

    repro = reproduce_folder(tmp_path_factory)
    fp32 = resolve_source(str(repro / "fp32"))
    assert fp32.kind == "reproduce" and fp32.recipe["name"] == "digits_mobilenetv1_ptq" and fp32.input_size == 32
    assert fp32.primary.folder == find_model_files(repro / "fp32").folder
    int8 = resolve_source(str(repro / "int8"))
    assert int8.primary.folder == find_model_files(repro / "int8").folder and int8.recipe["name"] == "digits_mobilenetv1_ptq"
    plain = resolve_source(str(fp32_model(tmp_path_factory)))  # a folder outside any run stays a plain folder
    assert plain.kind == "folder" and plain.recipe is None

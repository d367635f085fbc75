"""--device: one parser, and the chosen device reaches every stage (checked on CPU by what each stage configures).

No GPU is needed: `fake_gpus` makes the zoo's availability check see a CUDA build with two GPUs,
and each test records what a stage builds from the device (the predictor config's GPU id, the
executor's place, paddle.set_device, the bench worker's command line) instead of running on it.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, List

import numpy as np
import pytest

from tests.quant_tiny import SHAPE, ArrayDataset, save_fp32, tiny_data, tiny_net, tiny_recipe
from zoo.tasks import get_task
from zoo.cli.main import app
from zoo.device import Device, parse_device, require_device
from zoo.errors import UsageError

from .conftest import RUNNER


@pytest.fixture
def fake_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    """Paddle reports a CUDA build with two GPUs; kernels still run on the CPU of this machine."""
    import paddle

    monkeypatch.setattr(paddle.device, "is_compiled_with_cuda", lambda: True)
    monkeypatch.setattr(paddle.device.cuda, "device_count", lambda: 2)


@pytest.fixture
def configs(monkeypatch: pytest.MonkeyPatch) -> List[tuple]:
    """Every device call made on a Paddle Inference config, as ("gpu", memory_mb, id) or ("cpu",)."""
    from paddle import inference

    calls: List[tuple] = []

    class Recording(inference.Config):  # type: ignore[misc,valid-type]
        def enable_use_gpu(self, memory_mb: int, device_id: int = 0, *args: Any) -> None:
            calls.append(("gpu", memory_mb, device_id))
            super().enable_use_gpu(memory_mb, device_id, *args)  # a CPU build logs this and stays on the CPU

        def disable_gpu(self) -> None:
            calls.append(("cpu",))
            super().disable_gpu()

    monkeypatch.setattr(inference, "Config", Recording)
    return calls


class Reached(Exception):
    """Raised by a recorder to stop a stage once its device is known."""


@pytest.fixture
def set_devices(monkeypatch: pytest.MonkeyPatch) -> List[str]:
    """paddle.set_device calls; a GPU one stops the run there (this machine has none to train on)."""
    import paddle

    calls: List[str] = []

    def record(name: str) -> None:
        calls.append(name)
        if name != "cpu":
            raise Reached(name)

    monkeypatch.setattr(paddle, "set_device", record)
    return calls


@pytest.fixture(scope="module")
def tiny_fp32(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import paddle

    paddle.seed(0)
    return save_fp32(tiny_net(), tmp_path_factory.mktemp("device-fp32"))


def _text(result: Any) -> str:
    return " ".join((result.stdout + result.stderr).split())


# the parser


@pytest.mark.parametrize("text, device", [
    ("cpu", Device("cpu")), ("CPU", Device("cpu")), ("gpu", Device("gpu")), (" gpu:0 ", Device("gpu", 0)),
    ("GPU:3", Device("gpu", 3)),
])
def test_parse_accepts_cpu_gpu_and_an_indexed_gpu(text: str, device: Device) -> None:
    assert parse_device(text) == device
    assert parse_device(str(device)) == device  # str() is the form paddle.set_device and --device take


@pytest.mark.parametrize("text", ["tpu", "gpux", "gpu:", "gpu:-1", "gpu:1:2", "cuda:0", "cpu:0", "xpu", ""])
def test_parse_refuses_anything_else_naming_value_and_forms(text: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_device(text)
    assert repr(text) in info.value.message
    assert "cpu, gpu or gpu:N" in info.value.hint


def test_gpu_on_a_build_without_cuda_is_refused_with_the_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    import paddle

    monkeypatch.setattr(paddle.device, "is_compiled_with_cuda", lambda: False)
    assert require_device("cpu") == Device("cpu")
    with pytest.raises(UsageError, match="no CUDA support") as info:
        require_device("gpu:1")
    assert "paddlepaddle-gpu" in info.value.hint and "--device cpu" in info.value.hint


def test_a_gpu_index_beyond_the_visible_ones_is_refused(fake_gpus: None) -> None:
    assert require_device("gpu:1") == Device("gpu", 1)
    with pytest.raises(UsageError, match="only 2 GPU"):
        require_device("gpu:2")


def test_what_each_stage_builds_from_a_device(monkeypatch: pytest.MonkeyPatch) -> None:
    import paddle

    monkeypatch.setattr(paddle, "CUDAPlace", lambda i: ("CUDAPlace", i))  # a CPU build cannot make one
    assert Device("gpu", 1).place() == ("CUDAPlace", 1)
    assert isinstance(Device("cpu").place(), type(paddle.CPUPlace()))

    class Config:
        def __init__(self) -> None:
            self.calls: List[tuple] = []

        def enable_use_gpu(self, memory_mb: int, device_id: int) -> None:
            self.calls.append(("gpu", memory_mb, device_id))

        def disable_gpu(self) -> None:
            self.calls.append(("cpu",))

    gpu, cpu = Config(), Config()
    Device("gpu", 1).configure_predictor(gpu)
    Device("cpu").configure_predictor(cpu)
    assert gpu.calls == [("gpu", 256, 1)] and cpu.calls == [("cpu",)]


def test_plain_gpu_is_the_gpu_the_launcher_selected(monkeypatch: pytest.MonkeyPatch) -> None:
    import paddle

    monkeypatch.setattr(paddle.base.core, "is_compiled_with_cuda", lambda: True)
    monkeypatch.setenv("FLAGS_selected_gpus", "1")
    assert Device("gpu").gpu_id() == 1
    assert Device("gpu", 0).gpu_id() == 0


# every stage


def test_predictor_and_evaluation_configure_the_chosen_gpu(fake_gpus: None, configs: List[tuple],
                                                          tiny_fp32: Path) -> None:
    from zoo.evaluate.classification import evaluate

    x, y = tiny_data(16, seed=4)
    result = evaluate(tiny_fp32, [(x, y)], device="gpu:1")
    assert configs == [("gpu", 256, 1)]
    assert result["images"] == 16  # a CPU build ignores the GPU request, so the evaluation still runs here
    configs.clear()
    evaluate(tiny_fp32, [(x, y)])
    assert configs == [("cpu",)]


def test_zoo_eval_device_reaches_the_predictor(fake_gpus: None, configs: List[tuple], tiny_fp32: Path,
                                               tmp_path: Path) -> None:
    from tests.repro_standins import make_imagenet

    data = make_imagenet(tmp_path / "data", classes=2, per_class=2)
    result = RUNNER.invoke(app, ["eval", str(tiny_fp32), "--data", str(data), "--resize-short", "16", "--crop", "16",
                                 "--device", "gpu:1", "--workers", "0", "--json"])
    assert result.exit_code == 0, _text(result)
    assert json.loads(result.stdout)["device"] == "gpu:1"
    assert configs == [("gpu", 256, 1)]


def test_ptq_calibrates_with_an_executor_on_the_chosen_device(fake_gpus: None, monkeypatch: pytest.MonkeyPatch,
                                                              tiny_fp32: Path, tmp_path: Path) -> None:
    import paddle

    from zoo.modelfiles import find_model_files
    from zoo.quant.base import FP32Source, QuantData, QuantOptions, get_strategy

    asked: List[Device] = []
    stand_in = paddle.CPUPlace()  # a CPU build cannot make the GPU place; the calibration runs here instead

    def place(self: Device) -> Any:
        asked.append(self)
        return stand_in

    monkeypatch.setattr(Device, "place", place)
    executors: List[Any] = []
    real_executor = paddle.static.Executor
    monkeypatch.setattr(paddle.static, "Executor", lambda p=None: executors.append(p) or real_executor(p))

    x, _ = tiny_data(32, seed=6)
    recipe = tiny_recipe("ptq", quant={"ops": ["conv2d", "matmul_v2"], "algo": "abs_max"})
    files = get_strategy("ptq").quantize(
        recipe, FP32Source(input_shape=SHAPE, model=find_model_files(tiny_fp32)),
        QuantData(calib=lambda: (x[i:i + 8] for i in range(0, 32, 8))), tmp_path / "int8",
        QuantOptions(device="gpu:1"),
    )
    assert files.model_file.is_file()
    assert asked and set(asked) == {Device("gpu", 1)}
    assert any(p is stand_in for p in executors)  # the calibration executor runs on the device's place


def test_qat_trains_on_the_chosen_device(fake_gpus: None, set_devices: List[str], tmp_path: Path) -> None:
    from zoo.quant.base import FP32Source, QuantData, QuantOptions, get_strategy

    x, y = tiny_data(32, seed=2)
    with pytest.raises(Reached):
        get_strategy("qat").quantize(tiny_recipe("qat"), FP32Source(input_shape=SHAPE, network=tiny_net(), hooks=get_task("classification")),
                                     QuantData(train=ArrayDataset(x, y)), tmp_path / "int8",
                                     QuantOptions(device="gpu:1", work_dir=tmp_path / "ckpt"))
    assert set_devices == ["gpu:1"]
    assert not (tmp_path / "int8").exists()


def test_act_trains_on_the_chosen_device(fake_gpus: None, set_devices: List[str], tiny_fp32: Path,
                                         tmp_path: Path) -> None:
    from zoo.modelfiles import find_model_files
    from zoo.quant.base import FP32Source, QuantData, QuantOptions, get_strategy

    x, y = tiny_data(32, seed=3)
    recipe = tiny_recipe("act", quant={"ops": ["conv2d", "matmul_v2"]},
                         train={"distill": {"loss": "soft_label", "alpha": 1.0}})
    with pytest.raises(Reached):
        get_strategy("act").quantize(recipe, FP32Source(input_shape=SHAPE, model=find_model_files(tiny_fp32)),
                                     QuantData(train=ArrayDataset(x, y)), tmp_path / "int8",
                                     QuantOptions(device="gpu:1", work_dir=tmp_path / "work"))
    assert set_devices == ["gpu:1"]
    assert not (tmp_path / "int8").exists()


def test_act_executor_is_placed_on_the_gpu_index(monkeypatch: pytest.MonkeyPatch) -> None:
    import paddle

    from zoo.quant.act import placed_compression

    # AutoCompression itself would take only the device kind ("gpu") and land on GPU 0
    monkeypatch.setattr(paddle, "CUDAPlace", lambda i: ("CUDAPlace", i))
    made: List[Any] = []
    monkeypatch.setattr(paddle.static, "Executor", lambda p=None: made.append(p) or ("Executor", p))
    cls = placed_compression(Device("gpu", 1))
    exe, place, fleet = cls.__new__(cls)._prepare_envs()
    assert place == ("CUDAPlace", 1) and exe == ("Executor", ("CUDAPlace", 1))
    assert fleet is False  # upstream's multi-GPU switch is kept (no GPU here)


def test_bench_worker_command_line_carries_the_device(tiny_fp32: Path, tmp_path: Path) -> None:
    from zoo.deploy.bench import paddle_label, worker_argv
    from zoo.modelfiles import find_model_files

    files = find_model_files(tiny_fp32)
    gpu = worker_argv(files, tmp_path / "in.npz", int8=True, threads=1, warmup=1, repeat=2, device=Device("gpu", 1),
                      tensorrt=True)
    assert gpu[gpu.index("--device") + 1] == "gpu:1" and "--tensorrt" in gpu and "--mkldnn" not in gpu
    cpu = worker_argv(files, tmp_path / "in.npz", int8=True, threads=1, warmup=1, repeat=2, device=Device("cpu"))
    assert cpu[cpu.index("--device") + 1] == "cpu" and "--mkldnn" in cpu and "--tensorrt" not in cpu
    assert paddle_label(Device("gpu", 1), tensorrt=True) == "paddle-gpu:1-trt"
    assert paddle_label(Device("cpu")) == "paddle-cpu-onednn"


def test_bench_rows_name_the_device_that_ran(fake_gpus: None, monkeypatch: pytest.MonkeyPatch,
                                             tiny_fp32: Path) -> None:
    import zoo.deploy.bench as bench

    seen: List[Any] = []
    real = bench.bench_paddle

    def run_here(files: Any, inputs: Any, **kwargs: Any) -> Any:
        seen.append(kwargs["device"])
        return real(files, inputs, **dict(kwargs, device="cpu", tensorrt=False))  # no GPU here: time it on the CPU

    monkeypatch.setattr(bench, "bench_paddle", run_here)
    result = bench.bench_model(str(tiny_fp32), backend="paddle", warmup=1, repeat=2, device="gpu:1")
    assert seen == [Device("gpu", 1)]
    assert [r.backend for r in result.rows] == ["paddle-gpu:1"] and result.device == "gpu:1"
    assert result.rows[0].p50_ms is not None and result.rows[0].p50_ms > 0


def test_bench_tensorrt_needs_a_gpu(tiny_fp32: Path) -> None:
    from zoo.deploy.bench import bench_model

    with pytest.raises(UsageError, match="--tensorrt runs on a GPU"):
        bench_model(str(tiny_fp32), tensorrt=True)


def test_bench_worker_refuses_an_unknown_device(capsys: pytest.CaptureFixture) -> None:
    from zoo.deploy.paddle_worker import main

    with pytest.raises(SystemExit) as info:
        main(["--model", "m", "--inputs", "i.npz", "--device", "tpu"])
    assert info.value.code == 2 and "unknown device 'tpu'" in capsys.readouterr().err


# the command line refuses a bad device before any work


@pytest.mark.parametrize("args", [
    ["bench", "no_such_model", "--device", "tpu"],
    ["eval", "no_such_model", "--device", "gpux"],
    ["reproduce", "no_such_model", "--device", "foo"],
    ["quantize", "no_such_dir", "--calib-data", "none.npy", "--out", "o", "--device", "gpu:x"],
])
def test_cli_refuses_an_unknown_device_first(args: List[str]) -> None:
    result = RUNNER.invoke(app, args)
    text = _text(result)
    assert result.exit_code == 2, text
    assert f"unknown device '{args[-1]}'" in text and "gpu:N" in text
    assert "no_such" not in text  # refused before the model was looked for
    assert "Traceback" not in text


def test_cli_gpu_on_a_build_without_cuda_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import paddle

    monkeypatch.setattr(paddle.device, "is_compiled_with_cuda", lambda: False)
    result = RUNNER.invoke(app, ["eval", "digits_mobilenetv1_ptq", "--device", "gpu"])
    text = _text(result)
    assert result.exit_code == UsageError.exit_code and "no CUDA support" in text and "paddlepaddle-gpu" in text
    assert "Traceback" not in text


def test_reproduce_runs_every_stage_on_the_chosen_device(fake_gpus: None, configs: List[tuple],
                                                        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """PTQ reproduction of the bundled digits entry with --device gpu:1: FP32 and INT8 evaluation, calibration."""
    import paddle

    activated: List[str] = []
    monkeypatch.setattr(paddle, "set_device", activated.append)  # no GPU here: remember the request, stay on CPU
    asked: List[Device] = []
    monkeypatch.setattr(Device, "place", lambda self: asked.append(self) or paddle.CPUPlace())
    result = RUNNER.invoke(app, ["reproduce", "digits_mobilenetv1_ptq", "--device", "gpu:1", "--out", str(tmp_path / "o"),
                                 "--json", "--quiet"])
    report = json.loads(result.stdout)
    assert report["options"]["device"] == "gpu:1", _text(result)
    assert activated[0] == "gpu:1"
    assert set(asked) == {Device("gpu", 1)}  # PTQ calibration
    assert configs.count(("gpu", 256, 1)) == 2 and ("cpu",) not in configs  # FP32 and INT8 evaluation
    assert np.isfinite(report["settings"][0]["metrics"]["top1"]["measured"])


def test_reproduce_device_follows_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    from zoo.cli.reproduce import device_of

    monkeypatch.delenv("ZOO_DIST_CHILD", raising=False)
    monkeypatch.delenv("FLAGS_selected_gpus", raising=False)
    assert device_of(None, None) == Device("cpu")
    assert device_of(None, "0,1") == Device("gpu")  # README's `--gpus 0,1,2,3` trains on the GPUs
    assert device_of("gpu:1", None) == Device("gpu", 1)
    with pytest.raises(UsageError, match="--gpus trains on GPUs"):
        device_of("cpu", "0,1")
    # a rank the launcher started on a GPU (it no longer sees --gpus): its own GPU
    monkeypatch.setenv("ZOO_DIST_CHILD", "1")
    monkeypatch.setenv("FLAGS_selected_gpus", "1")
    assert device_of(None, None) == Device("gpu")
    assert device_of("cpu", None) == Device("cpu")  # an explicit --device wins

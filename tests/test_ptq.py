"""zoo.quant.ptq.quantize_static on a tiny conv net saved with paddle.jit.save, run by Paddle Inference."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Tuple

import numpy as np
import pytest

from zoo.errors import QuantizeError
from zoo.predictor import Predictor
from zoo.quant.ptq import quantize_static
from zoo.quant.settings import PTQSettings

OPS = ("conv2d", "depthwise_conv2d", "mul", "matmul_v2")


def _save_tiny_net(folder: Path) -> None:
    import paddle

    paddle.seed(0)

    class TinyNet(paddle.nn.Layer):
        def __init__(self) -> None:
            super().__init__()
            self.conv = paddle.nn.Conv2D(3, 8, 3, padding=1)
            self.bn = paddle.nn.BatchNorm2D(8)
            self.dw = paddle.nn.Conv2D(8, 8, 3, padding=1, groups=8)
            self.fc = paddle.nn.Linear(8 * 8 * 8, 10)

        def forward(self, x):
            x = paddle.nn.functional.relu(self.bn(self.conv(x)))
            x = paddle.nn.functional.relu(self.dw(x))
            return paddle.nn.functional.softmax(self.fc(paddle.flatten(x, 1)))

    net = TinyNet()
    net.eval()
    spec = [paddle.static.InputSpec([None, 3, 8, 8], "float32", "image")]
    paddle.jit.save(net, str(folder / "inference"), input_spec=spec)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tiny_fp32")
    _save_tiny_net(folder)
    return folder


@pytest.fixture(scope="session")
def calib() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((40, 3, 8, 8)).astype(np.float32)


def model_scales(folder: Path) -> Tuple[Dict[str, float], Dict[str, np.ndarray]]:
    """Every threshold attribute and every persistable input, keyed by op type, activation inputs and slot.

    Keys avoid op positions and generated names: Paddle's passes may order inserted ops and
    number their scale variables differently from run to run.
    """
    import paddle

    from zoo.program import static_mode

    with static_mode():
        scope = paddle.static.Scope()
        with paddle.static.scope_guard(scope):
            exe = paddle.static.Executor(paddle.CPUPlace())
            program, _, _ = paddle.static.load_inference_model(str(folder / "inference"), exe)
            block = program.global_block()
            dense = paddle.framework.core.VarDesc.VarType.LOD_TENSOR
            attrs: Dict[str, float] = {}
            arrays: Dict[str, np.ndarray] = {}
            seen: Dict[str, int] = {}
            for op in block.ops:
                activations = sorted(
                    n for n in op.input_arg_names if not (block.has_var(n) and block.var(n).persistable)
                )
                op_key = f"{op.type}({','.join(activations)})"
                seen[op_key] = seen.get(op_key, 0) + 1
                op_key += f"#{seen[op_key]}"
                for name in op.attr_names:
                    if name.endswith("threshold") or name in ("out_min", "out_max"):
                        attrs[f"{op_key}:{name}"] = op.attr(name)
                for slot in op.input_names:
                    for position, var_name in enumerate(op.input(slot)):
                        var = block.var(var_name) if block.has_var(var_name) else None
                        if var is not None and var.persistable and var.type == dense:
                            value = np.array(scope.find_var(var_name).get_tensor())
                            arrays[f"{op_key}:{slot}:{position}"] = value
    return attrs, arrays


def test_paddleslim_engine_int8_close_to_fp32(tiny_model: Path, calib: np.ndarray, tmp_path: Path) -> None:
    out = quantize_static(tiny_model, tmp_path / "int8", calib,
                          PTQSettings(batch_size=8, batch_nums=4, ops=OPS, engine="paddleslim"))
    assert out.model_file == tmp_path / "int8" / "inference.pdmodel"
    assert out.params_file is not None and out.params_file.is_file()
    assert sorted(p.name for p in (tmp_path / "int8").iterdir()) == ["inference.pdiparams", "inference.pdmodel"]
    attrs, _ = model_scales(tmp_path / "int8")
    assert any(k.startswith("conv2d(") for k in attrs), "no quantization scales were written"
    fp32 = Predictor(tiny_model).run(calib[:8])[0]
    int8 = Predictor(out).run(calib[:8])[0]
    assert int8.shape == fp32.shape
    assert np.abs(int8 - fp32).max() < 0.05
    assert not np.array_equal(int8, fp32)  # the quantized model really differs


@pytest.mark.parametrize("algo, onnx_format", [
    ("KL", False), ("hist", False), ("mse", False), ("avg", False), ("abs_max", False), ("min_max", False),
    ("hist", True), ("mse", True),
])
def test_fast_engine_matches_paddleslim(algo: str, onnx_format: bool, tiny_model: Path, calib: np.ndarray,
                                        tmp_path: Path) -> None:
    settings = PTQSettings(algo=algo, batch_size=8, batch_nums=4, hist_percent=0.999, ops=OPS, onnx_format=onnx_format)
    timings: Dict[str, float] = {}
    slim = quantize_static(tiny_model, tmp_path / "slim", calib, settings.replace(engine="paddleslim"))
    fast = quantize_static(tiny_model, tmp_path / "fast", calib, settings.replace(engine="fast"), timings=timings)
    slim_attrs, slim_arrays = model_scales(slim.folder)
    fast_attrs, fast_arrays = model_scales(fast.folder)
    assert fast_attrs == slim_attrs
    if onnx_format:  # scales live in quantize_linear/dequantize_linear inputs, not in op attributes
        assert any(k.startswith("quantize_linear(") and ":Scale:" in k for k in slim_arrays)
    else:
        assert slim_attrs
    assert fast_arrays.keys() == slim_arrays.keys()
    for name, value in slim_arrays.items():
        np.testing.assert_array_equal(fast_arrays[name], value, err_msg=name)
    batch = calib[:8]
    assert np.abs(Predictor(fast).run(batch)[0] - Predictor(slim).run(batch)[0]).max() == 0.0
    assert {"sampling", "threshold", "total"} <= timings.keys()


def test_callable_calibration_data(tiny_model: Path, calib: np.ndarray, tmp_path: Path) -> None:
    calls = []

    def batches():
        calls.append(1)
        return (calib[i : i + 8] for i in range(0, 40, 8))

    from_array = quantize_static(tiny_model, tmp_path / "a", calib, PTQSettings(batch_size=8, batch_nums=3, ops=OPS))
    from_callable = quantize_static(tiny_model, tmp_path / "b", batches, PTQSettings(batch_nums=3, ops=OPS))
    assert len(calls) == 2  # KL reads the data twice: ranges, then histograms
    assert model_scales(from_array.folder)[0] == model_scales(from_callable.folder)[0]


def test_skip_patterns_keep_ops_in_fp32(tiny_model: Path, calib: np.ndarray, tmp_path: Path) -> None:
    settings = PTQSettings(batch_size=8, batch_nums=2, ops=OPS)
    quantize_static(tiny_model, tmp_path / "all", calib, settings)
    quantize_static(tiny_model, tmp_path / "skip", calib, settings.replace(skip=["linear_*.w_0"]))
    def dequantized_weights(folder: Path) -> int:
        return sum(k.startswith("fake_channel_wise_dequantize_max_abs(") and ":Scales:0" in k
                   for k in model_scales(folder)[1])

    assert dequantized_weights(tmp_path / "skip") == dequantized_weights(tmp_path / "all") - 1


@pytest.mark.parametrize(
    "kwargs, calib_factory, message",
    [
        ({"algo": "nope"}, None, "unknown algo"),
        ({"engine": "nope"}, None, "unknown PTQ engine"),
        ({"batch_size": 0}, None, "must be positive"),
        ({}, lambda c: c[:, :2], "the model expects"),
        ({}, lambda c: c[:0], "empty"),
        ({}, lambda c: c[0], "dimensions"),
        ({}, lambda c: (lambda: iter(())), "gave no calibration batch"),
        ({}, lambda c: (lambda: iter([c[:8, :2]])), "the model expects"),
        ({}, lambda c: (lambda: 1 / 0), "ZeroDivisionError"),
        ({}, lambda c: "images/", "must be an array or a callable"),
        ({"skip": ["no_such_tensor*"]}, None, "matches no tensor"),
    ],
)
def test_bad_input_raises_quantize_error(kwargs, calib_factory, message, tiny_model, calib, tmp_path) -> None:
    data = calib if calib_factory is None else calib_factory(calib)
    with pytest.raises(QuantizeError) as info:  # a bad setting is refused when the settings are built
        quantize_static(tiny_model, tmp_path / "out", data, PTQSettings(**{"batch_size": 8, "batch_nums": 2, "ops": OPS, **kwargs}))
    assert message in info.value.message
    assert info.value.hint
    assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]  # no temp folder left


def test_missing_model_is_quantize_error(tmp_path: Path, calib: np.ndarray) -> None:
    with pytest.raises(QuantizeError) as info:
        quantize_static(tmp_path / "missing", tmp_path / "out", calib)
    assert "does not exist" in info.value.message

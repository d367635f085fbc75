"""The vectorized calibration (zoo.quant.calibration, zoo.quant.fast_ptq) against Paddle's own code.

Paddle's reference implementations run on the same inputs: cal_kl_threshold for KL,
PostTrainingQuantization's methods for hist / mse / avg / abs_max / min_max and the statistics,
np.histogram for the sampling histograms. Recorded histograms come from the bundled digits
MobileNetV1 on digits images (`python benchmarks/bench_ptq.py record-histograms ...`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Iterator, List, Tuple

import numpy as np
import pytest
from paddle.static.quantization import PostTrainingQuantization
from paddle.static.quantization.cal_kl_threshold import cal_kl_threshold

from zoo.quant import calibration as cal
from zoo.quant.fast_ptq import FastPostTrainingQuantization

RECORDED = Path(__file__).parent / "data" / "digits_mobilenetv1_act_hists.npz"
BINS = 2048


def _same(a: float, b: float) -> bool:
    return a == b or abs(a - b) <= 1e-6 * max(abs(a), abs(b))


def synthetic_hists() -> Iterator[Tuple[str, np.ndarray]]:
    rng = np.random.default_rng(7)

    def hist_of(values: np.ndarray) -> np.ndarray:
        values = np.abs(values).astype(np.float32)
        return np.histogram(values, bins=BINS, range=(float(values.min()), float(values.max())))[0]

    yield "skewed_exponential", hist_of(rng.exponential(1.0, 200_000))
    yield "half_normal", hist_of(rng.standard_normal(200_000))
    yield "heavy_tail_lognormal", hist_of(rng.lognormal(0.0, 1.5, 200_000))
    relu = np.maximum(rng.standard_normal(100_000), 0)
    yield "relu_zero_pile", hist_of(relu)
    sparse = np.zeros(BINS, np.int64)
    sparse[rng.integers(0, BINS, 40)] = rng.integers(1, 1000, 40)
    yield "sparse", sparse
    yield "all_zero", np.zeros(BINS, np.int64)
    spike = np.zeros(BINS, np.int64)
    spike[BINS // 2] = 50_000
    yield "single_spike_middle", spike
    low = np.zeros(BINS, np.int64)
    low[3] = 50_000
    yield "single_spike_low", low
    ends = np.zeros(BINS, np.int64)
    ends[0], ends[-1] = 10**6, 1
    yield "spike_and_far_outlier", ends
    plateau = np.concatenate([rng.integers(100, 200, BINS // 2), np.full(BINS - BINS // 2, 5)]).astype(np.int64)
    yield "plateau_near_ties", plateau


def recorded_hists() -> Iterator[Tuple[str, np.ndarray, np.ndarray]]:
    data = np.load(RECORDED)
    for name, hist, edges in zip(data["names"], data["hists"], data["edges"]):
        yield str(name), hist, edges


SYNTHETIC = list(synthetic_hists())
RECORDED_CASES = list(recorded_hists())


@pytest.mark.parametrize("name, hist", SYNTHETIC, ids=[n for n, _ in SYNTHETIC])
def test_kl_threshold_synthetic(name: str, hist: np.ndarray) -> None:
    bin_width = 0.013
    expected = cal_kl_threshold(hist, bin_width, 8)
    got = cal.kl_threshold(hist, bin_width, 8)
    assert _same(got, expected), (name, got, expected)


@pytest.mark.parametrize("name, hist, edges", RECORDED_CASES, ids=[n for n, _, _ in RECORDED_CASES])
def test_kl_threshold_recorded(name: str, hist: np.ndarray, edges: np.ndarray) -> None:
    bin_width = edges[1] - edges[0]
    expected = cal_kl_threshold(hist, bin_width, 8)
    got = cal.kl_threshold(hist, bin_width, 8)
    assert _same(got, expected), (name, got, expected)


def test_recorded_histograms_are_real_activations() -> None:
    assert len(RECORDED_CASES) >= 6
    for name, hist, edges in RECORDED_CASES:
        assert hist.shape == (BINS,) and edges.shape == (BINS + 1,)
        assert hist.sum() > 0 and (hist > 0).sum() > 100, name


def test_kl_threshold_other_bit_widths() -> None:
    _, hist = SYNTHETIC[0]
    for bits in (4, 6):
        assert _same(cal.kl_threshold(hist, 0.5, bits), cal_kl_threshold(hist, 0.5, bits))


@pytest.mark.parametrize("percent", [0.9999, 0.999, 0.99, 1.0])
def test_hist_threshold(percent: float) -> None:
    stub = object.__new__(PostTrainingQuantization)
    stub._hist_percent = percent
    cases = [(n, h, np.linspace(0.0, 7.0, BINS + 1)) for n, h in SYNTHETIC] + RECORDED_CASES
    for name, hist, edges in cases:
        with np.errstate(divide="ignore", invalid="ignore"):
            expected = PostTrainingQuantization._get_hist_scaling_factor(stub, hist, edges)
        got = cal.hist_threshold(hist, edges, percent)
        assert _same(got, expected) or (np.isnan(got) and np.isnan(expected)), (name, got, expected)


def _edges(low: float, high: float) -> np.ndarray:
    return np.histogram([], bins=BINS, range=(low, high))[1]  # exactly how Paddle makes them


def binner_cases() -> Iterator[Tuple[str, np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(3)
    normal = rng.standard_normal((4, 16, 40, 40)).astype(np.float32)
    yield "normal_multi_chunk", normal, _edges(float(np.abs(normal).min()), float(np.abs(normal).max()))
    relu = np.maximum(normal, 0)
    yield "relu", relu, _edges(0.0, float(relu.max()))
    edges = _edges(0.0, 3.7)
    on_edges = edges.astype(np.float32)
    near = np.concatenate([on_edges, np.nextafter(on_edges, np.float32(0)), np.nextafter(on_edges, np.float32(9))])
    near = np.clip(near, 0.0, np.float32(3.7)).astype(np.float32)
    yield "values_on_bin_edges", np.tile(near, 3), _edges(float(near.min()), float(near.max()))
    constant = np.full(10_000, 0.0, np.float32)
    yield "all_zero_tensor", constant, _edges(0.0, 0.0)
    shifted = (rng.random(50_000) * 2 + 5).astype(np.float32)
    yield "nonzero_left_edge", shifted, _edges(float(shifted.min()), float(shifted.max()))
    narrow = (1000.0 + rng.random(20_000) * 1e-3).astype(np.float32)
    yield "narrow_range_far_from_zero", narrow, _edges(float(narrow.min()), float(narrow.max()))
    yield "out_of_range_values", normal, _edges(0.1, 1.0)
    yield "float64_input", normal.astype(np.float64), _edges(0.0, 5.0)
    yield "tiny_tensor", normal.ravel()[:100], _edges(0.0, 4.0)


BINNER_CASES = list(binner_cases())


@pytest.mark.parametrize("name, values, edges", BINNER_CASES, ids=[n for n, _, _ in BINNER_CASES])
def test_histogram_counts_match_numpy(name: str, values: np.ndarray, edges: np.ndarray) -> None:
    expected = np.histogram(np.abs(values), bins=edges)[0]
    got = cal.HistogramBinner(edges).counts(values)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, expected, err_msg=name)


# ------------------------------------------------ per-batch statistics against Paddle's methods


def _ptq_stub(cls, tensors: Dict[str, np.ndarray], weights: Dict[str, Tuple[np.ndarray, str]],
              weight_type: str = "channel_wise_abs_max", onnx_format: bool = False):
    import paddle

    scope = paddle.static.Scope()
    for name, value in {**tensors, **{k: v for k, (v, _) in weights.items()}}.items():
        scope.var(name).get_tensor().set(np.ascontiguousarray(value), paddle.CPUPlace())
    obj = object.__new__(cls)
    obj._scope = scope
    obj._quantized_act_var_name = set(tensors)
    obj._quantized_weight_var_name = set(weights)
    obj._weight_op_pairs = {k: op for k, (_, op) in weights.items()}
    obj._weight_quantize_type = weight_type
    obj._onnx_format = onnx_format
    obj._activation_bits = 8
    obj._zero_size_var_names = set()
    obj._best_calibration_loss = {}
    obj._quantized_threshold = {}
    obj._quantized_var_avg = {}
    obj._quantized_var_min = {}
    obj._quantized_var_max = {}
    obj._quantized_var_threshold = {}
    obj._sampling_act_abs_min_max = {}
    obj._sampling_act_histogram = {}
    obj._binners = {}
    obj.phase_seconds = {"sampling": 0.0, "threshold": 0.0}
    return obj


def _batches() -> List[Dict[str, np.ndarray]]:
    rng = np.random.default_rng(11)
    out = []
    for scale in (1.0, 1.7, 0.6):
        out.append({
            "relu": np.maximum(rng.standard_normal((4, 8, 12, 12)) * scale, 0).astype(np.float32),
            "signed": (rng.standard_normal((4, 8, 12, 12)) * scale + 0.3).astype(np.float32),
            "zeros": np.zeros((4, 8, 3, 3), np.float32),
            "negative": (-np.abs(rng.standard_normal((4, 30))) * scale).astype(np.float32),
        })
    return out


def _weights() -> Dict[str, Tuple[np.ndarray, str]]:
    rng = np.random.default_rng(5)
    return {
        "conv_w": (rng.standard_normal((8, 3, 3, 3)).astype(np.float32), "conv2d"),
        "fc_w": (rng.standard_normal((30, 10)).astype(np.float32), "mul"),
        "fcv2_w": (rng.standard_normal((30, 12)).astype(np.float32), "matmul_v2"),
    }


def _run_batches(method: str, weight_type: str = "channel_wise_abs_max", onnx_format: bool = False):
    import paddle

    batches = _batches()
    ref = _ptq_stub(PostTrainingQuantization, batches[0], _weights(), weight_type, onnx_format)
    fast = _ptq_stub(FastPostTrainingQuantization, batches[0], _weights(), weight_type, onnx_format)
    for batch in batches:
        for obj in (ref, fast):
            for name, value in batch.items():
                obj._scope.find_var(name).get_tensor().set(value, paddle.CPUPlace())
        getattr(PostTrainingQuantization, method)(ref)
        getattr(fast, method)()
    return ref, fast


@pytest.mark.parametrize("weight_type", ["channel_wise_abs_max", "abs_max"])
@pytest.mark.parametrize("method, fields", [
    ("_sample_abs_max", ["_quantized_threshold"]),
    ("_sample_avg", ["_quantized_threshold", "_quantized_var_avg"]),
    ("_sample_min_max", ["_quantized_var_min", "_quantized_var_max"]),
    ("_collect_activation_abs_min_max", ["_sampling_act_abs_min_max"]),
])
def test_batch_statistics_match_paddle(method: str, fields: List[str], weight_type: str) -> None:
    ref, fast = _run_batches(method, weight_type)
    for field in fields:
        assert getattr(fast, field) == getattr(ref, field), field


@pytest.mark.parametrize("onnx_format", [False, True])
def test_mse_search_matches_paddle(onnx_format: bool) -> None:
    ref, fast = _run_batches("_sample_mse", onnx_format=onnx_format)
    assert fast._quantized_threshold == ref._quantized_threshold
    assert fast._best_calibration_loss == ref._best_calibration_loss


def test_mse_losses_bit_identical_on_multi_chunk_tensor() -> None:
    x = np.random.default_rng(2).standard_normal(3 * cal._MSE_CHUNK + 17).astype(np.float32)
    scales = cal.mse_scales(cal.abs_max(x))
    for scale, loss in zip(scales, cal.mse_losses(x, scales)):
        expected = ((x - np.round(np.clip(x, 0.0, scale) / scale * 127) / 127 * scale) ** 2).mean()
        assert loss == expected


def test_weight_thresholds_match_paddle_loops() -> None:
    for weight, op in _weights().values():
        axis = 1 if op in ("mul", "matmul", "matmul_v2") else 0
        expected = [float(np.max(np.abs(np.take(weight, i, axis=axis)))) for i in range(weight.shape[axis])]
        assert cal.weight_abs_max(weight, axis) == expected
        assert cal.weight_abs_max(weight, None) == float(np.max(np.abs(weight)))

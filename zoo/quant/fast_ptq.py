"""Paddle's post-training quantization with the zoo's vectorized calibration plugged in.

`FastPostTrainingQuantization` is paddle.static.quantization.PostTrainingQuantization with the
per-batch statistics and the final threshold searches replaced by zoo.quant.calibration, which
computes the same values without per-bin Python loops. `algo="KL_paddle1"` calibrates with
Paddle 1.x's KL rule (zoo.quant.calibration.KLRule) instead of Paddle 2.x's. Everything else (graph passes, scale
insertion, saving) is Paddle's own, so the saved model matches quant_post_static's.
"""
from __future__ import annotations

import time
from typing import Dict, Optional

import numpy as np
from paddle.static.quantization import PostTrainingQuantization
from paddle.static.quantization import utils as _qutils

from zoo.quant import calibration as cal


class _DLPackView:
    """Adapts a Paddle CPU tensor to numpy's DLPack protocol, so numpy can view it without a copy (CPU only)."""

    def __init__(self, tensor: object) -> None:
        self._tensor = tensor

    def __dlpack__(self, stream: object = None) -> object:
        return self._tensor._to_dlpack()

    def __dlpack_device__(self) -> tuple:
        return (1, 0)  # kDLCPU, device 0


class FastPostTrainingQuantization(PostTrainingQuantization):
    """Drop-in PostTrainingQuantization with vectorized sampling and threshold searches.

    `phase_seconds` holds the time spent collecting statistics per batch ("sampling", which for
    mse/avg/abs_max/min_max includes their search) and computing KL/hist thresholds ("threshold").
    """

    def __init__(self, *args: object, algo: str = "KL", **kwargs: object) -> None:
        # Paddle knows one KL; the rule (Paddle 2.x's or 1.x's) is the zoo's, applied in the threshold step
        self._histogram_algo = algo
        super().__init__(*args, algo="KL" if algo in cal.KL_RULES else algo, **kwargs)
        self.phase_seconds: Dict[str, float] = {"sampling": 0.0, "threshold": 0.0}
        self._binners: Dict[str, cal.HistogramBinner] = {}

    # timing wrappers around the phases Paddle's quantize() calls

    def _sampling(self) -> None:
        started = time.perf_counter()
        super()._sampling()
        self.phase_seconds["sampling"] += time.perf_counter() - started

    def _calculate_kl_hist_threshold(self) -> None:
        started = time.perf_counter()
        self._kl_hist_thresholds()
        self.phase_seconds["threshold"] += time.perf_counter() - started

    def _adaround_apply(self) -> None:
        """PaddleSlim's AdaRound, then each weight snapped to its integer level.

        PaddleSlim 2.6 stores floor(w/s) + h(alpha), the soft rounding, so the "INT8" weights it
        writes are not integers and the fake-quant graph scores a model no INT8 kernel can run;
        the hard AdaRound decision is floor + (h >= 0.5), i.e. that value rounded.
        """
        super()._adaround_apply()
        for var_name in self._quantized_op_pairs:
            value = _qutils.load_variable_data(self._scope, var_name)
            _qutils.set_variable_data(self._scope, self._place, var_name, np.round(value).astype(value.dtype))

    # helpers

    def _load(self, var_name: str) -> np.ndarray:
        """The tensor's current value, read in place (no copy) when it lives in host memory.

        Callers only reduce it to statistics before the next executor run overwrites it. When the
        calibration runs on a GPU the activations live in device memory: Paddle copies them to the host.
        """
        var = self._scope.find_var(var_name)
        if var is not None:
            tensor = var.get_tensor()
            try:
                if tensor._place().is_cpu_place():
                    return np.from_dlpack(_DLPackView(tensor))
            except Exception:  # uninitialized or an exotic dtype: Paddle's copy
                pass
        return _qutils.load_variable_data(self._scope, var_name)

    def _channel_axis(self, var_name: str) -> Optional[int]:
        if self._weight_quantize_type != "channel_wise_abs_max":
            return None
        return 1 if self._weight_op_pairs[var_name] in _qutils._channelwise_quant_axis1_ops else 0

    def _weight_thresholds(self, into: dict) -> None:
        for var_name in self._quantized_weight_var_name:
            into[var_name] = cal.weight_abs_max(self._load(var_name), self._channel_axis(var_name))

    def _activations(self):
        """(name, tensor) for each non-empty quantized activation; empty ones are recorded as such."""
        for var_name in self._quantized_act_var_name:
            tensor = self._load(var_name)
            if tensor.size == 0:
                self._zero_size_var_names.add(var_name)
                continue
            yield var_name, cal.activation_values(tensor)

    # KL / hist: statistics

    def _collect_activation_abs_min_max(self) -> None:
        started = time.perf_counter()
        ranges = self._sampling_act_abs_min_max
        for var_name, tensor in self._activations():
            low, high = cal.abs_range(tensor)
            if var_name not in ranges:
                ranges[var_name] = [low, high]
            else:
                if low < ranges[var_name][0]:
                    ranges[var_name][0] = low
                if high > ranges[var_name][1]:
                    ranges[var_name][1] = high
        self.phase_seconds["sampling"] += time.perf_counter() - started

    def _sample_histogram(self) -> None:
        for var_name in self._quantized_act_var_name:
            tensor = self._load(var_name)
            if tensor.size == 0 or var_name not in self._sampling_act_histogram:
                self._zero_size_var_names.add(var_name)
                continue
            entry = self._sampling_act_histogram[var_name]
            binner = self._binners.get(var_name)
            if binner is None:
                binner = self._binners[var_name] = cal.HistogramBinner(entry[1])
            entry[0] += binner.counts(cal.activation_values(tensor))

    def _init_sampling_act_histogram(self) -> None:
        """Paddle's fixed-edge histograms over each tensor's (min |x|, max |x|), with the edges `algo`'s publisher used."""
        for var_name in self._quantized_act_var_name:
            if var_name in self._zero_size_var_names and var_name not in self._sampling_act_abs_min_max:
                continue
            if var_name not in self._sampling_act_histogram:
                low, high = self._sampling_act_abs_min_max[var_name]
                edges = cal.histogram_edges(self._histogram_algo, low, high, self._histogram_bins)
                self._sampling_act_histogram[var_name] = [np.zeros(self._histogram_bins, np.int64), edges]

    # KL / hist: thresholds

    def _kl_hist_thresholds(self) -> None:
        self._weight_thresholds(self._quantized_var_threshold)
        for var_name in self._quantized_act_var_name:
            if var_name in self._zero_size_var_names and var_name not in self._sampling_act_histogram:
                continue
            hist, edges = self._sampling_act_histogram[var_name]
            self._quantized_var_threshold[var_name] = cal.histogram_threshold(
                self._histogram_algo, hist, edges, self._activation_bits, self._hist_percent
            )

    # per-batch algorithms

    def _sample_abs_max(self) -> None:
        if self._quantized_threshold == {}:
            self._weight_thresholds(self._quantized_threshold)
        for var_name, tensor in self._activations():
            value = cal.abs_max(tensor)
            if var_name not in self._quantized_threshold or value > self._quantized_threshold[var_name]:
                self._quantized_threshold[var_name] = value

    def _sample_avg(self) -> None:
        if self._quantized_threshold == {}:
            self._weight_thresholds(self._quantized_threshold)
        for var_name, tensor in self._activations():
            self._quantized_var_avg.setdefault(var_name, []).append(cal.row_abs_max_mean(tensor))

    def _sample_min_max(self) -> None:
        if self._quantized_var_min == {} and self._quantized_var_max == {}:
            for var_name in self._quantized_weight_var_name:
                low, high = cal.weight_min_max(self._load(var_name), self._channel_axis(var_name))
                self._quantized_var_min[var_name] = low
                self._quantized_var_max[var_name] = high
        for var_name, tensor in self._activations():
            low, high = float(np.min(tensor)), float(np.max(tensor))
            if var_name not in self._quantized_var_min or low < self._quantized_var_min[var_name]:
                self._quantized_var_min[var_name] = low
            if var_name not in self._quantized_var_max or high > self._quantized_var_max[var_name]:
                self._quantized_var_max[var_name] = high

    def _sample_mse(self) -> None:
        if self._quantized_threshold == {}:
            self._weight_thresholds(self._quantized_threshold)
        for var_name, tensor in self._activations():
            best = self._best_calibration_loss.get(var_name, float("inf"))
            best, threshold = cal.mse_threshold_update(tensor, best, self._activation_bits, self._onnx_format)
            self._best_calibration_loss[var_name] = best
            if threshold is not None:
                self._quantized_threshold[var_name] = threshold

"""KL_paddle1 (Paddle 1.x's KL rule, which PaddleSlim 1.x's quant_post ran) against an independent reading of it.

The reference below is written from the rule's description, not from Paddle's code, with numpy
float64 arithmetic in another order: a histogram of every sampled |activation| in 2048 bins over
(min |x|, max |x|) with float32 edges; candidate ends i from int(2047 x 0.7) whose last bin is
non-empty; P = hist[:i] with the tail folded into its last bin; Q = hist[:i] merged into 255 levels
(width i // 255, the last level to i) and spread over P's non-empty bins; threshold
(i + 0.5) x bin width for the i of least KL(P || Q). The two agree to float rounding: the zoo's
pick scores within 1e-12 of the reference's best.
"""
from __future__ import annotations

from typing import Dict, List

import numpy as np
import pytest

from .test_calibration import RECORDED_CASES, SYNTHETIC, _batches, _ptq_stub, _weights
from zoo.quant import calibration as cal
from zoo.quant.fast_ptq import FastPostTrainingQuantization

BINS = 2048
LEVELS = 255


def reference_scores(hist: np.ndarray) -> Dict[int, float]:
    """KL(P || Q) of every candidate end bin, from the description (float64 numpy)."""
    hist = np.asarray(hist, dtype=np.float64)
    total = hist.sum()
    scores = {}
    for end in range(int((BINS - 1) * 0.7), BINS):
        if hist[end - 1] == 0:
            continue
        p = hist[:end].copy()
        p[-1] += hist[end:].sum()
        q = np.zeros(end)
        width = end // LEVELS
        for level in range(LEVELS):
            lo = level * width
            hi = end if level == LEVELS - 1 else lo + width
            support = p[lo:hi] != 0
            if support.any():
                q[lo:hi][support] = hist[lo:hi].sum() / support.sum()
        mask = p > 0
        pn, qn = p[mask] / p.sum(), q[mask] / q.sum()
        scores[end] = float(np.sum(pn * np.log(pn / qn)))
    assert total == hist.sum()
    return scores


def reference_threshold(hist: np.ndarray, bin_width: float) -> float:
    scores = reference_scores(hist)
    if not scores:  # nothing to search: the last non-empty bin at or below the start
        index = int((BINS - 1) * 0.7)
        while index > 0 and hist[index] == 0:
            index -= 1
        return (index + 0.5) * bin_width
    best = min(scores, key=lambda i: (scores[i], i))
    return (best + 0.5) * bin_width


def _agrees(hist: np.ndarray, bin_width: float, got: float) -> None:
    scores = reference_scores(hist)
    if not scores:
        assert got == reference_threshold(hist, bin_width)
        return
    index = round(got / bin_width - 0.5)
    assert abs((index + 0.5) * bin_width - got) <= 1e-9 * abs(got)
    assert index in scores, (index, sorted(scores)[:3])
    assert scores[index] <= min(scores.values()) + 1e-12, (index, scores[index], min(scores.values()))


@pytest.mark.parametrize("name, hist", SYNTHETIC, ids=[n for n, _ in SYNTHETIC])
def test_kl_paddle1_synthetic(name: str, hist: np.ndarray) -> None:
    _agrees(hist, 0.013, cal.kl_threshold(hist, 0.013, 8, rule="KL_paddle1"))


@pytest.mark.parametrize("name, hist, edges", RECORDED_CASES, ids=[n for n, _, _ in RECORDED_CASES])
def test_kl_paddle1_recorded(name: str, hist: np.ndarray, edges: np.ndarray) -> None:
    width = edges[1] - edges[0]
    got = cal.kl_threshold(hist, width, 8, rule="KL_paddle1")
    _agrees(hist, width, got)


def test_the_two_rules_differ_on_real_activations() -> None:
    ratios = [cal.kl_threshold(h, e[1] - e[0], 8, rule="KL") / cal.kl_threshold(h, e[1] - e[0], 8, rule="KL_paddle1")
              for _, h, e in RECORDED_CASES]
    assert np.median(ratios) < 0.95, ratios  # Paddle 2.x's search clips lower on these tensors


def test_kl_paddle1_ignores_activation_bits() -> None:
    _, hist = SYNTHETIC[0]
    assert cal.kl_threshold(hist, 0.5, 8, rule="KL_paddle1") == cal.kl_threshold(hist, 0.5, 4, rule="KL_paddle1")
    assert cal.kl_threshold(hist, 0.5, 8, rule="KL") != cal.kl_threshold(hist, 0.5, 4, rule="KL")


def test_unknown_rule_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown KL rule"):
        cal.kl_threshold(SYNTHETIC[0][1], 0.5, 8, rule="KL2")


def test_paddle1_edges_are_float32_as_numpy_builds_them_from_float32_data() -> None:
    blob = np.abs(np.random.default_rng(4).standard_normal(5000)).astype(np.float32)
    expected = np.histogram(blob, bins=BINS, range=(blob.min(), blob.max()))[1]
    got = cal.histogram_edges("KL_paddle1", float(blob.min()), float(blob.max()), BINS)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, expected)
    assert cal.histogram_edges("KL", float(blob.min()), float(blob.max()), BINS).dtype == np.float64


def test_fast_engine_kl_paddle1_equals_the_whole_sample_reference() -> None:
    """Batch-wise histograms in the fast engine = Paddle 1.x's one histogram of every sampled value."""
    import paddle

    batches = _batches()
    fast = _ptq_stub(FastPostTrainingQuantization, batches[0], _weights())
    fast._histogram_algo, fast._algo, fast._histogram_bins, fast._hist_percent = "KL_paddle1", "KL", BINS, 0.9999
    for pass_ in ("_collect_activation_abs_min_max", "_sample_histogram"):
        if pass_ == "_sample_histogram":
            fast._init_sampling_act_histogram()
        for batch in batches:
            for name, value in batch.items():
                fast._scope.find_var(name).get_tensor().set(value, paddle.CPUPlace())
            getattr(fast, pass_)()
    fast._kl_hist_thresholds()
    checked: List[str] = []
    for name in batches[0]:
        blob = np.concatenate([np.abs(b[name]).ravel() for b in batches])
        hist, edges = np.histogram(blob, bins=BINS, range=(blob.min(), blob.max()))
        np.testing.assert_array_equal(fast._sampling_act_histogram[name][0], hist, err_msg=name)
        got = fast._quantized_var_threshold[name]
        if blob.max() > 0:
            _agrees(hist, edges[1] - edges[0], got)
            checked.append(name)
    assert len(checked) == 3

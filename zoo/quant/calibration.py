"""Vectorized calibration statistics and threshold searches for post-training quantization.

Every function here returns exactly what Paddle's post-training quantization computes for the
same input (same histogram bin, same float), only without per-bin Python loops:

- `kl_threshold` (Paddle 2.x's rule, or Paddle 1.x's: see KLRule) scores every candidate clip bin at once from prefix sums. Paddle's own scores
  carry rounding noise (sequential float sums), so near-ties are settled by recomputing just
  the candidates within a proven error band with Paddle's exact arithmetic.
- `histogram_counts` bins |x| into the sampling histogram by arithmetic on the bin index plus an
  exact boundary correction, instead of sorting every tensor.
- `hist_threshold`, `weight_abs_max`, `mse_search`, `abs_max`, `row_abs_max_mean`: the other
  algorithms' statistics, computed with the same floating-point operations in the same order.
"""
from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

_EPS = float(np.finfo(np.float64).eps)
_WORKSPACE = threading.local()


@dataclass(frozen=True)
class KLRule:
    """Where a KL threshold search starts and how many levels its candidate Q has.

    Two publishers' rules differ only in these (the scoring, the tail folding and the
    (index + 0.5) x bin width threshold are the same):

    - `KL`: Paddle >= 2.2 (its `cal_kl_threshold` module, also PaddleSlim 2.x's quant_post_static):
      the search starts at bin int((n-1) x 0.5) and Q has 2**(bits-1)-1 levels (127 at 8 bits).
    - `KL_paddle1`: Paddle 1.x, which PaddleSlim 1.x's quant_post ran (the published YOLOv3
      quant_post archives): the search starts at bin int((n-1) x 0.7), Q has 255 levels whatever
      the bits, and the histogram's edges are float32 (np.histogram over float32 |x| with a float32
      (min, max) range), so the bin width is float32 too.
    """

    start: float
    levels: Optional[int]  # None: 2**(bits-1)-1
    float32_edges: bool

    def levels_for(self, bits: int) -> int:
        """The number of levels Q is merged into at `bits`."""
        return self.levels if self.levels is not None else 2 ** (bits - 1) - 1


KL_RULES: Dict[str, KLRule] = {
    "KL": KLRule(start=0.5, levels=None, float32_edges=False),
    "KL_paddle1": KLRule(start=0.7, levels=255, float32_edges=True),
}
HISTOGRAM_ALGOS = (*KL_RULES, "hist")  # the algorithms that calibrate from a sampling histogram


def histogram_edges(algo: str, low: float, high: float, bins: int) -> np.ndarray:
    """The bin edges of an |activation| histogram over [low, high], as `algo`'s publisher built them."""
    rule = KL_RULES.get(algo)
    if rule is not None and rule.float32_edges:
        return np.histogram(np.empty(0, np.float32), bins=bins, range=(np.float32(low), np.float32(high)))[1]
    return np.histogram([], bins=bins, range=(low, high))[1]


def histogram_threshold(algo: str, hist: np.ndarray, edges: np.ndarray, bits: int = 8,
                        hist_percent: float = 0.9999) -> float:
    """The threshold of a histogram algorithm (`KL`, `KL_paddle1` or `hist`) from its sampling histogram."""
    if algo == "hist":
        return hist_threshold(hist, edges, hist_percent)
    return kl_threshold(hist, edges[1] - edges[0], bits, rule=algo)


def kl_threshold(hist: np.ndarray, bin_width: float, bits: int = 8, rule: str = "KL") -> float:
    """The KL-divergence clip threshold of an |activation| histogram, by `rule` (see KLRule).

    Candidates are the bin ends i in [int((n-1) x start), n) whose last bin is non-empty; the
    reference distribution P is hist[:i] with the tail folded into its last bin, the candidate Q is
    hist[:i] merged into the rule's levels (the last level takes the remainder) and spread back
    over the non-empty bins of P. The threshold is (i + 0.5) x bin_width for the i of least KL(P||Q).
    """
    hist = np.asarray(hist)
    if hist.ndim != 1:
        raise ValueError("kl_threshold expects a 1-D histogram")
    if rule not in KL_RULES:
        raise ValueError(f"unknown KL rule {rule!r}; known: {', '.join(KL_RULES)}")
    n = hist.shape[0]
    start = int((n - 1) * KL_RULES[rule].start)
    levels = KL_RULES[rule].levels_for(bits)
    counts = hist.astype(np.int64, copy=False)
    cand = np.arange(max(start, 1), n)
    cand = cand[counts[cand - 1] != 0]
    if cand.size == 0:
        index = start
        while index > 0 and counts[index] == 0:
            index -= 1
        return (index + 0.5) * bin_width
    total = np.sum(counts)
    approx = _kl_scores(counts, cand, levels, total)
    band = _kl_error_bound(n, int(total))
    best = float(approx.min())
    close = cand[approx <= best + 2.0 * band]
    if close.size == 1:
        index = int(close[0])
    else:
        counts_list = counts.tolist()
        exact = [_kl_exact(counts_list, int(i), levels, total) for i in close]
        index = int(close[min(range(len(exact)), key=lambda k: (exact[k], k))])
    return (index + 0.5) * bin_width


def _kl_scores(counts: np.ndarray, cand: np.ndarray, levels: int, total: np.integer) -> np.ndarray:
    """KL(P || Q) for every candidate end bin, from prefix sums (accurate to ~1e-12, not bit-exact)."""
    prefix = np.concatenate(([0], np.cumsum(counts)))  # exact int64 sums
    nonzero = np.concatenate(([0], np.cumsum(counts != 0)))
    c = counts.astype(np.float64)
    clogc = np.where(counts > 0, c * np.log(np.where(counts > 0, c, 1.0)), 0.0)
    prefix_clogc = np.concatenate(([0.0], np.cumsum(clogc)))

    width = cand // levels  # bins merged per level; the last level takes the remainder
    lo = width[:, None] * np.arange(levels)[None, :]
    hi = lo + width[:, None]
    hi[:, -1] = cand
    mass = (prefix[hi] - prefix[lo]).astype(np.float64)  # Q's quantized bins (hist sums per level)
    filled = (nonzero[hi] - nonzero[lo]).astype(np.float64)  # non-empty bins per level
    tail = (prefix[-1] - prefix[cand]).astype(np.float64)  # outliers folded into P's last bin
    p_last = c[cand - 1] + tail
    weight = mass.copy()
    weight[:, -1] += tail  # P's mass per level
    used = mass > 0
    log_avg = np.log(np.where(used, mass, 1.0) / np.where(used, filled, 1.0))
    p_log_p = prefix_clogc[cand - 1] + p_last * np.log(p_last)
    p_log_q = np.sum(np.where(used, weight * log_avg, 0.0), axis=1)
    total_f = float(total)
    kept = prefix[cand].astype(np.float64)  # sum of the spread-back Q = sum of hist[:i]
    return np.log(kept / total_f) + (p_log_p - p_log_q) / total_f


def _kl_error_bound(n: int, total: int) -> float:
    """A bound on |score from _kl_scores - Paddle's score| (sequential sums of n log-terms each)."""
    magnitude = 2.0 * math.log(max(float(total), 2.0)) * 2.0 + 8.0
    return 64.0 * n * _EPS * magnitude + 1e-300


def _kl_exact(counts: List[int], end: int, levels: int, total: np.integer) -> float:
    """Paddle's KL score for one candidate, replaying its float operations in their order."""
    ref = counts[:end]
    ref[end - 1] += sum(np.asarray(counts[end:], dtype=np.int64)) if end < len(counts) else 0
    width = int(end / levels)
    spread: List[Union[int, float]] = [0] * end
    for level in range(levels):
        lo = level * width
        hi = end if level == levels - 1 else lo + width
        filled = sum(1 for v in ref[lo:hi] if v != 0)
        if filled == 0:
            continue
        avg = sum(counts[lo:hi]) / (filled + 0.0)
        for k in range(lo, hi):
            if ref[k] != 0:
                spread[k] = avg
    q_sum = sum(spread)
    acc_p = 0
    acc_q = 0
    for p, q in zip(ref, spread):
        if p != 0:
            acc_p += p * math.log(q_sum * p)
            acc_q += p * math.log(total * q)
    return float((acc_p - acc_q) / total)


def hist_threshold(hist: np.ndarray, edges: np.ndarray, percent: float) -> float:
    """The `percent` quantile of an |activation| histogram (Paddle's 'hist' algorithm).

    The cumulative sum runs sequentially (np.add.accumulate), as Paddle's loop does.
    """
    hist = np.asarray(hist)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = hist / float(sum(hist))
    reached = np.flatnonzero(np.cumsum(share) >= percent)
    index = int(reached[0]) + 1 if reached.size else 0
    bin_width = edges[1] - edges[0]
    return (index - 0.5) * bin_width


class HistogramBinner:
    """Counts |x| into fixed bins exactly as np.histogram(|x|, bins=edges) does, without sorting.

    A float32 value v lies in bin k iff up(e_k) <= v < up(e_k+1), where up(e) is the smallest
    float32 >= e. The bin is guessed from the uniform bin width in float32; the guess is off by
    at most a proven tiny fraction of a bin, so only values that land that close to a bin
    boundary are re-binned exactly (binary search on up(e)). Exact zeros at a zero left edge
    are never ambiguous. The work runs in cache-sized chunks through reused buffers, and the
    counting spreads repeated bins over 4 interleaved counters (ReLU outputs pile up in bin 0).
    """

    CHUNK = 1 << 15
    LANES = 4
    SMALL = 4096  # below this many values np.histogram itself is quicker

    def __init__(self, edges: np.ndarray) -> None:
        self.edges = np.asarray(edges, dtype=np.float64)
        self.bins = self.edges.shape[0] - 1
        self.first = float(self.edges[0])
        self.last = float(self.edges[-1])
        up = self.edges.astype(np.float32)
        low = up.astype(np.float64) < self.edges
        up[low] = np.nextafter(up[low], np.float32(np.inf))
        self._lower = up[:-1].copy()  # bin k starts at _lower[k]; the last bin is closed
        span = self.last - self.first
        widths = np.diff(self.edges)
        uniform = span > 0 and float(np.max(np.abs(widths - span / self.bins))) <= 1e-9 * span / self.bins
        self._offset = np.float32(self.first)
        self._scale = np.float32(self.bins / span) if span > 0 else np.float32(0.0)
        # bound on |float32 guess - exact position| in bins: rounding of the offset, the
        # subtraction, the scale and the product (2**-24 each), plus float64 edge rounding
        unit = 2.0**-24
        err = unit * (abs(self.first) * self.bins / span + 4.0 * (self.bins + 1)) + 1e-9 if span > 0 else 1.0
        self._margin = np.float32(4.0 * err)
        self._fast = bool(uniform and err < 1e-2)

    @classmethod
    def _work(cls, size: int) -> Tuple[np.ndarray, ...]:
        """Chunk buffers shared by every binner of this thread (allocated once)."""
        buffers = getattr(_WORKSPACE, "buffers", None)
        if buffers is None:
            n = cls.CHUNK
            buffers = _WORKSPACE.buffers = (
                np.empty(n, np.float32),  # |x|
                np.empty(n, np.float32),  # guessed position
                np.empty(n, np.float32),  # its floor, then its fraction
                np.empty(n, np.intp),  # bin * LANES + lane
                np.empty(n, np.bool_),  # near a boundary
                np.empty(n, np.bool_),
                np.arange(n, dtype=np.intp) % cls.LANES,  # lane of each position
            )
        return tuple(b[:size] for b in buffers)

    def counts(self, values: np.ndarray) -> np.ndarray:
        """Histogram counts (int64) of `values` taken in absolute value."""
        flat = np.ravel(values)
        if flat.size == 0:
            return np.zeros(self.bins, dtype=np.int64)
        if flat.dtype != np.float32 or not self._fast or flat.size < self.SMALL:
            return np.histogram(np.abs(flat), bins=self.edges)[0]
        lane_counts = np.zeros((self.bins + 1) * self.LANES, dtype=np.int64)
        for begin in range(0, flat.size, self.CHUNK):
            if not self._add_chunk(flat[begin : begin + self.CHUNK], lane_counts):
                # out of range (or NaN): np.histogram's rules decide what is dropped
                return np.histogram(np.abs(flat), bins=self.edges)[0]
        total = lane_counts.reshape(self.bins + 1, self.LANES).sum(axis=1)
        total[self.bins - 1] += total[self.bins]  # a guess of exactly `bins` (x == last) is the closed last bin
        return total[: self.bins]

    def _add_chunk(self, part: np.ndarray, lane_counts: np.ndarray) -> bool:
        a, guess, frac, index, near, other, lanes = self._work(part.size)
        np.abs(part, out=a)
        if not (float(a.min()) >= self.first and float(a.max()) <= self.last):
            return False
        if self._offset != 0:
            np.subtract(a, self._offset, out=guess)
            np.multiply(guess, self._scale, out=guess)
        else:  # a - 0 is a: one pass fewer, the same guess
            np.multiply(a, self._scale, out=guess)
        np.floor(guess, out=frac)
        np.copyto(index, frac, casting="unsafe")
        np.subtract(guess, frac, out=frac)
        np.less(frac, self._margin, out=near)
        np.greater(frac, np.float32(1.0) - self._margin, out=other)
        near |= other
        np.not_equal(guess, 0, out=other)  # a guess of exactly 0 is bin 0: v == up(e_0)
        near &= other
        if near.any():
            pos = np.flatnonzero(near)
            index[pos] = np.searchsorted(self._lower, a[pos], side="right") - 1
        index *= self.LANES
        index += lanes
        lane_counts += np.bincount(index, minlength=lane_counts.size)
        return True


def activation_values(tensor: np.ndarray) -> np.ndarray:
    """A tensor as the threshold searches read it: at least 1-D (a 0-d scalar has one row) and floating point
    (an integer tensor on the model's shape path is measured as the float values it holds)."""
    if tensor.ndim == 0:
        tensor = tensor.reshape(1)
    if not np.issubdtype(tensor.dtype, np.floating):
        tensor = tensor.astype(np.float32)
    return tensor


def histogram_counts(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """np.histogram(|values|, bins=edges)[0], computed without sorting."""
    return HistogramBinner(edges).counts(values)


def abs_range(values: np.ndarray) -> Tuple[float, float]:
    """(min |x|, max |x|) as Python floats, without materializing |x| when x has one sign."""
    lo = float(np.min(values))
    hi = float(np.max(values))
    if lo >= 0.0:
        return abs(lo), abs(hi)
    if hi <= 0.0:
        return abs(hi), abs(lo)
    return _min_abs(values), max(hi, -lo)


def _min_abs(values: np.ndarray) -> float:
    """min |x| through a reused chunk buffer (a full-size |x| would be allocated per tensor)."""
    flat = np.ravel(values)
    if flat.dtype != np.float32:
        return float(np.min(np.abs(flat)))
    buffer = HistogramBinner._work(HistogramBinner.CHUNK)[0]
    low = np.inf
    for begin in range(0, flat.size, HistogramBinner.CHUNK):
        part = flat[begin : begin + HistogramBinner.CHUNK]
        view = buffer[: part.size]
        np.abs(part, out=view)
        low = min(low, float(view.min()))
    return low


def abs_max(values: np.ndarray) -> float:
    """max |x| as a Python float."""
    return abs(max(float(np.max(values)), -float(np.min(values))))


def weight_abs_max(weight: np.ndarray, channel_axis: Optional[int]) -> Union[float, List[float]]:
    """max |w| for the whole tensor (channel_axis None) or per channel along `channel_axis`."""
    if channel_axis is None:
        return abs_max(weight)
    weight = np.asarray(weight)
    axes = tuple(a for a in range(weight.ndim) if a != channel_axis)
    per_channel = np.maximum(np.max(weight, axis=axes), -np.min(weight, axis=axes))
    return [abs(float(v)) for v in np.atleast_1d(per_channel)]


def weight_min_max(weight: np.ndarray, channel_axis: Optional[int]) -> Tuple[Union[float, List[float]], ...]:
    """(min, max) of w for the whole tensor or per channel along `channel_axis`."""
    if channel_axis is None:
        return float(np.min(weight)), float(np.max(weight))
    axes = tuple(a for a in range(weight.ndim) if a != channel_axis)
    mins = np.atleast_1d(np.min(weight, axis=axes))
    maxs = np.atleast_1d(np.max(weight, axis=axes))
    return [float(v) for v in mins], [float(v) for v in maxs]


def row_abs_max_mean(values: np.ndarray) -> float:
    """mean over the batch of max |x| per sample (Paddle's 'avg' statistic for one batch)."""
    rows = values.reshape(values.shape[0], -1)
    per_row = np.abs(np.maximum(np.max(rows, axis=1), -np.min(rows, axis=1)))
    return float(np.mean(per_row))


def mse_scales(abs_max_value: float) -> List[float]:
    """The candidate clip values of Paddle's 'mse' search: s * max|x| for s = 0.3, 0.32, ... <= 1."""
    scales = []
    s = 0.3
    while s <= 1.0:
        scales.append(s * abs_max_value)
        s += 0.02
    return scales


_MSE_CHUNK = 1 << 16
# Paddle's mse search costs 36 quantize-dequantize passes over every activation value: on a 16x320x320 map
# that is about 14x KL's histogram (0.16 s against 0.012 s per batch, benchmarks/bench_ptq.py --mse). Larger
# tensors are searched on a sample, smaller ones exactly.
MSE_EXACT_LIMIT = 1 << 18
MSE_SAMPLE = 1 << 16


def mse_sample(x: np.ndarray) -> np.ndarray:
    """`x` (1-D) itself up to MSE_EXACT_LIMIT values, else every k-th value (k = ceil(size / MSE_SAMPLE))."""
    if x.size <= MSE_EXACT_LIMIT:
        return x
    return x[:: -(-x.size // MSE_SAMPLE)]


def mse_losses(values: np.ndarray, scales: Sequence[float], bits: int = 8, onnx_format: bool = False) -> List[np.floating]:
    """Mean squared quantize-dequantize error of `values` (float32, 1-D) for each clip value.

    The element-wise work runs in cache-sized chunks into one error buffer whose mean is then
    taken over the whole tensor, so every loss is bit-identical to the unchunked expression.
    """
    x = np.ascontiguousarray(np.ravel(values))
    levels = 2 ** (bits - 1) - 1
    err = np.empty_like(x)
    work = np.empty(min(_MSE_CHUNK, x.size), dtype=x.dtype)
    losses = []
    for scale in scales:
        for begin in range(0, x.size, _MSE_CHUNK):
            part = x[begin : begin + _MSE_CHUNK]
            buf = work[: part.size]
            if onnx_format:
                np.divide(part, scale, out=buf)
                np.multiply(buf, levels, out=buf)
                np.round(buf, out=buf)
                np.clip(buf, -levels - 1, levels, out=buf)
            else:
                np.clip(part, 0.0, scale, out=buf)
                np.divide(buf, scale, out=buf)
                np.multiply(buf, levels, out=buf)
                np.round(buf, out=buf)
            np.divide(buf, levels, out=buf)
            np.multiply(buf, scale, out=buf)
            out = err[begin : begin + _MSE_CHUNK]
            np.subtract(part, buf, out=out)
            np.square(out, out=out)
        losses.append(err.mean())
    return losses


def mse_threshold_update(
    values: np.ndarray, best_loss: float, bits: int = 8, onnx_format: bool = False
) -> Tuple[float, Optional[float]]:
    """One batch of Paddle's 'mse' search: (new best loss, new threshold or None if not improved).

    Ties go to the later (larger) candidate, as in Paddle's `<=` comparison. The candidates come from the whole
    tensor's max |x|; above MSE_EXACT_LIMIT values the losses are measured on an even stride of about
    MSE_SAMPLE of them (`mse_sample`), which keeps the search near KL's cost on large activations. Up to the
    limit the result is Paddle's to the bit.
    """
    x = np.ravel(values)
    top = abs_max(x)
    top = 1e-8 if top == 0.0 else top
    x = mse_sample(x)
    scales = mse_scales(top)
    threshold = None
    for scale, loss in zip(scales, mse_losses(x, scales, bits, onnx_format)):
        if loss <= best_loss:
            best_loss = loss
            threshold = scale
    return best_loss, threshold


__all__ = [
    "KLRule",
    "KL_RULES",
    "HISTOGRAM_ALGOS",
    "histogram_edges",
    "histogram_threshold",
    "kl_threshold",
    "hist_threshold",
    "HistogramBinner",
    "histogram_counts",
    "abs_range",
    "abs_max",
    "weight_abs_max",
    "weight_min_max",
    "row_abs_max_mean",
    "mse_scales",
    "mse_losses",
    "mse_threshold_update",
    "mse_sample",
]

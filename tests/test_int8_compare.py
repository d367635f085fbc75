"""The INT8 output check judges numbers, not ties or single elements: exact ties broken differently agree,
one moved element of a dense map does not fail it, and a runtime computing something else does."""
from __future__ import annotations

import numpy as np

from zoo.deploy.validate import compare_int8, top1_agreement


def test_tied_scores_broken_differently_agree() -> None:
    """A random-weight softmax (every class at 0.001): no row is decisive, so the output is judged by its error."""
    reference = np.full((8, 1000), 0.001, np.float32)
    candidate = reference + np.random.default_rng(0).normal(0, 1e-10, reference.shape).astype(np.float32)
    assert top1_agreement([reference], [candidate]) is None
    result = compare_int8([reference], [candidate], real=True)
    assert result["passed"] and result["kind"] == "class scores" and result["cosine"] > 0.999
    assert not compare_int8([reference], [np.random.default_rng(1).random(reference.shape)], real=True)["passed"]


def test_only_decisive_rows_count() -> None:
    """A row whose top class leads by less than the output's 8-bit step may flip; one led clearly may not."""
    reference = np.array([[0.50, 0.499, 0.001], [0.9, 0.05, 0.05], [0.1, 0.8, 0.1]])
    flipped_close = reference[:, [1, 0, 2]] * [[1, 1, 1], [0, 0, 0], [0, 0, 0]] + reference * [[0], [1], [1]]
    assert top1_agreement([reference], [flipped_close]) == 1.0  # the 0.001 lead is within 1/255 of the range
    flipped_clear = reference.copy()
    flipped_clear[1] = [0.05, 0.9, 0.05]
    assert top1_agreement([reference], [flipped_clear]) == 0.5


def test_a_real_top1_flip_still_counts() -> None:
    reference = np.eye(4, dtype=np.float32)[[0, 1, 2, 3]]
    candidate = np.eye(4, dtype=np.float32)[[0, 1, 2, 0]]  # the last row now picks another, clearly lower class
    assert top1_agreement([reference], [candidate]) == 0.75
    assert not compare_int8([reference], [candidate], real=True)["passed"]


def test_one_moved_element_of_a_dense_map_passes_and_garbage_fails() -> None:
    rng = np.random.default_rng(0)
    reference = rng.random((1, 1, 640, 640)).astype(np.float32)  # a probability map
    reference[0, 0, 10, 10] = 0.02
    close = reference + rng.normal(0, 0.004, reference.shape).astype(np.float32)
    close[0, 0, 10, 10] = 0.98  # one element of 409,600 moved by almost 1
    result = compare_int8([reference], [close], real=True)
    assert result["top1_agreement"] is None and result["max_rel_error"] > 0.5  # the old rule would refuse it
    assert result["passed"] and result["cosine"] > 0.99 and result["close_share"] > 0.999
    garbage = rng.random(reference.shape).astype(np.float32)
    bad = compare_int8([reference], [garbage], real=True)
    assert not bad["passed"] and bad["close_share"] < 0.5
    assert not compare_int8([reference], [np.full_like(reference, np.nan)], real=True)["passed"]


def test_a_sequence_is_judged_position_by_position() -> None:
    """(batch, positions, classes) softmax scores: small INT8 noise passes; the same scores with the positions
    of each sequence reversed point nearly the same way overall but disagree position by position, and fail."""
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 3, (4, 20, 40))
    reference = np.exp(logits) / np.exp(logits).sum(axis=2, keepdims=True)
    noisy = np.clip(reference + rng.normal(0, 0.002, reference.shape), 0, None)
    noisy /= noisy.sum(axis=2, keepdims=True)
    right = compare_int8([reference], [noisy], real=True)
    assert right["kind"] == "sequence of class scores" and right["passed"]
    assert right["position_agreement"] >= 0.95
    broken = compare_int8([reference], [reference[:, ::-1].copy()], real=True)
    assert not broken["passed"] and broken["position_agreement"] < 0.5

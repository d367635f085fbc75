"""PASS/FAIL only for the recipe's protocol: every shortened or altered setting makes a run PARTIAL."""
from __future__ import annotations

from zoo.protocol import PARTIAL, RunFacts, eval_deviations, status
from zoo.registry import get_recipe
from zoo.reproduce import protocol_deviations as deviations


def _facts(**kw: object) -> RunFacts:
    base = dict(eval_split="val", eval_images=364, split_images=364)
    base.update(kw)
    return RunFacts(**base)  # type: ignore[arg-type]


def test_the_full_protocol_has_no_deviation() -> None:
    ptq = get_recipe("digits_mobilenetv1_ptq")
    assert deviations(ptq, _facts(calib_split="train", calib_images=160)) == []
    assert status(True, []) == "PASS" and status(False, []) == "FAIL"


def test_each_shortcut_is_named() -> None:
    ptq = get_recipe("digits_mobilenetv1_ptq")
    found = deviations(ptq, _facts(eval_images=100, max_samples=100, calib_split="val", calib_images=64))
    settings = {d.setting for d in found}
    assert settings == {"evaluation images", "calibration split", "calibration images"}
    assert status(True, found) == PARTIAL and status(False, found) == PARTIAL
    qat = get_recipe("digits_mobilenetv1_qat")
    found = deviations(qat, _facts(epochs=2, iterations=5, batch_size=8))
    assert {d.setting for d in found} == {"epochs", "iterations", "batch size"}
    assert any("8 (--batch-size)" in d.text() and "recipe: 64" in d.text() for d in found)


def test_a_smaller_evaluation_set_than_published_is_partial() -> None:
    ptq = get_recipe("digits_mobilenetv1_ptq")  # publishes 364 evaluation images
    found = eval_deviations(ptq, _facts(eval_images=300, split_images=300))
    assert [d.setting for d in found] == ["evaluation set"]
    assert eval_deviations(ptq, _facts(eval_split="train")) [0].setting == "evaluation split"


def test_an_option_equal_to_the_recipe_is_not_a_deviation() -> None:
    qat = get_recipe("digits_mobilenetv1_qat")
    assert deviations(qat, _facts(epochs=1, batch_size=64)) == []

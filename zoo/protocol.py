"""Did a run follow its recipe's protocol? The differences that make a result PARTIAL.

A published number was measured on the full evaluation split, after the recipe's training (epochs,
iterations, batch size) or calibration (split, batch size x batch count). A run that changed any of
these can still be compared with the published number, but only as an indication: its status is
PARTIAL, never PASS or FAIL.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Dict, List, Optional

from zoo.schema import Recipe

PASS, FAIL, PARTIAL = "PASS", "FAIL", "PARTIAL"
DEFAULT_CALIB_SPLIT = "train"


@dataclass(frozen=True)
class Deviation:
    """One way a run differed from its recipe's protocol."""

    setting: str
    recipe: str
    run: str

    def text(self) -> str:
        """`setting: run (recipe: ...)`, for tables and reports."""
        return f"{self.setting}: {self.run} (recipe: {self.recipe})"


@dataclass(frozen=True)
class RunFacts:
    """What a reproduction actually did, as far as the protocol is concerned."""

    eval_split: str
    eval_images: int  # images scored
    split_images: int  # images in that split of the data folder
    max_samples: Optional[int] = None
    calib_split: Optional[str] = None  # PTQ only
    calib_images: Optional[int] = None
    epochs: Optional[int] = None  # --epochs / --iterations / --batch-size as given (None: the recipe's)
    iterations: Optional[int] = None
    batch_size: Optional[int] = None


def calib_split(recipe: Recipe) -> str:
    """The split the recipe calibrates on: `quant.calib_split`, else the training split that pairs with
    its evaluation split (val -> train, COCO's val2017 -> train2017)."""
    if recipe.quant.calib_split:
        return recipe.quant.calib_split
    split = recipe.dataset.split
    return split.replace("val", DEFAULT_CALIB_SPLIT, 1) if split.startswith("val") else DEFAULT_CALIB_SPLIT


def calib_images_wanted(recipe: Recipe) -> int:
    """batch_size x batch_nums of the recipe's calibration."""
    q = recipe.quant
    return (q.batch_size or 32) * (q.batch_nums or 10)


def eval_deviations(recipe: Recipe, facts: RunFacts) -> List[Deviation]:
    """How the evaluation differed from the recipe's (split, images, size of the evaluation set)."""
    found: List[Deviation] = []
    split = recipe.dataset.split
    if facts.eval_split != split:
        found.append(Deviation("evaluation split", split, facts.eval_split))
    if facts.eval_images < facts.split_images:
        found.append(Deviation("evaluation images", f"all {facts.split_images} of split {split}",
                               f"{facts.eval_images} (--max-samples {facts.max_samples})"))
    published = recipe.dataset.eval_images
    if published is not None and facts.split_images != published:
        found.append(Deviation("evaluation set", f"{published} images", f"{facts.split_images} images in the data folder"))
    return found


def calibration_deviations(recipe: Recipe, facts: RunFacts) -> List[Deviation]:
    """How a post-training calibration differed from the recipe's (split, number of images)."""
    found: List[Deviation] = []
    wanted_split = calib_split(recipe)
    if facts.calib_split is not None and facts.calib_split != wanted_split:
        found.append(Deviation("calibration split", wanted_split, f"{facts.calib_split} (--calib-on-eval)"))
    wanted = calib_images_wanted(recipe)
    if facts.calib_images is not None and facts.calib_images < wanted:
        found.append(Deviation("calibration images", str(wanted), f"{facts.calib_images} (all the split holds)"))
    return found


def training_deviations(recipe: Recipe, facts: RunFacts) -> List[Deviation]:
    """How a training run differed from the recipe's (epochs, iterations, batch size, training images)."""
    found: List[Deviation] = []
    train = recipe.train
    if train is None:
        return found
    if facts.epochs is not None and (train.epochs is None or float(facts.epochs) != float(train.epochs)):
        found.append(Deviation("epochs", _num(train.epochs), f"{facts.epochs} (--epochs)"))
    if facts.iterations is not None and facts.iterations != train.iterations:
        found.append(Deviation("iterations", _num(train.iterations), f"{facts.iterations} (--iterations)"))
    if facts.batch_size is not None and facts.batch_size != train.batch_size:
        found.append(Deviation("batch size", str(train.batch_size), f"{facts.batch_size} (--batch-size)"))
    if facts.max_samples is not None:
        found.append(Deviation("training images", "the whole train split", f"at most {facts.max_samples} (--max-samples)"))
    return found


def status(metrics_pass: bool, found: List[Deviation]) -> str:
    """PARTIAL whenever the protocol was not followed; otherwise PASS or FAIL on the metrics."""
    if found:
        return PARTIAL
    return PASS if metrics_pass else FAIL


def as_json(found: List[Deviation]) -> List[Dict[str, Any]]:
    """The deviations as plain dicts (report.json)."""
    return [asdict(d) for d in found]


def _num(value: Optional[float]) -> str:
    if value is None:
        return "not set"
    return str(int(value)) if float(value).is_integer() else str(value)

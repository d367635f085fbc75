"""The strategy interface: one small class per quantization method, registered by name.

A strategy takes a recipe, an FP32 source (an inference model folder, or a network with its
weights loaded), data and options, writes a quantized Paddle inference model
(`inference.pdmodel` + `inference.pdiparams`) into `out_dir` and returns its ModelFiles.
Recipes name their strategy (`ptq`, `qat`, `act`); `get_strategy(recipe.strategy)` finds it.
What a strategy needs from a run (data, a network, checkpoints, ranks) it declares in `needs`.
"""
from __future__ import annotations

import contextlib
import functools
import os
import random
import shutil
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Dict, FrozenSet, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple, Type

import numpy as np

from zoo.device import DeviceLike
from zoo.errors import QuantizeError
from zoo.fsutil import StagedDir
from zoo.modelcheck import check_model, verify_saved, writing_model
from zoo.modelfiles import ModelFiles, find_model_files
from zoo import plugins
from zoo.names import NameRegistry
from zoo.program import open_program
from zoo.protocol import Deviation, RunFacts, calibration_deviations, training_deviations
from zoo.schema import Recipe

CalibFn = Callable[[], Iterable[np.ndarray]]


class QuantHooks(ABC):
    """What a quantization strategy asks of the model's task (zoo.tasks.ModelTask implements it).

    The pipeline hands the recipe's task to the strategy through FP32Source.hooks, so strategies
    never look tasks up themselves.
    """

    def quant_skip(self, recipe: Recipe, files: ModelFiles) -> List[str]:
        """The tensor-name patterns of `files` whose ops the recipe's `quant.skip` leaves in FP32 (default: as written)."""
        return list(recipe.quant.skip)

    def prepare_qat(self, recipe: Recipe, network: Any) -> None:
        """Mark the layers quant-aware training must leave in float (default: none)."""

    @abstractmethod
    def training_loss(self, recipe: Recipe, network: Any) -> Callable[[Any, Sequence[Any]], Any]:
        """loss(trainee, batch): the scalar training loss of one batch of the task's training set."""

    @abstractmethod
    def save_quantized(self, recipe: Recipe, network: Any, quanter: Any, folder: Path,
                       input_shape: Tuple[int, int, int]) -> None:
        """Write the quant-aware-trained `network` into `folder` as an inference model with the task's contract."""


@dataclass
class FP32Source:
    """What a strategy quantizes: an FP32 inference model, a network with weights, or both."""

    input_shape: Tuple[int, int, int]  # (C, H, W)
    model: Optional[ModelFiles] = None
    network: Any = None  # a paddle.nn.Layer with its FP32 weights loaded (QAT)
    build_network: Optional[Callable[[], Any]] = None  # a fresh network, for resuming
    hooks: Optional[QuantHooks] = None  # the recipe's task: skip lists, QAT loss and export (zoo.tasks)

    def require_hooks(self, strategy: str) -> QuantHooks:
        if self.hooks is None:
            raise QuantizeError(f"strategy {strategy!r} needs the model's task (FP32Source.hooks), none was given",
                                hint="Pass hooks=zoo.tasks.get_task(recipe.task).")
        return self.hooks

    def require_model(self, strategy: str) -> ModelFiles:
        if self.model is None:
            raise QuantizeError(f"strategy {strategy!r} needs an FP32 inference model, none was given")
        return self.model

    def require_network(self, strategy: str) -> Any:
        if self.network is None and self.build_network is not None:
            self.network = self.build_network()
        if self.network is None:
            raise QuantizeError(
                f"strategy {strategy!r} needs a network with FP32 weights, none was given",
                hint="QAT trains a network definition; give the recipe an `arch` from zoo.models.",
            )
        return self.network


@dataclass
class QuantData:
    """The data a strategy may need; each strategy uses what it requires.

    calib: callable returning an iterable of (B, C, H, W) float32 batches (PTQ, ACT evaluation).
    train: a paddle.io.Dataset of (CHW float32, int64 label) with the training transform (QAT, ACT).
    """

    calib: Optional[CalibFn] = None
    train: Any = None
    eval: Any = None

    def require_calib(self, strategy: str) -> CalibFn:
        if self.calib is None:
            raise QuantizeError(f"strategy {strategy!r} needs calibration data, none was given")
        return self.calib

    def require_train(self, strategy: str) -> Any:
        if self.train is None:
            raise QuantizeError(f"strategy {strategy!r} needs training data, none was given")
        return self.train


class TrainProgress:
    """Where a training strategy (QAT, ACT) reports its progress; this base class ignores it.

    The library never prints: a caller that wants to show progress passes a subclass (the CLI
    renders a bar or one line per epoch). Epochs and steps count from 1; `step` is the number of
    training steps finished so far over the whole run, `loss` that step's loss (None if unknown).
    """

    def start(self, total_steps: int, epochs: int, done_steps: int = 0) -> None:
        """Training begins (again, after a retry): `total_steps` over `epochs`, `done_steps` already done (resume)."""

    def step(self, epoch: int, step: int, loss: Optional[float]) -> None:
        """One training step finished."""

    def epoch_end(self, epoch: int, metrics: Mapping[str, float]) -> None:
        """An epoch finished: at least {"steps", "seconds"}, and "loss" (the epoch's mean) when known."""


CALIBRATION, TRAINING = "calibration", "training"


@dataclass(frozen=True)
class StrategyNeeds:
    """What a strategy asks of a reproduction; the pipeline, the CLI and the protocol read this
    instead of branching on the strategy's name."""

    data: str = CALIBRATION  # CALIBRATION: calibration batches from the calibration split; TRAINING: the train split
    network: bool = False  # trains a network definition that carries the FP32 weights (not only the inference model)
    checkpoints: bool = False  # keeps resumable checkpoints in WORK/checkpoints
    ranks: bool = False  # trains data-parallel over several processes (`--gpus`, `--nproc`)
    recipe_fields: Tuple[str, ...] = ()  # dotted recipe fields it reads that must be set, e.g. "train"
    tasks: Optional[FrozenSet[str]] = None  # the tasks it can quantize (None: every task)

    def __post_init__(self) -> None:
        if self.data not in (CALIBRATION, TRAINING):
            raise ValueError(f"StrategyNeeds.data must be {CALIBRATION!r} or {TRAINING!r}, not {self.data!r}")


@dataclass
class QuantOptions:
    """Run options shared by every strategy (none of them changes the recipe's method)."""

    device: DeviceLike = "cpu"  # "cpu", "gpu", "gpu:N" or a zoo.device.Device
    work_dir: Optional[Path] = None  # checkpoints and scratch files (QAT/ACT); default: next to out_dir
    resume: bool = False
    epochs: Optional[int] = None  # override the recipe's epoch count (short runs)
    iterations: Optional[int] = None  # cap the training iterations (short runs)
    batch_size: Optional[int] = None  # override the recipe's training batch size
    engine: str = "fast"  # PTQ engine: the zoo's vectorized search or plain paddleslim
    seed: int = 0
    log: Callable[[str], None] = field(default=lambda message: None)
    progress: Optional[TrainProgress] = None  # training progress reports (QAT, ACT); None: nobody listens


@contextlib.contextmanager
def kept_process_state() -> Iterator[None]:
    """Whatever a strategy does to process-wide state inside (global RNG seeds, Paddle's dynamic/static
    mode, Paddle's current device) is undone on exit: the caller finds the process as it left it."""
    import paddle  # every strategy runs Paddle; zoo.quant.base itself stays importable without it

    py_state, np_state = random.getstate(), np.random.get_state()
    paddle_state, dynamic, device = paddle.get_rng_state(), paddle.in_dynamic_mode(), paddle.get_device()
    try:
        yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
        if paddle.in_dynamic_mode() != dynamic:
            (paddle.disable_static if dynamic else paddle.enable_static)()
        if paddle.get_device() != device:
            paddle.set_device(device)
        paddle.set_rng_state(paddle_state)


class QuantStrategy(ABC):
    """One quantization method.

    Every subclass's `quantize` runs inside `kept_process_state`, so a strategy may seed the RNGs
    and switch Paddle's mode for its own run without leaking either to the caller.
    """

    name: ClassVar[str]
    needs: ClassVar[StrategyNeeds] = StrategyNeeds()

    def recipe_problems(self, recipe: Recipe) -> List[str]:
        """What the recipe lacks for this strategy: one line per unset field of `needs.recipe_fields`."""
        missing = [f for f in self.needs.recipe_fields if _dotted(recipe, f) is None]
        return [f"strategy {self.name!r} needs `{f}`" for f in missing]

    def supports(self, task: str) -> bool:
        """Whether this strategy can quantize a model of `task`."""
        return self.needs.tasks is None or task in self.needs.tasks

    def deviations(self, recipe: Recipe, facts: RunFacts) -> List[Deviation]:
        """How a run's calibration or training differed from the recipe's (what makes it PARTIAL)."""
        if self.needs.data == CALIBRATION:
            return calibration_deviations(recipe, facts)
        return training_deviations(recipe, facts)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        inner = cls.__dict__.get("quantize")
        if inner is not None and not getattr(inner, "_keeps_process_state", False):
            @functools.wraps(inner)
            def quantize(self: "QuantStrategy", *args: Any, **kw: Any) -> ModelFiles:
                with kept_process_state():
                    return inner(self, *args, **kw)

            quantize._keeps_process_state = True  # type: ignore[attr-defined]
            cls.quantize = quantize  # type: ignore[method-assign]

    def __init__(self) -> None:
        self.info: Dict[str, Any] = {}  # what the last run did (training history, settings): the report's `training`

    @abstractmethod
    def quantize(
        self,
        recipe: Recipe,
        source: FP32Source,
        data: QuantData,
        out_dir: Path,
        options: QuantOptions,
    ) -> ModelFiles:
        """Write the quantized inference model into `out_dir` and return its files."""


# one table for the recipe loader and the pipeline (zoo.plugins); built-ins are imported on first use
STRATEGIES: NameRegistry[Type[QuantStrategy]] = plugins.STRATEGIES


def register_strategy(name: str) -> Callable[[Type[QuantStrategy]], Type[QuantStrategy]]:
    """Class decorator: register a strategy under `name`; a name used twice raises DuplicateNameError."""
    return STRATEGIES.decorator(name, set_name=True)


def strategy_names() -> List[str]:
    """Every known strategy name (built-in and registered)."""
    return STRATEGIES.names()


def get_strategy(name: str) -> QuantStrategy:
    """An instance of the strategy registered as `name`."""
    return STRATEGIES.get(name)()


# helpers shared by the strategies


def _dotted(recipe: Recipe, dotted: str) -> Any:
    node: Any = recipe
    for part in dotted.split("."):
        node = getattr(node, part, None)
    return node


def commit_model(stage: StagedDir) -> ModelFiles:
    """Verify the model staged in `stage`, name it inference.pdmodel/.pdiparams and move it into place whole."""
    normalize_names(stage.path)
    verify_saved(find_model_files(stage.path), stage.target, QuantizeError)  # a short write never lands
    return find_model_files(stage.commit())


def normalize_names(folder: Path) -> None:
    """Rename the model in `folder` to inference.pdmodel / inference.pdiparams."""
    files = find_model_files(folder)
    if files.model_file.name != "inference.pdmodel":
        os.replace(files.model_file, folder / "inference.pdmodel")
    if files.params_file is not None and files.params_file.name != "inference.pdiparams":
        os.replace(files.params_file, folder / "inference.pdiparams")


def copy_model(model: ModelFiles, out_dir: Path) -> ModelFiles:
    """Copy an inference model into `out_dir` as inference.pdmodel + inference.pdiparams (atomically)."""
    check_model(model)  # a corrupt source is named as such, not reported as a failed copy
    with StagedDir(out_dir) as stage, writing_model(out_dir, QuantizeError):
        shutil.copyfile(model.model_file, stage.path / "inference.pdmodel")
        if model.params_file is None:
            raise QuantizeError(
                f"{model.folder} stores one file per parameter; the zoo needs a combined params file",
                hint="Re-save the model with paddle.static.save_inference_model (one .pdiparams file).",
            )
        shutil.copyfile(model.params_file, stage.path / "inference.pdiparams")
        return commit_model(stage)


def model_input(model: ModelFiles) -> Tuple[str, List[int]]:
    """The single input of an inference model: its name and declared shape."""
    with open_program(model) as opened:
        feeds, program = opened.feeds, opened.program
    if len(feeds) != 1:
        raise QuantizeError(f"{model.folder}: expected a model with one image input, it has {feeds}")
    shape = list(program.global_block().var(feeds[0]).shape)
    return feeds[0], shape


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and Paddle's global generators (inside a strategy: kept_process_state undoes it)."""
    import paddle

    random.seed(seed)
    np.random.seed(seed)
    paddle.seed(seed)


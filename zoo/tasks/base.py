"""The task interface: one small class per task (classification, detection), registered by name."""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, Dict, List, Mapping, Optional, Sequence, Tuple

from zoo.device import DeviceLike
from zoo.data.transforms import apply_overrides
from zoo.modelfiles import ModelFiles
from zoo.quant.base import QuantHooks
from zoo.schema import Preprocess, Recipe, Role
from zoo.models import build_model


@dataclass
class ScoreOptions:
    """How a model is run while it is scored (none of these changes the metric)."""

    batch_size: int = 32
    threads: int = 2
    device: DeviceLike = "cpu"
    num_workers: int = 2
    progress: Optional[Callable[[int], None]] = None  # called with the image count of each finished batch
    runtime: str = "paddle"  # zoo.runtime name: the runtime that will serve the model


class TaskModels(ABC):
    """Model I/O of a task: which programs are its own, how its network is built, loaded and written."""

    def recognizes(self, files: ModelFiles) -> bool:
        """Whether a model folder's program is evidently of this task (checked when --task is absent)."""
        return False

    def check_entry_model(self, recipe: Recipe, files: ModelFiles) -> None:
        """Refuse an entry's model that does not match what its recipe declares (default: nothing to check)."""

    @abstractmethod
    def export_network(self, recipe: Recipe, weights: Path, out_dir: Path) -> ModelFiles:
        """An inference model built from the entry's network and its published weights at `weights`."""

    def build_network(self, recipe: Recipe) -> Any:
        """The recipe's network (`arch` with `network_kwargs`), freshly initialized."""

        return build_model(recipe.arch, **self.network_kwargs(recipe))

    def network_kwargs(self, recipe: Recipe) -> Dict[str, Any]:
        """The architecture's arguments for the recipe: its `arch_args`, the dataset's class count."""
        kwargs: Dict[str, Any] = dict(recipe.arch_args)
        kwargs.setdefault("num_classes", recipe.dataset.num_classes)
        return kwargs

    def start_weights(self, recipe: Recipe) -> Role:
        """The artifact whose weights quant-aware training starts from (default: `pretrained`, else `fp32`)."""
        return Role.pretrained if Role.pretrained in recipe.artifacts else Role.fp32

    @abstractmethod
    def save_network(self, recipe: Recipe, network: Any, out_dir: Path, input_shape: Tuple[int, int, int]) -> ModelFiles:
        """Write a float `network` into `out_dir` as an inference model with the task's contract."""

class TaskData(ABC):
    """Data of a task: where it lives, how it is read and preprocessed, at which sizes, for what use."""

    @abstractmethod
    def resolve_data(self, recipe: Recipe, data: Optional[Path]) -> Path:
        """The data folder of an entry: `data`, or the bundled data the recipe names."""

    @abstractmethod
    def folder_preprocess(self) -> Preprocess:
        """The preprocessing of a plain model folder (the published convention of the task)."""

    def preprocess(self, base: Preprocess, overrides: Mapping[str, Any]) -> Preprocess:
        """`base` with the command-line overrides applied."""
        return apply_overrides(base, dict(overrides))

    @property
    def folder_split(self) -> str:
        """The split a model folder is scored on when none is named."""
        return "val"

    @abstractmethod
    def entry_sizes(self, recipe: Recipe, asked: Optional[Sequence[int]]) -> List[int]:
        """The input sides an entry is scored at (`asked`, else the task's default for the recipe)."""

    @abstractmethod
    def folder_inputs(self, files: ModelFiles, base: Preprocess, asked: Optional[Sequence[Any]],
                      overrides: Mapping[str, Any]) -> Tuple[Preprocess, List[Optional[Any]]]:
        """(the preprocessing, the input sizes) a model folder is scored with: `base` with the command-line
        overrides; a size is a side or (height, width), None for the preprocessing's own."""

    @abstractmethod
    def eval_dataset(self, root: Path, split: str, pre: Preprocess, size: Optional[int],
                     max_samples: Optional[int]) -> Any:
        """The evaluation dataset (`len`, `split`, `split_size`); `size` is the first side it will be scored at."""

    def check_runtime(self, runtime: str) -> None:
        """Refuse a runtime this task's models cannot be scored on, saying why (default: every runtime)."""

    def check_inputs(self, files: ModelFiles, dataset: Any, sizes: Sequence[Optional[int]]) -> None:
        """Refuse, before anything is scored, data or input sizes this model cannot be scored on (default: none)."""

    def require_reproducible(self, recipe: Recipe) -> None:
        """Refuse, before any data is read, an entry whose reproduction this task cannot run (default: none)."""

    @abstractmethod
    def reproduce_datasets(self, recipe: Recipe, root: Path, max_samples: Optional[int],
                           calib_on_eval: bool, data: str) -> Dict[str, Any]:
        """{"eval": ..., and "calib" or "train"}: `data` is what the strategy needs (StrategyNeeds.data:
        CALIBRATION or TRAINING); refuses what the task cannot reproduce."""

    @abstractmethod
    def calibration_batches(self, dataset: Any, batch_size: int) -> Callable[[], Any]:
        """A callable returning the calibration input batches of `dataset` (arrays, or {feed name: array} dicts)."""


class TaskMetric(ABC):
    """The metric of a task: what a recipe publishes, how a model is scored, how results are shown."""

    metrics: ClassVar[Tuple[str, ...]]  # the metrics a recipe of this task publishes, headline first
    labels: ClassVar[Dict[str, str]]  # how the CLI names each metric

    @abstractmethod
    def score(self, files: ModelFiles, dataset: Any, pre: Preprocess, size: Optional[int],
              opts: ScoreOptions) -> Dict[str, Any]:
        """The task's metrics of `files` on `dataset` at side `size`: at least the `metrics` and "images"."""

    @abstractmethod
    def summarize(self, rows: List[Dict[str, Any]]) -> Dict[str, Any]:
        """The top-level fields of an evaluation result from its rows (one per input size)."""

    @abstractmethod
    def rows(self, result: Mapping[str, Any]) -> List[Mapping[str, Any]]:
        """The per-size rows of a result made by `summarize`, for rendering."""

    @abstractmethod
    def metric_line(self, row: Mapping[str, Any]) -> str:
        """One line of text with a row's measured metrics."""


class ModelTask(TaskModels, TaskData, TaskMetric, QuantHooks):
    """One task, registered by name: its model I/O, data and metric, and (QuantHooks) what the
    quantization strategies ask of it. A new task implements the abstract methods of the four."""

    name: ClassVar[str]

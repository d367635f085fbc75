"""Classification: ImageNet-layout data, a short-side resize and center crop, top-1 / top-5 accuracy."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from zoo.errors import DataError, UsageError
from zoo.modelfiles import ModelFiles
from zoo.models.weights import load_pretrained
from zoo.data.folder_inputs import folder_preprocess, size_label
from zoo.protocol import calib_images_wanted, calib_split
from zoo.quiet import silenced
from zoo.quant.base import CALIBRATION
from zoo.schema import Preprocess, Recipe
from zoo.tasks import register_task
from zoo.tasks.base import ModelTask, ScoreOptions
from zoo.models import save_inference
from zoo.data import resolve_data


def has_split(root: Path, split: str) -> bool:
    """Whether an ImageNet-layout folder holds `split`."""
    from zoo.data.imagenet import find_samples

    try:
        return bool(find_samples(root, split))
    except DataError:
        return False


def _one_size(asked: Optional[Sequence[Any]]) -> Optional[Any]:
    if asked and len(asked) > 1:
        raise UsageError(f"a classification model is scored at one input size, got {list(asked)}",
                         hint="Pass one --input-size.")
    return asked[0] if asked else None


@register_task("classification")
class ClassificationTask(ModelTask):
    """Top-1 / top-5 accuracy of a model with one image input and per-class scores out."""

    metrics = ("top1", "top5")
    labels = {"top1": "top-1", "top5": "top-5"}

    def export_network(self, recipe: Recipe, weights: Path, out_dir: Path) -> ModelFiles:
        size = recipe.headline().input_size
        with silenced():
            network = self.build_network(recipe)
            load_pretrained(network, recipe, weights, verify=lambda _: True)  # fetch verified it against its pin
        return self.save_network(recipe, network, out_dir, (3, size, size))

    def save_network(self, recipe: Recipe, network: Any, out_dir: Path, input_shape: Tuple[int, int, int]) -> ModelFiles:
        return save_inference(network, out_dir, input_shape)

    def resolve_data(self, recipe: Recipe, data: Optional[Path]) -> Path:
        return resolve_data(recipe, data)

    def folder_preprocess(self) -> Preprocess:
        from zoo.data.transforms import DEFAULT_PREPROCESS

        return DEFAULT_PREPROCESS

    def entry_sizes(self, recipe: Recipe, asked: Optional[Sequence[int]]) -> List[int]:
        return [_one_size(asked) or recipe.headline().input_size]

    def folder_inputs(self, files: ModelFiles, base: Preprocess, asked: Optional[Sequence[Any]],
                      overrides: Mapping[str, Any]) -> Tuple[Preprocess, List[Optional[Any]]]:
        pre, size = folder_preprocess(files, base, overrides, _one_size(asked))
        return pre, [size]

    def eval_dataset(self, root: Path, split: str, pre: Preprocess, size: Optional[int],
                     max_samples: Optional[int]) -> Any:
        from zoo.data.imagenet import ImageListDataset
        from zoo.data.transforms import eval_transform

        return ImageListDataset(root, split, eval_transform(pre, size), max_samples)

    def score(self, files: ModelFiles, dataset: Any, pre: Preprocess, size: Optional[int],
              opts: ScoreOptions) -> Dict[str, Any]:
        from zoo.data.imagenet import iterate_batches
        from zoo.data.transforms import effective_preprocess
        from zoo.evaluate.classification import evaluate

        metrics: Dict[str, Any] = dict(evaluate(files, iterate_batches(dataset, opts.batch_size, opts.num_workers),
                                                threads=opts.threads, device=opts.device, progress=opts.progress,
                                                origin=dataset.origin_of_label, runtime=opts.runtime))
        final = effective_preprocess(pre, size)
        hw = final.output_hw()
        shown = size_label(hw[0] if hw and hw[0] == hw[1] else hw) if hw else str(final.resize_short)
        metrics.update(input_size=int(shown) if shown.isdigit() else shown, preprocess=final.model_dump(mode="json"))
        return metrics

    def summarize(self, rows: List[Dict[str, Any]]) -> Dict[str, Any]:
        return dict(rows[0])  # one size: its row is the result

    def rows(self, result: Mapping[str, Any]) -> List[Mapping[str, Any]]:
        return [result]

    def metric_line(self, row: Mapping[str, Any]) -> str:
        top5 = f"{row['top5']:.2f} %" if row.get("top5") is not None else f"n/a ({row.get('classes')} classes)"
        return f"  top-1     {row['top1']:.2f} %    top-5 {top5}"

    def reproduce_datasets(self, recipe: Recipe, root: Path, max_samples: Optional[int],
                           calib_on_eval: bool, data: str) -> Dict[str, Any]:
        from zoo.data.imagenet import ImageListDataset
        from zoo.data.transforms import eval_transform, train_transform

        size = recipe.headline().input_size
        evaluation = ImageListDataset(root, recipe.dataset.split, eval_transform(recipe.preprocess, size), max_samples)
        out: Dict[str, Any] = {"eval": evaluation}
        if data == CALIBRATION:
            split = calib_split(recipe)
            if not has_split(root, split):
                if not calib_on_eval:
                    raise DataError(
                        f"{root} has no {split} split to calibrate on (the recipe calibrates on {split})",
                        hint=f"Add the {split} split, or pass --calib-on-eval to calibrate on the {recipe.dataset.split} "
                             "images that are also scored (the result is then PARTIAL: it flatters the INT8 model).",
                    )
                split = recipe.dataset.split
            out["calib"] = ImageListDataset(root, split, eval_transform(recipe.preprocess, size),
                                            calib_images_wanted(recipe))
        else:
            if not has_split(root, "train"):
                raise DataError(
                    f"{root} has no train split; strategy {recipe.strategy!r} trains on it",
                    hint="Add train_list.txt or train/<class>/ folders to the data folder.",
                )
            augment = recipe.train.augment if recipe.train else None
            out["train"] = ImageListDataset(root, "train", train_transform(recipe.preprocess, augment), max_samples)
        return out

    def calibration_batches(self, dataset: Any, batch_size: int) -> Callable[[], Any]:
        from zoo.data.imagenet import image_batches

        return image_batches(dataset, batch_size)

    def training_loss(self, recipe: Recipe, network: Any) -> Callable[[Any, Sequence[Any]], Any]:
        num_classes = recipe.dataset.num_classes
        smoothing = recipe.train.label_smoothing if recipe.train else 0.0

        def loss(trainee: Any, batch: Sequence[Any]) -> Any:
            images, labels = batch
            return classification_loss(trainee(images), labels, num_classes, smoothing)

        return loss

    def save_quantized(self, recipe: Recipe, network: Any, quanter: Any, folder: Path,
                       input_shape: Tuple[int, int, int]) -> None:
        import paddle

        spec = [paddle.static.InputSpec(shape=[None, *input_shape], dtype="float32", name="x")]
        quanter.save_quantized_model(network, str(Path(folder) / "inference"), input_spec=spec)


def classification_loss(logits: Any, labels: Any, num_classes: int, label_smoothing: float) -> Any:
    """Cross entropy, with label smoothing when the recipe asks for it."""
    import paddle
    import paddle.nn.functional as F

    labels = paddle.reshape(labels, [-1])
    if label_smoothing > 0:
        soft = F.label_smooth(F.one_hot(labels, num_classes), epsilon=label_smoothing)
        return paddle.mean(F.cross_entropy(logits, soft, soft_label=True))
    return paddle.mean(F.cross_entropy(logits, labels))

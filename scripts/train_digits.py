#!/usr/bin/env python
"""Train the bundled FP32 digits models and pack them into zoo/assets/.

    .venv/bin/python scripts/train_digits.py [--out zoo/assets] [--epochs N] [--only NAME] [--update-recipes]

Deterministic: fixed seeds, one CPU thread, fixed data order. For each model it trains on the
materialized digits train split (CPU, well under a minute each), evaluates the exported
inference model on val through Paddle Inference, packs it as a deterministic tar (sorted
members, mtime 0, uid/gid 0) and prints sha256, size and top-1/top-5; the same numbers go to
`<out>/digits_models.json`; `--update-recipes` writes them into recipes/digits_*.yaml.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import random
import sys
import tarfile
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("GLOG_minloglevel", "2")

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from zoo.schema import Augment, Preprocess  # noqa: E402

# The digits preprocessing every digits recipe carries (images are already 32x32).
PREPROCESS = Preprocess(resize_short=32, crop=32, interpolation="bilinear", scale=True,
                        mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
# digits are not mirror-symmetric: no flip
AUGMENT = Augment(random_resized_crop=32, crop_scale=(0.85, 1.0), horizontal_flip=False)

MODELS = {
    # tar name -> (arch, epochs, optimizer, peak learning rate); cosine decay to 0
    "digits_mobilenetv1_fp32": ("digits_mobilenet_v1", 8, "momentum", 0.1),
    "digits_mobilenetv3_small_fp32": ("digits_mobilenet_v3_small", 7, "adam", 0.005),
}
SEED = 2024
BATCH = 64


def seed_everything(seed: int) -> None:
    import paddle

    random.seed(seed)
    np.random.seed(seed)
    paddle.seed(seed)


def pack(folder: Path, out: Path) -> None:
    """A byte-reproducible tar: sorted members, mtime 0, root ownership, fixed modes."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for path in sorted(p for p in folder.iterdir() if p.name in ("inference.pdmodel", "inference.pdiparams")):
            info = tarfile.TarInfo(path.name)
            info.size = path.stat().st_size
            info.mtime, info.uid, info.gid, info.mode = 0, 0, 0, 0o644
            info.uname = info.gname = ""
            with open(path, "rb") as fh:
                tar.addfile(info, fh)
    tmp = out.with_suffix(".tar.tmp")
    tmp.write_bytes(buf.getvalue())
    tmp.replace(out)


def precise_bn(model, dataset, batch_size: int = 128) -> None:
    """Recompute BatchNorm running statistics as exact averages over the (unaugmented) train set.

    Short high-rate training leaves the exponential running averages far from the final
    weights' statistics (eval-mode accuracy near chance for MobileNetV3 here); one no-grad pass
    with momentum (k-1)/k at batch k makes them the plain mean over all batches.
    """
    import paddle

    from zoo.data.imagenet import iterate_batches

    norms = [layer for layer in model.sublayers() if isinstance(layer, paddle.nn.layer.norm._BatchNormBase)]
    model.train()
    with paddle.no_grad():
        for k, (images, _) in enumerate(iterate_batches(dataset, batch_size), start=1):
            for layer in norms:
                layer._momentum = (k - 1) / k
            model(paddle.to_tensor(images))
    for layer in norms:
        layer._momentum = 0.9
    model.eval()


def train_one(arch: str, epochs: int, optimizer: str, lr: float, data: Path, workdir: Path) -> tuple:
    import paddle
    import paddle.nn.functional as F

    from zoo.data.imagenet import ImageListDataset, iterate_batches
    from zoo.data.transforms import eval_transform, train_transform
    from zoo.evaluate.classification import evaluate
    from zoo.models import build_model, save_inference

    seed_everything(SEED)
    train = ImageListDataset(data, "train", train_transform(PREPROCESS, AUGMENT))
    val = ImageListDataset(data, "val", eval_transform(PREPROCESS))
    model = build_model(arch, num_classes=10)
    steps = epochs * ((len(train) + BATCH - 1) // BATCH)
    schedule = paddle.optimizer.lr.CosineAnnealingDecay(learning_rate=lr, T_max=steps)
    if optimizer == "adam":
        opt = paddle.optimizer.Adam(learning_rate=schedule, parameters=model.parameters())
    else:
        opt = paddle.optimizer.Momentum(learning_rate=schedule, momentum=0.9, parameters=model.parameters(),
                                        weight_decay=paddle.regularizer.L2Decay(4e-5))
    rng = np.random.default_rng(SEED)
    for epoch in range(epochs):
        model.train()
        order = rng.permutation(len(train))
        losses = []
        for images, labels in iterate_batches(train, BATCH, indices=order):
            logits = model(paddle.to_tensor(images))
            loss = F.cross_entropy(logits, paddle.to_tensor(labels))
            loss.backward()
            opt.step()
            opt.clear_grad()
            schedule.step()
            losses.append(float(loss))
        print(f"  {arch} epoch {epoch + 1}/{epochs} loss {np.mean(losses):.4f}", flush=True)
    precise_bn(model, ImageListDataset(data, "train", eval_transform(PREPROCESS)))
    out = workdir / arch
    files = save_inference(model, out, (3, 32, 32))
    metrics = evaluate(files, iterate_batches(val, 128), threads=1)
    return out, metrics


def with_bundled_checksum(text: str, entry: dict) -> str:
    """A recipe's text with the sha256/size of the bundled artifact `entry["file"]` replaced (a text edit)."""
    import re

    return re.sub(r"(bundled: " + re.escape(entry["file"]) + r"\n\s+sha256: )[0-9a-f]{64}(\n\s+size: )\d+",
                  lambda m: f"{m.group(1)}{entry['sha256']}{m.group(2)}{entry['size']}", text)


def update_recipes(summary: dict, recipe_dir: Path) -> list:
    """Rewrite sha256/size of each bundled artifact and the fp32_top1/fp32_top5 in the recipes using it.

    A text edit (not a YAML round trip) so comments, layout and the INT8 numbers stay as they are.
    """
    import re

    changed = []
    for path in sorted(recipe_dir.glob("digits_*.yaml")):
        text = original = path.read_text(encoding="utf-8")
        for entry in summary.values():
            if f"bundled: {entry['file']}" not in text:
                continue
            text = with_bundled_checksum(text, entry)
            text = re.sub(r"fp32_top1: [0-9.]+", f"fp32_top1: {entry['top1']:.2f}", text)
            text = re.sub(r"fp32_top5: [0-9.]+", f"fp32_top5: {entry['top5']:.2f}", text)
        if text != original:
            path.write_text(text, encoding="utf-8")
            changed.append(path.name)
    return changed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "zoo" / "assets")
    parser.add_argument("--only", choices=sorted(MODELS), help="train one model only")
    parser.add_argument("--epochs", type=int, help="override the epochs (quick checks)")
    parser.add_argument("--update-recipes", action="store_true",
                        help="write the new sha256/size and FP32 top-1/top-5 into recipes/digits_*.yaml")
    args = parser.parse_args()

    import paddle

    paddle.set_device("cpu")
    from zoo.data.digits import materialize

    data = materialize()
    args.out.mkdir(parents=True, exist_ok=True)
    summary_path = args.out / "digits_models.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    start = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        for name, (arch, epochs, optimizer, lr) in MODELS.items():
            if args.only and name != args.only:
                continue
            t0 = time.time()
            folder, metrics = train_one(arch, args.epochs or epochs, optimizer, lr, data, Path(tmp))
            tar = args.out / f"{name}.tar"
            pack(folder, tar)
            blob = tar.read_bytes()
            entry = {"file": tar.name, "arch": arch, "sha256": hashlib.sha256(blob).hexdigest(), "size": len(blob),
                     "top1": metrics["top1"], "top5": metrics["top5"], "images": metrics["images"],
                     "epochs": args.epochs or epochs, "optimizer": optimizer, "lr": lr, "seconds": round(time.time() - t0, 1)}
            summary[name] = entry
            print(json.dumps(entry), flush=True)
    summary_path.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    print(f"total {time.time() - start:.1f} s; wrote {summary_path}")
    if args.update_recipes:
        print("updated recipes:", ", ".join(update_recipes(summary, REPO / "recipes")) or "none")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python
"""Train the bundled FP32 digits detector (a small YOLOv3 MobileNetV1) and pack it into zoo/assets/.

    .venv/bin/python scripts/train_digits_det.py [--out zoo/assets] [--epochs N] [--checkpoint FILE] [--update-recipes]
        [--init-from MODEL --lr LR]

Deterministic: fixed seeds, one CPU thread, MKL's compatible code path (zoo.numerics), a fixed
data order and a fixed sequence of training sizes. It trains YOLOv3 (MobileNetV1 backbone, width
`WIDTH`, the published head structure) with paddle.vision.ops.yolo_loss on canvases composed afresh
each epoch from the train digits of the digits detection data (zoo/data/digits_det.py), at the sizes in `TRAIN_SIZES`
(multi-scale, one size per batch), its backbone started from the bundled FP32 digits classifier
(as the published detectors started from an ImageNet MobileNetV1). It then exports the legacy-contract inference model (image +
im_size, yolo_box, multiclass_nms with the 0.x settings), scores it with the zoo's COCO evaluation
at the three sizes of `EVAL_SIZES` (playing 608/416/320), packs it as a deterministic tar and
records sha256, size, box AP per size and the training time in `<out>/digits_models.json`;
`--update-recipes` writes them into recipes/digits_yolov3_*.yaml.

Training may go in rounds: `--init-from MODEL` starts every weight from an earlier round's packed
model (a tar or folder this script wrote) instead of the classifier backbone, with a fresh warm-up
and cosine cycle at `--lr` over canvases drawn for that round; the summary lists every round.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("GLOG_minloglevel", "2")

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from zoo.numerics import pin_cpu_math  # noqa: E402
from zoo.schema import Backend, Interpolation, Preprocess  # noqa: E402

pin_cpu_math()  # before Paddle computes anything, as the CLI does

NAME = "digits_yolov3_mobilenetv1_fp32"
ARCH = "yolov3_mobilenet_v1"
WIDTH = 0.25
NUM_CLASSES = 10
EVAL_SIZES = (160, 128, 96)  # the roles of 608 / 416 / 320
TRAIN_SIZES = (96, 128, 160)
# One size band per level, each twice the one below (heights 14, 28, 56 px: the digits span about 8..73
# px over the training sizes), and three aspects (w/h 0.45, 0.7, 1.0) within a level. Anchors as
# close together as a k-means fit puts them (11x20 .. 38x57) make the level an object is assigned
# to nearly arbitrary: the same kind of digit is a positive on one level and a negative on the
# next, and objectness stays low (best scores near 0.2 after 10 epochs). Smallest first, as the
# published anchors.
ANCHORS: Tuple[Tuple[int, int], ...] = ((6, 14), (10, 14), (14, 14), (13, 28), (20, 28), (28, 28), (25, 56), (39, 56), (56, 56))
ANCHOR_MASKS = ((6, 7, 8), (3, 4, 5), (0, 1, 2))  # strides 32, 16, 8 (deepest first)
DOWNSAMPLE = (32, 16, 8)
IGNORE_THRESH = 0.7  # as the published configs
PRETRAINED_ENTRY = "digits_mobilenetv1_ptq"  # its bundled FP32 classifier initializes the backbone
OBJ_PRIOR_BIAS = -4.6  # log(0.01 / 0.99)
# the 0.x eval reader (cv2 decode, bicubic square resize, /255, ImageNet mean/std, CHW), used for training too
PREPROCESS = Preprocess(backend=Backend.cv2, resize=EVAL_SIZES[0], interpolation=Interpolation.bicubic, scale=True,
                        mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
MAX_BOXES = 8  # more than any canvas holds (zoo.data.digits_det: at most 5)
CANVASES_PER_EPOCH = 1200  # as many as the train2017 split holds, drawn afresh every epoch
SEED = 2024
BATCH = 16
EPOCHS = 40
LR = 0.02
WARMUP = 100  # iterations


def seed_everything(seed: int) -> None:
    import paddle

    random.seed(seed)
    np.random.seed(seed)
    paddle.seed(seed)


def epoch_canvases(epoch: int, digits: Sequence[Tuple[np.ndarray, int]],
                   round_index: int = 0) -> List[Tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """CANVASES_PER_EPOCH fresh training canvases for `epoch`: (RGB image, xyxy boxes, class indices).

    Drawn by the dataset's own composer from the train digits only (the val canvases' digits are
    never seen), from a generator seeded by (SEED, epoch) (and the round after the first), so a resumed
    run sees the same canvases and a later round new ones.
    """
    from zoo.data.digits_det import compose

    rng = np.random.default_rng([SEED, epoch] + ([round_index] if round_index else []))
    out = []
    for _ in range(CANVASES_PER_EPOCH):
        image, objects = compose(rng, list(digits))
        boxes = np.array([[x, y, x + w - 1, y + h - 1] for (x, y, w, h), _ in objects], np.float32).reshape(-1, 4)
        out.append((image, boxes, np.array([label for _, label in objects], np.int64)))
    return out


def build_network():  # type: ignore[no-untyped-def]
    """The detector to train: YOLOv3 MobileNetV1 at WIDTH (head too), the digits anchors, objectness at its prior."""
    from zoo.models.yolov3 import YOLOv3

    network = YOLOv3("mobilenet_v1", num_classes=NUM_CLASSES, width=WIDTH,
                     anchors=[list(a) for a in ANCHORS], anchor_masks=[list(m) for m in ANCHOR_MASKS])
    # objectness starts at a 1 % prior: otherwise the first epoch is spent pushing ~1500 empty
    # anchors per image down from 0.5 (a first-epoch loss near 500 instead of 60)
    for conv, mask in zip(network.outputs, ANCHOR_MASKS):
        bias = conv.bias.numpy()
        bias[[k * (5 + NUM_CLASSES) + 4 for k in range(len(mask))]] = OBJ_PRIOR_BIAS
        conv.bias.set_value(bias)
    return network


def classifier_backbone(network) -> int:  # type: ignore[no-untyped-def]
    """Start the backbone from the bundled FP32 digits classifier (MobileNetV1 x0.25), as the published
    detectors started from an ImageNet-trained MobileNetV1; returns the number of tensors loaded.

    The classifier ships as an inference model: its conv filters and BatchNorm tensors are read in
    program order, which is the backbone's order (conv1, then each block's depthwise and pointwise
    conv-bn), and every shape must agree.
    """
    from zoo.hub import fetch
    from zoo.modelfiles import find_model_files
    from zoo.program import open_program
    from zoo.registry import get_recipe
    from zoo.schema import Role

    tensors = []
    with open_program(find_model_files(fetch(get_recipe(PRETRAINED_ENTRY), Role.fp32).path)) as opened:
        for op in opened.program.global_block().ops:
            slots = {"conv2d": ("Filter",), "depthwise_conv2d": ("Filter",),
                     "batch_norm": ("Scale", "Bias", "Mean", "Variance")}.get(op.type, ())
            for slot in slots:
                tensors.append(np.array(opened.scope.find_var(op.input(slot)[0]).get_tensor()))
    state = network.backbone.state_dict()
    if len(tensors) != len(state):
        raise RuntimeError(f"the classifier has {len(tensors)} conv/bn tensors, the backbone {len(state)}")
    for (key, target), value in zip(state.items(), tensors):
        if tuple(target.shape) != value.shape:
            raise RuntimeError(f"{key}: backbone {tuple(target.shape)} vs classifier {value.shape}")
        target.set_value(value)
    return len(tensors)


def previous_round(network, source: Path) -> Tuple[str, int]:  # type: ignore[no-untyped-def]
    """Load every weight of `network` from an earlier round's packed model (tar or folder); returns its
    sha256 (of the tar, else of the params file) and the number of tensors loaded.

    The exported program keeps the parameter names a network built by `build_network` in a fresh
    process gets, so tensors are matched by name; the two name sets must be equal and every shape agree.
    """
    from zoo.fsutil import hash_file
    from zoo.modelfiles import find_model_files
    from zoo.program import open_program

    state = network.state_dict()
    wanted = {t.name for t in state.values()}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(source)
        if folder.is_file():
            with tarfile.open(folder) as tar:
                tar.extractall(tmp, members=[m for m in tar.getmembers() if m.isfile() and "/" not in m.name], filter="data")
            folder = Path(tmp)
        files = find_model_files(folder)
        digest = hash_file(Path(source) if Path(source).is_file() else files.params_file)[0]
        with open_program(files) as opened:
            stored = {v.name for v in opened.program.list_vars() if v.persistable and v.name not in ("feed", "fetch")}
            if stored != wanted:
                raise RuntimeError(f"{source}: its tensors are not this network's "
                                   f"({len(stored ^ wanted)} names differ, e.g. {sorted(stored ^ wanted)[:3]})")
            values = {key: np.array(opened.scope.find_var(t.name).get_tensor()) for key, t in state.items()}
    for key, target in state.items():
        if tuple(target.shape) != values[key].shape:
            raise RuntimeError(f"{key}: network {tuple(target.shape)} vs {source} {values[key].shape}")
        target.set_value(values[key])
    return digest, len(values)


def train(epochs: int, checkpoint: Optional[Path] = None, eval_every: int = 0, root: Optional[Path] = None,
          log=print, init_from: Optional[Path] = None, lr: float = LR):  # type: ignore[no-untyped-def]
    """Momentum SGD with linear warm-up and cosine decay over fresh canvases each epoch.

    Every epoch's randomness (canvases, order, training sizes) comes from (SEED, epoch), so a run
    resumed from `checkpoint` (written after each epoch) ends with the same weights as one that was
    never interrupted. `eval_every` N prints the box AP at the largest size after every N epochs.
    `init_from` continues from an earlier round's model (see `previous_round`).
    """
    import paddle

    from zoo.data.digits_det import source_digits
    from zoo.data.transforms import eval_transform
    from zoo.models.yolov3_train import gt_targets, yolov3_loss

    seed_everything(SEED)
    transforms = {size: eval_transform(PREPROCESS, size) for size in TRAIN_SIZES}
    digits = source_digits()["train2017"]
    model = build_network()  # first, so its parameter names are those an earlier round exported
    round_index, digest = 0, ""
    if init_from is not None:
        digest, count = previous_round(model, init_from)
        round_index = int(digest[:8], 16)  # a later round draws canvases of its own, keyed by where it starts
        log(f"  all {count} tensors from the earlier round {init_from} (sha256 {digest[:12]})")
    elif PRETRAINED_ENTRY:
        log(f"  backbone: {classifier_backbone(model)} tensors from {PRETRAINED_ENTRY}'s FP32 classifier")
    per_epoch = (CANVASES_PER_EPOCH + BATCH - 1) // BATCH
    steps = epochs * per_epoch
    cosine = paddle.optimizer.lr.CosineAnnealingDecay(learning_rate=lr, T_max=max(1, steps - WARMUP))
    schedule = paddle.optimizer.lr.LinearWarmup(cosine, warmup_steps=WARMUP, start_lr=lr / 20, end_lr=lr)
    # momentum SGD as the 0.x YOLOv3 configs (Adam stalls here at the "no object anywhere" loss)
    opt = paddle.optimizer.Momentum(learning_rate=schedule, momentum=0.9, parameters=model.parameters(),
                                    weight_decay=paddle.regularizer.L2Decay(5e-4))
    start = 0
    if checkpoint is not None and checkpoint.is_file():
        state = paddle.load(str(checkpoint))
        if state.get("epochs") == epochs and state.get("init", "") == digest:
            model.set_state_dict(state["model"])
            opt.set_state_dict(state["opt"])
            start = int(state["epoch"])
            log(f"  resumed after epoch {start} from {checkpoint}")
    for epoch in range(start, epochs):
        model.train()
        samples = epoch_canvases(epoch, digits, round_index)
        rng = np.random.default_rng([SEED, epoch, 1])
        order = rng.permutation(len(samples))
        losses = []
        t0 = time.time()
        for begin in range(0, len(order), BATCH):
            size = int(rng.choice(TRAIN_SIZES))
            batch = [samples[i] for i in order[begin:begin + BATCH]]
            images = np.stack([transforms[size](img) for img, _, _ in batch])
            targets = [gt_targets(boxes, classes, img.shape[0], img.shape[1], MAX_BOXES) for img, boxes, classes in batch]
            gt_box = paddle.to_tensor(np.stack([t[0] for t in targets]))
            gt_label = paddle.to_tensor(np.stack([t[1] for t in targets]))
            # label smoothing off: with 10 classes Paddle's smoothing would cap class scores at 0.9
            loss = yolov3_loss(model, model(paddle.to_tensor(images)), gt_box, gt_label, IGNORE_THRESH)
            loss.backward()
            opt.step()
            opt.clear_grad()
            schedule.step()
            losses.append(float(loss))
        log(f"  epoch {epoch + 1}/{epochs} loss {np.mean(losses):.3f} ({time.time() - t0:.0f} s)")
        if checkpoint is not None:
            checkpoint.parent.mkdir(parents=True, exist_ok=True)
            paddle.save({"epochs": epochs, "epoch": epoch + 1, "init": digest, "model": model.state_dict(),
                         "opt": opt.state_dict()},
                        str(checkpoint) + ".tmp")
            os.replace(str(checkpoint) + ".tmp", checkpoint)
        if eval_every and root is not None and (epoch + 1) % eval_every == 0 and epoch + 1 < epochs:
            model.eval()
            with tempfile.TemporaryDirectory() as tmp:
                scores = evaluate(export(model, Path(tmp) / NAME), root, EVAL_SIZES[:1])
            log(f"  after epoch {epoch + 1}: box AP {scores[EVAL_SIZES[0]]['box_ap']} at {EVAL_SIZES[0]}")
    model.eval()
    return model


def export(model, out: Path):  # type: ignore[no-untyped-def]
    """The legacy-contract inference model at the largest size (0.x eval NMS settings)."""
    from zoo.models.yolov3 import export_legacy

    return export_legacy(model, out, EVAL_SIZES[0])


def evaluate(files, root: Path, sizes: Sequence[int] = EVAL_SIZES) -> Dict[int, Dict[str, float]]:
    """Box AP / AP50 (percent) on the val2017 split at each of EVAL_SIZES, as `zoo eval` scores it."""
    from zoo.data.coco import CocoDataset
    from zoo.evaluate.detection import evaluate_detection

    dataset = CocoDataset(root, "val2017")
    scores = {}
    for size in sizes:
        result = evaluate_detection(files, dataset, size, PREPROCESS, batch_size=8, threads=1)
        scores[size] = {"box_ap": round(float(result["box_ap"]), 2), "ap50": round(float(result["ap50"]), 2),
                        "images": int(result["images"])}
    return scores


def update_recipes(entry: dict, recipe_dir: Path) -> List[str]:
    """Write sha256/size of the bundled tar and the FP32 box AP per size into the recipes that use it (text edit)."""
    sys.path.insert(0, str(REPO / "scripts"))
    from train_digits import with_bundled_checksum

    changed = []
    for path in sorted(recipe_dir.glob("digits_yolov3_*.yaml")):
        text = original = path.read_text(encoding="utf-8")
        if f"bundled: {entry['file']}" not in text:
            continue
        text = with_bundled_checksum(text, entry)
        for size, score in entry["box_ap"].items():
            text = re.sub(r"(input_size: " + str(size) + r", [^\n]*?fp32_box_ap: )[0-9.]+", lambda m: f"{m.group(1)}{score:.2f}", text)
        if text != original:
            path.write_text(text, encoding="utf-8")
            changed.append(path.name)
    return changed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "zoo" / "assets")
    parser.add_argument("--epochs", type=int, default=EPOCHS, help="override the epochs (quick checks)")
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="write the training state here after every epoch and resume from it when it exists")
    parser.add_argument("--eval-every", type=int, default=0, help="print the box AP at the largest size every N epochs")
    parser.add_argument("--init-from", type=Path, default=None,
                        help="continue from an earlier round's packed model (tar or folder) instead of the classifier backbone")
    parser.add_argument("--lr", type=float, default=LR, help="peak learning rate of this round's cosine cycle")
    parser.add_argument("--update-recipes", action="store_true",
                        help="write the new sha256/size and FP32 box AP into recipes/digits_yolov3_*.yaml")
    args = parser.parse_args()
    if args.init_from is not None and not args.init_from.exists():
        parser.error(f"--init-from {args.init_from} does not exist (give the .tar or folder an earlier round wrote)")

    import paddle

    paddle.set_device("cpu")
    from zoo.data.digits_det import materialize

    sys.path.insert(0, str(REPO / "scripts"))
    from train_digits import pack as pack_tar

    root = materialize()
    start = time.time()
    summary_path = args.out / "digits_models.json"

    def read_summary() -> dict:
        return json.loads(summary_path.read_text()) if summary_path.is_file() else {}

    earlier = read_summary().get(NAME, {})
    rounds: List[dict] = []
    if args.init_from is not None:  # the rounds that made the starting model, when the summary knows it
        from zoo.fsutil import hash_file

        start_sha = hash_file(args.init_from)[0] if args.init_from.is_file() else None
        rounds = list(earlier.get("rounds") or [{k: earlier.get(k) for k in ("epochs", "lr", "sha256", "seconds")}]) \
            if earlier.get("sha256") == start_sha else [{"sha256": start_sha, "note": "an earlier model not in the summary"}]
    model = train(args.epochs, args.checkpoint, args.eval_every, root, log=lambda line: print(line, flush=True),
                  init_from=args.init_from, lr=args.lr)
    train_seconds = round(time.time() - start, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        files = export(model, Path(tmp) / NAME)
        scores = evaluate(files, root)
        tar = args.out / f"{NAME}.tar"
        pack_tar(files.folder, tar)
    blob = tar.read_bytes()
    entry = {"file": tar.name, "arch": ARCH, "width": WIDTH, "sha256": hashlib.sha256(blob).hexdigest(),
             "size": len(blob), "box_ap": {str(s): scores[s]["box_ap"] for s in EVAL_SIZES},
             "ap50": {str(s): scores[s]["ap50"] for s in EVAL_SIZES}, "images": scores[EVAL_SIZES[0]]["images"],
             "epochs": args.epochs, "batch_size": BATCH, "lr": args.lr, "train_sizes": list(TRAIN_SIZES),
             "anchors": [list(a) for a in ANCHORS], "seconds": train_seconds}
    if rounds:  # epochs/lr/seconds above are this round's; `rounds` lists each round in order, this one last
        entry["rounds"] = rounds + [{"epochs": args.epochs, "lr": args.lr, "sha256": entry["sha256"], "seconds": train_seconds}]
    summary = read_summary()  # again: the other bundled models' entries may have changed while this trained
    summary[NAME] = entry
    summary_path.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    print(json.dumps(entry), flush=True)
    print(f"total {time.time() - start:.1f} s (training {train_seconds} s); wrote {summary_path}")
    if args.update_recipes:
        print("updated recipes:", ", ".join(update_recipes(entry, REPO / "recipes")) or "none")
    return 0


if __name__ == "__main__":
    sys.exit(main())

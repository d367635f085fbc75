#!/usr/bin/env python
"""Reproduce the bundled digits entries and write what they measured into their recipes.

    .venv/bin/python scripts/publish_digits.py [--only NAME] [--dry-run]

The digits entries have no outside publication: the zoo publishes its own reproduction. This
script runs `zoo reproduce` for each bundled recipe (same code path as the CLI), then rewrites
the INT8 numbers of the recipe's `published` rows: `top1` / `top5` of a classification entry,
`box_ap` of each input size of a detection entry (added to a row that publishes only FP32), and
stores beside them, in zoo/assets/digits_published.json, what they were measured with (package
versions, the FP32 model's sha256, the recipe's sha256 before the rewrite, device, time). The
FP32 numbers come from the training scripts and are left alone. Rerunning it on the same machine
gives the same numbers.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("GLOG_minloglevel", "2")
os.environ.setdefault("MKL_CBWR", "COMPATIBLE")  # what `zoo reproduce` runs with (zoo/numerics.py)
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

ENTRIES = ("digits_mobilenetv1_ptq", "digits_mobilenetv1_qat", "digits_mobilenetv3_act", "digits_yolov3_mobilenetv1_ptq",
           "digits_yolov3_mobilenetv1_qat")
# what each publication was measured with, beside the numbers: versions, FP32 model sha256, recipe sha256
PROVENANCE = REPO / "zoo" / "assets" / "digits_published.json"


def record_provenance(name: str, report: dict, published: dict, seconds: float) -> None:
    """Store the versions, the FP32 model's and the recipe's sha256 and the numbers of one publication."""
    import json

    doc = json.loads(PROVENANCE.read_text()) if PROVENANCE.is_file() else {}
    doc[name] = {"published": published, "fp32_sha256": report["fp32_sha256"], "recipe_sha256": report["recipe_sha256"],
                 "versions": report["versions"], "device": report.get("device"), "seconds": round(seconds, 1)}
    PROVENANCE.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")


def rewrite_published(text: str, top1: float, top5: float) -> str:
    """Replace the INT8 top1/top5 of the first published row, keeping the rest of the file as written."""
    lines = text.splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if line.startswith("published:"))
    end = next((i for i in range(start + 1, len(lines)) if lines[i][:1] not in (" ", "-", "\n", "#")), len(lines))
    block = "".join(lines[start:end])
    new, n1 = re.subn(r"(?<![\w])top1:\s*[0-9.]+", f"top1: {top1:.2f}", block, count=1)
    new, n5 = re.subn(r"(?<![\w])top5:\s*[0-9.]+", f"top5: {top5:.2f}", new, count=1)
    if not n1 or not n5:
        raise SystemExit("the published row has no top1/top5 to rewrite")
    return "".join(lines[:start]) + new + "".join(lines[end:])


def rewrite_box_ap(text: str, box_ap: dict) -> str:
    """Set `box_ap` of each published row (by its `input_size`) to the measured INT8 number, keeping the rest."""
    lines = text.splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if line.startswith("published:"))
    end = next((i for i in range(start + 1, len(lines)) if lines[i][:1] not in (" ", "-", "\n", "#")), len(lines))
    done = set()
    for i in range(start + 1, end):
        m = re.search(r"(?<![\w])input_size:\s*(\d+)", lines[i])
        if not m or int(m.group(1)) not in box_ap:
            continue
        size = int(m.group(1))
        value = f"box_ap: {box_ap[size]:.2f}"
        line, n = re.subn(r"(?<![\w])box_ap:\s*[0-9.]+", value, lines[i], count=1)
        if not n:  # a row that published FP32 only: the INT8 number goes right after the size
            line = lines[i][:m.end()] + f", {value}" + lines[i][m.end():]
        lines[i] = line
        done.add(size)
    if done != set(box_ap):
        raise SystemExit(f"the published rows have no input_size {sorted(set(box_ap) - done)} to rewrite")
    return "".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--only", choices=ENTRIES)
    parser.add_argument("--dry-run", action="store_true", help="Measure and print, do not edit the recipes.")
    args = parser.parse_args()

    from zoo import quiet

    quiet.configure(verbose=False)
    from zoo.registry import get_recipe
    from zoo.reproduce import ReproduceOptions, reproduce

    for name in [args.only] if args.only else ENTRIES:
        recipe = get_recipe(name)
        began = time.time()
        with tempfile.TemporaryDirectory(prefix=f"publish-{name}-") as out:
            report = reproduce(recipe, ReproduceOptions(out=Path(out)))
        path = REPO / "recipes" / f"{name}.yaml"
        if recipe.task.value == "detection":  # one INT8 box AP per published size
            box_ap = {s["input_size"]: s["metrics"]["box_ap"]["measured"] for s in report["settings"]}
            fp32 = {s["input_size"]: s["fp32"]["box_ap"]["measured"] for s in report["settings"]}
            print(f"{name}: " + " | ".join(f"{size}: INT8 box AP {box_ap[size]:.2f} FP32 {fp32[size]:.2f} "
                                           f"drop {fp32[size] - box_ap[size]:.2f}" for size in box_ap)
                  + f" | {time.time() - began:.1f} s")
            if not args.dry_run:
                path.write_text(rewrite_box_ap(path.read_text(), box_ap))
                record_provenance(name, report, {"box_ap": {str(k): round(v, 2) for k, v in box_ap.items()}},
                                  time.time() - began)
            continue
        setting = report["settings"][0]
        top1 = setting["metrics"]["top1"]["measured"]
        top5 = setting["metrics"].get("top5", {}).get("measured")
        fp32 = setting["fp32"]["top1"]["measured"]
        print(f"{name}: INT8 top1 {top1:.2f} top5 {top5:.2f} | FP32 top1 {fp32:.2f} | drop {fp32 - top1:.2f} | {time.time() - began:.1f} s")
        if not args.dry_run:
            path.write_text(rewrite_published(path.read_text(), top1, top5))
            record_provenance(name, report, {"top1": round(top1, 2), "top5": round(top5, 2)}, time.time() - began)
    return 0


if __name__ == "__main__":
    sys.exit(main())

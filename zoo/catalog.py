"""Summaries of registry entries shared by `zoo list`, `zoo info` and MODEL_ZOO.md."""
from __future__ import annotations

from typing import Any, Dict, List, Optional

from zoo.schema import Preprocess, Published, Recipe, Sizing, Task

_LABEL = {"top1": "top-1", "top5": "top-5", "box_ap": "box AP"}


def _fmt(value: Optional[float]) -> str:
    return "–" if value is None else f"{value:.1f}"


def metric_text(recipe: Recipe, fp32: bool = False) -> str:
    """Published metrics as one short string: `top-1 55.3 / top-5 79.05` or `608: 27.9, 416: 28.0`."""
    rows: List[Published] = recipe.published
    if recipe.task == Task.classification:
        row = recipe.headline()
        values = row.fp32() if fp32 else row.metrics()
        return " / ".join(f"{_LABEL[k]} {values[k]:.2f}" for k in ("top1", "top5") if k in values) or "–"
    parts = []
    for row in rows:
        values = row.fp32() if fp32 else row.metrics()
        parts.append(f"{row.input_size}: {_fmt(values.get('box_ap'))}")
    return ", ".join(parts)


def drop(recipe: Recipe) -> Optional[float]:
    """FP32 minus INT8 of the headline metric at the headline setting, in points."""
    row = recipe.headline()
    key = recipe.primary_metric()
    q, f = row.metrics().get(key), row.fp32().get(key)
    if q is None or f is None:
        return None
    return round(f - q, 2)


def preprocess_text(pre: Preprocess) -> str:
    """The evaluation preprocessing in a few words: `cv2, bilinear, short 256 / crop 224`."""
    parts = [pre.backend.value, pre.interpolation.value]
    if pre.resize is not None:
        parts.append("square resize")
    elif pre.resize_short is not None:
        parts.append(f"short {pre.resize_short}" + (f" / crop {pre.crop}" if pre.crop else ""))
    elif pre.crop is not None:
        parts.append(f"crop {pre.crop}")
    if pre.sizing is Sizing.torchvision:
        parts.append("torchvision rounding")
    elif pre.sizing is Sizing.paddleslim:
        parts.append("PaddleSlim 2.0-2.2 reader rounding")
    return ", ".join(parts)


def summary(recipe: Recipe) -> Dict[str, Any]:
    """One registry row as plain data (the `zoo list --json` element)."""
    return {
        "name": recipe.name,
        "aliases": list(recipe.aliases),
        "task": recipe.task,
        "strategy": recipe.strategy,
        "arch": recipe.arch,
        "metric": recipe.primary_metric(),
        "published": [
            {"input_size": row.input_size, "int8": row.metrics(), "fp32": row.fp32()} for row in recipe.published
        ],
        "drop": drop(recipe),
        "default_artifact": recipe.default_artifact.value,
        "source": recipe.source.url,
    }


# what a reader of a task's table needs to know to measure its numbers again
_TASK_NOTES = {
    Task.detection: "One model serves every input size. `zoo eval NAME --data COCO_DIR` scores an entry at "
                    "each published size as PaddleDetection 0.x did (square cv2 bicubic resize, "
                    "the legacy `image` + `im_size` contract, COCO json with width/height + 1, pycocotools "
                    "COCOeval bbox) and compares each size with its row; see the README, \"Detection: COCO box AP\".",
}


_RUNTIME_NAMES = {"paddle": "Paddle Inference", "paddle-int8": "oneDNN INT8", "onnxruntime": "ONNX Runtime",
                  "openvino": "OpenVINO", "lite": "Lite x86", "paddle3": "Paddle Inference 3.x"}


def _cell_text(cell: Optional[Dict[str, Any]], what: str) -> str:
    if cell is None or (cell.get("accuracy") is None and what == "accuracy") or (cell.get("p50_ms") is None and what == "p50"):
        return "–"
    if what == "accuracy":
        return f"{cell['accuracy']:.2f}"
    return f"{cell['p50_ms']:.2f} ± {cell['spread_ms']:.2f}"


def render_matrix(receipt: Dict[str, Any]) -> List[str]:
    """MODEL_ZOO.md's deployed-accuracy section from a `zoo matrix` receipt (matrix-receipt.json)."""
    versions = ", ".join(f"{k} {v}" for k, v in receipt["versions"].items())
    out = ["## Deployed accuracy and speed", "",
           "What the files users ship compute, per runtime, measured by `" + receipt["command"] + "` "
           f"on {receipt['cpu']} ({', '.join(receipt['cpu_int8_flags']) or 'no INT8 instructions'}), "
           f"{receipt['threads']} thread(s), {receipt['measured']} ({versions}). Accuracy: the recipe's metric on its "
           "evaluation data; INT8 diff: against Paddle's fake-quant graph (the reference); latency: batch 1, median "
           "p50 ms ± the spread over the timed runs (each in a fresh process); speed-up: over Paddle Inference FP32 "
           "(oneDNN). `benchmarks/matrix-receipt.json` holds every number and the receipt; "
           "`tests/test_matrix.py` measures the accuracy of the PTQ entries again.", ""]
    for entry in receipt["entries"]:
        cells = {(c["precision"], c["runtime"]): c for c in entry["cells"]}
        runtimes = list(dict.fromkeys(c["runtime"] for c in entry["cells"]))
        metric = {"top1": "top-1", "box_ap": "box AP"}.get(entry["metric"], entry["metric"])
        out += [f"### `{entry['entry']}` ({metric}, {entry['images']} images, input {entry['input_size']})", "",
                "| runtime | FP32 | INT8 | INT8 diff | FP32 ms | INT8 ms | INT8 speed-up | INT8 verdict |",
                "|---|---|---|---|---|---|---|---|"]
        reasons: List[str] = []
        for runtime in runtimes:
            fp32, int8 = cells.get(("fp32", runtime)), cells.get(("int8", runtime))
            texts = []
            for cell in (fp32, int8):
                if cell is not None and cell.get("reason"):
                    reasons.append(f"{cell['precision'].upper()} on {_RUNTIME_NAMES[runtime]}: {cell['reason']}")
                    texts.append(f"[{len(reasons)}]")
                else:
                    texts.append("")
            diff = int8.get("diff") if int8 else None
            speed = int8.get("speedup") if int8 else None
            out.append(f"| {_RUNTIME_NAMES[runtime]} | {_cell_text(fp32, 'accuracy')}{texts[0]} | "
                       f"{_cell_text(int8, 'accuracy')}{texts[1]} | {'–' if diff is None else f'{diff:+.2f}'} | "
                       f"{_cell_text(fp32, 'p50')} | {_cell_text(int8, 'p50')} | "
                       f"{'–' if speed is None else f'{speed:.2f}x'} | {int8['verdict'] if int8 else '–'} |")
        out.append("")
        out += [f"[{i}] {reason}  " for i, reason in enumerate(reasons, start=1)] + ([""] if reasons else [])
    return out


def render_model_zoo(recipes: List[Recipe], matrix: Optional[Dict[str, Any]] = None) -> str:
    """MODEL_ZOO.md: the registry as markdown tables (generated; do not edit by hand)."""
    out = [
        "# Model zoo",
        "",
        "<!-- Generated by `zoo docs model-zoo --write` from recipes/. Do not edit by hand: a test fails when it is out of sync. -->",
        "",
        "Published numbers per entry, INT8 against the FP32 baseline (percent). "
        "`zoo info NAME` shows the whole recipe; `zoo reproduce NAME` measures them again.",
        "The preprocessing column is the evaluation transform of the code behind the published numbers: "
        "its image library (cv2 or pil), interpolation and resize.",
        "",
    ]
    for task, title in ((Task.classification, "Classification (ImageNet-1k val, top-1 / top-5)"),
                        (Task.detection, "Detection (COCO val2017 box AP, IoU .50:.95)")):
        chosen = [r for r in recipes if r.task == task]
        if not chosen:
            continue
        out += [f"## {title}", ""] + ([_TASK_NOTES[task], ""] if task in _TASK_NOTES else []) + [
                "| name | strategy | arch | INT8 | FP32 | drop | preprocessing | default artifact | source |",
                "|---|---|---|---|---|---|---|---|---|"]
        for r in chosen:
            d = drop(r)
            out.append(
                f"| `{r.name}` | {r.strategy} | {r.arch} | {metric_text(r)} | {metric_text(r, fp32=True)} | "
                f"{'–' if d is None else f'{d:.2f}'} | {preprocess_text(r.preprocess)} | {r.default_artifact.value} | [{r.source.doc.split(',')[0]}]({r.source.url}) |"
            )
        out.append("")
        notes = [(r.name, o) for r in chosen for o in r.other_published]
        if notes:
            out += ["Other published figures:", ""]
            out += [f"- `{name}`: {o.what}: {o.value:g} {o.unit}" for name, o in notes]
            out.append("")
    followed = [r for r in recipes if r.source.pipeline]
    if followed:
        out += ["## Publisher pipelines", "",
                "What each entry follows of the code that produced its published numbers, and what was checked against it.", ""]
        out += [f"- `{r.name}`: {r.source.pipeline}" for r in followed]
        out.append("")
    if matrix is not None:
        out += render_matrix(matrix)
    return "\n".join(out).rstrip() + "\n"

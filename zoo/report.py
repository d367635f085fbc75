"""Measured against published: per setting and metric, the difference, the tolerance and PASS/FAIL.

Writes OUT/report.json, OUT/report.md and OUT/plot.png (matplotlib), each atomically.
"""
from __future__ import annotations

import io
import json
import platform
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

from zoo.fsutil import atomic_write_bytes
from zoo.schema import Recipe
from zoo.tasks import get_task

def compare(
    recipe: Recipe,
    int8: Mapping[int, Mapping[str, float]],
    fp32: Mapping[int, Mapping[str, float]],
) -> List[Dict[str, Any]]:
    """One entry per published setting: each published INT8 metric against the measured one.

    `int8` / `fp32` map an input size to measured metrics ({"top1": %, ...}). A published
    setting that was not measured counts as a miss (measured None, pass False). A setting that
    publishes only FP32 numbers still shows the measured INT8 headline metric, with published,
    diff and pass None: there is nothing to compare it with.
    """
    tol = float(recipe.tolerance.reproduce)
    task_metrics = get_task(recipe.task).metrics
    settings = []
    for row in recipe.published:
        got, base = int8.get(row.input_size, {}), fp32.get(row.input_size, {})
        metrics = {}
        for name, published in row.metrics().items():
            measured = got.get(name)
            diff = None if measured is None else round(float(measured) - float(published), 4)
            metrics[name] = {
                "measured": measured,
                "published": published,
                "diff": diff,
                "tolerance": tol,
                "pass": diff is not None and abs(diff) <= tol + 1e-9,
            }
        if not metrics and got.get(recipe.primary_metric()) is not None:
            metrics[recipe.primary_metric()] = {"measured": got[recipe.primary_metric()], "published": None,
                                                "diff": None, "tolerance": tol, "pass": None}
        fp32_rows = {}
        for name in sorted(set(row.fp32()) | set(k for k in base if k in task_metrics)):
            measured = base.get(name)
            published = row.fp32().get(name)
            fp32_rows[name] = {
                "measured": measured,
                "published": published,
                "diff": None if measured is None or published is None else round(float(measured) - float(published), 4),
            }
        drop = {
            name: round(float(base[name]) - float(got[name]), 4)
            for name in metrics
            if name in base and name in got and base[name] is not None and got[name] is not None
        }
        settings.append({"input_size": row.input_size, "metrics": metrics, "fp32": fp32_rows, "int8_drop": drop})
    return settings


def all_within(settings: List[Dict[str, Any]]) -> bool:
    """True when every published metric of every setting was measured and is within tolerance."""
    checks = [m["pass"] for s in settings for m in s["metrics"].values() if m["published"] is not None]
    return bool(checks) and all(checks)


def published_int8(recipe: Recipe) -> List[str]:
    """The published INT8 figures a reproduction is judged by, as "metric@size" (empty: FP32 only)."""
    return [f"{name}@{row.input_size}" for row in recipe.published for name in row.metrics()]


def compared_with(recipe: Recipe, published: List[str]) -> str:
    """One sentence saying what a reproduction's measured INT8 numbers were compared with."""
    if published:
        return (f"the published INT8 numbers ({', '.join(published)}), within {recipe.tolerance.reproduce:g} points "
                "each")
    return (f"nothing: {recipe.name} publishes FP32 numbers only, no INT8 ones yet; the measured INT8 numbers and "
            "their drop from the measured FP32 are reported, and the status is PARTIAL")


def versions() -> Dict[str, str]:
    """Versions of the libraries a reproduction depends on."""
    from importlib import metadata

    out = {"python": platform.python_version()}
    for dist in ("zoo", "paddlepaddle", "paddlepaddle-gpu", "paddleslim", "paddlelite", "numpy", "opencv-python", "pillow"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return out


def fmt_points(value: Optional[float], signed: bool = False) -> str:
    """A metric in points with two decimals; '-' when absent; no '-0.00'."""
    if value is None:
        return "-"
    value = round(float(value), 2) + 0.0  # + 0.0 turns -0.0 into 0.0
    return f"{value:+.2f}" if signed else f"{value:.2f}"


def verdict(metric: Mapping[str, Any]) -> str:
    """pass / MISS, or "not published" when there is no published number to compare with."""
    if metric.get("published") is None:
        return "not published"
    return "pass" if metric["pass"] else "MISS"


def markdown(report: Mapping[str, Any]) -> str:
    """The report as a small markdown document."""
    lines = [
        f"# {report['name']}: {report['status']}",
        "",
        f"Strategy `{report['strategy']}`; tolerance is absolute points against the published INT8 numbers.",
        "",
    ]
    if report.get("compared_with"):
        lines += [f"Compared with: {report['compared_with']}.", ""]
    found = report.get("protocol", {}).get("deviations") or []
    if found:
        lines += ["**PARTIAL: this run did not follow the recipe's protocol; the comparison below is indicative only.**", ""]
        lines += [f"- {d['setting']}: {d['run']} (recipe: {d['recipe']})" for d in found]
        lines.append("")
    lines += [
        "| setting | metric | measured INT8 | published INT8 | diff | tolerance | FP32 measured | FP32 published | result |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for s in report["settings"]:
        for name, m in s["metrics"].items():
            f = s["fp32"].get(name, {})
            lines.append(
                f"| {s['input_size']} | {name} | {fmt_points(m['measured'])} | {fmt_points(m['published'])} | {fmt_points(m['diff'], True)} "
                f"| {m['tolerance']:.2f} | {fmt_points(f.get('measured'))} | {fmt_points(f.get('published'))} | {verdict(m)} |"
            )
    lines += ["", "## Artifacts", ""]
    lines += [f"- {k}: `{v}`" for k, v in report.get("artifacts", {}).items()]
    lines += ["", "## Timings (s)", ""]
    lines += [f"- {k}: {v}" for k, v in report.get("timings", {}).items()]
    lines += ["", "## Versions", ""]
    lines += [f"- {k}: {v}" for k, v in report.get("versions", {}).items()]
    if report.get("data"):
        lines += ["", "## Data", ""]
        lines += [f"- {k}: {v}" for k, v in report["data"].items()]
    return "\n".join(lines) + "\n"


def plot(report: Mapping[str, Any], path: Path) -> None:
    """Bar chart of measured vs published (INT8, and FP32 where published), one group per setting/metric."""
    # a bare Figure renders through Agg without pyplot: the host application's backend is left alone
    from matplotlib.figure import Figure

    labels, measured, published, base = [], [], [], []
    for s in report["settings"]:
        for name, m in s["metrics"].items():
            labels.append(f"{name}@{s['input_size']}")
            measured.append(m["measured"] or 0.0)
            published.append(m["published"] or 0.0)
            base.append(s["fp32"].get(name, {}).get("measured") or 0.0)
    fig = Figure(figsize=(max(4.0, 1.8 * len(labels) + 1.5), 3.6), dpi=100)
    ax = fig.subplots()
    width = 0.27
    xs = list(range(len(labels)))
    ax.bar([x - width for x in xs], base, width, label="FP32 measured", color="#9aa5b1")
    ax.bar(xs, measured, width, label="INT8 measured", color="#2b6cb0")
    ax.bar([x + width for x in xs], published, width, label="INT8 published", color="#ed8936")
    ax.set_xticks(xs)
    ax.set_xticklabels(labels)
    ax.set_ylabel("%")
    ax.set_title(f"{report['name']}: {report['status']}")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    atomic_write_bytes(Path(path), buffer.getvalue())


def write_report(report: Mapping[str, Any], out_dir: Path) -> Dict[str, Path]:
    """Write report.json, report.md and plot.png into `out_dir` (each atomically)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / "report.json", "markdown": out_dir / "report.md", "plot": out_dir / "plot.png"}
    plot(report, paths["plot"])
    atomic_write_bytes(paths["markdown"], markdown(report).encode("utf-8"))
    atomic_write_bytes(paths["json"], (json.dumps(report, indent=2, default=str) + "\n").encode("utf-8"))
    return paths

"""Accuracy-targeted post-training quantization and per-layer sensitivity analysis.

`search` finds, for a target `max_drop` (points of the metric below FP32 on held-out data), the
INT8 model with the fewest layers left in float, trying in the order most likely to succeed:

1. every calibration algorithm (the given ones) with nearest rounding, then PaddleSlim's weight
   bias correction on the best two: all layers INT8; the first that meets the target wins;
2. per-layer float fallback on the best of those: layers ranked by how much leaving each alone in
   float brings the output back to FP32 (measured, on a subset of the evaluation data), added in
   that order until the target is met, then every one that is not needed is put back to INT8;
3. only if that fails within `max_float` layers: PaddleSlim's AdaRound weights, and the fallback again.

Every trial runs on one QuantSim (zoo.quant.sim) fed by one calibration statistics pass, so a trial
costs one evaluation pass and no graph rewrite. The chosen settings are then written by
zoo.quant.ptq.quantize_static (the same code as plain `zoo quantize`, with the float layers as its
skip list) and the written model is scored by the Paddle Inference predictor: that score decides
whether the target was met.
"""
from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from zoo.device import DeviceLike
from zoo.data.folder_inputs import ImageChoices
from zoo.errors import DataError, QuantizeError
from zoo.fsutil import atomic_write_bytes
from zoo.modelcheck import check_model, load_inference_program
from zoo.modelfiles import ModelFiles
from zoo.predictor import Predictor
from zoo.program import read_program, static_mode
from zoo.quant.calib_batches import calibration_batches, model_inputs
from zoo.quant.ptq import quantize_static
from zoo.quant.settings import SEARCH_METRICS, PTQSettings, SearchTarget
from zoo.quant.sim import QuantSim
from zoo.quiet import silenced

METRICS = SEARCH_METRICS
RANK_SAMPLES = 256  # evaluation images used to rank layers (a continuous output error, little noise)
REPORT_FILE = "quantize-report.json"


@dataclass
class EvalData:
    """Held-out inputs (N, C, H, W) float32 and, for top-1, their integer labels."""

    x: np.ndarray
    y: Optional[np.ndarray]
    source: str


@dataclass
class Trial:
    phase: str
    algo: str
    rounding: str
    bias_correction: bool
    float_layers: List[str]
    int8_layers: int
    metric: float
    drop: float
    met: bool
    seconds: float

    def as_dict(self) -> Dict[str, Any]:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in self.__dict__.items()}


@dataclass
class SearchResult:
    met: bool
    report: Dict[str, Any]
    model: Optional[ModelFiles] = None
    trials: List[Trial] = field(default_factory=list)


def load_eval_data(path: Path, files: ModelFiles, split: str = "val", max_samples: Optional[int] = None,
                   images: ImageChoices = ImageChoices()) -> EvalData:
    """An `.npz` with `x` (N, C, H, W) float32 and `y` (N,) integer labels (or a `.npy` of inputs, unlabelled),
    or an ImageNet-layout folder preprocessed as `images` says for this model (zoo.quant.inputs.folder_dataset)."""
    from zoo.quant.inputs import folder_dataset, load_array, read_program_input, sized

    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(f"evaluation data {path} does not exist")
    declared = sized(read_program_input(files), images)
    if path.is_dir():
        from zoo.data.imagenet import iterate_batches

        dataset = folder_dataset(path, files, images, split, max_samples)
        if len(dataset) == 0:
            raise DataError(f"{path} has no {split} images", hint="Pass a folder with a val split (or --split).")
        xs, ys = zip(*iterate_batches(dataset, 64))
        return EvalData(np.concatenate(xs), np.concatenate(ys), f"{path} ({split}, {len(dataset)} images)")
    if path.suffix not in (".npz", ".npy"):
        raise DataError(f"{path} is neither a folder nor a .npz/.npy file",
                        hint="Pass an ImageNet-layout folder or an .npz with x (N, C, H, W) and y (N,).")
    x = load_array(path, declared)
    y = None
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as loaded:
            if "y" in loaded.files:
                y = np.asarray(loaded["y"])
    if y is not None:
        if y.ndim != 1 or len(y) != len(x):
            raise DataError(f"{path}: labels y of shape {tuple(y.shape)} for {len(x)} inputs",
                            hint="y must be a (N,) array with one integer label per input.")
        if not np.issubdtype(y.dtype, np.integer):
            raise DataError(f"{path}: labels y are {y.dtype}, not integers", hint="Save the class indices as int64.")
        y = y.astype(np.int64)
    if max_samples is not None and max_samples < len(x):
        keep = np.linspace(0, len(x) - 1, max_samples).round().astype(int)
        x, y = x[keep], (y[keep] if y is not None else None)
    return EvalData(x, y, f"{path} ({len(x)} inputs{', labelled' if y is not None else ''})")


class Scorer:
    """The metric of a model's outputs on the evaluation data; FP32 outputs kept for distances."""

    def __init__(self, data: EvalData, metric: str, fp32_outputs: np.ndarray) -> None:
        if metric not in METRICS:
            raise QuantizeError(f"unknown metric {metric!r}", hint=f"Use one of: {', '.join(METRICS)}.")
        if metric == "top1":
            if data.y is None:
                raise DataError(f"{data.source} has no labels, so top-1 cannot be measured",
                                hint="Save labels as `y` in the .npz, or pass --metric cosine.")
            classes = fp32_outputs.shape[1]
            bad = data.y[(data.y < 0) | (data.y >= classes)]
            if bad.size:
                raise DataError(f"label {int(bad[0])} in {data.source} is outside the model's {classes} classes",
                                hint="Evaluate on data labelled for this model.")
        self.data, self.metric, self.fp32 = data, metric, fp32_outputs
        self.fp32_score = self.score(fp32_outputs)

    def score(self, outputs: np.ndarray, rows: Optional[np.ndarray] = None) -> float:
        if not np.isfinite(outputs).all():
            return 0.0
        ref = self.fp32 if rows is None else self.fp32[rows]
        if self.metric == "top1":
            labels = self.data.y if rows is None else self.data.y[rows]  # type: ignore[index]
            return float((outputs.argmax(axis=1) == labels).mean() * 100.0)
        return float(np.mean(_cosine(outputs, ref)) * 100.0)

    def error(self, outputs: np.ndarray, rows: np.ndarray) -> float:
        """Output error against FP32 (mean squared, relative to the FP32 outputs' power): small is good."""
        ref = self.fp32[rows]
        if not np.isfinite(outputs).all():
            return float("inf")
        return float(np.mean((outputs - ref) ** 2) / (np.mean(ref ** 2) + 1e-12))


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    num = np.sum(a * b, axis=1)
    den = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12
    return num / den


class _Session:
    """A QuantSim with its statistics, the scorer, and the trial log."""

    def __init__(self, sim: QuantSim, scorer: Scorer, max_drop: float, log: Callable[[str], None]) -> None:
        self.sim, self.scorer, self.max_drop, self.log = sim, scorer, max_drop, log
        self.trials: List[Trial] = []
        self._thresholds: Dict[str, Dict[str, float]] = {}
        self.levels: Dict[Tuple[str, bool], Dict[str, np.ndarray]] = {}
        n = len(scorer.data.x)
        self.rank_rows = np.linspace(0, n - 1, min(n, RANK_SAMPLES)).round().astype(int)

    def thresholds(self, algo: str) -> Dict[str, float]:
        if algo not in self._thresholds:
            self._thresholds[algo] = self.sim.thresholds(algo)
        return self._thresholds[algo]

    def weights(self, rounding: str, bias_correction: bool) -> Dict[str, np.ndarray]:
        key = (rounding, bias_correction)
        if key not in self.levels:
            if rounding != "round":
                raise AssertionError("AdaRound levels are added by the caller")
            self.levels[key] = self.sim.weight_levels(bias_correction)
        return self.levels[key]

    def outputs(self, algo: str, rounding: str, bc: bool, floats: Sequence[int], rows: Optional[np.ndarray] = None) -> np.ndarray:
        on = [i not in floats for i in range(len(self.sim.layers))]
        self.sim.configure(self.thresholds(algo), self.weights(rounding, bc), on)
        x = self.scorer.data.x if rows is None else self.scorer.data.x[rows]
        return self.sim.run(x)

    def trial(self, phase: str, algo: str, rounding: str, bc: bool, floats: Sequence[int]) -> Trial:
        started = time.perf_counter()
        score = self.scorer.score(self.outputs(algo, rounding, bc, floats))
        drop = self.scorer.fp32_score - score
        t = Trial(phase, algo, rounding, bc, [self.sim.layers[i].name for i in sorted(floats)],
                  len(self.sim.layers) - len(floats), score, drop, drop <= self.max_drop + 1e-9,
                  time.perf_counter() - started)
        self.trials.append(t)
        self.log(f"trial {len(self.trials)} {phase}: {algo}, {rounding}{', bias correction' if bc else ''}, {len(floats)} float -> "
                 f"{self.scorer.metric} {score:.2f} (drop {drop:.2f}){'  met' if t.met else ''}")
        return t

    def rank_layers(self, algo: str, rounding: str, bc: bool) -> List[Dict[str, Any]]:
        """Each layer's output error against FP32 with only it INT8 (the rest float): the damage it does alone.

        Ranking by what each layer does alone (not by what reverting it alone repairs) finds every
        layer that breaks the model by itself even when several do: with two broken layers, reverting
        either one alone repairs nothing.
        """
        rows = self.rank_rows
        n = len(self.sim.layers)
        ranked = []
        for i, layer in enumerate(self.sim.layers):
            err = self.scorer.error(self.outputs(algo, rounding, bc, [j for j in range(n) if j != i], rows), rows)
            ranked.append({"index": i, "name": layer.name, "op_type": layer.op_type, "error_only_this_int8": err})
        ranked.sort(key=lambda r: -r["error_only_this_int8"])
        return ranked

    def fallback(self, algo: str, rounding: str, bc: bool, max_float: int) -> Tuple[Optional[Trial], List[Dict[str, Any]]]:
        """The fewest float layers meeting the target, or None: layers join the float set in rank order
        until the target is met, then each one the target does not need goes back to INT8."""
        ranked = self.rank_layers(algo, rounding, bc)
        floats: List[int] = []
        met: Optional[Trial] = None
        for entry in ranked[:max_float]:
            floats.append(entry["index"])
            t = self.trial("fallback", algo, rounding, bc, floats)
            if t.met:
                met = t
                break
        if met is None:
            return None, ranked
        for index in list(reversed(floats[:-1])):  # the last one added was needed to cross the target
            fewer = [i for i in floats if i != index]
            t = self.trial("prune", algo, rounding, bc, fewer)
            if t.met:
                floats, met = fewer, t
        return met, ranked


def search(
    model: ModelFiles,
    calib: Any,
    eval_data: EvalData,
    out_dir: Path,
    target: SearchTarget,
    settings: PTQSettings = PTQSettings(),
    *,
    device: DeviceLike = "cpu",
    log: Callable[[str], None] = lambda message: None,
) -> SearchResult:
    """Write the INT8 model with the fewest float layers whose drop on `eval_data` is at most `target.max_drop`.

    `settings` gives what every trial shares (batches, ops, weight type, hist_percent, ONNX format);
    `target` the algorithms, roundings and bias corrections searched. `out_dir` receives the model and
    quantize-report.json (every trial, the float layers and why). When no trial meets the target within
    `target.max_float` float layers (default: half the quantizable layers) the most accurate one found
    is written and `met` is False.
    """
    check_model(model)
    began = time.perf_counter()
    timings: Dict[str, float] = {}
    t = time.perf_counter()
    sim = _collected_sim(model, calib, settings, device, "the accuracy search", "Quantize it without --max-drop.")
    timings["statistics"] = time.perf_counter() - t
    n = len(sim.layers)
    cap = n // 2 if target.max_float is None else max(0, min(int(target.max_float), n))

    t = time.perf_counter()
    scorer = Scorer(eval_data, target.metric, _outputs(model, eval_data, device))
    timings["fp32_eval"] = time.perf_counter() - t
    session = _Session(sim, scorer, target.max_drop, log)
    log(f"FP32 {target.metric} {scorer.fp32_score:.2f} on {eval_data.source}; {n} quantizable layers; "
        f"statistics in {timings['statistics']:.1f} s")

    t = time.perf_counter()
    chosen, ranking = _choose(session, target, cap, timings, model, calib, device)
    timings["trials"] = time.perf_counter() - t - timings.get("adaround", 0.0)

    # the chosen settings, written by the plain PTQ path and scored by Paddle Inference: the written model decides
    t = time.perf_counter()
    writer = _Writer(model, out_dir, calib, settings, session, eval_data, device)
    chosen = _verified(writer, chosen, ranking, cap, target)
    written, final_score, written_settings = writer.best(chosen)
    timings["final"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - began
    report = _search_report(model, written, eval_data, sim, scorer, final_score, chosen, ranking, target, cap,
                            written_settings, session, timings)
    report["written_checks"] = writer.checks
    atomic_write_bytes(written.folder / REPORT_FILE, (json.dumps(report, indent=2) + "\n").encode("utf-8"))
    return SearchResult(report["met"], report, written, session.trials)


MAX_WRITTEN = 8  # written models a search scores at most: each is a full calibration and a Paddle Inference run


class _Writer:
    """Writes a trial's settings with the plain PTQ path into the output folder and scores the written model;
    every check is kept (`checks`), and the best written score by trial."""

    def __init__(self, model: ModelFiles, out_dir: Path, calib: Any, settings: PTQSettings, session: "_Session",
                 eval_data: EvalData, device: DeviceLike) -> None:
        self.model, self.out_dir, self.calib, self.settings = model, out_dir, calib, settings
        self.session, self.eval_data, self.device = session, eval_data, device
        self.checks: List[Dict[str, Any]] = []
        self.scores: Dict[Tuple[str, str, bool, Tuple[str, ...]], float] = {}
        self.current: Optional[Tuple[Any, ...]] = None  # (key, files, settings) of what the folder holds now

    @staticmethod
    def key(trial: Trial) -> Tuple[str, str, bool, Tuple[str, ...]]:
        return trial.algo, trial.rounding, trial.bias_correction, tuple(trial.float_layers)

    def settings_of(self, trial: Trial) -> PTQSettings:
        sim = self.session.sim
        floats = [l.index for l in sim.layers if l.name in trial.float_layers]
        return self.settings.replace(algo=trial.algo, rounding=trial.rounding, bias_correction=trial.bias_correction,
                                     skip=_skip_patterns(sim, floats))

    def write(self, trial: Trial) -> float:
        """Write `trial` and return the written model's score."""
        chosen = self.settings_of(trial)
        files = quantize_static(self.model, self.out_dir, self.calib, chosen, device=self.device)
        score = self.session.scorer.score(_outputs(files, self.eval_data, self.device))
        drop = self.session.scorer.fp32_score - score
        met = drop <= self.session.max_drop + 1e-9
        self.scores[self.key(trial)] = score
        self.current = (self.key(trial), files, chosen)
        self.checks.append({"algo": trial.algo, "rounding": trial.rounding, "bias_correction": trial.bias_correction,
                            "float_layers": len(trial.float_layers), "simulated": round(trial.metric, 4),
                            "written": round(score, 4), "drop": round(drop, 4), "met": met})
        self.session.log(f"written model: {trial.algo}, {len(trial.float_layers)} float -> {self.session.scorer.metric} "
                         f"{score:.2f} (drop {drop:.2f}; simulated {trial.metric:.2f}){'  met' if met else ''}")
        return score

    def met(self, trial: Trial) -> bool:
        return self.session.scorer.fp32_score - self.scores[self.key(trial)] <= self.session.max_drop + 1e-9

    def best(self, trial: Trial) -> Tuple[ModelFiles, float, PTQSettings]:
        """`trial` written in the folder (written again if a later check replaced it), its score and settings."""
        if self.current is None or self.current[0] != self.key(trial):
            self.write(trial)
        assert self.current is not None
        return self.current[1], self.scores[self.key(trial)], self.current[2]


def _verified(writer: _Writer, chosen: Trial, ranking: List[Dict[str, Any]], cap: int, target: SearchTarget) -> Trial:
    """The trial whose written model meets the target, trusting only written models: when the chosen trial's
    simulation met the target and its written model does not, more layers go float (in rank order, within the
    float budget), then the other trials that met in simulation are written; else the best written one."""
    writer.write(chosen)
    if writer.met(chosen) or not chosen.met:
        return chosen
    session, sim = writer.session, writer.session.sim
    candidates: List[Trial] = []
    ranked = ranking or session.rank_layers(chosen.algo, chosen.rounding, chosen.bias_correction)
    floats = [l.index for l in sim.layers if l.name in chosen.float_layers]
    for entry in ranked:
        if len(floats) >= cap or len(writer.checks) >= MAX_WRITTEN:
            break
        if entry["index"] in floats:
            continue
        floats.append(entry["index"])
        trial = session.trial("written fallback", chosen.algo, chosen.rounding, chosen.bias_correction, floats)
        writer.write(trial)
        candidates.append(trial)
        if writer.met(trial):
            return trial
    others = sorted((t for t in session.trials if t.met and writer.key(t) not in writer.scores),
                    key=lambda t: (len(t.float_layers), -t.metric))
    for trial in others:
        if len(writer.checks) >= MAX_WRITTEN:
            break
        writer.write(trial)
        candidates.append(trial)
        if writer.met(trial):
            return trial
    return max([chosen, *candidates], key=lambda t: writer.scores[writer.key(t)])


def _collected_sim(model: ModelFiles, calib: Any, settings: PTQSettings, device: DeviceLike, who: str,
                   hint: Optional[str] = None) -> QuantSim:
    """A QuantSim of a single-input `model` with its calibration statistics collected."""
    feeds, _ = model_inputs(model)
    if len(feeds) != 1:
        raise QuantizeError(f"{who} handles single-input models; this one takes {[f.name for f in feeds]}", hint=hint)
    batches = calibration_batches(calib, feeds, settings.batch_size)
    sim = QuantSim(model, settings, device=device)
    sim.collect(lambda: iter(batches), settings.batch_nums)
    if batches.error is not None:
        raise batches.error
    return sim


def _outputs(files: ModelFiles, eval_data: EvalData, device: DeviceLike) -> np.ndarray:
    """The model's first output on every evaluation image, flattened per image (Paddle Inference)."""
    with silenced():
        predictor = Predictor(files, device=device, threads=2)
    outs = [np.asarray(predictor.run(eval_data.x[s:s + 64])[0]) for s in range(0, len(eval_data.x), 64)]
    out = np.concatenate(outs)
    return out.reshape(out.shape[0], -1)


def _choose(session: "_Session", target: SearchTarget, cap: int, timings: Dict[str, float], model: ModelFiles,
            calib: Any, device: DeviceLike) -> Tuple[Trial, List[Dict[str, Any]]]:
    """The trial to write, cheapest first: all layers INT8 (each algorithm, then bias correction on the
    best two), per-layer float fallback, AdaRound weights; else the most accurate within the float budget."""
    sim = session.sim
    n = len(sim.layers)
    chosen: Optional[Trial] = None
    ranking: List[Dict[str, Any]] = []
    for algo in target.algos:
        tr = session.trial("global", algo, "round", False, [])
        if tr.met:
            return tr, ranking
    if True in target.bias_corrections:
        best = sorted({tr.algo for tr in session.trials}, key=lambda a: -max(x.metric for x in session.trials if x.algo == a))
        for algo in best[:2]:
            tr = session.trial("global", algo, "round", True, [])
            if tr.met:
                return tr, ranking
    if cap > 0:  # per-layer float fallback on the best all-INT8 setting
        base = max(session.trials, key=lambda x: x.metric)
        chosen, ranking = session.fallback(base.algo, base.rounding, base.bias_correction, cap)
    if chosen is None and "adaround" in target.roundings:  # AdaRound weights (PaddleSlim), all INT8 and then with fallback
        base = max(session.trials, key=lambda x: (x.int8_layers == n, x.metric))
        ta = time.perf_counter()
        session.levels[("adaround", base.bias_correction)] = _adaround_levels(
            model, calib, sim, sim.settings.replace(algo=base.algo, bias_correction=base.bias_correction), device)
        timings["adaround"] = time.perf_counter() - ta
        tr = session.trial("global", base.algo, "adaround", base.bias_correction, [])
        if tr.met:
            chosen = tr
        elif cap > 0:
            chosen, ranking_a = session.fallback(base.algo, "adaround", base.bias_correction, cap)
            ranking = ranking if chosen is None else ranking_a
    if chosen is None:  # nothing met: the most accurate trial within the float budget
        chosen = max((x for x in session.trials if len(x.float_layers) <= cap), key=lambda x: x.metric)
    return chosen, ranking


def _search_report(model: ModelFiles, written: ModelFiles, eval_data: EvalData, sim: QuantSim, scorer: "Scorer",
                   final_score: float, chosen: Trial, ranking: List[Dict[str, Any]], target: SearchTarget, cap: int,
                   settings: PTQSettings, session: "_Session", timings: Dict[str, float]) -> Dict[str, Any]:
    """quantize-report.json: the target, whether it was met, the chosen settings, every trial and why each
    float layer stayed float."""
    n = len(sim.layers)
    float_names = list(chosen.float_layers)
    drop = scorer.fp32_score - final_score
    why = {r["name"]: r for r in ranking}
    return {
        "model": str(model.folder),
        "out": str(written.folder),
        "metric": target.metric,
        "eval_data": eval_data.source,
        "eval_images": int(len(eval_data.x)),
        "calibration": {"batch_size": settings.batch_size, "batch_nums": settings.batch_nums,
                        "batches_seen": sim.calib_batches, "hist_percent": settings.hist_percent},
        "target": {"max_drop": target.max_drop, "max_float": cap},
        "met": drop <= target.max_drop + 1e-9,
        "fp32": round(scorer.fp32_score, 4),
        "int8": round(final_score, 4),
        "drop": round(drop, 4),
        "settings": {"algo": chosen.algo, "rounding": chosen.rounding, "bias_correction": chosen.bias_correction,
                     "ops": list(settings.ops), "weight": settings.weight, "onnx_format": settings.onnx_format},
        "quantizable_layers": n,
        "int8_layers": n - len(float_names),
        "int8_ops_in_model": len(read_program(written).quantized),
        "int8_share": round((n - len(float_names)) / n, 4),
        "float_layers": [_why(name, sim, why) for name in float_names],
        "skip": list(settings.skip),
        "trials": [tr.as_dict() for tr in session.trials],
        "ranking": [{k: (round(v, 6) if isinstance(v, float) else v) for k, v in r.items()} for r in ranking],
        "timings": {k: round(v, 3) for k, v in timings.items()},
        "search_metric_of_chosen": round(chosen.metric, 4),
    }


def _skip_patterns(sim: QuantSim, floats: Sequence[int]) -> List[str]:
    """quantize_static skip patterns for the float layers: their weights (unique), else their inputs."""
    names: List[str] = []
    for i in floats:
        layer = sim.layers[i]
        for name in ([layer.weight] if layer.weight else layer.activations):
            if name not in names:
                names.append(name)
    return names


def _why(name: str, sim: QuantSim, ranked: Dict[str, Dict[str, Any]]) -> Dict[str, Any]:
    layer = next(l for l in sim.layers if l.name == name)
    entry: Dict[str, Any] = {"name": name, "op_type": layer.op_type}
    r = ranked.get(name)
    if r is not None:
        order = sorted(ranked.values(), key=lambda v: -v["error_only_this_int8"])
        entry["rank"] = 1 + order.index(r)
        entry["reason"] = (f"rank {entry['rank']} of {len(order)}: quantized alone it puts the output "
                           f"{r['error_only_this_int8']:.3g} (relative squared error) away from FP32; "
                           "the target was not met with it in INT8")
    return entry


def _adaround_levels(model: ModelFiles, calib: Any, sim: QuantSim, settings: PTQSettings,
                     device: DeviceLike) -> Dict[str, np.ndarray]:
    """Integer weight levels chosen by PaddleSlim's AdaRound (with `settings`' algo and bias correction),
    read back from a model it wrote."""
    import paddle  # heavy: only the AdaRound branch needs it here

    with tempfile.TemporaryDirectory(prefix="zoo-adaround-") as tmp:
        files = quantize_static(model, Path(tmp) / "m", calib, settings.replace(rounding="adaround", skip=()),
                                device=device)
        with static_mode():
            scope = paddle.static.Scope()
            with paddle.static.scope_guard(scope):
                load_inference_program(files, paddle.static.Executor(paddle.CPUPlace()))
                levels = {}
                for layer in sim.layers:
                    if layer.weight:
                        levels[layer.weight] = np.array(scope.find_var(layer.weight).get_tensor()).astype(np.float32)
    return levels


def analyze(
    model: ModelFiles,
    calib: Any,
    eval_data: EvalData,
    settings: PTQSettings = PTQSettings(),
    *,
    metric: Optional[str] = None,
    max_drop: float = 1.0,
    device: DeviceLike = "cpu",
    log: Callable[[str], None] = lambda message: None,
) -> Dict[str, Any]:
    """Per-layer sensitivity of `settings.algo`: the metric with only each layer INT8, and with only each layer float.

    `metric` defaults to top-1 when the data is labelled, else the cosine similarity of the outputs to
    FP32 (in %). Layers are ranked by what quantizing them alone costs; `skip` is the float fallback
    (greedy in that order, then pruned) that meets `max_drop`.
    """
    began = time.perf_counter()
    algo = settings.algo
    metric = metric or ("top1" if eval_data.y is not None else "cosine")
    SearchTarget(max_drop, metric, (algo,))  # the one check of the target (algo the simulator models, metric known)
    sim = _collected_sim(model, calib, settings, device, "the analysis")
    stats_seconds = time.perf_counter() - began
    scorer = Scorer(eval_data, metric, _outputs(model, eval_data, device))
    session = _Session(sim, scorer, max_drop, log)
    n = len(sim.layers)
    everything = list(range(n))
    all_int8 = session.trial("all INT8", algo, "round", False, [])
    rows = []
    layers_began = time.perf_counter()
    for i, layer in enumerate(sim.layers):
        only_int8 = session.scorer.score(session.outputs(algo, "round", False, [j for j in everything if j != i]))
        only_float = session.scorer.score(session.outputs(algo, "round", False, [i]))
        rows.append({"index": i, "name": layer.name, "op_type": layer.op_type,
                     "only_this_int8": round(only_int8, 4), "drop_only_this_int8": round(scorer.fp32_score - only_int8, 4),
                     "only_this_float": round(only_float, 4), "gain_this_float": round(only_float - all_int8.metric, 4)})
        spent = time.perf_counter() - layers_began
        log(f"layer {i + 1}/{n} {layer.name} ({layer.op_type}): only it INT8 {only_int8:.2f}, only it float "
            f"{only_float:.2f}; {spent:.0f} s, about {spent / (i + 1) * (n - i - 1):.0f} s left")
    rows.sort(key=lambda r: (-r["drop_only_this_int8"], -r["gain_this_float"]))
    met, _ = session.fallback(algo, "round", False, n) if not all_int8.met else (all_int8, [])
    skip_idx = [l.index for l in sim.layers if met is not None and l.name in met.float_layers]
    return {
        "model": str(model.folder),
        "metric": metric,
        "algo": algo,
        "eval_data": eval_data.source,
        "fp32": round(scorer.fp32_score, 4),
        "all_int8": round(all_int8.metric, 4),
        "layers": rows,
        "max_drop": max_drop,
        "skip": _skip_patterns(sim, skip_idx),
        "skip_result": None if met is None else {"metric": round(met.metric, 4), "drop": round(met.drop, 4),
                                                 "float_layers": len(met.float_layers), "int8_layers": met.int8_layers},
        "seconds": round(time.perf_counter() - began, 2),
        "statistics_seconds": round(stats_seconds, 2),
        "trials": len(session.trials) + 2 * n,
    }


def plot_analysis(result: Dict[str, Any], path: Path) -> None:
    """A bar chart per layer: the drop with only it INT8, and the gain with only it float."""
    import io

    from matplotlib.figure import Figure

    rows = result["layers"]
    fig = Figure(figsize=(max(6.0, 0.32 * len(rows) + 2.0), 4.2), dpi=100)
    ax = fig.subplots()
    xs = np.arange(len(rows))
    ax.bar(xs - 0.2, [r["drop_only_this_int8"] for r in rows], 0.4, label="drop, only this layer INT8", color="#c53030")
    ax.bar(xs + 0.2, [r["gain_this_float"] for r in rows], 0.4, label="gain, only this layer float", color="#2b6cb0")
    ax.set_xticks(xs)
    ax.set_xticklabels([r["name"] for r in rows], rotation=75, fontsize=7)
    ax.set_ylabel(f"{result['metric']} points")
    ax.set_title(f"{Path(result['model']).name}: {result['algo']}, FP32 {result['fp32']:.2f}, all INT8 {result['all_int8']:.2f}")
    ax.axhline(0, color="black", linewidth=0.6)
    ax.legend(fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    atomic_write_bytes(Path(path), buffer.getvalue())

"""A quantization simulator: the FP32 program with switchable quantize-dequantize on every quantizable layer.

The accuracy search and the sensitivity analysis evaluate many variants of one model (calibration
algorithm x weight rounding x bias correction x which layers stay in float). Writing each variant
through Paddle's PTQ passes costs seconds per trial and its fake-quant kernels run ~20x slower than
float ones; here the variants share one program and one scope instead:

- every activation input of a quantizable op gets `x + m * (qdq(x, s) - x)`, where
  qdq(x, s) = clip(round(x * 127/s), -127, 127) * s/127 is what Paddle's frozen
  fake_quantize -> op -> dequantize pattern computes, and the threshold s and the switch m are
  persistable [1] tensors;
- weights are set in the scope either as their FP32 values or dequantized from their integer
  levels (per channel, rounded as Paddle's freeze pass rounds them).

A trial changes tensors in the scope only, never the program. Calibration statistics are collected
once by `collect` (the same statistics and threshold searches as zoo.quant.fast_ptq), so the
thresholds of every algorithm come from one pass over the calibration data.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from zoo.device import DeviceLike, require_device
from zoo.errors import QuantizeError
from zoo.modelfiles import ModelFiles
from zoo.quant import calibration as cal
from zoo.quant.settings import SIMULATED_ALGOS, PTQSettings
from zoo.schema import QUANTIZABLE_OPS
from zoo.modelcheck import load_inference_program
from zoo.program import static_mode
from zoo.quiet import silenced

ALGOS = SIMULATED_ALGOS  # the simulator does not model min_max
WEIGHT_OPS = QUANTIZABLE_OPS  # the ops whose weights the simulator quantizes
AXIS1_OPS = ("conv2d_transpose", "mul", "matmul", "matmul_v2")  # Paddle's per-channel axis 1 (output columns)
HIST_BINS = 2048  # Paddle's PostTrainingQuantization._histogram_bins


@dataclass
class Layer:
    """One quantizable op: its weight (if any) and the activations it reads."""

    index: int
    op_type: str
    weight: Optional[str]
    activations: List[str]
    output: str

    @property
    def name(self) -> str:
        """The layer's name in reports and skip lists: its weight, else its first activation."""
        return self.weight or self.activations[0]


@dataclass
class _ActStats:
    low: float = float("inf")
    high: float = 0.0
    abs_max: float = 0.0
    row_means: List[float] = field(default_factory=list)
    mse_loss: float = float("inf")
    mse_threshold: Optional[float] = None
    hist: Optional[np.ndarray] = None
    edges: Optional[np.ndarray] = None
    binner: Optional[cal.HistogramBinner] = None


class QuantSim:
    """The FP32 model with per-layer switchable INT8 simulation (see the module docstring)."""

    def __init__(self, files: ModelFiles, settings: PTQSettings = PTQSettings(), device: DeviceLike = "cpu",
                 bits: int = 8, threads: int = 2) -> None:
        import paddle

        self.bits = bits
        self.levels = float(2 ** (bits - 1) - 1)
        self.settings = settings
        op_types = settings.ops
        self.channel_wise = settings.weight == "channel_wise_abs_max"
        self._static = static_mode
        with static_mode():
            self.device = require_device(device)
            self.place = self.device.place()
            self.scope = paddle.static.Scope()
            self.exe = paddle.static.Executor(self.place)
            with paddle.static.scope_guard(self.scope):
                program, self.feeds, self.fetches = load_inference_program(files, self.exe)
            self.fp32_program = program
            self.layers = self._find_layers(program, tuple(op_types))
            if not self.layers:
                types = sorted({op.type for op in program.global_block().ops} - {"feed", "fetch"})
                raise QuantizeError(f"none of the op types {list(op_types)} is in the model (its ops: {', '.join(types)})",
                                    hint="Name op types the model has (e.g. conv2d, depthwise_conv2d, mul, matmul_v2).")
            self.program = program.clone(for_test=True)
            self._insert_qdq(self.program)
        self.fp32_weights = {l.weight: self._get(l.weight) for l in self.layers if l.weight}
        self.weight_scales = {w: self._weight_scale(w, l.op_type) for l in self.layers if (w := l.weight)}
        self.stats: Dict[str, _ActStats] = {}
        self.calib_batches = 0
        self.threads = threads
        self._program_bytes: Optional[bytes] = None

    # program surgery (once)

    @staticmethod
    def _find_layers(program: object, op_types: Tuple[str, ...]) -> List[Layer]:
        block = program.global_block()  # type: ignore[attr-defined]
        layers: List[Layer] = []
        for op in block.ops:
            if op.type not in op_types:
                continue
            weight, acts = None, []
            for name in op.input_arg_names:
                if not block.has_var(name):
                    continue
                var = block.var(name)
                if "float" not in str(var.dtype).lower() and "fp32" not in str(var.dtype).lower():
                    continue
                if var.persistable:
                    weight = weight or name
                elif name not in acts:
                    acts.append(name)
            if op.type in WEIGHT_OPS and weight is None and op.type in ("conv2d", "depthwise_conv2d", "mul"):
                continue  # Paddle quantizes these only with a weight
            if acts:
                layers.append(Layer(len(layers), op.type, weight, acts, op.output_arg_names[0]))
        return layers

    def _insert_qdq(self, program: object) -> None:
        block = program.global_block()  # type: ignore[attr-defined]
        positions = {id(op.desc): i for i, op in enumerate(block.ops)}
        by_output = {l.output: l for l in self.layers}
        inserts = []
        for op in block.ops:
            layer = by_output.get(op.output_arg_names[0]) if op.output_arg_names else None
            if layer is not None and op.type == layer.op_type:
                inserts.append((positions[id(op.desc)], op, layer))
        for position, op, layer in sorted(inserts, key=lambda t: -t[0]):
            for k, act in enumerate(layer.activations):
                out = self._qdq_ops(block, position, act, f"zoo_sim.{layer.index}.{k}")
                op._rename_input(act, out)
        program._sync_with_cpp()  # type: ignore[attr-defined]

    def _qdq_ops(self, block: object, position: int, act: str, prefix: str) -> str:
        """Insert x + m * (clip(round(x * inv), -L, L) * step - x) before `position`; return its output name."""
        src = block.var(act)  # type: ignore[attr-defined]
        for name in ("inv", "step", "mask"):
            block.create_var(name=f"{prefix}.{name}", shape=[1], dtype="float32", persistable=True)  # type: ignore[attr-defined]
            self._set(f"{prefix}.{name}", np.ones([1], np.float32))
        tmp = [block.create_var(name=f"{prefix}.t{i}", shape=src.shape, dtype=src.dtype).name  # type: ignore[attr-defined]
               for i in range(7)]
        specs = [
            ("elementwise_mul", {"X": [act], "Y": [f"{prefix}.inv"]}, {"axis": -1}),
            ("round", {"X": [tmp[0]]}, {}),
            ("clip", {"X": [tmp[1]]}, {"min": -self.levels, "max": self.levels}),
            ("elementwise_mul", {"X": [tmp[2]], "Y": [f"{prefix}.step"]}, {"axis": -1}),
            ("elementwise_sub", {"X": [tmp[3]], "Y": [act]}, {"axis": -1}),
            ("elementwise_mul", {"X": [tmp[4]], "Y": [f"{prefix}.mask"]}, {"axis": -1}),
            ("elementwise_add", {"X": [act], "Y": [tmp[5]]}, {"axis": -1}),
        ]
        for i, (op_type, inputs, attrs) in enumerate(specs):
            block._insert_op(position + i, type=op_type, inputs=inputs, outputs={"Out": [tmp[i]]}, attrs=attrs)  # type: ignore[attr-defined]
        return tmp[6]

    # scope access

    def _get(self, name: str) -> np.ndarray:
        return np.array(self.scope.find_var(name).get_tensor())

    def _set(self, name: str, value: np.ndarray) -> None:
        self.scope.var(name).get_tensor().set(np.ascontiguousarray(value, dtype=np.float32), self.place)

    def _weight_scale(self, name: str, op_type: str) -> np.ndarray:
        """Per-channel (or per-tensor) abs max of a weight, shaped to broadcast against it."""
        w = self.fp32_weights[name]
        if not self.channel_wise:
            return np.array(cal.abs_max(w), dtype=np.float32)
        axis = 1 if op_type in AXIS1_OPS else 0
        scale = np.asarray(cal.weight_abs_max(w, axis), dtype=np.float32)
        shape = [1] * w.ndim
        shape[axis] = -1
        return scale.reshape(shape)

    # weights

    def weight_levels(self, bias_correction: bool = False) -> Dict[str, np.ndarray]:
        """Integer weight levels per weight, rounded to nearest (optionally with PaddleSlim's bias correction)."""
        from paddle.static.quantization.utils import bias_correction_w

        levels = {}
        for layer in self.layers:
            if not layer.weight:
                continue
            w, s = self.fp32_weights[layer.weight], self.weight_scales[layer.weight]
            safe = np.where(s == 0, 1e-8, s)
            q = np.round(np.clip(w, -safe, safe) / safe * self.levels)
            if bias_correction:  # Paddle's own function, as its freeze pass calls it
                axis = 1 if layer.op_type in AXIS1_OPS else 0
                scale_list = [float(v) for v in s.reshape(-1)] if self.channel_wise else float(s)
                q = np.round(bias_correction_w(w, q.copy(), scale_list, axis, weight_bits=self.bits))
            levels[layer.weight] = q.astype(np.float32)
        return levels

    def dequantize(self, name: str, levels: np.ndarray) -> np.ndarray:
        return (levels * self.weight_scales[name] / self.levels).astype(np.float32)

    # calibration statistics: one pass for ranges, abs max, avg and mse; one for histograms (as Paddle's KL/hist)

    def collect(self, batches: Callable[[], Iterable[Tuple[np.ndarray, ...]]], batch_nums: int) -> None:
        """Run the FP32 program over the calibration batches and keep every algorithm's statistics."""
        for weight, value in self.fp32_weights.items():  # a configured trial may have left INT8 weights in the scope
            self._set(weight, value)
        names = sorted({a for l in self.layers for a in l.activations})
        self.stats = {n: _ActStats() for n in names}
        count = 0
        for arrays in self._run_fp32(batches, batch_nums, names):
            count += 1
            for name, x in arrays.items():
                st = self.stats[name]
                if x.size == 0:
                    continue
                low, high = cal.abs_range(x)
                st.low, st.high = min(st.low, low), max(st.high, high)
                st.abs_max = max(st.abs_max, cal.abs_max(x))
                st.row_means.append(cal.row_abs_max_mean(x))
                st.mse_loss, threshold = cal.mse_threshold_update(x, st.mse_loss, self.bits)
                if threshold is not None:
                    st.mse_threshold = threshold
        self.calib_batches = count
        for st in self.stats.values():
            if st.high > 0 or st.low < float("inf"):
                st.edges = cal.histogram_edges("KL", st.low, st.high, HIST_BINS)
                st.hist = np.zeros(HIST_BINS, np.int64)
                st.binner = cal.HistogramBinner(st.edges)
        for arrays in self._run_fp32(batches, batch_nums, names):
            for name, x in arrays.items():
                st = self.stats[name]
                if st.binner is not None and x.size:
                    st.hist = st.hist + st.binner.counts(x)

    def _run_fp32(self, batches: Callable[[], Iterable[Tuple[np.ndarray, ...]]], batch_nums: int,
                  names: List[str]) -> Iterable[Dict[str, np.ndarray]]:
        import paddle

        with self._static(), paddle.static.scope_guard(self.scope):
            for index, batch in enumerate(batches()):
                if index >= batch_nums:
                    break
                feed = dict(zip(self.feeds, batch))
                values = self.exe.run(self.fp32_program, feed=feed, fetch_list=names, return_numpy=True)
                yield dict(zip(names, values))

    def thresholds(self, algo: str) -> Dict[str, float]:
        """Activation thresholds of `algo` (with the settings' hist_percent), computed as Paddle computes
        them from the shared statistics."""
        if not self.stats:
            raise QuantizeError("no calibration statistics were collected", hint="Call collect() first.")
        out: Dict[str, float] = {}
        for name, st in self.stats.items():
            if algo == "abs_max":
                value = st.abs_max
            elif algo == "avg":
                value = float(np.mean(st.row_means)) if st.row_means else 0.0
            elif algo == "mse":
                value = st.mse_threshold if st.mse_threshold is not None else st.abs_max
            elif algo in cal.HISTOGRAM_ALGOS:
                # one float64-edge histogram serves every histogram algorithm here; KL_paddle1's float32
                # edges (fast_ptq) can move a value lying exactly on an edge by one bin
                if st.hist is None or st.edges is None:
                    value = 0.0
                else:
                    value = cal.histogram_threshold(algo, st.hist, st.edges, self.bits, self.settings.hist_percent)
            else:
                raise QuantizeError(f"unknown calibration algorithm {algo!r}", hint=f"Use one of: {', '.join(ALGOS)}.")
            out[name] = float(value)
        return out

    # trials

    def configure(self, thresholds: Dict[str, float], levels: Dict[str, np.ndarray], quantized: Sequence[bool]) -> None:
        """Set every layer: quantized (its thresholds and integer weights) or float (FP32 weights, no qdq)."""
        for layer, on in zip(self.layers, quantized):
            for k, act in enumerate(layer.activations):
                prefix = f"zoo_sim.{layer.index}.{k}"
                s = max(float(thresholds.get(act, 0.0)), 1e-8)  # Paddle replaces a zero scale the same way
                self._set(f"{prefix}.inv", np.array([self.levels / s]))
                self._set(f"{prefix}.step", np.array([s / self.levels]))
                self._set(f"{prefix}.mask", np.array([1.0 if on else 0.0]))
            if layer.weight:
                value = self.dequantize(layer.weight, levels[layer.weight]) if on else self.fp32_weights[layer.weight]
                self._set(layer.weight, value)

    def run(self, x: np.ndarray, batch_size: int = 128) -> np.ndarray:
        """The first output of the current configuration on `x`, in batches, run by Paddle Inference.

        The predictor is built from the program and the scope's current values in memory: its IR
        passes (conv + batch-norm fusion and friends) make it ~10x faster than the executor here.
        """
        predictor = self._predictor()
        name = predictor.get_input_names()[0]
        handle, out_handle = predictor.get_input_handle(name), predictor.get_output_handle(predictor.get_output_names()[0])
        outs = []
        for start in range(0, len(x), batch_size):
            part = np.ascontiguousarray(x[start:start + batch_size], dtype=np.float32)
            handle.reshape(list(part.shape))
            handle.copy_from_cpu(part)
            predictor.run()
            outs.append(out_handle.copy_to_cpu())
        out = np.concatenate(outs)
        return out.reshape(out.shape[0], -1)

    def _predictor(self) -> object:
        import paddle
        from paddle import inference

        with self._static(), paddle.static.scope_guard(self.scope):
            block = self.program.global_block()
            feed_vars = [block.var(n) for n in self.feeds]
            fetch_vars = [block.var(self.fetches[0].name)]
            if self._program_bytes is None:
                self._program_bytes = paddle.static.serialize_program(feed_vars, fetch_vars, program=self.program)
            params = paddle.static.serialize_persistables(feed_vars, fetch_vars, self.exe, program=self.program)
        config = inference.Config()
        config.set_model_buffer(self._program_bytes, len(self._program_bytes), params, len(params))
        self.device.configure_predictor(config)
        if not self.device.is_gpu:
            config.set_cpu_math_library_num_threads(self.threads)
        config.disable_glog_info()
        config.switch_use_feed_fetch_ops(False)
        with silenced():
            return inference.create_predictor(config)

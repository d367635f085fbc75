"""The settings of one post-training quantization run, as one validated, frozen object.

`PTQSettings` is built once, from a recipe's `quant` section (`PTQSettings.from_recipe`) or from
command-line flags, checked once in its constructor, and passed whole to `quantize_static`, the
accuracy search, `analyze` and the simulator. `SearchTarget` is what the accuracy search adds on
top: the allowed drop, the metric and the space it may search.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Dict, Optional, Sequence, Tuple

from zoo.errors import QuantizeError
from zoo.schema import ACTIVATION_QUANTIZE_TYPES, CALIB_ALGOS, WEIGHT_QUANTIZE_TYPES, QuantConfig

ENGINES = ("fast", "paddleslim")
ROUNDINGS = ("round", "adaround")
DEFAULT_OPS = ("conv2d", "depthwise_conv2d", "mul")
# Most likely first: hist and mse keep MobileNet-like models closest in this zoo's measurements, KL
# clips ReLU6-free activations hard, avg and abs_max are kept for models with few outliers.
DEFAULT_SEARCH_ALGOS = ("hist", "mse", "KL", "avg", "abs_max")
SEARCH_METRICS = ("top1", "cosine")
# min_max stores thresholds as op attributes, so the simulator (search, analyze) cannot model it
SIMULATED_ALGOS = tuple(a for a in CALIB_ALGOS if a != "min_max")


def _names(value: Sequence[str] | str) -> Tuple[str, ...]:
    """A tuple of names from a sequence or a comma-separated string (CLI flags)."""
    items = value.split(",") if isinstance(value, str) else value
    return tuple(str(v).strip() for v in items if str(v).strip())


def _one_of(what: str, value: str, allowed: Sequence[str], hint: Optional[str] = None) -> None:
    if value not in allowed:
        raise QuantizeError(f"unknown {what} {value!r}", hint=hint or f"Use one of: {', '.join(allowed)}.")


@dataclass(frozen=True)
class PTQSettings:
    """How one PTQ run calibrates and what it quantizes (defaults: Paddle's `quant_post_static`)."""

    algo: str = "KL"
    batch_size: int = 32
    batch_nums: int = 10
    hist_percent: float = 0.9999
    ops: Tuple[str, ...] = DEFAULT_OPS
    weight: str = "channel_wise_abs_max"
    activation: str = "range_abs_max"
    onnx_format: bool = False
    skip: Tuple[str, ...] = ()  # shell-style patterns of tensor names whose ops stay float
    rounding: str = "round"
    bias_correction: bool = False
    engine: str = "fast"

    def __post_init__(self) -> None:
        # normalize sequences (lists, comma strings) to tuples so the object stays hashable and frozen
        object.__setattr__(self, "ops", _names(self.ops))
        object.__setattr__(self, "skip", _names(self.skip))
        self._check()

    def _check(self) -> None:
        """The one check of PTQ settings: every place that takes them relies on it."""
        _one_of("algo", self.algo, CALIB_ALGOS)
        _one_of("PTQ engine", self.engine, ENGINES)
        _one_of("weight rounding", self.rounding, ROUNDINGS)
        _one_of("weight quantize type", self.weight, WEIGHT_QUANTIZE_TYPES)
        _one_of("activation quantize type", self.activation, ACTIVATION_QUANTIZE_TYPES)
        if self.engine == "paddleslim" and self.algo == "KL_paddle1":
            raise QuantizeError("algo KL_paddle1 (Paddle 1.x's KL rule) runs on the fast engine only: PaddleSlim 2.6 "
                                "computes Paddle 2.x's KL", hint="Use --engine fast, or --algo KL for Paddle 2.x's rule.")
        if int(self.batch_size) < 1 or int(self.batch_nums) < 1:
            raise QuantizeError(
                f"batch_size and batch_nums must be positive (got {self.batch_size} and {self.batch_nums})",
                hint="Calibration needs at least one batch of at least one image.",
            )
        if not 0.0 < float(self.hist_percent) <= 1.0:
            raise QuantizeError(f"hist_percent must be in (0, 1], got {self.hist_percent}",
                                hint="Typical values: 0.999, 0.9999.")
        if not self.ops:
            raise QuantizeError("no op type to quantize is named", hint="e.g. conv2d,depthwise_conv2d,mul")

    @classmethod
    def from_recipe(cls, quant: QuantConfig, *, engine: str = "fast",
                    skip: Optional[Sequence[str]] = None) -> "PTQSettings":
        """A recipe's `quant` section (unset fields take the defaults); `skip` replaces quant.skip when given."""
        given: Dict[str, Any] = dict(
            ops=tuple(quant.ops), weight=quant.weight, activation=quant.activation, onnx_format=quant.onnx_format,
            skip=tuple(quant.skip if skip is None else skip), rounding=quant.rounding,
            bias_correction=quant.bias_correction, engine=engine,
        )
        for name in ("algo", "batch_size", "batch_nums", "hist_percent"):
            if getattr(quant, name) is not None:
                given[name] = getattr(quant, name)
        return cls(**given)

    def replace(self, **changes: Any) -> "PTQSettings":
        """A copy with `changes`, checked again."""
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> Dict[str, Any]:
        """Plain JSON-ready values (reports, --json)."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()}

    def paddle_kwargs(self, skip_tensors: Sequence[str]) -> Dict[str, Any]:
        """The keyword arguments of Paddle's PostTrainingQuantization (both engines take the same),
        with the skip patterns already resolved to tensor names."""
        return dict(
            algo=self.algo,
            batch_size=int(self.batch_size),
            batch_nums=int(self.batch_nums),
            hist_percent=float(self.hist_percent),
            quantizable_op_type=list(self.ops),
            weight_quantize_type=self.weight,
            activation_quantize_type=self.activation,
            onnx_format=bool(self.onnx_format),
            skip_tensor_list=list(skip_tensors) or None,
            round_type=self.rounding,
            bias_correction=bool(self.bias_correction),
        )


@dataclass(frozen=True)
class SearchTarget:
    """What the accuracy search aims for and the space it searches (on top of a PTQSettings)."""

    max_drop: float
    metric: str = "top1"
    algos: Tuple[str, ...] = DEFAULT_SEARCH_ALGOS
    roundings: Tuple[str, ...] = ROUNDINGS
    bias_corrections: Tuple[bool, ...] = (False, True)
    max_float: Optional[int] = None  # default: half the quantizable layers

    def __post_init__(self) -> None:
        object.__setattr__(self, "algos", _names(self.algos) or DEFAULT_SEARCH_ALGOS)
        object.__setattr__(self, "roundings", _names(self.roundings))
        object.__setattr__(self, "bias_corrections", tuple(bool(b) for b in self.bias_corrections))
        if not 0 <= float(self.max_drop) <= 100:  # also refuses NaN; inf would accept any model
            raise QuantizeError(f"--max-drop must be from 0 to 100 points, got {self.max_drop}",
                                hint="It is in points of the metric, e.g. 1.0.")
        for algo in self.algos:
            _one_of("algo", algo, SIMULATED_ALGOS)
        _one_of("metric", self.metric, SEARCH_METRICS)
        if any(r not in ROUNDINGS for r in self.roundings) or "round" not in self.roundings:
            raise QuantizeError(f"roundings must include round (got {list(self.roundings)})",
                                hint="Use round or round,adaround.")

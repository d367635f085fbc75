"""PACT: clip activations with a learnable alpha before they are fake-quantized.

y = x - relu(x - a) + relu(-a - x), i.e. x clipped to [-a, a] with a gradient for `a`.
Paddle's quant layers build their preprocessing layer with no arguments, so `pact_layer`
returns a class bound to the recipe's alpha initial value and learning-rate multiplier.
"""
from __future__ import annotations

from typing import Type

DEFAULT_ALPHA_INIT = 20.0
DEFAULT_ALPHA_LR_MULT = 1000.0


def pact_layer(alpha_init: float = DEFAULT_ALPHA_INIT, lr_mult: float = DEFAULT_ALPHA_LR_MULT) -> Type:
    """A paddle.nn.Layer class that applies PACT with the given alpha init and lr multiplier."""
    import paddle
    import paddle.nn.functional as F

    class PACT(paddle.nn.Layer):
        alpha_initial_value = float(alpha_init)
        alpha_learning_rate = float(lr_mult)

        def __init__(self) -> None:
            super().__init__()
            attr = paddle.ParamAttr(
                name=self.full_name() + ".pact",
                initializer=paddle.nn.initializer.Constant(value=self.alpha_initial_value),
                learning_rate=self.alpha_learning_rate,
            )
            self.alpha = self.create_parameter(shape=[1], attr=attr, dtype="float32")

        def forward(self, x):  # type: ignore[no-untyped-def]
            return x - F.relu(x - self.alpha) + F.relu(-self.alpha - x)

    return PACT

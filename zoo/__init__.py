"""zoo: a model zoo for quantized PaddlePaddle models."""

__version__ = "0.1.0"

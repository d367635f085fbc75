"""zoo: a model zoo for quantized PaddlePaddle models.

    import zoo
    zoo.list_entries("digits_*")                       # entry names
    model = zoo.load("digits_mobilenetv1_ptq")         # files, predictor, transform, published numbers
    model.predict(["a.png", "b.png"])
"""
from typing import Any

__version__ = "0.1.0"
_API = ("load", "list_entries", "LoadedModel")


def __getattr__(name: str) -> Any:
    # the API pulls in the registry and Paddle Inference: imported on first use so `import zoo`
    # (and the CLI's start-up) stays light
    if name in _API:
        from zoo import api

        return getattr(api, name)
    raise AttributeError(f"module 'zoo' has no attribute {name!r}")


__all__ = ["__version__", *_API]

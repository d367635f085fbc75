"""Network definitions, the architecture registry, weight loading and inference export."""
from zoo.models.export import save_inference
from zoo.models.registry import INFERENCE_MODEL, available_models, build_model, register_model

__all__ = ["INFERENCE_MODEL", "available_models", "build_model", "register_model", "save_inference"]

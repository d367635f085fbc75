"""Which detection contract a Paddle program follows, read from its feeds and ops.

A detection program decodes or suppresses boxes (one of DETECTION_OPS) and takes either the legacy feeds
(`image`, `im_size`: PaddleDetection 0.x / static exports) or the 2.x feeds (`image`, `im_shape`,
`scale_factor`). Evaluation, quantization and deployment all ask this one question, so it is answered here,
below all of them.
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from zoo.errors import ModelError
from zoo.program import ProgramInfo
from zoo.schema import Contract

LEGACY_FEEDS = ("image", "im_size")
V2_FEEDS = ("image", "im_shape", "scale_factor")
# ops only a detection program holds: the YOLO decoder and the NMS variants
DETECTION_OPS = frozenset({"yolo_box", "multiclass_nms", "multiclass_nms2", "multiclass_nms3", "matrix_nms"})


def contract_of(feeds: Sequence[str], where: object = "the model") -> Contract:
    """The inference contract named by a model's feeds; a ModelError naming `where` for any other feed set."""
    names = set(feeds)
    if names == set(LEGACY_FEEDS):
        return Contract.legacy
    if names == set(V2_FEEDS):
        return Contract.v2
    raise ModelError(
        f"{where} takes inputs {list(feeds)}: neither a legacy detection model (image, im_size) "
        "nor a PaddleDetection 2.x one (image, im_shape, scale_factor)",
        hint="Detection evaluation needs a model exported with one of these two input sets.")


def detection_contract(info: ProgramInfo, where: Optional[object] = None) -> Optional[Contract]:
    """The contract of a program that decodes or suppresses boxes; None for any other program. A detection
    program with feeds of neither contract is None too, or, when `where` names it, a ModelError saying so."""
    if not set(info.op_types) & DETECTION_OPS:
        return None
    try:
        return contract_of([s.name for s in info.inputs], "the model" if where is None else where)
    except ModelError:
        if where is not None:
            raise
        return None


def feeds_for(contract: Contract, images: np.ndarray, sizes: Sequence[Tuple[int, int]]) -> Dict[str, np.ndarray]:
    """The predictor inputs of one batch: `sizes` are the original (height, width) of each image."""
    hw = np.asarray(sizes, dtype=np.float32).reshape(-1, 2)
    if contract is Contract.legacy:
        return {"image": images, "im_size": hw.astype(np.int32)}
    side = np.asarray(images.shape[2:4], dtype=np.float32)  # the resized (H, W)
    return {"image": images, "im_shape": np.tile(side, (len(hw), 1)),
            "scale_factor": (side[None, :] / hw).astype(np.float32)}

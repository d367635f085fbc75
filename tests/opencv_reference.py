"""The references' resize: opencv-python 4.2.0.32's pixels, as this build's scalar kernels give them.

paddlepaddle 1.8.5 (PaddleDetection 0.x) ran opencv-python 4.2.0.32; test_opencv_reference.py checks
against that build itself that this build, with its optimized (SIMD) paths off, resizes alike.
Written apart from zoo.data.transforms.cv2_resize, so the step-by-step references stay independent.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import cv2


@contextlib.contextmanager
def opencv_4_2_kernels() -> Iterator[None]:
    """OpenCV's optimized code paths off for the block, restored after it."""
    was = cv2.useOptimized()
    cv2.setUseOptimized(False)
    try:
        yield
    finally:
        cv2.setUseOptimized(was)

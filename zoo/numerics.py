"""CPU math that gives the same training result on every x86 machine.

Paddle's CPU build calls MKL, and MKL picks its kernels by the CPU's instruction set (SSE, AVX2,
AVX-512; Intel or AMD), each summing in its own order. Inference barely notices, but training
amplifies the differences: the bundled digits QAT recipe trains to 92.58 top-1 on an AMD EPYC
with MKL's own choice and to 93.68 with `MKL_CBWR=COMPATIBLE`, which makes MKL take the same
code path on every x86 CPU. MKL reads the variable at its first call, so `pin_cpu_math` must run
before Paddle computes anything; the CLI calls it at start-up. A value the user set is kept.
"""
from __future__ import annotations

import os

MKL_BRANCH = "COMPATIBLE"


def pin_cpu_math() -> None:
    """Ask MKL for one code path on every x86 CPU (unless MKL_CBWR is already set)."""
    os.environ.setdefault("MKL_CBWR", MKL_BRANCH)

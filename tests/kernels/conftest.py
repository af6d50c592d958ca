"""Kernel tests run on CUDA when SEMDIALECT_KERNEL_DEVICE=cuda (nox -s gpu), otherwise in
Triton's CPU interpreter: TRITON_INTERPRET=1 must be set before semdialect.kernels (and
its @triton.jit functions) is imported, which this conftest does first."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

DEVICE = os.environ.get("SEMDIALECT_KERNEL_DEVICE", "cpu")
if DEVICE == "cpu":
    os.environ["TRITON_INTERPRET"] = "1"

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "golden"))  # golden_testlib

pytest.importorskip("triton", reason="the kernels extra (triton) is not installed")


@pytest.fixture(scope="session")
def device() -> str:
    if DEVICE == "cuda":
        import torch

        if not torch.cuda.is_available():
            pytest.skip("SEMDIALECT_KERNEL_DEVICE=cuda but torch sees no CUDA device")
    return DEVICE

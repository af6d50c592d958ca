"""Process-wide test setup that must happen before any test module is imported.

Triton decides interpreter vs compiled mode when it is first imported, and torchao
imports it as a side effect (tests/golden's torchao cross-checks are collected before
tests/kernels). So TRITON_INTERPRET=1 is set here, at the root, unless the kernels are
meant to run on CUDA (`nox -s gpu` sets SEMDIALECT_KERNEL_DEVICE=cuda)."""

from __future__ import annotations

import os

if os.environ.get("SEMDIALECT_KERNEL_DEVICE", "cpu") == "cpu":
    os.environ["TRITON_INTERPRET"] = "1"

"""pytest hooks and fixtures of the RTL tests (helpers: rtl_testlib.py)."""

from __future__ import annotations

import numpy as np
import pytest


def pytest_configure(config):
    # constructors that raise ValueError leave a half-built Elaboratable behind
    config.addinivalue_line("filterwarnings", "ignore::amaranth.hdl.UnusedElaboratable")


@pytest.fixture
def rng():
    return np.random.default_rng(12345)

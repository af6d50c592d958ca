"""Baseline units (MXFP4, BlockDialect two-stage on DialectFP4) against the golden model."""

from __future__ import annotations

import numpy as np
import pytest
from rtl_testlib import check_against, edge_blocks, golden_expect, random_blocks, run_stream

from semdialect.rtl import DialectFP4TwoStage, MXFP4Quantizer


def _blocks(rng, B, fmt, n=120, every=2):
    return np.concatenate([edge_blocks(B, fmt, rng=rng)[::every], random_blocks(rng, n, B, fmt)])


@pytest.mark.parametrize("fmt,B,pipeline", [("bf16", 32, 2), ("fp16", 16, 0), ("fp16", 64, 3)])
def test_mxfp4(fmt, B, pipeline, rng):
    x = _blocks(rng, B, fmt)
    dut = MXFP4Quantizer(B, fmt, pipeline=pipeline)
    assert not dut.has_dialect
    lasts = [int(v) for v in rng.integers(0, 2, len(x))]
    res = run_stream(dut, x, None, lasts, rng=rng, p_gap=0.3, p_stall=0.3)
    check_against(res, golden_expect(x, "mxfp4"), lasts)


@pytest.mark.parametrize("fmt,B,pipeline", [("bf16", 32, 3), ("fp16", 32, 5), ("bf16", 16, 0),
                                            ("bf16", 32, None)])
def test_dialectfp4_two_stage(fmt, B, pipeline, rng):
    """pipeline None: the default placement (target 150 MHz), with the replicated `pair`
    register and the `ben`, `thr` cuts."""
    x = _blocks(rng, B, fmt)
    dut = DialectFP4TwoStage("dialectfp4", B, fmt, pipeline=pipeline)
    if pipeline is None:
        assert {"pair", "ben", "thr"} <= dut.cuts
    lasts = [int(v) for v in rng.integers(0, 2, len(x))]
    res = run_stream(dut, x, None, lasts, rng=rng, p_gap=0.3, p_stall=0.3)
    check_against(res, golden_expect(x, "dialectfp4", selector="two-stage"), lasts)


def test_two_stage_needs_pairs():
    with pytest.raises(ValueError, match="pairs"):
        DialectFP4TwoStage("semdialect-32")


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["bf16", "fp16"])
def test_baselines_sweep_slow(fmt):
    from rtl_testlib import boundary_bits
    rng = np.random.default_rng(99)
    for B in (16, 32, 64):
        x = np.concatenate([_blocks(rng, B, fmt, n=1500, every=1), boundary_bits(B, fmt)])
        for dut, exp in ((MXFP4Quantizer(B, fmt), golden_expect(x, "mxfp4")),
                         (DialectFP4TwoStage("dialectfp4", B, fmt),
                          golden_expect(x, "dialectfp4", selector="two-stage"))):
            check_against(run_stream(dut, x, rng=rng, p_gap=0.2, p_stall=0.2), exp)

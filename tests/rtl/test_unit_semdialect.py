"""The whole SemDialect unit against the golden model, with stream backpressure."""

from __future__ import annotations

import numpy as np
import pytest
from rtl_testlib import (
    check_against,
    edge_blocks,
    golden_expect,
    random_blocks,
    run_stream,
    write_book,
)

from semdialect.rtl import SemDialectQuantizer


def _masks(rng, nb, d, p_full=0.5):
    full = (1 << d) - 1
    out = []
    for _ in range(nb):
        if rng.random() < p_full:
            out.append(full)
        else:
            m = int(rng.integers(1, 1 << min(d, 62))) if d <= 62 else int(
                rng.integers(1, 1 << 62)) | (int(rng.integers(0, 1 << (d - 62))) << 62)
            out.append(m & full or 1)
    return out


def _mask_array(masks, d):
    return np.array([[(m >> j) & 1 for j in range(d)] for m in masks], dtype=bool)


def _run(book, B, fmt, pipeline, x, rng, p_gap=0.3, p_stall=0.3, masks=None, F=3, W=8):
    dut = SemDialectQuantizer(book, B, fmt, frac_bits=F, err_bits=W, pipeline=pipeline)
    nb = len(x)
    lasts = [int(v) for v in rng.integers(0, 2, nb)]
    opts = dict(formatbook=book, frac_bits=F, err_bits=W)
    if masks is not None:
        opts["allowed"] = _mask_array(masks, dut.num_dialects)
    exp = golden_expect(x, "semdialect", **opts)
    res = run_stream(dut, x, masks, lasts, rng=rng, p_gap=p_gap, p_stall=p_stall)
    check_against(res, exp, lasts)
    return dut, res


@pytest.mark.parametrize("fmt", ["bf16", "fp16"])
@pytest.mark.parametrize("pipeline", [0, 4])
def test_semdialect32_b32(fmt, pipeline, rng):
    x = np.concatenate([edge_blocks(32, fmt, rng=rng), random_blocks(rng, 150, 32, fmt)])
    _run("semdialect-32", 32, fmt, pipeline, x, rng)


@pytest.mark.parametrize("B,fmt,pipeline", [(16, "fp16", 1), (64, "bf16", 2)])
def test_block_sizes(B, fmt, pipeline, rng):
    x = np.concatenate([edge_blocks(B, fmt, rng=rng)[::3], random_blocks(rng, 60, B, fmt)])
    _run("semdialect-32", B, fmt, pipeline, x, rng)


def test_allowed_mask_and_nan(rng):
    """Sub-formatbook masks restrict the argmin; NaN/Inf blocks take the lowest allowed id."""
    x = np.concatenate([edge_blocks(32, "bf16", rng=rng)[:12], random_blocks(rng, 80, 32, "bf16")])
    masks = _masks(rng, len(x), 32, p_full=0.2)
    _run("semdialect-32", 32, "bf16", 3, x, rng, masks=masks)


def test_full_pipeline_and_resolution(rng):
    """Deepest pipeline (every cut), F=1 (coarser than the index address), W=5 (saturation)."""
    depth = len(SemDialectQuantizer("semdialect-32", 16, "bf16", frac_bits=1, err_bits=5,
                                    pipeline=0).cut_chain)
    x = np.concatenate([edge_blocks(16, "bf16", rng=rng)[::4], random_blocks(rng, 60, 16, "bf16")])
    _run("semdialect-32", 16, "bf16", depth, x, rng, F=1, W=5)
    x = np.concatenate([edge_blocks(16, "fp16", rng=rng)[::4], random_blocks(rng, 60, 16, "fp16")])
    _run("semdialect-32", 16, "fp16", depth, x, rng, F=6, W=12)


def test_dialectfp4_book_lut_selector(rng):
    x = np.concatenate([edge_blocks(32, "fp16", rng=rng)[::3], random_blocks(rng, 60, 32, "fp16")])
    _run("dialectfp4", 32, "fp16", 2, x, rng)


def test_custom_book_odd_count_fine_grid(tmp_path, rng):
    """A book file with D = 3 (odd argmin tree), grid 0.25 (g = 2) and emax 3 (I = 4)."""
    path = write_book(tmp_path, "odd", [[0, 1, 2, 4, 8, 16, 32, 63], [0, 3, 6, 9, 12, 20, 40, 60],
                                        [0, 2, 4, 6, 8, 10, 12, 14]], grid=0.25, emax=3)
    for fmt in ("bf16", "fp16"):
        x = np.concatenate([edge_blocks(16, fmt, rng=rng)[::4], random_blocks(rng, 60, 16, fmt)])
        masks = _masks(rng, len(x), 3)
        _run(str(path), 16, fmt, 5, x, rng, masks=masks, F=2)


def test_throughput_and_latency(rng):
    """II = 1 and the documented latency when the output is never stalled."""
    for pipeline in (0, 3, 7):
        dut = SemDialectQuantizer("semdialect-32", 16, "bf16", pipeline=pipeline)
        x = random_blocks(rng, 40, 16, "bf16")
        res = run_stream(dut, x, rng=rng)
        check_against(res, golden_expect(x, "semdialect", formatbook="semdialect-32"))
        assert dut.latency == pipeline
        assert res.first_out_cycle == pipeline
        assert res.last_out_cycle == pipeline + 39  # one block per cycle


def test_stall_everything(rng):
    """Heavy backpressure and gaps: nothing lost, duplicated or reordered."""
    x = random_blocks(rng, 60, 16, "fp16")
    _run("semdialect-32", 16, "fp16", 4, x, rng, p_gap=0.6, p_stall=0.8)


def test_bad_parameters():
    with pytest.raises(ValueError):
        SemDialectQuantizer(block_size=24)
    with pytest.raises(ValueError):
        SemDialectQuantizer(input_format="fp32")
    with pytest.raises(ValueError):
        SemDialectQuantizer(pipeline=99)
    with pytest.raises(ValueError):
        SemDialectQuantizer(frac_bits=0)


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["bf16", "fp16"])
@pytest.mark.parametrize("B", [16, 32, 64])
def test_sweep_slow(fmt, B):
    rng = np.random.default_rng(B * 7 + len(fmt))
    from rtl_testlib import boundary_bits
    x = np.concatenate([edge_blocks(B, fmt, rng=rng), random_blocks(rng, 1500, B, fmt),
                        boundary_bits(B, fmt)])
    for pipeline in (0, 4):
        _run("semdialect-32", B, fmt, pipeline, x, rng)


@pytest.mark.parametrize("pipeline", [0, 2])
def test_no_combinational_valid_ready_paths(pipeline, rng):
    """o.valid never depends on o.ready; i.ready never depends on i.valid (same cycle)."""
    from amaranth.hdl import ClockDomain, Module
    from amaranth.sim import Simulator

    dut = SemDialectQuantizer("semdialect-32", 16, "bf16", pipeline=pipeline)
    top = Module()
    top.domains.sync = ClockDomain()
    top.submodules.dut = dut
    seen = []

    async def tb(ctx):
        for _ in range(40):
            ctx.set(dut.i.payload.data.as_value(), int(rng.integers(0, 1 << 62)))
            iv, ordy = int(rng.integers(0, 2)), int(rng.integers(0, 2))
            ctx.set(dut.i.valid, iv)
            ctx.set(dut.o.ready, ordy)
            ov, ir = ctx.get(dut.o.valid), ctx.get(dut.i.ready)
            ctx.set(dut.o.ready, 1 - ordy)
            assert ctx.get(dut.o.valid) == ov  # o.valid independent of o.ready
            ctx.set(dut.o.ready, ordy)
            ctx.set(dut.i.valid, 1 - iv)
            assert ctx.get(dut.i.ready) == ir  # i.ready independent of i.valid
            ctx.set(dut.i.valid, iv)
            seen.append((ov, ir))
            await ctx.tick()

    sim = Simulator(top)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    assert len(set(seen)) > 1  # the handshake actually moved

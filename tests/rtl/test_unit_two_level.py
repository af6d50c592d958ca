"""The two-level SemanticDialect unit (numerics §15) against the golden model: random
gaps, backpressure, masks (including masks that empty the block's own class), NaN/Inf."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.hdl import Elaboratable, Module
from amaranth.sim import Simulator
from rtl_testlib import check_against, edge_blocks, golden_expect, random_blocks, run_stream

from semdialect import golden
from semdialect.rtl import SemDialectTwoLevel
from semdialect.rtl.stages import class_table


def _class_masks(rng, nb, tables):
    """Half full masks; the rest allow a random subset of classes' members, so that many
    blocks fall back to another class (the effective-class rule)."""
    d = tables.book.num_dialects
    out = []
    for _ in range(nb):
        if rng.random() < 0.5:
            out.append((1 << d) - 1)
            continue
        m = 0
        for c in rng.choice(tables.num_classes, rng.integers(1, 3), replace=False):
            for j in range(tables.k):
                if rng.random() < 0.6:
                    m |= 1 << int(tables.class_ids[c, j])
        out.append(m or 1 << int(tables.class_ids[0, 0]))
    return out


def _run(book, B, fmt, x, rng, *, masks=True, F=3, W=8, **kw):
    dut = SemDialectTwoLevel(book, B, fmt, frac_bits=F, err_bits=W, **kw)
    nb = len(x)
    lasts = [int(v) for v in rng.integers(0, 2, nb)]
    ms = _class_masks(rng, nb, dut.tables) if masks else None
    opts = dict(formatbook=book, frac_bits=F, err_bits=W, selector="two-level")
    if ms is not None:
        opts["allowed"] = np.array([[(m >> j) & 1 for j in range(dut.num_dialects)]
                                    for m in ms], dtype=bool)
    exp = golden_expect(x, "semdialect", **opts)
    res = run_stream(dut, x, ms, lasts, rng=rng, p_gap=0.3, p_stall=0.3)
    check_against(res, exp, lasts)
    return dut, res


@pytest.mark.parametrize("fmt", ["bf16", "fp16"])
def test_two_level_c8x4_default_timing(fmt, rng):
    x = np.concatenate([edge_blocks(32, fmt, rng=rng), random_blocks(rng, 120, 32, fmt)])
    dut, _ = _run("semdialect-32c8x4", 32, fmt, x, rng)
    # the default at 150 MHz: the bram form, whose output FIFO adds one cycle
    assert dut.err_rom == "bram" and dut.latency == len(dut.cuts) + 1 >= 4


@pytest.mark.parametrize("err_rom", ["mux", "class"])
def test_two_level_c8x8_shallow_rom_index(err_rom, rng):
    """Overlapping classes of 8, B = 16, depth 2, the ROM index stage; both error-ROM
    forms (the per-slot class mux, the default, and the (class, address) ROM)."""
    x = np.concatenate([edge_blocks(16, "bf16", rng=rng)[::2], random_blocks(rng, 80, 16,
                                                                              "bf16")])
    _run("semdialect-32c8x8", 16, "bf16", x, rng, pipeline=2, index="rom", err_rom=err_rom)


def test_two_level_class_rom_default_timing(rng):
    """The (class, address) error ROM at the default 150 MHz placement (its class ROM and
    class stages; the slot -> id pick shares the registered-threshold stage)."""
    x = np.concatenate([edge_blocks(32, "bf16", rng=rng), random_blocks(rng, 60, 32, "bf16")])
    dut, _ = _run("semdialect-32c8x8", 32, "bf16", x, rng, err_rom="class",
                  class_from="max-addr")
    assert {"classrom", "class", "thr"} <= dut.cuts and "pick" not in dut.cuts


@pytest.mark.parametrize("fmt", ["bf16", "fp16"])
def test_two_level_bram_default_timing(fmt, rng):
    """The synchronous (class, address) error ROM (block RAM on FPGAs) at the default
    150 MHz placement: read at the norm cut with the lane groups' enable copies, under
    random gaps and backpressure, masks that empty the class, NaN/Inf."""
    x = np.concatenate([edge_blocks(32, fmt, rng=rng), random_blocks(rng, 80, 32, fmt)])
    dut, res = _run("semdialect-32c8x8", 32, fmt, x, rng, err_rom="bram")
    assert {"norm", "lut", "ramq", "idroute"} <= dut.cuts
    assert dut.out_fifo and not dut.out_skid and dut.latency == dut.pipeline + 1


@pytest.mark.parametrize("p_gap,p_stall", [(0.0, 0.0), (0.0, 0.7), (0.5, 0.9)])
def test_two_level_bram_fifo_flow(p_gap, p_stall, rng):
    """The credit-counted output FIFO: one block per cycle with a ready consumer (first
    output at the manifest latency, then no gaps), and nothing lost, duplicated or
    reordered under heavy backpressure (the FIFO fills; ready holds the input)."""
    dut = SemDialectTwoLevel("semdialect-32c8x4", 16, "bf16", err_rom="bram")
    x = random_blocks(rng, 60, 16, "bf16")
    exp = golden_expect(x, "semdialect", formatbook="semdialect-32c8x4",
                        selector="two-level")
    lasts = [int(v) for v in rng.integers(0, 2, len(x))]
    res = run_stream(dut, x, None, lasts, rng=rng, p_gap=p_gap, p_stall=p_stall)
    check_against(res, exp, lasts)
    if p_gap == p_stall == 0:
        assert res.first_out_cycle == dut.latency
        assert res.last_out_cycle - res.first_out_cycle == len(x) - 1


def test_two_level_bram_shallow(rng):
    """A small depth still gets the two registers of the synchronous ROM (norm, lut)."""
    x = np.concatenate([edge_blocks(16, "bf16", rng=rng)[::2], random_blocks(rng, 60, 16,
                                                                              "bf16")])
    dut, _ = _run("semdialect-32c8x4", 16, "bf16", x, rng, err_rom="bram", target_mhz=20)
    assert {"norm", "lut"} <= dut.cuts


def test_two_level_bram_needs_its_cuts():
    with pytest.raises(ValueError, match="needs the cut points norm, lut"):
        SemDialectTwoLevel("semdialect-32c8x8", 32, "bf16", err_rom="bram", pipeline=1)
    with pytest.raises(ValueError, match="class_from 'amax'"):
        SemDialectTwoLevel("semdialect-32c8x8", err_rom="bram", class_from="max-addr")


@pytest.mark.parametrize("fmt", ["bf16", "fp16"])
def test_class_from_amax_is_the_golden_rule(fmt):
    """ClassSelect(fmt=...) on every finite 15-bit amax pattern (its SharedExponent's
    `low`) gives the golden §15.1 block_class of v_max = amax 2^-e (no mask)."""
    from semdialect.golden.scalar_formats import block_exponent
    from semdialect.rtl.stages import INPUT_FORMATS, ClassSelect, SharedExponent

    t = golden.build_two_level("semdialect-32c8x8")
    f = INPUT_FORMATS[fmt]
    pats = np.arange(0, f.exp_max_field << f.mbits)  # every finite magnitude pattern
    vals = (pats.astype(np.uint16).view(np.float16).astype(np.float64) if fmt == "fp16"
            else (pats.astype(np.uint32) << 16).view(np.float32).astype(np.float64))
    with np.errstate(divide="ignore"):
        ee = block_exponent(vals, t.book.emax)
    want = [int(c) for c in golden.two_level.block_class(t.book, np.ldexp(vals, -ee))]
    cs = ClassSelect(t, fmt=f)
    se = SharedExponent(f, t.book.emax)

    class _Top(Elaboratable):
        def elaborate(self, platform):
            m = Module()
            m.submodules += [cs, se]
            m.d.comb += [cs.amax.eq(se.amax), cs.low.eq(se.low), cs.bad.eq(0),
                         cs.mask.eq(-1), se.bad.eq(0)]
            return m

    async def tb(ctx):
        for p, w in zip(pats, want, strict=True):
            ctx.set(se.amax, int(p))
            assert ctx.get(cs.cls) == w, (hex(int(p)), w)

    sim = Simulator(_Top())
    sim.add_testbench(tb)
    sim.run()


def test_two_level_combinational_no_mask(rng):
    x = random_blocks(rng, 60, 16, "fp16")
    _run("semdialect-32c8x4", 16, "fp16", x, rng, masks=False, pipeline=0, F=2, W=6)


def test_class_table_is_the_golden_rule():
    t = golden.build_two_level("semdialect-32c8x4")
    tab = class_table(t)
    fq = t.luts.idx_frac_bits
    # every exact value on the address grid: the class of its address == block_class
    v = np.arange(0, 8, 2.0**-fq)
    a = t.luts.idx_address(v[None, :])[0]
    want = golden.two_level.block_class(t.book, v)
    assert [tab[i] for i in a] == list(want)
    assert max(tab) == t.num_classes - 1


def test_needs_a_class_book():
    with pytest.raises(golden.FormatbookError):
        SemDialectTwoLevel("semdialect-32")

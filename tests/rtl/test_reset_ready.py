"""A block offered while `rst` is high is neither accepted nor lost (issue #10): `i.ready`
is low during reset, the block waits, and comes out bit-exact after the reset."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.hdl import ClockDomain, Module
from amaranth.sim import Simulator
from rtl_testlib import codes_word, golden_expect, random_blocks, to_int

from semdialect.rtl import (
    DialectFP4TwoStage,
    MXFP4Quantizer,
    SemDialectQuantizer,
    SemDialectTwoLevel,
)

UNITS = {
    "mxfp4": (lambda: MXFP4Quantizer(16, "bf16"), "mxfp4", {}),
    "dialectfp4": (lambda: DialectFP4TwoStage("dialectfp4", 16, "bf16"), "dialectfp4",
                   {"selector": "two-stage"}),
    "semdialect": (lambda: SemDialectQuantizer("semdialect-32", 16, "bf16", pipeline=3),
                   "semdialect", {"formatbook": "semdialect-32", "selector": "lut"}),
    "two-level": (lambda: SemDialectTwoLevel("semdialect-32c8x8", 16, "bf16"), "semdialect",
                  {"formatbook": "semdialect-32c8x8", "selector": "two-level"}),
    "two-level-bram": (lambda: SemDialectTwoLevel("semdialect-32c8x8", 16, "bf16",
                                                  err_rom="bram"), "semdialect",
                       {"formatbook": "semdialect-32c8x8", "selector": "two-level"}),
}


@pytest.mark.parametrize("kind", list(UNITS))
def test_block_offered_during_reset_waits(kind, rng):
    make, fmt, opts = UNITS[kind]
    dut = make()
    x = random_blocks(rng, 3, 16, "bf16")
    exp = golden_expect(x, fmt, **opts)
    words = [sum(int(b) << (16 * i) for i, b in enumerate(r))
             for r in x.view(np.uint16).astype(np.int64)]
    top = Module()
    top.domains.sync = cd = ClockDomain()
    top.submodules.dut = dut
    log = {"ready_in_reset": [], "accepted": [], "out": []}

    async def tb(ctx):
        ctx.set(dut.o.ready, 1)
        if dut.has_mask:
            ctx.set(dut.i.payload.mask, (1 << dut.num_dialects) - 1)
        # block 0 is offered from the first cycle, while rst is held for 4 cycles
        ctx.set(cd.rst, 1)
        k = 0
        ctx.set(dut.i.payload.data.as_value(), words[0])
        ctx.set(dut.i.valid, 1)
        for cyc in range(40):
            if cyc == 4:
                ctx.set(cd.rst, 0)
            _, _, rst, iv, ir, ov, p = await ctx.tick().sample(
                cd.rst, dut.i.valid, dut.i.ready, dut.o.valid, dut.o.payload)
            if rst:
                log["ready_in_reset"].append(ir)
            elif iv and ir:
                log["accepted"].append(k)
                k += 1
                if k < len(words):
                    ctx.set(dut.i.payload.data.as_value(), words[k])
                else:
                    ctx.set(dut.i.valid, 0)
            if ov and not rst:
                log["out"].append(to_int(p))

    sim = Simulator(top)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    assert log["ready_in_reset"] == [0, 0, 0, 0]
    assert log["accepted"] == [0, 1, 2]
    offs = {n: (f.offset, f.width) for n, f in dut.out_layout}
    got = [((w >> offs["scale"][0]) & 0xFF, (w >> offs["codes"][0]) & ((1 << 64) - 1))
           for w in log["out"]]
    want = [(int(exp.scales[j]), codes_word(exp.codes[j])) for j in range(3)]
    assert got == want


CAPACITY_UNITS = {
    **{k: v[0] for k, v in UNITS.items()},
    "mxfp4-skid": lambda: MXFP4Quantizer(16, "bf16", out_skid=True),
    "semdialect-skid": lambda: SemDialectQuantizer("semdialect-32", 16, "bf16", pipeline=3,
                                                   out_skid=True),
}


@pytest.mark.parametrize("kind", list(CAPACITY_UNITS))
def test_capacity_is_what_a_stalled_unit_accepts(kind):
    """`capacity` (manifest `capacity_blocks`: what a reset may drop) is exactly the number
    of blocks a unit takes while its output is never read: the pipeline stages, plus the
    skid register with `out_skid`, or the FIFO's entries with `out_fifo`. (The slow cocotb
    reset regression found the skid units one block above the count they declared.)"""
    dut = CAPACITY_UNITS[kind]()
    top = Module()
    top.domains.sync = ClockDomain()
    top.submodules.dut = dut
    seen = {"accepted": 0, "ready_at_end": None}

    async def tb(ctx):
        ctx.set(dut.o.ready, 0)
        if dut.has_mask:
            ctx.set(dut.i.payload.mask, (1 << dut.num_dialects) - 1)
        ctx.set(dut.i.valid, 1)
        for _ in range(dut.capacity + 3 * dut.latency + 8):
            _, _, iv, ir = await ctx.tick().sample(dut.i.valid, dut.i.ready)
            seen["accepted"] += int(iv and ir)
            seen["ready_at_end"] = ir

    sim = Simulator(top)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    assert seen["ready_at_end"] == 0
    assert seen["accepted"] == dut.capacity, (kind, dut.latency, dut.capacity)

"""Shared helpers of the RTL tests: input blocks, golden results, stream drivers.

Imported by the test modules as `rtl_testlib` (a unique name: several test folders
have a conftest.py)."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field

import ml_dtypes
import numpy as np
from amaranth.hdl import ClockDomain, Module
from amaranth.sim import Simulator

from semdialect import golden

# pysim emits masks of very wide signals (B*D*W-bit LUT outputs) as Python int literals
sys.set_int_max_str_digits(0)

DTYPES = {"bf16": ml_dtypes.bfloat16, "fp16": np.float16}


# --------------------------------------------------------------------------------------
# Input blocks
# --------------------------------------------------------------------------------------


def from_bits(bits, fmt: str) -> np.ndarray:
    return np.asarray(bits, dtype=np.uint16).view(DTYPES[fmt])


def _finfo(fmt):
    return ml_dtypes.finfo(DTYPES[fmt])


def random_blocks(rng, n: int, block: int, fmt: str) -> np.ndarray:
    """Random finite blocks: gaussian/laplace/uniform-bits mixtures over a wide range of
    block magnitudes (subnormal through near-max)."""
    dt = DTYPES[fmt]
    fi = _finfo(fmt)
    lo, hi = int(np.log2(float(fi.smallest_subnormal))), int(np.log2(float(fi.max)))
    out = np.empty((n, block), dtype=dt)
    for k in range(n):
        kind = rng.integers(5)
        center = rng.integers(lo + 2, hi - 1)
        if kind == 0:
            x = rng.standard_normal(block) * 2.0**center
        elif kind == 1:
            x = rng.laplace(size=block) * 2.0**center
        elif kind == 2:  # raw bits, exponent field in a window (lanes of all sizes)
            ebits = 8 if fmt == "bf16" else 5
            mbits = 15 - ebits
            e0 = rng.integers(0, (1 << ebits) - 1)
            ef = np.clip(e0 - rng.integers(0, 12, block), 0, (1 << ebits) - 2)
            bits = (rng.integers(0, 2, block) << 15) | (ef << mbits) | rng.integers(
                0, 1 << mbits, block)
            x = from_bits(bits, fmt).astype(np.float64)
        elif kind == 3:  # single outlier
            x = rng.standard_normal(block) * 2.0 ** (center - rng.integers(4, 30))
            x[rng.integers(block)] = rng.choice([-1, 1]) * 2.0**center * rng.uniform(1, 2)
        else:  # few distinct values, many ties
            vals = rng.standard_normal(3) * 2.0**center
            x = rng.choice(vals, block)
        with np.errstate(over="ignore"):
            xb = x.astype(dt)
        xb[~np.isfinite(xb.astype(np.float32))] = dt(0)
        out[k] = xb
    return out


def edge_blocks(block: int, fmt: str, book=None, rng=None) -> np.ndarray:
    """Hand-made corner cases (see numerics §2, §4, §7, §8.7)."""
    dt = DTYPES[fmt]
    fi = _finfo(fmt)
    rng = rng or np.random.default_rng(1)
    blocks = []

    def add(vals):
        b = np.zeros(block, dtype=np.float64)
        vals = np.asarray(vals, dtype=np.float64).ravel()
        b[: len(vals)] = vals[:block]
        blocks.append(b.astype(dt))

    add([])  # all +0
    blocks.append(np.full(block, -0.0).astype(dt))  # all -0
    add([-0.0, 0.0] * block)
    for bad in (np.nan, np.inf, -np.inf):
        b = rng.standard_normal(block).astype(dt)
        b[rng.integers(block)] = bad
        blocks.append(b)
    blocks.append(np.full(block, np.nan).astype(dt))
    sub = float(fi.smallest_subnormal)
    tiny = float(fi.smallest_normal)
    mx = float(fi.max)
    add([sub])  # one smallest subnormal
    add([-sub, sub, -sub, 0.0])
    add(np.arange(block) * sub)  # all subnormal (and zero)
    add(tiny - sub * np.arange(block))  # largest subnormals just below min normal
    add([tiny] + [sub] * (block - 1))
    add([mx] * block)  # all equal, max exponent
    add([mx, -mx] + [sub] * (block - 2))  # max next to subnormals
    add([-mx] + list(rng.standard_normal(block - 1) * mx / 4))
    add([1.0] * block)
    add([-3.0] * block)
    add([1.0] + [2.0**-40] * (block - 1))  # single outlier, rest sticky only
    add([-7.75] + [0.001] * (block - 1))
    # exact rounding boundaries: amax lane fixes the block scale (e = 0 for amax in [4, 8)),
    # the other lanes walk over every multiple of 1/16 in [0, 8) and their neighbours.
    grid = np.arange(0, 8, 1 / 16)
    ulp = 2.0 ** -(7 if fmt == "bf16" else 10)
    for scale in (1.0, 2.0**-10, 2.0**10):
        for top in (7.75, 4.0, 6.0, 7.5):
            for off in (0.0, ulp, -ulp):
                vals = np.clip(grid * (1 + off), 0, top)
                for s in range(0, len(vals), block - 1):
                    chunk = vals[s: s + block - 1]
                    sign = np.where(rng.integers(0, 2, len(chunk)) == 1, -1.0, 1.0)
                    add(np.concatenate([[top], chunk * sign]) * scale)
    return np.stack(blocks)


def boundary_bits(block: int, fmt: str) -> np.ndarray:
    """Every 16-bit finite pattern in the binades [2^-3, 8) next to an amax of 7.x (an
    exhaustive per-lane sweep of the interesting range; used by slow tests)."""
    dt = DTYPES[fmt]
    ebits = 8 if fmt == "bf16" else 5
    mbits = 15 - ebits
    bias = (1 << (ebits - 1)) - 1
    lanes = []
    for ef in range(bias - 3, bias + 3):
        for man in range(1 << mbits):
            lanes.append((ef << mbits) | man)
    lanes = np.array(lanes, dtype=np.uint16)
    lanes = np.concatenate([lanes, lanes | 0x8000])
    per = block - 1
    n = -(-len(lanes) // per)
    lanes = np.resize(lanes, n * per).reshape(n, per)
    top = np.full((n, 1), np.array([7.75], dtype=dt).view(np.uint16)[0], dtype=np.uint16)
    return from_bits(np.concatenate([top, lanes], axis=1), fmt)


# --------------------------------------------------------------------------------------
# Golden results
# --------------------------------------------------------------------------------------


@dataclass
class Expected:
    scales: np.ndarray  # (nb,)
    dialects: np.ndarray | None  # (nb,)
    codes: np.ndarray  # (nb, B)
    packed: np.ndarray = field(default=None)


def golden_expect(x: np.ndarray, fmt: str, **opts) -> Expected:
    qt = golden.quantize(x, fmt, block_size=x.shape[-1], **opts)
    nb = x.shape[0]
    d = None if qt.dialects is None else qt.dialects.reshape(nb).astype(int)
    return Expected(qt.scales.reshape(nb).astype(int), d, qt.codes.reshape(nb, -1).astype(int),
                    qt.pack())


def codes_word(codes) -> int:
    """4-bit codes -> the integer value of data.ArrayLayout(4, B) (element 0 at bit 0)."""
    w = 0
    for i, c in enumerate(codes):
        w |= int(c) << (4 * i)
    return w


# --------------------------------------------------------------------------------------
# Stream simulation
# --------------------------------------------------------------------------------------


@dataclass
class StreamResult:
    outputs: list  # (scale, dialect or None, codes int word, last)
    accepted: int
    cycles: int
    first_out_cycle: int | None
    last_out_cycle: int | None
    protocol_errors: list
    extra_outputs: int


def run_stream(dut, x: np.ndarray, masks=None, lasts=None, *, rng=None, p_gap=0.0,
               p_stall=0.0, drain=8, max_cycles=None) -> StreamResult:
    """Push the blocks of `x` (nb, B) through `dut` with random input gaps (probability
    p_gap of an idle cycle before each block) and random output backpressure
    (probability p_stall of ready = 0 per cycle). Checks the stream rules on the output
    (valid held and payload stable while not accepted) and counts transfers."""
    rng = rng or np.random.default_rng(0)
    nb = len(x)
    bits = x.view(np.uint16).astype(np.int64)
    words = [sum(int(b) << (16 * i) for i, b in enumerate(row)) for row in bits]
    masks = masks if masks is not None else [None] * nb
    lasts = lasts if lasts is not None else [0] * nb
    max_cycles = max_cycles or (nb * 4 + 200) * (1 + int(4 * (p_gap + p_stall)))
    gaps = [int(g) for g in rng.geometric(1 - p_gap, nb) - 1] if p_gap else [0] * nb
    stalls = rng.random(max_cycles + drain + 64) < p_stall
    has_mask = getattr(dut, "has_mask", False)
    has_dialect = getattr(dut, "has_dialect", True)
    res = StreamResult([], 0, 0, None, None, [], 0)

    async def source(ctx):
        for k in range(nb):
            for _ in range(gaps[k]):
                ctx.set(dut.i.valid, 0)
                await ctx.tick()
            ctx.set(dut.i.payload.data.as_value(), words[k])
            if has_mask:
                m = masks[k] if masks[k] is not None else (1 << dut.num_dialects) - 1
                ctx.set(dut.i.payload.mask, m)
            ctx.set(dut.i.payload.last, lasts[k])
            ctx.set(dut.i.valid, 1)
            await ctx.tick().until(dut.i.ready)
            res.accepted += 1
        ctx.set(dut.i.valid, 0)

    async def sink(ctx):
        prev = None
        cycle = 0
        after = 0
        while cycle < max_cycles:
            ready = 0 if stalls[cycle] else 1
            if len(res.outputs) >= nb:
                ready = 1
            ctx.set(dut.o.ready, ready)
            *_, v, r, p = await ctx.tick().sample(dut.o.valid, dut.o.ready, dut.o.payload)
            p = to_int(p)
            if prev is not None and prev[0] and not prev[1]:
                if not v:
                    res.protocol_errors.append(f"cycle {cycle}: valid dropped before transfer")
                elif p != prev[2]:
                    res.protocol_errors.append(f"cycle {cycle}: payload changed while stalled")
            prev = (v, r, p)
            if v and r:
                if len(res.outputs) >= nb:
                    res.extra_outputs += 1
                else:
                    if res.first_out_cycle is None:
                        res.first_out_cycle = cycle
                    res.outputs.append(p)
                    res.last_out_cycle = cycle
            cycle += 1
            if len(res.outputs) >= nb:
                after += 1
                if after > drain:
                    break
        res.cycles = cycle

    top = Module()  # provides the sync domain even for a purely combinational unit
    top.domains.sync = ClockDomain()
    top.submodules.dut = dut
    sim = Simulator(top)
    sim.add_clock(1e-6)
    sim.add_testbench(source, background=True)
    sim.add_testbench(sink)
    sim.run()
    # decode payload words
    layout = dut.out_layout
    offs = {name: (f.offset, f.width) for name, f in layout}
    decoded = []
    for w in res.outputs:
        def fld(name, w=w):
            o, n = offs[name]
            return (w >> o) & ((1 << n) - 1)
        decoded.append((fld("scale"), fld("dialect") if has_dialect else None, fld("codes"),
                        fld("last")))
    res.outputs = decoded
    return res


def check_against(res: StreamResult, exp: Expected, lasts=None):
    nb = len(exp.scales)
    assert not res.protocol_errors, res.protocol_errors[:5]
    assert res.accepted == nb, f"accepted {res.accepted} of {nb}"
    assert len(res.outputs) == nb, f"got {len(res.outputs)} outputs for {nb} blocks"
    assert res.extra_outputs == 0, f"{res.extra_outputs} duplicated/extra outputs"
    lasts = lasts if lasts is not None else [0] * nb
    bad = []
    for k, (scale, dialect, codes, last) in enumerate(res.outputs):
        want = (int(exp.scales[k]), None if exp.dialects is None else int(exp.dialects[k]),
                codes_word(exp.codes[k]), int(lasts[k]))
        got = (scale, dialect if exp.dialects is not None else None, codes, last)
        if got != want:
            bad.append((k, got, want))
    assert not bad, f"{len(bad)} of {nb} blocks differ, first: {bad[:3]}"
    # element 0 at bit 0, identical to the golden .pack() byte order
    packed = np.array([[(c >> (8 * j)) & 0xFF for j in range(len(exp.codes[0]) // 2)]
                       for _, _, c, _ in res.outputs], dtype=np.uint8)
    assert np.array_equal(packed, exp.packed.reshape(nb, -1))


def to_int(value) -> int:
    """A sampled value (int or data.Const) as a plain integer."""
    if isinstance(value, int):
        return value
    return value.as_value().value


def run_comb(dut, fn):
    """Run `async fn(ctx)` as a testbench on a purely combinational component."""
    sim = Simulator(dut)
    sim.add_testbench(fn)
    sim.run()


def write_book(tmp_path, name, dialects, grid=0.5, emax=2):
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps({"name": name, "version": 1, "grid": grid,
                                "scale": {"type": "e8m0", "emax": emax},
                                "dialects": dialects}))
    return path


"""Every datapath stage on its own, against the golden model's intermediate values."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.hdl import Cat, ClockDomain, Elaboratable, Module
from amaranth.sim import Simulator
from rtl_testlib import DTYPES, edge_blocks, random_blocks, run_comb, to_int

from semdialect import golden
from semdialect.golden.dialects import (
    beneficial_table,
    masked_argmin,
    normalize_blocks,
    two_stage_select,
)
from semdialect.golden.elements import E2M1
from semdialect.golden.lut import normalized_code
from semdialect.golden.scalar_formats import block_exponent
from semdialect.rtl.stages import (
    INPUT_FORMATS,
    BeneficialColumns,
    BeneficialCount,
    BlockMax,
    BlockMaxTable,
    DialectAdderTree,
    E2M1Round,
    ErrorLut,
    IndexLut,
    MaskedArgmin,
    Normalize,
    SharedExponent,
    Unpack,
    beneficial_columns,
    thermometer_counter,
)
from semdialect.rtl.units import pair_table


class _Front(Elaboratable):
    """Unpack -> BlockMax -> SharedExponent as one comb module for the test."""

    def __init__(self, fmt, B, emax):
        self.unpack = Unpack(INPUT_FORMATS[fmt], B)
        self.bmax = BlockMax(B)
        self.shexp = SharedExponent(INPUT_FORMATS[fmt], emax)

    def elaborate(self, platform):
        m = Module()
        m.submodules += [self.unpack, self.bmax, self.shexp]
        m.d.comb += [self.bmax.mag.eq(self.unpack.mag),
                     self.bmax.nonfinite.eq(self.unpack.nonfinite),
                     self.shexp.amax.eq(self.bmax.amax), self.shexp.bad.eq(self.bmax.bad)]
        return m


def _word(row, w):
    return sum(int(v) << (w * i) for i, v in enumerate(row))


def _lanes(word, w, n):
    return [(word >> (w * i)) & ((1 << w) - 1) for i in range(n)]


@pytest.mark.parametrize("fmt", ["bf16", "fp16"])
@pytest.mark.parametrize("emax", [2, 0, 8])
def test_unpack_blockmax_shared_exponent(fmt, emax, rng):
    B = 16
    x = np.concatenate([edge_blocks(B, fmt, rng=rng), random_blocks(rng, 200, B, fmt)])
    x32 = x.astype(np.float32)
    bad = ~np.isfinite(x32).all(-1)
    amax = np.where(bad, 0, np.abs(x32).max(-1))
    want_e = block_exponent(amax, emax)
    want_scale = np.where(bad, 0xFF, want_e + 127)
    want_amax_bits = np.where(bad, -1, (x.view(np.uint16) & 0x7FFF).max(-1))
    dut = _Front(fmt, B, emax)
    bits = x.view(np.uint16)

    async def tb(ctx):
        for k in range(len(x)):
            ctx.set(dut.unpack.data.as_value(), _word(bits[k], 16))
            assert ctx.get(dut.bmax.bad) == bad[k]
            if not bad[k]:
                assert ctx.get(dut.bmax.amax) == want_amax_bits[k]
                assert ctx.get(dut.shexp.e) == want_e[k], (k, x[k])
            assert ctx.get(dut.shexp.scale) == want_scale[k], (k, x[k])
            signs = _lanes(ctx.get(dut.unpack.sign), 1, B)
            assert signs == [int(s) for s in np.signbit(x32[k])]

    run_comb(dut, tb)


@pytest.mark.parametrize("fmt", ["bf16", "fp16"])
@pytest.mark.parametrize("book,F", [("semdialect-32", 3), ("semdialect-32", 1),
                                    ("semdialect-32", 7), ("dialectfp4", 2)])
def test_normalize(fmt, book, F, rng):
    """Per-lane truncation + sticky against golden normalized_code of the exact v; the
    block-max lane gives the block's largest exact address."""
    B = 16
    bk = golden.load_formatbook(book)
    luts = golden.build_luts(bk, F, 8)
    x = np.concatenate([edge_blocks(B, fmt, rng=rng), random_blocks(rng, 200, B, fmt)])
    e, v, bad = normalize_blocks(bk, x.astype(np.float32))
    want_a = luts.err_address(v)
    want_aq = luts.idx_address(v)
    f = INPUT_FORMATS[fmt]
    dut = Normalize(f, B, bk.int_bits, F, luts.idx_frac_bits, with_max=True)
    bits = x.view(np.uint16).astype(np.int64)
    amax = (bits & 0x7FFF).max(axis=1)

    async def tb(ctx):
        for k in range(len(x)):
            ctx.set(dut.e, int(e[k]))
            ctx.set(dut.bad, int(bad[k]))
            ctx.set(dut.exp.as_value(), _word((bits[k] >> f.mbits) & f.exp_max_field, f.ebits))
            ctx.set(dut.man.as_value(), _word(bits[k] & ((1 << f.mbits) - 1), f.mbits))
            ctx.set(dut.amax_exp, int(amax[k] >> f.mbits))
            ctx.set(dut.amax_man, int(amax[k] & ((1 << f.mbits) - 1)))
            assert ctx.get(dut.max_idx_addr) == int(want_aq[k].max()), (k, x[k])
            got_a = _lanes(ctx.get(dut.err_addr.as_value()), dut.err_addr_bits, B)
            got_aq = _lanes(ctx.get(dut.idx_addr.as_value()), dut.idx_addr_bits, B)
            assert got_a == list(want_a[k]), (k, x[k])
            assert got_aq == list(want_aq[k]), (k, x[k])

    run_comb(dut, tb)


@pytest.mark.parametrize("F,W", [(3, 8), (1, 4), (5, 12)])
def test_error_lut(F, W):
    luts = golden.build_luts("semdialect-32", F, W)
    n_addr = luts.err.shape[1]
    B = 4
    dut = ErrorLut(luts, B)

    async def tb(ctx):
        for a0 in range(0, n_addr, B):
            addrs = [(a0 + i) % n_addr for i in range(B)]
            ctx.set(dut.addr.as_value(), _word(addrs, luts.err_addr_bits))
            for i, a in enumerate(addrs):  # the stored entries: ERR >> L (§8.3)
                got = _lanes(to_int(ctx.get(dut.err[i])), W - luts.err_shift,
                             luts.err.shape[0])
                assert got == list(luts.err[:, a] >> luts.err_shift), a

    run_comb(dut, tb)


def _clocked(dut):
    top = Module()
    top.domains.sync = ClockDomain()
    top.submodules.dut = dut
    sim = Simulator(top)
    sim.add_clock(1e-6)
    return sim


@pytest.mark.parametrize("B,D,W,cuts", [(16, 5, 8, ()), (32, 32, 8, (0, 2, 4)), (64, 3, 12, (5,))])
def test_adder_tree(B, D, W, cuts, rng):
    dut = DialectAdderTree(D, W, B, cuts)
    n = 30
    err = rng.integers(0, 1 << W, (n, B, D))
    err[0] = (1 << W) - 1  # all maxima: sums must not overflow
    want = err.sum(1)

    async def tb(ctx):
        ctx.set(dut.en, 1)
        for k in range(n + dut.latency):
            if k < n:
                ctx.set(dut.err.as_value(),
                        sum(_word(err[k, i], W) << (i * D * W) for i in range(B)))
            if dut.latency == 0:
                got = _lanes(ctx.get(dut.sums.as_value()), dut.sum_width, D)
                assert got == list(want[k])
            elif k >= dut.latency:
                got = _lanes(ctx.get(dut.sums.as_value()), dut.sum_width, D)
                assert got == list(want[k - dut.latency])
            await ctx.tick()

    sim = _clocked(dut)
    sim.add_testbench(tb)
    sim.run()


@pytest.mark.parametrize("D,cuts", [(32, ()), (16, (1, 3)), (3, (0,)), (1, ())])
def test_masked_argmin(D, cuts, rng):
    """Ties to the lowest allowed id; masks restrict; golden masked_argmin is the reference."""
    sw = 9
    dut = MaskedArgmin(D, sw, cuts)
    n = 300
    sums = rng.integers(0, 6, (n, D)) * rng.integers(1, 80)  # many ties
    sums[: n // 3] = rng.integers(0, 1 << sw, (n // 3, D))
    sums[-1] = (1 << sw) - 1
    mask = rng.random((n, D)) < 0.4
    mask[: n // 4] = True
    mask[~mask.any(1), 0] = True
    mask[n // 2] = False
    mask[n // 2, D - 1] = True  # only the last dialect allowed
    want = masked_argmin(sums.astype(np.int64), mask)

    async def tb(ctx):
        ctx.set(dut.en, 1)
        for k in range(n + dut.latency):
            if k < n:
                ctx.set(dut.sums.as_value(), _word(sums[k], sw))
                ctx.set(dut.mask, _word(mask[k], 1))
            j = k - dut.latency
            if j >= 0:
                assert ctx.get(dut.dialect) == want[j], (j, sums[j], mask[j])
            await ctx.tick()

    sim = _clocked(dut)
    sim.add_testbench(tb)
    sim.run()


@pytest.mark.parametrize("index", ["rom", "compare"])
@pytest.mark.parametrize("book", ["semdialect-32", "dialectfp4"])
def test_index_lut(book, index, rng):
    """Every (dialect, exact address) entry, signs and the NaN/Inf zeroing, for both index
    stages (a B-port ROM, or per-block thresholds and per-lane comparators)."""
    luts = golden.build_luts(book, 3, 8)
    D, n_addr = luts.idx.shape
    B = 16
    dut = IndexLut(luts.idx, B, index)

    async def tb(ctx):
        for d in range(D):
            ctx.set(dut.dialect, d)
            for a0 in range(0, n_addr, B):
                addrs = [(a0 + i) % n_addr for i in range(B)]
                signs = rng.integers(0, 2, B)
                ctx.set(dut.idx_addr.as_value(), _word(addrs, dut.addr_bits))
                ctx.set(dut.sign, _word(signs, 1))
                ctx.set(dut.bad, 0)
                got = _lanes(ctx.get(dut.codes.as_value()), 4, B)
                want = [int(s) << 3 | int(luts.idx[d, a]) for s, a in zip(signs, addrs)]
                assert got == want, (d, a0)
                ctx.set(dut.bad, 1)
                assert ctx.get(dut.codes.as_value()) == 0

    run_comb(dut, tb)


@pytest.mark.parametrize("groups,cmp_cut", [(1, False), (2, False), (4, False), (1, True),
                                            (4, True)])
def test_index_lut_thr_replicas(groups, cmp_cut, rng):
    """The registered threshold stage (`thr_cut`) with its per-group register replicas
    (kept apart by reset / all-ones initial values, `register_replicas`), and with the
    registered comparators (`cmp_cut`: NaN/Inf folded into 'never' thresholds): one
    block per cycle, every lane of every group against the table, NaN/Inf zeroing
    included."""
    luts = golden.build_luts("semdialect-32", 3, 8)
    D, n_addr = luts.idx.shape
    B = 8
    dut = IndexLut(luts.idx, B, "compare", thr_cut=True, thr_groups=groups, cmp_cut=cmp_cut)
    assert dut.latency == 1 + cmp_cut
    blocks = []
    for _ in range(3 * D):
        blocks.append((int(rng.integers(0, D)), [int(a) for a in rng.integers(0, n_addr, B)],
                       [int(s) for s in rng.integers(0, 2, B)], int(rng.random() < 0.1)))

    async def tb(ctx):
        ctx.set(dut.en, 1)
        for blk in blocks:
            d, addrs, signs, bad = blk
            ctx.set(dut.dialect, d)
            ctx.set(dut.idx_addr.as_value(), _word(addrs, dut.addr_bits))
            ctx.set(dut.sign, _word(signs, 1))
            ctx.set(dut.bad, bad)
            await ctx.tick()  # the thr registers now hold this block
            # the next block's inputs do not reach codes
            ctx.set(dut.dialect, (d + 1) % D)
            ctx.set(dut.bad, 1 - bad)
            ctx.set(dut.sign, _word([1 - s for s in signs], 1))
            ctx.set(dut.idx_addr.as_value(), _word([n_addr - 1 - a for a in addrs],
                                                   dut.addr_bits))
            if cmp_cut:
                await ctx.tick()  # the thermometer registers now hold it
            got = _lanes(ctx.get(dut.codes.as_value()), 4, B)
            want = [0 if bad else s << 3 | int(luts.idx[d, a]) for s, a in zip(signs, addrs)]
            assert got == want, blk

    sim = _clocked(dut)
    sim.add_testbench(tb)
    sim.run()


def test_index_lut_thr_groups_rejected():
    luts = golden.build_luts("dialectfp4", 3, 8)
    with pytest.raises(ValueError, match="thr_groups"):
        IndexLut(luts.idx, 8, "compare", thr_cut=True, thr_groups=3)
    with pytest.raises(ValueError, match="thr_groups"):
        IndexLut(luts.idx, 8, "compare", thr_cut=True, thr_groups=8)
    with pytest.raises(ValueError, match="thr cut"):
        IndexLut(luts.idx, 8, "compare", thr_groups=2)


def test_index_lut_equals_rne_reference():
    """The IDX ROM reproduces exact RNE (numerics §8.5): every address's representative
    value (point, or interval midpoint +- a tiny offset) quantized by the golden reference."""
    from semdialect.golden.lut import rne_index

    for book in ("semdialect-32", "dialectfp4"):
        luts = golden.build_luts(book, 3, 8)
        bk = luts.book
        fq = luts.idx_frac_bits
        n = luts.idx.shape[1]
        a = np.arange(n)
        for off in (0.0, 1e-9, 0.5 - 1e-9):
            v = np.ldexp((a >> 1) + (a & 1) * (0.5 if off == 0 else off), -fq)
            assert np.array_equal(normalized_code(v, fq), a)
            assert np.array_equal(rne_index(bk.values, v), luts.idx)


def test_e2m1_round(rng):
    """All 64 exact addresses x both signs against golden E2M1.encode of values inside."""
    B = 16
    dut = E2M1Round(B)
    a = np.arange(64)
    t, st = a >> 1, a & 1
    # s = 0: the point t/4; s = 1: values inside the open interval (t/4, (t+1)/4)
    reps = [np.ldexp(t + st * f, -2) for f in (0.001, 0.5, 0.999)]

    async def tb(ctx):
        ctx.set(dut.bad, 0)
        for v in reps:
            for s in (0, 1):
                want = E2M1.encode(np.where(s, -v, v).astype(np.float64))
                for a0 in range(0, 64, B):
                    ctx.set(dut.idx_addr.as_value(), _word(a[a0: a0 + B], 6))
                    ctx.set(dut.sign, (1 << B) - 1 if s else 0)
                    got = _lanes(ctx.get(dut.codes.as_value()), 4, B)
                    assert got == [int(c) for c in want[a0: a0 + B]], (a0, s)

    run_comb(dut, tb)


@pytest.mark.parametrize("groups", [1, 4])
def test_two_stage_select_stages(groups, rng):
    """pair ROM on the block max address (BlockMaxTable) + the per-lane beneficial
    columns (BeneficialColumns) + the pair-selected count (BeneficialCount, the pair
    given as `groups` copies, as from the unit's register replicas) == golden
    two_stage_select on random normalized blocks."""
    bk = golden.load_formatbook("dialectfp4")
    B = 16
    fq = bk.grid_frac_bits + 1
    ab = bk.int_bits + fq + 1
    ps = BlockMaxTable(pair_table(bk), ab)
    cols = BeneficialColumns(beneficial_table(bk), B, 3)
    bc = BeneficialCount(beneficial_table(bk), B, 3, groups=groups)
    assert cols.n_cols == bc.n_cols == 12  # the 16 member columns, 12 distinct

    class Both(Elaboratable):
        def elaborate(self, platform):
            m = Module()
            m.submodules += [ps, cols, bc]
            m.d.comb += [bc.pair.as_value().eq(Cat(*[ps.out] * groups)),
                         bc.cols.eq(cols.cols)]
            return m

    n = 400
    x = np.concatenate([edge_blocks(B, "bf16", rng=rng), random_blocks(rng, n, B, "bf16")])
    e, v, bad = normalize_blocks(bk, x.astype(np.float32))
    want = two_stage_select(bk, v, bad)
    aq = normalized_code(v, fq)

    async def tb(ctx):
        for k in range(len(x)):
            ctx.set(ps.max_addr, int(aq[k].max()))
            ctx.set(cols.idx_addr.as_value(), _word(aq[k], ab))
            ctx.set(bc.bad, int(bad[k]))
            assert ctx.get(bc.dialect) == want[k], (k, v[k])

    run_comb(Both(), tb)


def test_beneficial_columns_cover_the_table():
    """Every (pair, member, address) of the golden beneficial table is the selected
    column bit (`beneficial_columns`), pairs past the book's are never beneficial."""
    ben = beneficial_table(golden.load_formatbook("dialectfp4"))
    words, src = beneficial_columns(ben, 4)  # one pair bit more than the book needs
    n_pairs, _, n_addr = ben.shape
    assert len(src) == 16 and all(r == [None, None] for r in src[n_pairs:])
    for p in range(n_pairs):
        for j in range(2):
            got = [0 if src[p][j] is None else words[a] >> src[p][j] & 1
                   for a in range(n_addr)]
            assert got == [int(b) for b in ben[p, j]], (p, j)


def test_input_formats_match_numpy():
    for name, dt in DTYPES.items():
        f = INPUT_FORMATS[name]
        one = np.array([1.0], dtype=dt).view(np.uint16)[0]
        assert one == f.bias << f.mbits


@pytest.mark.parametrize("book", ["semdialect-32c8x8", "semdialect-32c8x4"])
def test_class_slot_mux(book, rng):
    """ClassSlotMux: every (class, address) gives the §8 ERR entries of the class's
    members in the slot order of slot_assignment; each slot row is a permutation of the
    class (the argmin then compares global ids, so the order does not matter)."""
    from semdialect.rtl.stages import ClassSlotMux, slot_assignment

    t = golden.build_two_level(book, 3, 8)
    cand, slot_ids, sel = slot_assignment(t.class_ids)
    for c in range(t.num_classes):
        assert sorted(slot_ids[c]) == list(t.class_ids[c])
        assert [cand[j][sel[c][j]] for j in range(t.k)] == slot_ids[c]
    B = 4
    dut = ClassSlotMux(t, B)
    assert dut.width == 8 - t.luts.err_shift == 6  # ERR >> 2 stored at F = 3 (§8.3)
    n_addr = t.luts.err.shape[1]

    async def tb(ctx):
        for c in range(t.num_classes):
            ctx.set(dut.cls, c)
            for a0 in range(0, n_addr, B):
                addrs = [(a0 + i) % n_addr for i in range(B)]
                ctx.set(dut.addr.as_value(), _word(addrs, t.luts.err_addr_bits))
                for i, a in enumerate(addrs):
                    got = _lanes(to_int(ctx.get(dut.err[i])), dut.width, t.k)
                    assert got == [int(t.luts.err_rom[d, a]) for d in slot_ids[c]], (c, a)

    run_comb(dut, tb)


@pytest.mark.parametrize("book", ["semdialect-32c8x8", "semdialect-32c8x4"])
def test_class_slot_mux_onehot_groups(book):
    """The one-hot form (the unit's default): each lane group reads its own copy of the
    class's one-hot selects (`slot_onehot_words`); every (class, address) gives the same
    entries as the binary-select form, and a group only follows its own copy."""
    from semdialect.rtl.stages import ClassSlotMux, slot_assignment, slot_onehot_words

    t = golden.build_two_level(book, 3, 8)
    cand, slot_ids, sel = slot_assignment(t.class_ids)
    cb = max(1, (t.num_classes - 1).bit_length())
    words, offsets, width = slot_onehot_words(cand, sel, cb)
    assert width == sum(len(c) for c in cand if len(c) > 1)
    for c in range(t.num_classes):  # exactly one bit per multi-candidate slot
        for j, o in enumerate(offsets):
            if o >= 0:
                assert (words[c] >> o) & ((1 << len(cand[j])) - 1) == 1 << sel[c][j]
    B, G = 8, 4
    dut = ClassSlotMux(t, B, onehot_groups=G)
    n_addr = t.luts.err.shape[1]
    sw = dut.onehot_width

    async def tb(ctx):
        for c in range(t.num_classes):
            other = (c + 1) % t.num_classes  # groups 1 and 3 get another class
            ctx.set(dut.onehot.as_value(),
                    sum(words[c if g % 2 == 0 else other] << (g * sw) for g in range(G)))
            for a0 in range(0, n_addr, B):
                addrs = [(a0 + 3 * i) % n_addr for i in range(B)]
                ctx.set(dut.addr.as_value(), _word(addrs, t.luts.err_addr_bits))
                for i, a in enumerate(addrs):
                    cc = c if (i // (B // G)) % 2 == 0 else other
                    got = _lanes(to_int(ctx.get(dut.err[i])), dut.width, t.k)
                    assert got == [int(t.luts.err_rom[d, a]) for d in slot_ids[cc]], (c, i, a)

    run_comb(dut, tb)


def test_masked_argmin_with_ids(rng):
    """The (sum, id) argmin: ties go to the lowest *id* whatever the slot order."""
    K, sw, ib = 8, 9, 5
    dut = MaskedArgmin(K, sw, (1,), id_bits=ib)
    n = 300
    sums = rng.integers(0, 4, (n, K))  # many ties
    ids = np.array([rng.permutation(32)[:K] for _ in range(n)])
    mask = rng.random((n, K)) < 0.6
    mask[~mask.any(1), 0] = True
    key = np.where(mask, sums * 64 + ids, 1 << 30)
    want = ids[np.arange(n), key.argmin(1)]

    async def tb(ctx):
        ctx.set(dut.en, 1)
        for k in range(n + dut.latency):
            if k < n:
                ctx.set(dut.sums.as_value(), _word(sums[k], sw))
                ctx.set(dut.ids.as_value(), _word(ids[k], ib))
                ctx.set(dut.mask, _word(mask[k], 1))
            j = k - dut.latency
            if j >= 0:
                assert ctx.get(dut.dialect) == want[j], (j, sums[j], ids[j], mask[j])
            await ctx.tick()

    sim = _clocked(dut)
    sim.add_testbench(tb)
    sim.run()


@pytest.mark.parametrize("n", [1, 5, 18])
def test_thermometer_counter(n, rng):
    """The output FIFO's counts (`thermometer_counter`): count[k] = v > k for a value v
    that moves by up - down each clock, against a Python counter over random up/down
    (kept in 0..n like the FIFO keeps them), both ends reached."""
    from amaranth.hdl import Signal

    class Counter(Elaboratable):
        def __init__(self):
            self.count, self.up, self.down = Signal(n), Signal(), Signal()

        def elaborate(self, platform):
            m = Module()
            thermometer_counter(m, self.count, self.up, self.down)
            return m

    dut = Counter()
    sim = _clocked(dut)
    seen = set()

    async def tb(ctx):
        v = 0
        for k in range(40 * n + 20):
            bias = 0.8 if (k // (4 * n + 2)) % 2 == 0 else 0.2  # sweep up, then down
            up = int(v < n and rng.random() < bias)
            down = int(v > 0 and rng.random() < 1 - bias)
            ctx.set(dut.up, up)
            ctx.set(dut.down, down)
            await ctx.tick()
            v += up - down
            seen.add(v)
            assert ctx.get(dut.count) == (1 << v) - 1, (k, v)

    sim.add_testbench(tb)
    sim.run()
    assert seen >= {0, n}

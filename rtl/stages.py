"""Datapath stages of the block quantizers (numerics §4, §7-§9).

Every stage is a small `wiring.Component` that can be simulated on its own. The purely
combinational stages have no clock; the two log-depth reductions (`DialectAdderTree`,
`MaskedArgmin`) take a tuple of tree levels after which they insert a pipeline register,
all enabled by their `en` input (the global stall of the enclosing unit).

Value conventions (all exact integers, no floating point anywhere):

* A 16-bit input lane is sign | exponent field | mantissa field. Its magnitude is
  ``sig * 2^(E_eff - bias - M)`` with ``E_eff = max(exp, 1)`` and
  ``sig = (exp != 0) << M | man`` (subnormals honoured exactly).
* The block exponent is ``e = clamp(floor(log2 amax) - emax, -127, 127)``; an all-zero
  block gives -127 through the clamp (numerics §4, §7).
* The normalized magnitude ``v = |x| * 2^-e`` lies in [0, 2^I), I = emax + 1. A LUT
  address at F fractional bits is ``floor(v * 2^F) << 1 | sticky`` (numerics §8.2).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from .romstyle import BLOCK_RAM_SUFFIX

__all__ = [
    "InputFormat",
    "INPUT_FORMATS",
    "Unpack",
    "BlockMax",
    "SharedExponent",
    "Normalize",
    "ErrorLut",
    "DialectAdderTree",
    "MaskedArgmin",
    "IndexLut",
    "INDEX_MODES",
    "index_thresholds",
    "never_word",
    "E2M1Round",
    "BlockMaxTable",
    "BeneficialColumns",
    "BeneficialCount",
    "beneficial_columns",
    "register_replicas",
    "thermometer_counter",
    "MAX_REPLICAS",
    "delay",
    "tree_levels",
    "class_table",
    "ClassSelect",
    "ClassErrorLut",
    "SlotDialect",
    "slot_assignment",
    "ClassSlotMux",
    "LaneSlotMux",
    "slot_onehot_words",
    "SlotIds",
]


@dataclass(frozen=True)
class InputFormat:
    """A 16-bit IEEE-style input float: 1 sign bit, `ebits` exponent, `mbits` mantissa."""

    name: str
    ebits: int
    mbits: int

    @property
    def bias(self) -> int:
        return (1 << (self.ebits - 1)) - 1

    @property
    def exp_max_field(self) -> int:
        return (1 << self.ebits) - 1


INPUT_FORMATS = {
    "bf16": InputFormat("bf16", 8, 7),
    "fp16": InputFormat("fp16", 5, 10),
}


def tree_levels(n: int) -> int:
    """Levels of a binary reduction tree over n leaves."""
    levels = 0
    while n > 1:
        n = (n + 1) // 2
        levels += 1
    return levels


def delay(m: Module, value, n: int, en, name: str, *, reset_less: bool = True) -> Value:
    """`value` delayed by n enabled registers (enable = the unit's global advance)."""
    v = Value.cast(value)
    for k in range(n):
        r = Signal(v.shape(), name=f"{name}_p{k}", reset_less=reset_less)
        with m.If(en):
            m.d.sync += r.eq(v)
        v = r
    return v


#: most register replicas `register_replicas` can keep apart (polarity or reset x
#: initial value)
MAX_REPLICAS = 4

#: how `register_replicas` keeps its replicas apart
REPLICA_FORMS = ("polarity", "reset")


def register_replicas(m: Module, value, groups: int, en, name: str, *,
                      apart: str = "polarity") -> list[Value]:
    """`value` registered `groups` times (enable `en`), so that each register drives a
    group of lanes instead of all of them (issue #10: a per-block value routed to 32
    lanes costs about 3 ns on ECP5). Returns the replicas' values, all equal to the
    registered `value`.

    Synthesis merges flip-flops with the same input and the same initial value (Yosys
    `opt_merge`; a `keep` attribute on the signal does not stop it), so the replicas
    differ in how they are stored, not in what they hold: replica g has initial value
    all-ones when g & 1, all-zeros otherwise, and when g & 2
    - apart="polarity": keeps the value inverted (and inverts it back at its lanes: the
      inverters fold into the LUTs that read it);
    - apart="reset": is cleared to its initial value by the domain's reset (a
      synchronous-reset flip-flop, no logic), for readers that cannot absorb an
      inverter: a carry chain's operand costs a LUT4 per inverted bit (measured, Yosys
      synth_ecp5: `a >= ~r` maps 8 LUT4 in front of the chain, `~(a < r)` none).
    Four distinct pairs: at most `MAX_REPLICAS` replicas (a reset value other than the
    initial value costs an inverter again, measured). The initial and reset values are
    never observed: the unit's valid bits are reset and every accepted block overwrites
    all replicas together. `en`: one enable for all, or one per replica (the unit's
    enable copies, `_Unit._adv_copies`)."""
    if not (isinstance(groups, int) and 1 <= groups <= MAX_REPLICAS):
        raise ValueError(f"register replicas must be in 1..{MAX_REPLICAS}, got {groups!r}")
    if apart not in REPLICA_FORMS:
        raise ValueError(f"apart must be one of {REPLICA_FORMS}, got {apart!r}")
    ens = list(en) if isinstance(en, (list, tuple)) else [en] * groups
    if len(ens) != groups:
        raise ValueError(f"{groups} replicas need {groups} enables, got {len(ens)}")
    v = Value.cast(value)
    n = len(v)
    out = []
    for g in range(groups):
        inv = bool(g & 2) and apart == "polarity"
        r = Signal(n, name=f"{name}{g}", init=((1 << n) - 1) if g & 1 else 0,
                   reset_less=not (g & 2 and apart == "reset"))
        with m.If(ens[g]):
            m.d.sync += r.eq(~v if inv else v)
        out.append(~r if inv else r)
    return out


def thermometer_counter(m: Module, count: Signal, up: Value, down: Value) -> None:
    """count (n bits) as a thermometer code of a value v in 0..n: count[k] = v > k.
    Each clock v goes up by `up` and down by `down` (both: unchanged); the caller keeps
    v in range. Every bit's next value is a LUT of its neighbours and the two inputs, so
    v > k is a flip-flop (no carry chain and no compare behind it)."""
    with m.If(up & ~down):
        m.d.sync += count.eq(Cat(Const(1, 1), count[:-1]))
    with m.Elif(down & ~up):
        m.d.sync += count.eq(Cat(count[1:], Const(0, 1)))


def _lsb_or(value: Value, nbits: int) -> Value:
    return value[:nbits].any() if nbits > 0 else Const(0, 1)


# --------------------------------------------------------------------------------------
# Unpack / BlockMax / SharedExponent
# --------------------------------------------------------------------------------------


class Unpack(wiring.Component):
    """Split B 16-bit floats into sign, exponent, mantissa; flag NaN/Inf lanes.

    `mag` is the 15-bit magnitude pattern (exponent | mantissa), which orders finite
    magnitudes exactly like their values (subnormals included)."""

    def __init__(self, fmt: InputFormat, block_size: int):
        self.fmt = fmt
        self.block_size = block_size
        super().__init__({
            "data": In(data.ArrayLayout(16, block_size)),
            "sign": Out(block_size),
            "exp": Out(data.ArrayLayout(fmt.ebits, block_size)),
            "man": Out(data.ArrayLayout(fmt.mbits, block_size)),
            "mag": Out(data.ArrayLayout(15, block_size)),
            "nonfinite": Out(block_size),
        })

    def elaborate(self, platform):
        m = Module()
        f = self.fmt
        for i in range(self.block_size):
            x = self.data[i]
            m.d.comb += [
                self.sign[i].eq(x[15]),
                self.exp[i].eq(x[f.mbits:15]),
                self.man[i].eq(x[:f.mbits]),
                self.mag[i].eq(x[:15]),
                self.nonfinite[i].eq(x[f.mbits:15] == f.exp_max_field),
            ]
        return m


class BlockMax(wiring.Component):
    """amax (15-bit magnitude pattern) over the block, and `bad` = any NaN/Inf lane."""

    def __init__(self, block_size: int):
        self.block_size = block_size
        super().__init__({
            "mag": In(data.ArrayLayout(15, block_size)),
            "nonfinite": In(block_size),
            "amax": Out(15),
            "bad": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        level = [self.mag[i] for i in range(self.block_size)]
        n = 0
        while len(level) > 1:
            nxt = []
            for j in range(0, len(level) - 1, 2):
                s = Signal(15, name=f"max_l{n}_{j // 2}")
                a, b = level[j], level[j + 1]
                m.d.comb += s.eq(Mux(a >= b, a, b))
                nxt.append(s)
            if len(level) % 2:
                nxt.append(level[-1])
            level = nxt
            n += 1
        m.d.comb += [self.amax.eq(level[0]), self.bad.eq(self.nonfinite.any())]
        return m


class SharedExponent(wiring.Component):
    """Block exponent e = clamp(floor(log2 amax) - emax, -127, 127) and its E8M0 code.

    floor(log2 amax) is taken from the bits: exp - bias for a normal amax,
    msb(man) + 1 - bias - M for a subnormal one; amax = 0 clamps to e = -127.
    `scale` is e + 127, or 0xFF (E8M0 NaN) for a block containing NaN/Inf."""

    def __init__(self, fmt: InputFormat, emax: int):
        self.fmt = fmt
        self.emax = emax
        super().__init__({
            "amax": In(15),
            "bad": In(1),
            "e": Out(signed(9)),
            "scale": Out(8),
            "low": Out(1),  # e clamped at -127 from below (then v_max < 2^emax)
        })

    def elaborate(self, platform):
        m = Module()
        f = self.fmt
        exp = self.amax[f.mbits:15]
        man = self.amax[:f.mbits]
        # biased floor(log2 amax): exp for normals, msb(man) + 1 - M (<= 0) for subnormals
        eb = Signal(signed(12))
        with m.If(exp != 0):
            m.d.comb += eb.eq(exp)
        with m.Else():
            m.d.comb += eb.eq(-1000)  # zero: below any clamp
            for j in range(f.mbits):  # last assignment wins: the highest set bit
                with m.If(man[j]):
                    m.d.comb += eb.eq(j + 1 - f.mbits)
        raw = Signal(signed(12))
        m.d.comb += raw.eq(eb - (f.bias + self.emax))
        e = Mux(raw < -127, -127, Mux(raw > 127, 127, raw))
        m.d.comb += self.low.eq(raw < -127)
        m.d.comb += [
            self.e.eq(e),
            self.scale.eq(Mux(self.bad, 0xFF, (e + 127)[:8])),
        ]
        return m


# --------------------------------------------------------------------------------------
# Normalize
# --------------------------------------------------------------------------------------


class Normalize(wiring.Component):
    """Per lane: v = |x| * 2^-e as a truncated fixed-point value plus sticky bit, giving
    the error-LUT address (F fractional bits) and the exact index-LUT address (Fq bits).

    One barrel shifter per lane at Fmax = max(F, Fq) resolution: with the significand
    pre-shifted left by L = I + Fmax, floor(v * 2^Fmax) = (sig << L) >> R with
    R = e + bias + M + I - E_eff (>= 1 for every lane of a finite block; clamped to the
    shifter width, beyond which the lane is all sticky). Coarser addresses fold the
    dropped low bits into the sticky bit. NaN/Inf blocks get all-zero addresses
    (the golden model sets v = 0 there).

    with_max: one more lane fed by the block maximum (`amax_exp`, `amax_man`) gives
    `max_idx_addr`, the largest exact address of the block (the addresses are
    monotonic in |x|), without a max tree over the lanes.
    shift_cut: a register stage (enable `en`) between the shift-amount arithmetic and
    the shifter; latency = int(shift_cut)."""

    def __init__(self, fmt: InputFormat, block_size: int, int_bits: int, frac_bits: int,
                 idx_frac_bits: int, *, with_max: bool = False, shift_cut: bool = False):
        self.fmt = fmt
        self.block_size = block_size
        self.int_bits = int_bits
        self.frac_bits = frac_bits
        self.idx_frac_bits = idx_frac_bits
        self.with_max = with_max
        self.shift_cut = shift_cut
        self.latency = int(shift_cut)
        self.fmax = max(frac_bits, idx_frac_bits)
        self.err_addr_bits = int_bits + frac_bits + 1
        self.idx_addr_bits = int_bits + idx_frac_bits + 1
        ports = {
            "e": In(signed(9)),
            "bad": In(1),
            "exp": In(data.ArrayLayout(fmt.ebits, block_size)),
            "man": In(data.ArrayLayout(fmt.mbits, block_size)),
            "en": In(1),
            "err_addr": Out(data.ArrayLayout(self.err_addr_bits, block_size)),
            "idx_addr": Out(data.ArrayLayout(self.idx_addr_bits, block_size)),
        }
        if with_max:
            ports.update({"amax_exp": In(fmt.ebits), "amax_man": In(fmt.mbits),
                          "max_idx_addr": Out(self.idx_addr_bits)})
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        f = self.fmt
        lsh = self.int_bits + self.fmax
        wide_w = f.mbits + 1 + lsh
        tw = self.int_bits + self.fmax
        base = Signal(signed(12))
        m.d.comb += base.eq(self.e + (f.bias + f.mbits + self.int_bits))
        lanes = [(self.exp[i], self.man[i]) for i in range(self.block_size)]
        if self.with_max:
            lanes.append((self.amax_exp, self.amax_man))
        bad = self.bad
        if self.shift_cut:
            bad = delay(m, bad, 1, self.en, "norm_bad")
        for i, (exp, man) in enumerate(lanes):
            e_eff = Mux(exp == 0, 1, exp)
            sig = Signal(f.mbits + 1, name=f"sig{i}")
            m.d.comb += sig.eq(Cat(man, exp != 0))
            r_raw = Signal(signed(12), name=f"rsh_raw{i}")
            m.d.comb += r_raw.eq(base - e_eff)
            rsh = Signal(range(wide_w + 1), name=f"rsh{i}")
            m.d.comb += rsh.eq(Mux(r_raw < 0, 0, Mux(r_raw > wide_w, wide_w, r_raw)))
            if self.shift_cut:
                sig = delay(m, sig, 1, self.en, f"norm_sig{i}")
                rsh = delay(m, rsh, 1, self.en, f"norm_rsh{i}")
            wide = Signal(wide_w, name=f"wide{i}")
            m.d.comb += wide.eq(sig << lsh)
            t = Signal(tw, name=f"t{i}")
            m.d.comb += t.eq(wide >> rsh)
            sticky = Signal(name=f"sticky{i}")
            m.d.comb += sticky.eq(Cat(*[wide[j] & (rsh > j) for j in range(wide_w)]).any())
            if i == self.block_size:  # the block-max lane: exact address only
                ports = ((self.idx_frac_bits, self.max_idx_addr),)
            else:
                ports = ((self.frac_bits, self.err_addr[i]), (self.idx_frac_bits,
                                                              self.idx_addr[i]))
            for fb, port in ports:
                drop = self.fmax - fb
                st = sticky | _lsb_or(t, drop)
                m.d.comb += port.eq(Mux(bad, 0, Cat(st, t[drop:])))
        return m


# --------------------------------------------------------------------------------------
# LUTs, adder tree, argmin
# --------------------------------------------------------------------------------------


def _rom(m: Module, name: str, width: int, words: list[int], addrs: list[Value],
         ens: list[Value] | None = None) -> list[Value]:
    """A constant table with one read port per address: combinational, or (ens given)
    synchronous in the `sync` domain with read enable ens[i]. Emitted to Verilog as an
    array + `initial` block, which `semdialect.rtl.generate` rewrites into a
    combinational case module by default (rom_style 'logic'; a synchronous port becomes
    the case module + its data register)."""
    mem = memory.Memory(shape=unsigned(width), depth=len(words), init=words)
    m.submodules[name] = mem
    outs = []
    for i, a in enumerate(addrs):
        rp = mem.read_port(domain="comb" if ens is None else "sync")
        m.d.comb += rp.addr.eq(a)
        if ens is not None:
            m.d.comb += rp.en.eq(ens[i])
        outs.append(rp.data)
    return outs


class ErrorLut(wiring.Component):
    """ERR[d, a_i] >> L for every dialect d and lane i, straight from `LutSet.err_rom`
    (the L low bits of an entry depend on the address only, numerics §8.3: they are
    neither stored nor summed).

    One ROM of 2^(I+F+1) words of D*(W-L) bits (word a = ERR[:, a] >> L, dialect 0 in
    the low bits), read by B combinational ports."""

    def __init__(self, luts, block_size: int):
        self.luts = luts
        self.block_size = block_size
        self.num_dialects, n_addr = luts.err.shape
        self.addr_bits = luts.err_addr_bits
        assert n_addr == 1 << self.addr_bits
        self.width = luts.err_rom_width
        super().__init__({
            "addr": In(data.ArrayLayout(self.addr_bits, block_size)),
            "err": Out(data.ArrayLayout(data.ArrayLayout(self.width, self.num_dialects),
                                        block_size)),
        })

    def words(self) -> list[int]:
        err = self.luts.err_rom
        out = []
        for a in range(err.shape[1]):
            w = 0
            for d in range(err.shape[0]):
                w |= int(err[d, a]) << (d * self.width)
            out.append(w)
        return out

    def elaborate(self, platform):
        m = Module()
        outs = _rom(m, "err_rom", self.num_dialects * self.width, self.words(),
                    [self.addr[i] for i in range(self.block_size)])
        for i, o in enumerate(outs):
            m.d.comb += self.err[i].as_value().eq(o)
        return m


class DialectAdderTree(wiring.Component):
    """sum_i ERR[d, a_i] for every dialect: D binary adder trees over the B lanes.

    `cuts`: tree levels (0-based) after which a register is inserted (enable `en`);
    latency = len(cuts). Sums are exact (width W + ceil(log2 B))."""

    def __init__(self, num_dialects: int, width: int, block_size: int, cuts=()):
        self.num_dialects = num_dialects
        self.width = width
        self.block_size = block_size
        self.levels = tree_levels(block_size)
        self.sum_width = width + self.levels
        self.cuts = tuple(sorted(set(cuts)))
        assert all(0 <= c < self.levels for c in self.cuts)
        self.latency = len(self.cuts)
        super().__init__({
            "err": In(data.ArrayLayout(data.ArrayLayout(width, num_dialects), block_size)),
            "en": In(1),
            "sums": Out(data.ArrayLayout(self.sum_width, num_dialects)),
        })

    def elaborate(self, platform):
        m = Module()
        for d in range(self.num_dialects):
            level = [self.err[i][d] for i in range(self.block_size)]
            for lv in range(self.levels):
                nxt = []
                for j in range(0, len(level) - 1, 2):
                    nxt.append(level[j] + level[j + 1])
                if len(level) % 2:
                    nxt.append(level[-1])
                sigs = []
                for j, v in enumerate(nxt):
                    s = Signal(self.width + lv + 1, name=f"sum_d{d}_l{lv}_{j}")
                    m.d.comb += s.eq(v)
                    if lv in self.cuts:
                        s = delay(m, s, 1, self.en, f"sum_d{d}_l{lv}_{j}")
                    sigs.append(s)
                level = sigs
            m.d.comb += self.sums[d].eq(level[0])
        return m


class MaskedArgmin(wiring.Component):
    """argmin over the allowed dialects, ties to the lowest id (numerics §8.4).

    A binary tree of (sum, id, allowed) nodes; the left child always holds the lower ids,
    so `left wins unless right is allowed and strictly smaller (or left not allowed)`
    gives ties to the lowest id. An empty mask yields id 0 (the golden model rejects an
    empty mask; do not send one). `cuts` / `en` as in `DialectAdderTree`."""

    def __init__(self, num_dialects: int, sum_width: int, cuts=(), *,
                 id_bits: int | None = None):
        self.num_dialects = num_dialects
        self.sum_width = sum_width
        #: id_bits given: the candidates' ids are an input (`ids`, e.g. the global dialect
        #: ids of a class's slots in any order) and ties go to the lowest *id*, by one
        #: (sum, id) compare per node; else the ids are the positions 0..n-1
        self.with_ids = id_bits is not None
        self.id_bits = id_bits if self.with_ids else max(1, (num_dialects - 1).bit_length())
        self.levels = tree_levels(num_dialects)
        self.cuts = tuple(sorted(set(cuts)))
        assert all(0 <= c < self.levels for c in self.cuts)
        self.latency = len(self.cuts)
        ports = {
            "sums": In(data.ArrayLayout(sum_width, num_dialects)),
            "mask": In(num_dialects),
            "en": In(1),
            "dialect": Out(self.id_bits),
        }
        if self.with_ids:
            ports["ids"] = In(data.ArrayLayout(self.id_bits, num_dialects))
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        level = [(self.sums[d], self.ids[d] if self.with_ids else Const(d, self.id_bits),
                  self.mask[d]) for d in range(self.num_dialects)]
        for lv in range(self.levels):
            nxt = []
            for j in range(0, len(level) - 1, 2):
                (va, ia, oa), (vb, ib, ob) = level[j], level[j + 1]
                if self.with_ids:  # (sum, id) lexicographic: ties to the lowest id
                    take_b = ob & (~oa | (Cat(ib, vb) < Cat(ia, va)))
                else:  # left holds the lower ids: ties stay left
                    take_b = ob & (~oa | (vb < va))
                v = Signal(self.sum_width, name=f"am_v_l{lv}_{j // 2}")
                i = Signal(self.id_bits, name=f"am_i_l{lv}_{j // 2}")
                o = Signal(name=f"am_o_l{lv}_{j // 2}")
                m.d.comb += [v.eq(Mux(take_b, vb, va)), i.eq(Mux(take_b, ib, ia)),
                             o.eq(oa | ob)]
                nxt.append((v, i, o))
            if len(level) % 2:
                nxt.append(level[-1])
            if lv in self.cuts:
                nxt = [tuple(delay(m, x, 1, self.en, f"am_l{lv}_{j}_{k}")
                             for k, x in enumerate(node)) for j, node in enumerate(nxt)]
            level = nxt
        m.d.comb += self.dialect.eq(level[0][1])
        return m


INDEX_MODES = ("rom", "compare")


def index_thresholds(idx_table) -> list[list[int]]:
    """Per dialect the 7 address thresholds of the index LUT: thr[d][k] = the smallest
    exact address whose index exceeds k (2^addr_bits when none does). Requires every
    row IDX[d, :] to be non-decreasing in the address (true for RNE onto increasing
    magnitudes); then IDX[d, a] = #{k : a >= thr[d][k]} exactly, which is checked here."""
    tab = np.asarray(idx_table)
    d_count, n_addr = tab.shape
    n_idx = 8
    out = []
    for d in range(d_count):
        row = tab[d]
        if np.any(np.diff(row.astype(int)) < 0) or row.max() >= n_idx:
            raise ValueError(f"index LUT row {d} is not monotonic: no comparator form")
        thr = [int(np.argmax(row > k)) if np.any(row > k) else n_addr for k in range(n_idx - 1)]
        rebuilt = (np.arange(n_addr)[:, None] >= np.array(thr)[None, :]).sum(1)
        assert np.array_equal(rebuilt, row), d
        out.append(thr)
    return out


def threshold_words(thresholds, addr_bits: int, id_bits: int) -> list[int]:
    """The threshold ROM of the comparator index stage: per dialect id (padded to
    2^id_bits with 'never' rows) the 7 thresholds of `addr_bits + 1` bits, threshold k
    at bits k * (addr_bits + 1)."""
    tw = addr_bits + 1
    never = [1 << addr_bits] * 7
    rows = list(thresholds) + [never] * ((1 << id_bits) - len(thresholds))
    return [sum(t << (k * tw) for k, t in enumerate(r)) for r in rows]


def threshold_columns(words: list[int], width: int) -> tuple[list[int],
                                                             list[tuple[int | None, int]]]:
    """The bits of the threshold word the `thr` register holds: (cols, src) with cols =
    the word bits that vary over the ROM's rows, one per distinct column (two bits equal
    in every row are one register bit), and src[b] = (index into cols, 0) for a varying
    bit b, (None, value) for a bit that is the same in every row. Complementary columns
    are two register bits: an inverter between a register and a comparator's carry
    chain is a LUT4 on the index stage's critical path (ECP5, measured)."""
    cols: list[int] = []
    seen: dict[tuple[int, ...], int] = {}
    src: list[tuple[int | None, int]] = []
    for b in range(width):
        col = tuple((w >> b) & 1 for w in words)
        if len(set(col)) == 1:
            src.append((None, col[0]))
            continue
        if col not in seen:
            seen[col] = len(cols)
            cols.append(b)
        src.append((seen[col], 0))
    return cols, src


def thr_register_bits(idx_table, groups: int, *, fold_bad: bool = False) -> int:
    """Flip-flops of the index stage's `thr` cut, per-block part: the distinct varying
    threshold bits + `bad`, per replica (the lanes' addresses and signs aside).
    fold_bad (the `cmp` cut's form): a NaN/Inf block reads the 'never' thresholds
    instead, so that row counts among the words and `bad` needs no register bit."""
    n_dialects, n_addr = np.asarray(idx_table).shape
    addr_bits = n_addr.bit_length() - 1
    id_bits = max(1, (n_dialects - 1).bit_length())
    words = threshold_words(index_thresholds(idx_table), addr_bits, id_bits)
    if fold_bad:
        words = words + [never_word(addr_bits)]
    return groups * (len(threshold_columns(words, 7 * (addr_bits + 1))[0]) + (not fold_bad))


def never_word(addr_bits: int) -> int:
    """The threshold word no exact address reaches (all 7 thresholds 2^addr_bits): the
    index 0 of every lane."""
    tw = addr_bits + 1
    return sum((1 << addr_bits) << (k * tw) for k in range(7))


class IndexLut(wiring.Component):
    """Element codes: sign << 3 | IDX[dialect, aq_i] from `LutSet.idx` (numerics §8.5-6);
    all codes 0 for a NaN/Inf block.

    mode 'rom': one ROM of D * 2^(I+Fq+1) 3-bit words at address dialect << (I+Fq+1) | aq,
    read by B combinational ports.
    mode 'compare': the same table in comparator form (`index_thresholds`): one small ROM
    read per block gives the selected dialect's 7 address thresholds, and every lane
    compares its exact address against them (a thermometer code, converted to the
    3-bit index). Bit-identical to 'rom' for every (dialect, address); smaller because
    the per-lane logic no longer depends on D."""

    #: most replicas of the registered threshold word (`thr_groups`): see `_replicas`
    MAX_THR_GROUPS = MAX_REPLICAS

    def __init__(self, idx_table, block_size: int, mode: str = "rom", *, thr_cut: bool = False,
                 thr_groups: int = 1, cmp_cut: bool = False):
        if mode not in INDEX_MODES:
            raise ValueError(f"index mode must be one of {INDEX_MODES}, got {mode!r}")
        self.table = idx_table
        self.block_size = block_size
        self.mode = mode
        self.num_dialects, n_addr = idx_table.shape
        self.addr_bits = n_addr.bit_length() - 1
        assert n_addr == 1 << self.addr_bits
        self.id_bits = max(1, (self.num_dialects - 1).bit_length())
        self.thresholds = index_thresholds(idx_table) if mode == "compare" else None
        if thr_cut and mode != "compare":
            raise ValueError("thr_cut needs the comparator index stage")
        if cmp_cut and mode != "compare":
            raise ValueError("cmp_cut needs the comparator index stage")
        self.thr_cut = thr_cut
        #: a register stage after the per-lane comparators (the 7 thermometer bits and
        #: the sign of every lane); a NaN/Inf block then reads the 'never' thresholds
        #: and a zero sign (`bad` folded in before the comparators, none after them)
        self.cmp_cut = cmp_cut
        if not (isinstance(thr_groups, int) and 1 <= thr_groups <= self.MAX_THR_GROUPS
                and block_size % thr_groups == 0):
            raise ValueError(f"thr_groups must divide the block size and be in "
                             f"1..{self.MAX_THR_GROUPS}, got {thr_groups!r}")
        if thr_groups > 1 and not thr_cut:
            raise ValueError("thr_groups needs the thr cut (the replicas are registers)")
        self.thr_groups = thr_groups
        self.latency = int(thr_cut) + int(cmp_cut)
        super().__init__({
            "dialect": In(self.id_bits),
            "idx_addr": In(data.ArrayLayout(self.addr_bits, block_size)),
            "sign": In(block_size),
            "bad": In(1),
            "en": In(1),
            "codes": Out(data.ArrayLayout(4, block_size)),
        })

    def elaborate(self, platform):
        m = Module()
        idx_addr, sign, bad = self.idx_addr, self.sign, self.bad
        if self.mode == "rom":
            words = [int(v) for v in self.table.reshape(-1)]
            words += [0] * ((1 << self.id_bits) * (1 << self.addr_bits) - len(words))
            outs = _rom(m, "idx_rom", 3, words,
                        [Cat(self.idx_addr[i], self.dialect) for i in range(self.block_size)])
        else:
            tw = self.addr_bits + 1  # a threshold of 2^addr_bits means "never"
            (word,) = _rom(m, "thr_rom", 7 * tw, self.thr_words(), [self.dialect])
            if self.cmp_cut:  # bad folded in: no lane passes a threshold, no sign
                word = Mux(bad, never_word(self.addr_bits), word)
                sign = sign & ~bad.replicate(self.block_size)
            if self.thr_cut:  # register the per-block thresholds (and the lanes with them)
                # only the threshold bits that differ between dialects, each once: the
                # rest are constants (`thr_columns`)
                cols, src = self.thr_columns()
                regs = self._replicas(m, Cat(*[word[b] for b in cols],
                                             *([] if self.cmp_cut else [bad])))
                per_block = [Cat(*[Const(v, 1) if c is None else r[c] for c, v in src],
                                 Const(0, 1) if self.cmp_cut else r[len(cols)])
                             for r in regs]
                idx_addr = data.View(self.idx_addr.shape(),
                                     delay(m, self.idx_addr.as_value(), 1, self.en, "thr_addr"))
                sign = delay(m, sign, 1, self.en, "thr_sign")
            else:
                per_block = [Cat(word, Const(0, 1) if self.cmp_cut else bad)]
            lanes_per = self.block_size // len(per_block)
            ups, bads = [], []
            for i in range(self.block_size):
                pb = per_block[i // lanes_per]
                thr = [pb[k * tw:(k + 1) * tw] for k in range(7)]
                bads.append(pb[7 * tw])
                a = idx_addr[i]
                up = Signal(7, name=f"thermo{i}")
                # a >= thr as the inverted borrow of a < thr: Yosys maps `>=` as a
                # carry chain plus an equality LUT tree and an inverter LUT per operand
                # bit; `~(a < thr)` is the chain alone (synth_ecp5, measured)
                m.d.comb += [up[k].eq(~(a < thr[k])) for k in range(7)]
                ups.append(up)
            if self.cmp_cut:
                ups = [delay(m, u, 1, self.en, f"cmp_up{i}") for i, u in enumerate(ups)]
                sign = delay(m, sign, 1, self.en, "cmp_sign")
            outs = []
            for i, up in enumerate(ups):
                idx = Signal(3, name=f"idx{i}")
                m.d.comb += idx.eq(Cat(
                    (up[0] & ~up[1]) | (up[2] & ~up[3]) | (up[4] & ~up[5]) | up[6],
                    (up[1] & ~up[3]) | up[5],
                    up[3]))
                outs.append(idx)
            for i, o in enumerate(outs):
                if self.cmp_cut:
                    m.d.comb += self.codes[i].eq(Cat(o, sign[i]))
                else:
                    m.d.comb += self.codes[i].eq(Mux(bads[i], 0, Cat(o, sign[i])))
            return m
        for i, o in enumerate(outs):
            m.d.comb += self.codes[i].eq(Mux(bad, 0, Cat(o, sign[i])))
        return m

    def thr_words(self) -> list[int]:
        """The threshold ROM (`threshold_words`)."""
        return threshold_words(self.thresholds, self.addr_bits, self.id_bits)

    def thr_columns(self) -> tuple[list[int], list[tuple[int | None, int]]]:
        """The bits of the threshold word the `thr` register holds (`threshold_columns`;
        with the `cmp` cut the 'never' word of a NaN/Inf block among the words)."""
        words = self.thr_words() + ([never_word(self.addr_bits)] if self.cmp_cut else [])
        return threshold_columns(words, 7 * (self.addr_bits + 1))

    def thr_register_bits(self) -> int:
        """Flip-flops of the `thr` cut's per-block part (`thr_register_bits`)."""
        return thr_register_bits(self.table, self.thr_groups, fold_bad=self.cmp_cut)

    def _replicas(self, m, value: Value) -> list[Value]:
        """`value` (the per-block thresholds and `bad`) registered once per group of
        block_size / thr_groups lanes (`register_replicas`: kept apart from synthesis's
        flip-flop merging by reset and initial value, not polarity: they feed carry
        chains)."""
        return register_replicas(m, value, self.thr_groups, self.en, "thr_word",
                                 apart="reset")


# --------------------------------------------------------------------------------------
# Baseline stages
# --------------------------------------------------------------------------------------


class E2M1Round(wiring.Component):
    """MXFP4 elements computed arithmetically (no table): RNE of v in [0, 8) onto E2M1,
    saturating at 6, from the exact address floor(v * 4) << 1 | sticky.

    Minifloat identity (as golden/elements.py): with E = max(floor(log2 v), 0) and
    q = RNE(v * 2^(1 - E)), code = (E << 1) + q, saturated at 7. Codes are
    sign << 3 | magnitude code; 0 for a NaN/Inf block."""

    ADDR_BITS = 3 + 2 + 1  # I = 3, Fq = 2 (every E2M1 rounding boundary is a multiple of 1/4)

    def __init__(self, block_size: int):
        self.block_size = block_size
        super().__init__({
            "idx_addr": In(data.ArrayLayout(self.ADDR_BITS, block_size)),
            "sign": In(block_size),
            "bad": In(1),
            "codes": Out(data.ArrayLayout(4, block_size)),
        })

    def elaborate(self, platform):
        m = Module()
        for i in range(self.block_size):
            a = self.idx_addr[i]
            st, t = a[0], a[1:]  # t = floor(4 v), 5 bits
            mag = Signal(4, name=f"mag{i}")
            # binade E: 0 for v < 2 (t < 8), 1 for v < 4 (t < 16), 2 for v < 8
            cand = []
            for ebin in range(3):
                drop = ebin + 1  # bits of t below the q LSB
                q0 = t >> drop
                half = t[drop - 1]
                rest = _lsb_or(t, drop - 1) | st
                up = half & (rest | q0[0])
                cand.append((ebin << 1) + q0 + up)
            with m.If(t < 8):
                m.d.comb += mag.eq(cand[0])
            with m.Elif(t < 16):
                m.d.comb += mag.eq(cand[1])
            with m.Else():
                m.d.comb += mag.eq(cand[2])
            sat = Mux(mag > 7, 7, mag)
            m.d.comb += self.codes[i].eq(Mux(self.bad, 0, Cat(sat[:3], self.sign[i])))
        return m


class BlockMaxTable(wiring.Component):
    """A per-block table lookup on the block's largest exact address (`max_idx_addr` of
    `Normalize(with_max=True)`): BlockDialect's stage-1 pair (numerics §9) or the
    two-level selector's class. The table is tabulated from the golden selector by the
    unit (one entry per exact address)."""

    def __init__(self, table, addr_bits: int):
        self.table = [int(p) for p in table]
        self.addr_bits = addr_bits
        assert len(self.table) == 1 << addr_bits
        self.out_bits = max(1, max(self.table).bit_length())
        super().__init__({"max_addr": In(addr_bits), "out": Out(self.out_bits)})

    def elaborate(self, platform):
        m = Module()
        (o,) = _rom(m, "max_table", self.out_bits, self.table, [self.max_addr])
        m.d.comb += self.out.eq(o)
        return m


def beneficial_columns(ben_table, pair_bits: int) -> tuple[list[int], list[list[int | None]]]:
    """The beneficial-range table (`beneficial_table`, (n_pairs, 2, n_addr) bool) as the
    distinct non-zero columns a lane computes from its own address (`BeneficialColumns`)
    and, for every pair value p (0 .. 2^pair_bits - 1) and member j, which column is
    that member's beneficial bit (None: never beneficial, a constant 0).

    Returns (words, src): words[a] = the column bits at lane address a (column c in
    bit c); src[p][j] = column index or None."""
    ben = np.asarray(ben_table, dtype=bool)
    n_pairs, _, n_addr = ben.shape
    cols: list[tuple[bool, ...]] = []
    src: list[list[int | None]] = []
    for p in range(1 << pair_bits):
        row: list[int | None] = []
        for j in range(2):
            col = tuple(bool(b) for b in ben[p, j]) if p < n_pairs else (False,) * n_addr
            if not any(col):
                row.append(None)
                continue
            if col not in cols:
                cols.append(col)
            row.append(cols.index(col))
        src.append(row)
    words = [sum(int(c[a]) << k for k, c in enumerate(cols)) for a in range(n_addr)]
    return words, src


class BeneficialColumns(wiring.Component):
    """BlockDialect stage 2, the per-lane part (numerics §9): every lane looks up, from
    its own exact address alone, the beneficial bit of every pair member
    (`beneficial_columns`: the distinct columns of the golden `beneficial_table`, one
    ROM over the lane address). It needs no per-block value, so it runs beside the pair
    ROM, in the same stage; `BeneficialCount` then selects the pair's two bits."""

    def __init__(self, ben_table, block_size: int, pair_bits: int):
        self.ben = ben_table
        self.block_size = block_size
        n_addr = np.asarray(ben_table).shape[2]
        self.addr_bits = n_addr.bit_length() - 1
        self.words, self.src = beneficial_columns(ben_table, pair_bits)
        self.n_cols = max(1, max(self.words).bit_length())
        super().__init__({
            "idx_addr": In(data.ArrayLayout(self.addr_bits, block_size)),
            "cols": Out(data.ArrayLayout(self.n_cols, block_size)),
        })

    @property
    def rom_bits(self) -> int:
        return len(self.words) * self.n_cols

    def elaborate(self, platform):
        m = Module()
        outs = _rom(m, "ben_col_rom", self.n_cols, self.words,
                    [self.idx_addr[i] for i in range(self.block_size)])
        for i, o in enumerate(outs):
            m.d.comb += self.cols[i].eq(o)
        return m


def _select(bits: list[Value], sel: Value) -> Value:
    """bits[sel] as a binary 2:1 multiplexer tree (select bit 0 first)."""
    level = list(bits)
    for k in range(len(sel)):
        level = [Mux(sel[k], level[j + 1], level[j]) for j in range(0, len(level), 2)]
    return level[0]


class BeneficialCount(wiring.Component):
    """BlockDialect stage 2, the per-block part (numerics §9): from every lane's
    beneficial columns (`BeneficialColumns`) select the block pair's two members' bits
    (a 2^pair_bits : 1 multiplexer per member), count the lanes in each member's
    beneficial range, pick 2j + (count_odd > count_even); dialect 0 for a NaN/Inf block.

    groups: the pair comes as that many equal copies (`register_replicas` of the unit's
    `pair` cut), copy g driving lanes g * B/groups ..; rom_cut: a register stage after
    the selected bits; cuts: levels of the two half-block count trees (`DialectAdderTree`
    over block_size / 2 lanes, see `elaborate`) after which a register stage goes;
    enable `en`; latency = rom_cut + len(cuts)."""

    def __init__(self, ben_table, block_size: int, pair_bits: int, *, rom_cut: bool = False,
                 cuts=(), groups: int = 1):
        # ben_table: (n_pairs, 2, n_addr) bool
        self.ben = ben_table
        self.block_size = block_size
        self.pair_bits = pair_bits
        self.words, self.src = beneficial_columns(ben_table, pair_bits)
        self.n_cols = max(1, max(self.words).bit_length())
        self.cnt_bits = block_size.bit_length()
        if not (isinstance(groups, int) and groups >= 1 and block_size % groups == 0):
            raise ValueError(f"pair groups must divide the block size, got {groups!r}")
        self.groups = groups
        self.rom_cut = rom_cut
        self.cuts = tuple(cuts)
        self.latency = int(rom_cut) + len(self.cuts)
        super().__init__({
            "pair": In(data.ArrayLayout(pair_bits, groups)),
            "cols": In(data.ArrayLayout(self.n_cols, block_size)),
            "bad": In(1),
            "en": In(1),
            "dialect": Out(pair_bits + 1),
        })

    def elaborate(self, platform):
        m = Module()
        per = self.block_size // self.groups
        hits = []
        for i in range(self.block_size):
            pair, col = self.pair[i // per], self.cols[i]
            for j in range(2):
                bits = [Const(0, 1) if row[j] is None else col[row[j]] for row in self.src]
                h = Signal(name=f"ben{i}_{j}")
                m.d.comb += h.eq(_select(bits, pair))
                hits.append(h)
        hits = Cat(*hits)
        if self.rom_cut:
            hits = delay(m, hits, 1, self.en, "ben_hits")
        # count_odd > count_even without two counts and a compare after them: lane i of
        # the left half adds h1 + (1 - h0), of the right half h0 + (1 - h1) (2-bit
        # leaves), so L = c1L - c0L + B/2, R = c0R - c1R + B/2 and c1 > c0 <=> R < L:
        # one B/2-lane tree per half, then a single carry-chain compare
        half = self.block_size // 2
        m.submodules.popcount = pc = DialectAdderTree(2, 2, half, self.cuts)
        for i in range(self.block_size):
            h0, h1 = hits[2 * i], hits[2 * i + 1]
            up, dn = (h1, h0) if i < half else (h0, h1)
            m.d.comb += pc.err[i % half][i // half].eq(Cat(up ^ ~dn, up & ~dn))
        m.d.comb += pc.en.eq(self.en)
        pair = delay(m, self.pair[0], self.latency, self.en, "ben_pair")
        bad = delay(m, self.bad, self.latency, self.en, "ben_bad")
        m.d.comb += self.dialect.eq(Mux(bad, 0, Cat(pc.sums[1] < pc.sums[0], pair)))
        return m


# --------------------------------------------------------------------------------------
# Two-level selection (numerics §15)
# --------------------------------------------------------------------------------------


def class_table(tables) -> list[int]:
    """§15.1 class of every exact block-max address (I + Fq + 1 bits): the golden
    `block_class` at the address's representative value (a point t/2^Fq, or an interval
    midpoint for a sticky address). Exact because the class reads vmax at a resolution
    of 2^(emax - b) >= 2^-Fq (checked)."""
    from semdialect.golden.two_level import block_class

    book, luts = tables.book, tables.luts
    fq = luts.idx_frac_bits
    if book.class_bits - book.emax > fq:
        raise ValueError(f"class resolution 2^{book.emax - book.class_bits} is finer than "
                         f"the exact address (2^-{fq}): no class table")
    n = 2 << (book.int_bits + fq)
    a = np.arange(n)
    v = np.ldexp((a >> 1) + 0.5 * (a & 1), -fq)
    return [int(c) for c in block_class(book, v)]


class ClassSelect(wiring.Component):
    """The block's class from its largest exact address (table `class_table`), then the
    mask ∩ class rule (§15.3): `nonempty[c]` = class c has an allowed candidate; the
    effective class is the smallest class >= c with one, else the largest below (two
    priority encoders). `allowed[j]` = candidate slot j of the effective class may be
    chosen. rom_cut: a register stage (enable `en`) after the class ROM; latency =
    int(rom_cut)."""

    def __init__(self, tables, *, rom_cut: bool = False, slot_ids=None, fmt=None):
        self.tables = tables
        self.rom_cut = rom_cut
        self.latency = int(rom_cut)
        self.table = class_table(tables)
        #: fmt given: the raw class comes straight from the block max's bit pattern
        #: (`amax`, SharedExponent's `low` and `bad`) instead of the class ROM on the
        #: block-max address: §15.1 for an unclamped exponent is v_max in [2^emax,
        #: 2^(emax+1)), whose b bits below the leading bit are the b significand bits
        #: below amax's leading bit; a clamped (low) exponent, an all-zero or a NaN/Inf
        #: block gives class 0. No Normalize lane, no ROM; checked against the golden
        #: block_class on every finite amax pattern of bf16 and fp16 (exhaustive
        #: simulation, tests/rtl/test_unit_two_level.py)
        self.fmt = fmt
        #: slot_ids: the class members in the slot order of `allowed` (default: ascending,
        #: `class_ids`; `slot_assignment` permutes them), each row a permutation of its class
        rows = tables.class_ids if slot_ids is None else slot_ids
        self.ids = [[int(d) for d in row] for row in rows]
        assert all(sorted(r) == sorted(int(d) for d in c)
                   for r, c in zip(self.ids, tables.class_ids, strict=True))
        self.num_classes = len(self.ids)
        self.k = len(self.ids[0])
        self.class_bits = max(1, (self.num_classes - 1).bit_length())
        self.addr_bits = len(self.table).bit_length() - 1
        self.num_dialects = tables.book.num_dialects
        ports = {"mask": In(self.num_dialects), "en": In(1), "cls": Out(self.class_bits),
                 "allowed": Out(self.k)}
        if fmt is None:
            ports["max_addr"] = In(self.addr_bits)
        else:
            if tables.book.class_bits > fmt.mbits:
                raise ValueError("class bits exceed the input mantissa: no amax class rule")
            ports.update({"amax": In(15), "low": In(1), "bad": In(1)})
        super().__init__(ports)

    def raw_class(self, m) -> Value:
        """The §15.1 class (before the mask) from amax (fmt mode)."""
        f, b = self.fmt, self.tables.book.class_bits
        man, exp = self.amax[:f.mbits], self.amax[f.mbits:15]
        raw = Signal(self.class_bits, name="cls_from_amax")
        if b == 0:
            return Const(0, self.class_bits)
        bits = Signal(b, name="cls_bits")
        with m.If(exp != 0):  # normal: the hidden bit leads
            m.d.comb += bits.eq(man[f.mbits - b:])
        with m.Else():  # subnormal: the b bits below the highest set mantissa bit
            for p in range(f.mbits):  # last assignment wins: the highest set bit
                with m.If(man[p]):
                    m.d.comb += bits.eq((Cat(Const(0, b), man) >> p)[:b])
        m.d.comb += raw.eq(Mux(self.bad | self.low | (self.amax == 0), 0, bits))
        return raw

    def elaborate(self, platform):
        m = Module()
        n = self.num_classes
        if self.fmt is None:
            (raw,) = _rom(m, "class_rom", self.class_bits, self.table, [self.max_addr])
        else:
            raw = self.raw_class(m)
        nonempty = Signal(n)
        m.d.comb += [nonempty[c].eq(Cat(*[self.mask[d] for d in self.ids[c]]).any())
                     for c in range(n)]
        mask = self.mask
        if self.rom_cut:  # register the raw class, the class-nonempty bits and the mask
            raw = delay(m, raw, 1, self.en, "cls_raw")
            nonempty = delay(m, nonempty, 1, self.en, "cls_nonempty")
            mask = delay(m, mask, 1, self.en, "cls_mask")
        up, down = Signal(self.class_bits), Signal(self.class_bits)
        has_up = Signal()
        for c in reversed(range(n)):  # last assignment wins: the lowest c >= raw
            with m.If(nonempty[c] & (raw <= c) if c < n - 1 else nonempty[c]):
                m.d.comb += [up.eq(c), has_up.eq(1)]
        for c in range(n - 1):  # the highest c < raw (raw > n - 1 never holds)
            with m.If(nonempty[c] & (raw > c)):
                m.d.comb += down.eq(c)
        m.d.comb += self.cls.eq(Mux(has_up, up, down))
        for j in range(self.k):
            col = Array([mask[self.ids[c][j]] for c in range(n)])
            m.d.comb += self.allowed[j].eq(col[self.cls])
        return m


class ClassErrorLut(wiring.Component):
    """Per lane the K candidates' errors of the block's class: one ROM of N * 2^A words of
    K * (W-L) bits, word c << A | a = `TwoLevelTables.class_rom_rows[c << A | a]` (ERR >> L,
    numerics §8.3; slot 0 in the low bits), read by B ports at (class, lane address).

    sync: the read ports are synchronous (`err` is the word at the address of the last
    clock edge with en[i] high, lane i): a pipeline register of its own, the form FPGA
    flows put into block RAM (ECP5, semdialect-32c8x8: N * 2^A = 1024 words of 8 x 6 =
    48 bits, 3 DP16KD of 1024 x 18 per lane, 96 at B = 32; 4 and 128 before §8.3)."""

    def __init__(self, tables, block_size: int, sync: bool = False):
        self.tables = tables
        self.block_size = block_size
        self.sync = sync
        self.rows = tables.class_rom_rows
        self.k = tables.k
        self.width = tables.luts.err_rom_width
        self.addr_bits = tables.luts.err_addr_bits
        self.class_bits = max(1, (tables.num_classes - 1).bit_length())
        sig = {
            "cls": In(self.class_bits),
            "addr": In(data.ArrayLayout(self.addr_bits, block_size)),
            "err": Out(data.ArrayLayout(data.ArrayLayout(self.width, self.k), block_size)),
        }
        if sync:
            sig["en"] = In(block_size)
        super().__init__(sig)

    def words(self) -> list[int]:
        out = []
        for row in self.rows:
            w = 0
            for j, e in enumerate(row):
                w |= int(e) << (j * self.width)
            out.append(w)
        out += [0] * ((1 << (self.class_bits + self.addr_bits)) - len(out))
        return out

    def elaborate(self, platform):
        m = Module()
        # a synchronous ROM is named for block RAM (`romstyle.BLOCK_RAM_SUFFIX`)
        outs = _rom(m, "class_err" + (BLOCK_RAM_SUFFIX if self.sync else "_rom"),
                    self.k * self.width, self.words(),
                    [Cat(self.addr[i], self.cls) for i in range(self.block_size)],
                    ens=list(self.en) if self.sync else None)
        for i, o in enumerate(outs):
            m.d.comb += self.err[i].as_value().eq(o)
        return m


class SlotDialect(wiring.Component):
    """The global dialect id of candidate slot j of class c (`class_ids[c, j]`)."""

    def __init__(self, class_ids, id_bits: int):
        self.ids = [[int(d) for d in row] for row in class_ids]
        n, k = len(self.ids), len(self.ids[0])
        self.class_bits = max(1, (n - 1).bit_length())
        self.slot_bits = max(1, (k - 1).bit_length())
        super().__init__({"cls": In(self.class_bits), "slot": In(self.slot_bits),
                          "dialect": Out(id_bits)})
        self.id_bits = id_bits

    def elaborate(self, platform):
        m = Module()
        k_pad = 1 << self.slot_bits
        words = []
        for c in range(1 << self.class_bits):
            row = self.ids[c] if c < len(self.ids) else []
            words += row + [0] * (k_pad - len(row))
        (o,) = _rom(m, "slot_rom", self.id_bits, words, [Cat(self.slot, self.cls)])
        m.d.comb += self.dialect.eq(o)
        return m


def slot_assignment(class_ids) -> tuple[list[list[int]], list[list[int]], list[list[int]]]:
    """Slot order of the K candidates per class for `ClassSlotMux`: each class's members go
    to distinct slots so that every slot sees few distinct dialects over all classes (a
    dialect keeps the slot it already has in an earlier class, else takes slot d mod K
    if free, else the free slot with the fewest candidates; deterministic). Returns
    (cand, slot_ids, sel): cand[j] = the dialects slot j can hold (its mux inputs),
    slot_ids[c][j] = the dialect in slot j of class c, sel[c][j] = its position in
    cand[j]. Each row of slot_ids is a permutation of class_ids[c] (checked)."""
    ids = [[int(d) for d in row] for row in class_ids]
    k = len(ids[0])
    cand: list[list[int]] = [[] for _ in range(k)]
    slot_ids, sel = [], []
    for row in ids:
        free = set(range(k))
        placed = {}
        for d in sorted(row, key=lambda d: (-sum(d in cs for cs in cand), d)):
            opts = sorted(j for j in free if d in cand[j])
            if not opts:
                pref = d % k
                opts = [pref] if pref in free else sorted(free, key=lambda j: (len(cand[j]), j))
            j = opts[0]
            if d not in cand[j]:
                cand[j].append(d)
            placed[j] = d
            free.discard(j)
        srow = [placed[j] for j in range(k)]
        assert sorted(srow) == sorted(row)
        slot_ids.append(srow)
        sel.append([cand[j].index(d) for j, d in enumerate(srow)])
    return cand, slot_ids, sel


def slot_onehot_words(cand, sel, class_bits: int) -> tuple[list[int], list[int], int]:
    """The one-hot form of the per-block slot selects (`ClassSlotMux(onehot_groups=G)`):
    for every class c (padded to 2^class_bits words, the pad all zeros: never read), the
    concatenation over the slots j with more than one candidate of a |cand[j]|-bit word
    with bit sel[c][j] set. Returns (words, offsets, width): offsets[j] = where slot j's
    bits start (-1 for a single-candidate slot, which needs no select), width = the
    word's width (at least 1)."""
    offsets, off = [], 0
    for c in cand:
        if len(c) > 1:
            offsets.append(off)
            off += len(c)
        else:
            offsets.append(-1)
    words = []
    for c in range(1 << class_bits):
        w = 0
        if c < len(sel):
            for j, o in enumerate(offsets):
                if o >= 0:
                    w |= 1 << (o + sel[c][j])
        words.append(w)
    return words, offsets, max(1, off)


class LaneSlotMux(wiring.Component):
    """One lane's K candidate errors from its §8 error ROM word: slot j is the AND-OR of
    its candidates' entries with the slot's one-hot select (`slot_onehot_words`), two
    LUT4 levels for up to 8 candidates, against three for a binary 5:1 mux. A
    component of its own so that the ECP5 flow can map it as one scope
    (`synth.ecp5_flow(keep_hierarchy=...)`, the unit's `synth_scopes`)."""

    def __init__(self, cand, pos, width: int, word_bits: int, offsets, sel_width: int):
        self.cand = [list(c) for c in cand]
        self.pos = dict(pos)
        self.width = width
        self.k = len(self.cand)
        self.offsets = list(offsets)  # `slot_onehot_words`
        super().__init__({
            "word": In(word_bits),
            "onehot": In(sel_width),
            "err": Out(data.ArrayLayout(width, self.k)),
        })

    def elaborate(self, platform):
        m = Module()
        w = self.width
        for j, cs in enumerate(self.cand):
            ins = [self.word[self.pos[d] * w:(self.pos[d] + 1) * w] for d in cs]
            if len(ins) == 1:
                m.d.comb += self.err[j].eq(ins[0])
                continue
            o = self.offsets[j]
            terms = [v & self.onehot[o + k].replicate(w) for k, v in enumerate(ins)]
            acc = terms[0]
            for t in terms[1:]:
                acc = acc | t
            m.d.comb += self.err[j].eq(acc)
        return m


class ClassSlotMux(wiring.Component):
    """Per lane the K candidates' errors of the block's class, in the slot order of
    `slot_assignment`: one §8 error ROM per lane (`LutSet.err_rom` of every dialect some slot
    can hold, I+F+1 address bits: the exhaustive engine's ROM, no class bits in the
    address), then per slot a small mux over that slot's candidates, selected per block
    from the class. Same values as `ClassErrorLut` up to the slot order:
    err[i][j] = ERR[slot_ids[cls][j], a_i] >> L. Measured (Yosys generic, semdialect-32c8x8,
    F = 3, W = 8): 5,974 transistors per lane against 7,260 for the (class, address) ROM
    (docs/architecture.md, "Area").

    onehot_groups=None: the selects come from `cls` (a small table, binary selects, a
    2^s:1 mux per slot). onehot_groups=G: the unit supplies the one-hot selects
    (`slot_onehot_words` of the class) already registered once per group of B / G lanes
    (input `onehot`, group g drives lanes g*B/G ...), and each lane's AND-OR mux is a
    `LaneSlotMux` (issue #10: the class fan-out and the mux depth of the `lut` stage)."""

    def __init__(self, tables, block_size: int, onehot_groups: int | None = None,
                 addr_copies: int = 1):
        self.tables = tables
        self.block_size = block_size
        self.luts = tables.luts
        self.k = tables.k
        self.width = tables.luts.err_rom_width
        self.addr_bits = tables.luts.err_addr_bits
        self.num_classes = tables.num_classes
        self.class_bits = max(1, (self.num_classes - 1).bit_length())
        self.cand, self.slot_ids, self.sel = slot_assignment(tables.class_ids)
        self.used = sorted({d for cs in self.cand for d in cs})
        self.sel_bits = [max(1, (len(c) - 1).bit_length()) for c in self.cand]
        self.onehot_groups = onehot_groups
        self.onehot_words, self.onehot_offsets, self.onehot_width = slot_onehot_words(
            self.cand, self.sel, self.class_bits)
        #: addr_copies A > 1: `addr` holds A copies of every lane's address (lane-major:
        #: entry i*A + c), and the error ROM is split by slot groups (slots c*K/A ...),
        #: sub-ROM c read on copy c, so each address register drives a quarter of the
        #: lane's ROM cone (issue #10: one register to the whole cone measured 5.7 ns)
        if addr_copies < 1 or self.k % addr_copies or (addr_copies > 1 and onehot_groups is None):
            raise ValueError(f"address copies must divide {self.k} slots (one-hot form), "
                             f"got {addr_copies!r}")
        self.addr_copies = addr_copies
        per = self.k // addr_copies
        self.rom_groups = [sorted({d for j in range(c * per, (c + 1) * per)
                                   for d in self.cand[j]}) for c in range(addr_copies)]
        ports = {
            "addr": In(data.ArrayLayout(self.addr_bits, block_size * addr_copies)),
            "err": Out(data.ArrayLayout(data.ArrayLayout(self.width, self.k), block_size)),
        }
        if onehot_groups is None:
            ports["cls"] = In(self.class_bits)
        else:
            if block_size % onehot_groups:
                raise ValueError(f"{onehot_groups} select groups do not divide {block_size} lanes")
            ports["onehot"] = In(data.ArrayLayout(self.onehot_width, onehot_groups))
        super().__init__(ports)

    def words(self) -> list[int]:
        err, w = self.luts.err_rom, self.width
        return [sum(int(err[d, a]) << (p * w) for p, d in enumerate(self.used))
                for a in range(err.shape[1])]

    def group_words(self, c: int) -> list[int]:
        err, w = self.luts.err_rom, self.width
        return [sum(int(err[d, a]) << (p * w) for p, d in enumerate(self.rom_groups[c]))
                for a in range(err.shape[1])]

    def elaborate(self, platform):
        m = Module()
        w, pos = self.width, {d: p for p, d in enumerate(self.used)}
        A = self.addr_copies
        if A > 1:
            order = [d for g in self.rom_groups for d in g]
            pos = {d: p for p, d in enumerate(order)}
            parts = [_rom(m, f"err_rom{c}", len(g) * w, self.group_words(c),
                          [self.addr[i * A + c] for i in range(self.block_size)])
                     for c, g in enumerate(self.rom_groups)]
            outs = [Cat(*[parts[c][i] for c in range(A)]) for i in range(self.block_size)]
        else:
            outs = _rom(m, "err_rom", len(self.used) * w, self.words(),
                        [self.addr[i] for i in range(self.block_size)])
        if self.onehot_groups is not None:
            per = self.block_size // self.onehot_groups
            for i, o in enumerate(outs):
                lane = LaneSlotMux(self.cand, pos, w, len(self.used) * w,
                                   self.onehot_offsets, self.onehot_width)
                m.submodules[f"lane{i}"] = lane
                m.d.comb += [lane.word.eq(o), lane.onehot.eq(self.onehot[i // per]),
                             self.err[i].as_value().eq(lane.err.as_value())]
            return m
        # per block: the mux selects of every slot from the class (one small table)
        sel_w = sum(self.sel_bits)
        rows = []
        for c in range(1 << self.class_bits):
            r = self.sel[c] if c < self.num_classes else [0] * self.k
            word, off = 0, 0
            for j, v in enumerate(r):
                word |= v << off
                off += self.sel_bits[j]
            rows.append(word)
        (selw,) = _rom(m, "slot_sel_rom", sel_w, rows, [self.cls])
        sels, off = [], 0
        for b in self.sel_bits:
            sels.append(selw[off:off + b])
            off += b
        for i, o in enumerate(outs):
            for j in range(self.k):
                ins = [o[pos[d] * w:(pos[d] + 1) * w] for d in self.cand[j]]
                if len(ins) == 1:
                    m.d.comb += self.err[i][j].eq(ins[0])
                else:  # padded to 2^sel_bits inputs: a complete case (the pad is never read)
                    ins += [ins[-1]] * ((1 << self.sel_bits[j]) - len(ins))
                    m.d.comb += self.err[i][j].eq(Array(ins)[sels[j]])
        return m


class SlotIds(wiring.Component):
    """The global dialect ids of all K slots of class c (`slot_ids[c]`, one small table):
    the ids the (sum, id) argmin of the `ClassSlotMux` unit compares and outputs."""

    def __init__(self, slot_ids, id_bits: int):
        self.ids_tab = [[int(d) for d in row] for row in slot_ids]
        n, k = len(self.ids_tab), len(self.ids_tab[0])
        self.class_bits = max(1, (n - 1).bit_length())
        self.id_bits = id_bits
        super().__init__({"cls": In(self.class_bits),
                          "ids": Out(data.ArrayLayout(id_bits, k))})

    def elaborate(self, platform):
        m = Module()
        k = len(self.ids_tab[0])
        words = []
        for c in range(1 << self.class_bits):
            row = self.ids_tab[c] if c < len(self.ids_tab) else [0] * k
            words.append(sum(d << (j * self.id_bits) for j, d in enumerate(row)))
        (o,) = _rom(m, "slot_ids_rom", k * self.id_bits, words, [self.cls])
        m.d.comb += self.ids.as_value().eq(o)
        return m

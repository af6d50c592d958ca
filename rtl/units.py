"""Streaming block quantizers: one block of B 16-bit floats in per cycle, its encoding out.

* `SemDialectQuantizer` - the SemanticDialect LUT engine on any formatbook (numerics §8)
* `DialectFP4TwoStage`  - BlockDialect's two-stage selector on DialectFP4 (numerics §9)
* `MXFP4Quantizer`      - OCP MXFP4 (E2M1, E8M0 scale) (numerics §4)

Flow control: `amaranth.lib.stream` on both sides. The pipeline advances as a whole
(`en = ~o.valid | o.ready`, and `i.ready = en`; at depth 0 `i.ready = o.ready`): `o.valid`
is a register output (or `i.valid` itself at pipeline depth 0) and never depends on
`o.ready`; a stalled output keeps its payload; each accepted block produces exactly one
output block, in order, `latency` cycles after it was accepted when the output is never
stalled. II = 1.
"""

from __future__ import annotations

import numpy as np
from amaranth.hdl import Module, Signal, Value
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from semdialect.golden import build_luts, load_formatbook
from semdialect.golden.dialects import _pairs, beneficial_table, two_stage_select
from semdialect.golden.elements import E2M1

from .stages import (
    INDEX_MODES,
    INPUT_FORMATS,
    BeneficialCount,
    BlockMax,
    DialectAdderTree,
    E2M1Round,
    ErrorLut,
    IndexLut,
    MaskedArgmin,
    Normalize,
    PairSelect,
    SharedExponent,
    Unpack,
    delay,
    tree_levels,
)

__all__ = ["SemDialectQuantizer", "DialectFP4TwoStage", "MXFP4Quantizer", "BLOCK_SIZES",
           "pair_table", "DEFAULT_INDEX", "INDEX_MODES"]

BLOCK_SIZES = (16, 32, 64)

#: index stage of the LUT-engine and two-stage units: 'rom' (one B-port ROM over
#: (dialect, address)) or 'compare' (per-block thresholds + per-lane comparators);
#: bit-identical. 'compare' is the default by measurement: semdialect-32 B = 32 has 9%
#: fewer Yosys generic cells and 6% fewer transistors (docs/architecture.md, "Area
#: exploration")
DEFAULT_INDEX = "compare"


def _middle_first(n: int) -> list[int]:
    return sorted(range(n), key=lambda j: (abs(j - (n - 1) / 2), j))


class _Unit(wiring.Component):
    """Common front end and pipeline bookkeeping."""

    has_mask = False
    has_dialect = True

    def _init_common(self, block_size: int, input_format: str, pipeline: int):
        if block_size not in BLOCK_SIZES:
            raise ValueError(f"block size must be one of {BLOCK_SIZES}, got {block_size!r}")
        if input_format not in INPUT_FORMATS:
            raise ValueError(
                f"input format must be one of {', '.join(INPUT_FORMATS)}, got {input_format!r}")
        self.block_size = block_size
        self.input_format = input_format
        self.fmt = INPUT_FORMATS[input_format]
        chain, prio = self._cut_points()
        if not isinstance(pipeline, int) or not 0 <= pipeline <= len(chain):
            raise ValueError(
                f"pipeline depth must be an integer in 0..{len(chain)} for this unit, "
                f"got {pipeline!r}")
        self.pipeline = pipeline
        self.cut_chain = chain
        self.cuts = frozenset(prio[:pipeline])
        self.latency = pipeline
        in_fields = {"data": data.ArrayLayout(16, block_size)}
        if self.has_mask:
            in_fields["mask"] = self.num_dialects
        in_fields["last"] = 1
        out_fields = {"codes": data.ArrayLayout(4, block_size), "scale": 8}
        if self.has_dialect:
            out_fields["dialect"] = self.id_bits
        out_fields["last"] = 1
        self.in_layout = data.StructLayout(in_fields)
        self.out_layout = data.StructLayout(out_fields)
        super().__init__({
            "i": In(stream.Signature(self.in_layout)),
            "o": Out(stream.Signature(self.out_layout)),
        })

    # -- pipeline helpers ---------------------------------------------------------------
    def _cut(self, m, en, name: str, carry: dict) -> dict:
        if name not in self.cuts:
            return carry
        out = {}
        for k, v in carry.items():
            out[k] = delay(m, v, 1, en, f"{name}_{k}", reset_less=(k != "valid"))
        return out

    def _front(self, m, emax: int, int_bits: int, frac_bits: int, idx_frac_bits: int):
        """Unpack, BlockMax, SharedExponent [cut exp] Normalize [cut norm]."""
        B = self.block_size
        en = Signal()
        m.d.comb += en.eq(~self.o.valid | self.o.ready)
        # depth 0: o.valid is i.valid, so pass ready straight through (no valid -> ready path)
        m.d.comb += self.i.ready.eq(en if self.pipeline else self.o.ready)
        m.submodules.unpack = unpack = Unpack(self.fmt, B)
        m.submodules.blockmax = bmax = BlockMax(B)
        m.submodules.shexp = shexp = SharedExponent(self.fmt, emax)
        p = self.i.payload
        m.d.comb += [
            unpack.data.eq(p.data),
            bmax.mag.eq(unpack.mag), bmax.nonfinite.eq(unpack.nonfinite),
            shexp.amax.eq(bmax.amax), shexp.bad.eq(bmax.bad),
        ]
        carry = {"valid": self.i.valid, "last": p.last, "sign": unpack.sign,
                 "exp": unpack.exp.as_value(), "man": unpack.man.as_value(),
                 "bad": bmax.bad, "e": shexp.e, "scale": shexp.scale}
        if self.has_mask:
            carry["mask"] = p.mask
        carry = self._cut(m, en, "exp", carry)
        m.submodules.normalize = norm = Normalize(self.fmt, B, int_bits, frac_bits, idx_frac_bits)
        m.d.comb += [norm.e.eq(carry.pop("e")), norm.bad.eq(carry["bad"]),
                     norm.exp.as_value().eq(carry.pop("exp")),
                     norm.man.as_value().eq(carry.pop("man"))]
        carry["err_addr"] = norm.err_addr.as_value()
        carry["idx_addr"] = norm.idx_addr.as_value()
        carry = self._cut(m, en, "norm", carry)
        return en, carry

    def _index_back(self, m, en, carry: dict, idx_table) -> None:
        """Index LUT (selected dialect x exact lane address) -> 4-bit codes, the `out`
        cut, and the output payload; shared by the LUT-engine and two-stage units."""
        m.submodules.index_lut = ilut = IndexLut(idx_table, self.block_size, self.index)
        m.d.comb += [ilut.dialect.eq(carry["dialect"]),
                     ilut.idx_addr.as_value().eq(carry.pop("idx_addr")),
                     ilut.sign.eq(carry.pop("sign")), ilut.bad.eq(carry.pop("bad"))]
        carry["codes"] = ilut.codes.as_value()
        carry = self._cut(m, en, "out", carry)
        self._back(m, carry, carry["codes"], carry["dialect"])

    def _back(self, m, carry: dict, codes: Value, dialect: Value | None):
        p = self.o.payload
        m.d.comb += [self.o.valid.eq(carry["valid"]), p.last.eq(carry["last"]),
                     p.scale.eq(carry["scale"]), p.codes.as_value().eq(codes)]
        if dialect is not None:
            m.d.comb += p.dialect.eq(dialect)

    def manifest_parameters(self) -> dict:
        raise NotImplementedError


class SemDialectQuantizer(_Unit):
    """SemanticDialect LUT engine (numerics §8) on a formatbook.

    Stages: Unpack+BlockMax+SharedExponent | Normalize | ErrorLut | DialectAdderTree |
    MaskedArgmin | IndexLut, with pipeline registers at `pipeline` of the cut points
    (see `cut_chain`; `cuts` are the chosen ones)."""

    has_mask = True

    def __init__(self, formatbook="semdialect-32", block_size: int = 32,
                 input_format: str = "bf16", frac_bits: int = 3, err_bits: int = 8,
                 pipeline: int = 4, index: str = DEFAULT_INDEX):
        if index not in INDEX_MODES:
            raise ValueError(f"index must be one of {INDEX_MODES}, got {index!r}")
        self.index = index
        self.book = load_formatbook(formatbook)
        self.luts = build_luts(self.book, frac_bits, err_bits)
        if np.any(self.luts.err[:, 0] != 0):  # NaN/Inf blocks rely on ERR[d, 0] == 0
            raise ValueError("formatbook has a dialect without magnitude 0")
        self.num_dialects = self.book.num_dialects
        self.id_bits = max(1, (self.num_dialects - 1).bit_length())
        self.frac_bits = frac_bits
        self.err_bits = err_bits
        self.tree_levels = tree_levels(block_size)
        self.argmin_levels = tree_levels(self.num_dialects)
        self._init_common(block_size, input_format, pipeline)

    def _cut_points(self):
        lt = self.tree_levels
        la = self.argmin_levels
        chain = (["exp", "norm", "lut"] + [f"tree{j}" for j in range(lt)]
                 + [f"argmin{j}" for j in range(la)] + ["out"])
        prio = ["out", "norm", f"tree{lt - 1}"]
        if la:
            prio.append(f"argmin{la - 1}")
        prio += ["exp", "lut"]
        prio += [f"tree{j}" for j in _middle_first(lt - 1)]
        prio += [f"argmin{j}" for j in _middle_first(la - 1)] if la > 1 else []
        assert sorted(prio) == sorted(chain)
        return chain, prio

    def elaborate(self, platform):
        m = Module()
        B, D = self.block_size, self.num_dialects
        book = self.book
        en, carry = self._front(m, book.emax, book.int_bits, self.frac_bits,
                                self.luts.idx_frac_bits)
        m.submodules.error_lut = elut = ErrorLut(self.luts, B)
        m.d.comb += elut.addr.as_value().eq(carry.pop("err_addr"))
        carry["err"] = elut.err.as_value()
        carry = self._cut(m, en, "lut", carry)

        tree_cuts = [j for j in range(self.tree_levels) if f"tree{j}" in self.cuts]
        m.submodules.adder_tree = tree = DialectAdderTree(D, self.err_bits, B, tree_cuts)
        m.d.comb += [tree.err.as_value().eq(carry.pop("err")), tree.en.eq(en)]
        carry = {k: delay(m, v, tree.latency, en, f"tree_{k}", reset_less=(k != "valid"))
                 for k, v in carry.items()}
        carry["sums"] = tree.sums.as_value()

        am_cuts = [j for j in range(self.argmin_levels) if f"argmin{j}" in self.cuts]
        m.submodules.argmin = am = MaskedArgmin(D, tree.sum_width, am_cuts)
        m.d.comb += [am.sums.as_value().eq(carry.pop("sums")), am.mask.eq(carry.pop("mask")),
                     am.en.eq(en)]
        carry = {k: delay(m, v, am.latency, en, f"am_{k}", reset_less=(k != "valid"))
                 for k, v in carry.items()}
        carry["dialect"] = am.dialect

        self._index_back(m, en, carry, self.luts.idx)
        return m

    def manifest_parameters(self) -> dict:
        return {
            "unit": "semdialect",
            "formatbook": self.book.name,
            "formatbook_hash": self.book.content_hash,
            "num_dialects": self.num_dialects,
            "block_size": self.block_size,
            "input_format": self.input_format,
            "frac_bits": self.frac_bits,
            "err_bits": self.err_bits,
            "idx_frac_bits": self.luts.idx_frac_bits,
            "pipeline": self.pipeline,
            "pipeline_cuts": [c for c in self.cut_chain if c in self.cuts],
            "index": self.index,
            "err_lut_bits": self.luts.err_rom_bits,
            "idx_lut_bits": self.luts.idx_rom_bits,
            "golden_call": (
                f"semdialect.golden.quantize(x, 'semdialect', block_size={self.block_size}, "
                f"formatbook=<book>, frac_bits={self.frac_bits}, err_bits={self.err_bits}, "
                "allowed=<mask>)"),
        }


def pair_table(book) -> np.ndarray:
    """Stage-1 pair of BlockDialect's selector for every exact max address (I+Fq+1 bits),
    obtained by running the golden `two_stage_select` on a one-element block holding the
    address's representative value (a point t/2^Fq or an interval midpoint)."""
    fq = book.grid_frac_bits + 1
    n = 2 << (book.int_bits + fq)
    addr = np.arange(n)
    v = np.ldexp((addr >> 1) + 0.5 * (addr & 1), -fq).astype(np.float64)
    d = two_stage_select(book, v[:, None], np.zeros(n, dtype=bool))
    return d // 2


class DialectFP4TwoStage(_Unit):
    """BlockDialect two-stage selector (numerics §9) on a paired formatbook (DialectFP4).

    Stages: Unpack+BlockMax+SharedExponent | Normalize (exact Fq address only) |
    PairSelect (max address -> pair ROM) | BeneficialCount (ROM + two popcounts) |
    IndexLut. No allowed-dialect mask (the golden two-stage selector takes none)."""

    def __init__(self, formatbook="dialectfp4", block_size: int = 32, input_format: str = "bf16",
                 pipeline: int = 3, index: str = DEFAULT_INDEX):
        if index not in INDEX_MODES:
            raise ValueError(f"index must be one of {INDEX_MODES}, got {index!r}")
        self.index = index
        self.book = load_formatbook(formatbook)
        _pairs(self.book)  # raises ValueError when the book is not paired
        self.num_dialects = self.book.num_dialects
        self.id_bits = max(1, (self.num_dialects - 1).bit_length())
        self.fq = self.book.grid_frac_bits + 1
        self.idx = build_luts(self.book, self.fq, 8).idx
        self.pairs = pair_table(self.book)
        self.ben = beneficial_table(self.book)
        self._init_common(block_size, input_format, pipeline)

    def _cut_points(self):
        chain = ["exp", "norm", "pair", "count", "out"]
        prio = ["out", "norm", "count", "pair", "exp"]
        return chain, prio

    def elaborate(self, platform):
        m = Module()
        B = self.block_size
        book = self.book
        en, carry = self._front(m, book.emax, book.int_bits, self.fq, self.fq)
        carry.pop("err_addr")
        m.submodules.pair_select = ps = PairSelect(self.pairs, B, book.int_bits + self.fq + 1)
        m.d.comb += ps.idx_addr.as_value().eq(carry["idx_addr"])
        carry["pair"] = ps.pair
        carry = self._cut(m, en, "pair", carry)
        m.submodules.ben_count = bc = BeneficialCount(self.ben, B, self.id_bits - 1)
        m.d.comb += [bc.pair.eq(carry.pop("pair")), bc.idx_addr.as_value().eq(carry["idx_addr"]),
                     bc.bad.eq(carry["bad"])]
        carry["dialect"] = bc.dialect
        carry = self._cut(m, en, "count", carry)
        self._index_back(m, en, carry, self.idx)
        return m

    def manifest_parameters(self) -> dict:
        return {
            "unit": "dialectfp4-two-stage",
            "formatbook": self.book.name,
            "formatbook_hash": self.book.content_hash,
            "num_dialects": self.num_dialects,
            "block_size": self.block_size,
            "input_format": self.input_format,
            "idx_frac_bits": self.fq,
            "pipeline": self.pipeline,
            "pipeline_cuts": [c for c in self.cut_chain if c in self.cuts],
            "index": self.index,
            "idx_lut_bits": int(self.idx.size) * 3,
            "pair_rom_bits": int(self.pairs.size) * max(1, int(self.pairs.max()).bit_length()),
            "beneficial_rom_bits": int(self.ben.size),
            "golden_call": (
                f"semdialect.golden.quantize(x, 'dialectfp4', block_size={self.block_size}, "
                "formatbook=<book>, selector='two-stage')"),
        }


class MXFP4Quantizer(_Unit):
    """OCP MXFP4 (numerics §4): E8M0 scale with emax 2, E2M1 elements by arithmetic RNE.

    Stages: Unpack+BlockMax+SharedExponent | Normalize (exact 1/4 address) | E2M1Round.
    No dialect output, no mask."""

    has_dialect = False

    def __init__(self, block_size: int = 32, input_format: str = "bf16", pipeline: int = 2):
        self.emax = E2M1.emax
        self._init_common(block_size, input_format, pipeline)

    def _cut_points(self):
        return ["exp", "norm", "out"], ["out", "norm", "exp"]

    def elaborate(self, platform):
        m = Module()
        en, carry = self._front(m, self.emax, self.emax + 1, 2, 2)
        carry.pop("err_addr")
        m.submodules.e2m1 = rnd = E2M1Round(self.block_size)
        m.d.comb += [rnd.idx_addr.as_value().eq(carry.pop("idx_addr")),
                     rnd.sign.eq(carry.pop("sign")), rnd.bad.eq(carry.pop("bad"))]
        carry["codes"] = rnd.codes.as_value()
        carry = self._cut(m, en, "out", carry)
        self._back(m, carry, carry["codes"], None)
        return m

    def manifest_parameters(self) -> dict:
        return {
            "unit": "mxfp4",
            "block_size": self.block_size,
            "input_format": self.input_format,
            "pipeline": self.pipeline,
            "pipeline_cuts": [c for c in self.cut_chain if c in self.cuts],
            "golden_call": f"semdialect.golden.quantize(x, 'mxfp4', block_size={self.block_size})",
        }

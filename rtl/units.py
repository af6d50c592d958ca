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
from amaranth.hdl import Cat, Module, Mux, ResetSignal, Signal, Value
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from semdialect.golden import build_luts, build_two_level, load_formatbook
from semdialect.golden.dialects import _pairs, beneficial_table, two_stage_select
from semdialect.golden.elements import E2M1

from .romstyle import DEFAULT_ROM_STYLE, check_rom_style
from .stages import (
    INDEX_MODES,
    INPUT_FORMATS,
    MAX_REPLICAS,
    BeneficialColumns,
    BeneficialCount,
    BlockMax,
    BlockMaxTable,
    ClassErrorLut,
    ClassSelect,
    ClassSlotMux,
    DialectAdderTree,
    E2M1Round,
    ErrorLut,
    IndexLut,
    MaskedArgmin,
    Normalize,
    SharedExponent,
    SlotDialect,
    SlotIds,
    Unpack,
    _rom,
    beneficial_columns,
    delay,
    register_replicas,
    slot_assignment,
    slot_onehot_words,
    thermometer_counter,
    thr_register_bits,
    tree_levels,
)
from .timing import (
    DEFAULT_TARGET_MHZ,
    T_LUT,
    T_STAGE,
    Segment,
    carry,
    choose_cuts,
    fanout,
    mux_levels,
    rom,
    stage_delays,
)

__all__ = ["SemDialectQuantizer", "SemDialectTwoLevel", "DialectFP4TwoStage", "MXFP4Quantizer",
           "BLOCK_SIZES", "pair_table", "DEFAULT_INDEX", "INDEX_MODES", "DEFAULT_TARGET_MHZ",
           "DEFAULT_TWO_LEVEL_BOOK"]

BLOCK_SIZES = (16, 32, 64)

#: the shipped class-structured book the two-level unit uses by default: the golden
#: default of format `semdialect` (numerics §15.7: 8 overlapping classes of 8 over
#: semdialect-32's dialects, same ids)
DEFAULT_TWO_LEVEL_BOOK = "semdialect-32c8x8"

#: index stage of the LUT-engine and two-stage units: 'rom' (one B-port ROM over
#: (dialect, address)) or 'compare' (per-block thresholds + per-lane comparators);
#: bit-identical. 'compare' is the default by measurement: semdialect-32 B = 32 has 9%
#: fewer Yosys generic cells and 6% fewer transistors (docs/architecture.md, "Area
#: exploration")
DEFAULT_INDEX = "compare"

#: error ROM of the two-level unit, all bit-identical: 'mux' (per lane the §8 error ROM
#: over the lane address, then a per-slot mux selected by the block's class,
#: `ClassSlotMux`; the smallest in logic: 5,974 against 7,260 transistors per lane,
#: Yosys generic, semdialect-32c8x8 F = 3 W = 8), 'class' (one ROM per lane over (class,
#: address), `ClassErrorLut`) or 'bram' (that ROM read synchronously at the norm cut:
#: block RAM on FPGAs, with a pipeline that never stalls, `out_fifo`).
#: Default (`default_err_rom`): 'bram' when timed for >= FAST_MHZ (the only form
#: measured at 150 MHz on ECP5), else 'mux' (docs/architecture.md, "Timing")
ERR_ROMS = ("mux", "class", "bram")
#: the clock from which the two-level unit's defaults take their timing-first
#: structures (the bram form; address copies in the mux form)
FAST_MHZ = 150.0


def _timed_fast(pipeline: int | None, target_mhz: float | None) -> bool:
    return pipeline is None and (target_mhz or 0) >= FAST_MHZ


def default_err_rom(pipeline: int | None, target_mhz: float | None,
                    class_from: str = "amax") -> str:
    return "bram" if _timed_fast(pipeline, target_mhz) and class_from == "amax" else "mux"

#: where the two-level unit's class comes from: 'amax' (the block max's bit pattern,
#: beside Normalize in the front end: no block-max Normalize lane, no class ROM, no
#: class register stages) or 'max-addr' (the class ROM on the block-max lane's exact
#: address, with its `classrom` / `class` cut points); bit-identical
CLASS_FROM = ("amax", "max-addr")
DEFAULT_CLASS_FROM = "amax"


class _Unit(wiring.Component):
    """Common front end and pipeline bookkeeping.

    Each unit lists its cut points with the modelled delay in front of each
    (`_segments`, see `timing`); `pipeline` (an exact depth) or `target_mhz` (the fewest
    registers that fit the period) picks where the registers go (`timing.choose_cuts`)."""

    has_mask = False
    has_dialect = True
    #: the cut that ends the front end shared with the MXFP4 baseline
    FRONT = "norm"
    #: default of `out_skid` (see `_Unit._front`): a one-block output skid buffer, so the
    #: pipeline enable is a register instead of `~o.valid | o.ready`
    OUT_SKID = False
    #: with `out_skid`: which cuts split their registers into lane groups, each with its
    #: own copy of the enable register ("norm": only the front end's; "all": every cut
    #: of the unit itself, see `_cut`)
    ENABLE_COPY_CUTS = "norm"
    #: carried per-block values registered at the `norm` cut once per lane group
    #: (`register_replicas`, enable copies), so each drives B / thr_groups lanes
    NORM_REPLICATED: tuple[str, ...] = ()
    #: module-name patterns the ECP5 flow maps as scopes of their own
    #: (`synth.ecp5_flow(keep_hierarchy=...)`; manifest `synth_scopes`)
    SYNTH_SCOPES: tuple[str, ...] = ()

    #: default of `out_fifo` (see `_fifo_back`): the pipeline never stalls; a credit-
    #: counted output FIFO of depth + 2 blocks holds what the consumer does not take
    OUT_FIFO = False

    def _init_common(self, block_size: int, input_format: str, pipeline, target_mhz,
                     timed_inputs: bool, rom_style: str, out_skid: bool | None = None,
                     out_fifo: bool | None = None):
        self.out_fifo = self.OUT_FIFO if out_fifo is None else bool(out_fifo)
        skid = self.OUT_SKID if out_skid is None else bool(out_skid)
        self.out_skid = skid and not self.out_fifo
        if block_size not in BLOCK_SIZES:
            raise ValueError(f"block size must be one of {BLOCK_SIZES}, got {block_size!r}")
        if input_format not in INPUT_FORMATS:
            raise ValueError(
                f"input format must be one of {', '.join(INPUT_FORMATS)}, got {input_format!r}")
        self.rom_style = check_rom_style(rom_style)
        self.block_size = block_size
        self.input_format = input_format
        self.fmt = INPUT_FORMATS[input_format]
        self.segments = self._segments()
        self.cut_chain = [s.name for s in self.segments]
        if pipeline is not None and target_mhz is not None:
            raise ValueError("give a pipeline depth or a target MHz, not both")
        chosen = choose_cuts(self.segments, depth=pipeline, target_mhz=target_mhz,
                             front=self.FRONT, timed_inputs=timed_inputs)
        need = [c for c in self._required_cuts() if c not in chosen]
        if need and target_mhz is None:
            raise ValueError(f"{self._required_cuts_why()}: the pipeline needs the cut points "
                             f"{', '.join(self._required_cuts())}, and depth {pipeline} "
                             f"leaves out {', '.join(need)} (give a target MHz, or a larger "
                             "depth)")
        if need:  # an extra register only shortens stages: the period still holds
            chosen = [c for c in self.cut_chain if c in set(chosen) | set(need)]
        self.target_mhz = target_mhz
        self.timed_inputs = timed_inputs
        self.cuts = frozenset(chosen)
        self.pipeline = len(chosen)
        self.out_fifo = self.out_fifo and self.pipeline > 0
        self.out_skid = self.out_skid and self.pipeline > 0  # depth 0 has nothing to hold
        # the FIFO is read from its registers: one cycle after the last stage
        self.latency = self.pipeline + int(self.out_fifo)
        #: the most blocks accepted and not yet output (what a reset may drop; manifest
        #: `capacity_blocks`): with the FIFO its entries, depth + 2, so that credit
        #: (depth + 1 in flight at full rate) stays below it (`_fifo_back`); with the skid
        #: buffer one more than the stages, as `skid` holds a block while they are full
        self.capacity = (self.pipeline + 2 if self.out_fifo
                         else self.latency + int(self.out_skid))
        self.stage_delays = stage_delays(self.segments, chosen)
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

    # -- timing model of the shared front end --------------------------------------------
    def _front_segments(self, int_bits: int, frac_bits: int, idx_frac_bits: int, *,
                        err_addr: bool, with_max: bool = False) -> list[Segment]:
        """Delay model and register widths of the shared front end (exp, shift, norm)."""
        B, f = self.block_size, self.fmt
        wide_w = f.mbits + 1 + int_bits + max(frac_bits, idx_frac_bits)
        a, aq = int_bits + frac_bits + 1, int_bits + idx_frac_bits + 1
        derive = err_addr and self._idx_from_err(frac_bits, idx_frac_bits)
        side = 11 + (self.num_dialects if self.has_mask else 0)  # valid last scale bad mask
        lanes = B + int(with_max)
        return [
            Segment("exp", tree_levels(B) * (carry(15) + T_LUT) + carry(12) + 2 * T_LUT,
                    f"unpack, {B}-lane 15-bit max tree, shared exponent + clamp",
                    side + 16 * B + 9 + 15 * with_max),
            Segment("shift", 2 * carry(12) + T_LUT, "per-lane shift amount + clamp",
                    side + B + lanes * (f.mbits + 1 + wide_w.bit_length())),
            Segment("norm", mux_levels(wide_w.bit_length()) + 2 * T_LUT,
                    f"{wide_w}-bit barrel shifter, sticky, address fold",
                    side + B * (1 + (a if derive else aq + a * err_addr)) + aq * with_max),
        ]

    #: units that read the error address into a LUT stage after the front end carry only
    #: it (I+F+1 bits per lane) up to that stage and fold the index address out of it
    #: there (`_fold_idx`), instead of carrying both addresses (issue #10: fewer FFs)
    derive_idx = False

    def _idx_from_err(self, frac_bits: int, idx_frac_bits: int) -> bool:
        return self.derive_idx and frac_bits >= idx_frac_bits

    def _fold_idx(self, m, err_addr: Value, frac_bits: int, idx_frac_bits: int,
                  copies: int = 1) -> Value:
        """The exact index addresses (Fq bits) from the error addresses (F >= Fq bits):
        the dropped F - Fq fraction bits fold into the sticky bit, as in Normalize.
        copies: err_addr holds that many copies per lane, lane-major (`_norm_lane_copies`);
        copy 0 is read."""
        a = frac_bits + self.book.int_bits + 1
        drop = frac_bits - idx_frac_bits
        lanes = []
        for i in range(self.block_size):
            e = err_addr[i * copies * a:(i * copies + 1) * a]
            lanes.append(Cat(e[:1 + drop].any(), e[1 + drop:]))
        out = Signal(len(Cat(*lanes)), name="idx_addr_folded")
        m.d.comb += out.eq(Cat(*lanes))
        return out

    def _pass_bits(self, aq: int) -> int:
        """Bits every back-end register stage carries: valid, last, scale, bad, signs and
        the exact index addresses."""
        return 11 + self.block_size * (1 + aq)

    #: the comparator index stage offers a `cmp` cut point after its comparators
    #: (`IndexLut(cmp_cut=True)`) with the delay model measured on DialectFP4; the other
    #: units keep the issue-#10 model of that stage (thr, out) until measured again
    index_cmp_point = False

    @property
    def thr_groups(self) -> int:
        """Replicas of the registered per-block thresholds (`IndexLut._replicas`), each
        driving block_size / thr_groups lanes; used when the `thr` cut is placed."""
        return max(g for g in range(1, IndexLut.MAX_THR_GROUPS + 1)
                   if self.block_size % g == 0)

    def _index_segments(self, addr_bits: int, idx_table) -> list[Segment]:
        B = self.block_size
        out_bits = 4 * B + 10 + self.id_bits
        if self.index == "compare" and self.index_cmp_point:
            # measured (nextpnr-ecp5, docs/architecture.md "Timing"): each comparator
            # is a carry chain on the low threshold bits and one LUT4 after it (the
            # 'never' bit; no LUT in front of it since `~(a < thr)` on replicas kept
            # apart by reset), the thermometer -> index + the NaN/Inf zeroing after
            # the cmp cut 3 LUT4 levels
            g = self.thr_groups
            thr_bits = thr_register_bits(idx_table, g, fold_bad=True)
            return [Segment("thr", rom(self.id_bits + 1) + fanout(g),
                            f"threshold ROM of the dialect ('never' for NaN/Inf), {g} "
                            "register replicas",
                            self._pass_bits(addr_bits) - 1 + self.id_bits + thr_bits,
                            uncut_ns=fanout(B) - fanout(B // g)),
                    Segment("cmp", fanout(B // g) + T_LUT + carry(addr_bits + 1),
                            "per-lane comparators (7 thermometer bits)",
                            10 + self.id_bits + 8 * B, uncut_ns=T_LUT),
                    Segment("out", 2 * T_LUT, "thermometer -> index, sign", out_bits)]
        if self.index == "compare":
            g = self.thr_groups
            thr_bits = thr_register_bits(idx_table, g)
            return [Segment("thr", rom(self.id_bits) + fanout(g),
                            f"threshold ROM of the dialect, {g} register replicas",
                            self._pass_bits(addr_bits) - 1 + self.id_bits + thr_bits,
                            uncut_ns=fanout(B) - fanout(B // g)),
                    Segment("out", fanout(B // g) + carry(addr_bits + 1) + 2 * T_LUT,
                            "per-lane comparators, thermometer -> index, sign", out_bits)]
        return [Segment("out", fanout(self.block_size) + rom(addr_bits + self.id_bits) + T_LUT,
                        "index ROM per lane",
                        out_bits)]

    # -- pipeline helpers ---------------------------------------------------------------
    def _argmin_of_sums(self, m, en, carry: dict, n: int, mask_key: str, ids=None):
        """The selection stage both SemanticDialect units share: n adder trees over the
        lanes' `err` entries, then the argmin masked by carry[mask_key] (lowest id wins).
        ids: a function of the carry giving the candidates' ids (an ArrayLayout value of
        `id_bits`), else the ids are the positions. Returns (carry, argmin); the chosen
        index (or id) is argmin.dialect."""
        tree_cuts = [j for j in range(self.tree_levels) if f"tree{j}" in self.cuts]
        m.submodules.adder_tree = tree = DialectAdderTree(  # stored entries ERR >> L (§8.3)
            n, self.luts.err_rom_width, self.block_size, tree_cuts)
        m.d.comb += [tree.err.as_value().eq(carry.pop("err")), tree.en.eq(en)]
        carry = self._delay(m, en, carry, tree.latency, "tree")
        carry["sums"] = tree.sums.as_value()

        am_cuts = [j for j in range(self.argmin_levels) if f"argmin{j}" in self.cuts]
        m.submodules.argmin = am = MaskedArgmin(n, tree.sum_width, am_cuts,
                                                id_bits=None if ids is None else self.id_bits)
        if ids is not None:
            m.d.comb += am.ids.as_value().eq(ids(carry))
        m.d.comb += [am.sums.as_value().eq(carry.pop("sums")),
                     am.mask.eq(carry.pop(mask_key)), am.en.eq(en)]
        return self._delay(m, en, carry, am.latency, "am"), am

    def _cut(self, m, en, name: str, carry_: dict) -> dict:
        if name not in self.cuts:
            return carry_
        if self.ENABLE_COPY_CUTS == "all" and len(getattr(self, "_adv_copies", ())) > 1:
            return self._cut_groups(m, self._adv_copies, name, carry_)
        return self._delay(m, en, carry_, 1, name)

    @staticmethod
    def _delay(m, en, carry_: dict, n: int, name: str) -> dict:
        return {k: delay(m, v, n, en, f"{name}_{k}", reset_less=(k != "valid"))
                for k, v in carry_.items()}

    def _front(self, m, emax: int, int_bits: int, frac_bits: int, idx_frac_bits: int,
               with_max: bool = False, pre_norm=None, at_norm=None):
        """Unpack, BlockMax, SharedExponent [exp] Normalize: shift amounts [shift]
        shifters [norm]. with_max: also the block's largest exact address (`max_addr`).
        pre_norm(m, en, carry): per-block logic after the exp cut, beside Normalize (it
        finds `amax`, `elow` in the carry and takes them). at_norm(m, ens, carry): logic
        that registers at the `norm` cut itself (a synchronous ROM read, lane group g with
        enable ens[g]); it reads the carry before that cut and returns values to add to
        the carry after it."""
        B = self.block_size
        en = Signal()
        self._adv = None
        self._adv_copies = []
        self._credit = None
        if self.out_fifo:
            # no enable: every register loads on every clock (no stall net across the
            # die); the credit counter keeps the FIFO from overflowing
            m.d.comb += en.eq(1)
            # thermometer-coded (`thermometer_counter`): ready is one flip-flop
            self._credit = Signal(self.capacity, name="credit")
        elif self.out_skid:
            # the enable is a register (`_back` keeps it): advance unless the skid
            # buffer holds a block
            self._adv = Signal(name="adv", init=1)
            m.d.comb += en.eq(self._adv)
            # copies of the enable register for the lane groups of the `norm` cut, whose
            # address registers take the NaN/Inf zeroing as a synchronous reset (ECP5:
            # LSR = enable & bad, one LUT per copy near its group instead of one net
            # across the die). Each copy computes its next value from its own state, so
            # synthesis cannot merge them; all hold the same value
            self._adv_copies = [self._adv] + [Signal(name=f"adv_copy{g}", init=1)
                                              for g in range(1, self.thr_groups)]
        else:
            m.d.comb += en.eq(~self.o.valid | self.o.ready)
        if self._credit is not None:  # a free FIFO entry for every block in flight
            m.d.comb += self.i.ready.eq(~self._credit[-1] & ~ResetSignal("sync"))
        elif self.pipeline:
            # a block offered during reset is not accepted (the reset clears the valid
            # bits, so an accepted block would be lost): ready is low while rst is high
            m.d.comb += self.i.ready.eq(en & ~ResetSignal("sync"))
        else:  # depth 0: o.valid is i.valid, ready passes straight through; no clock
            m.d.comb += self.i.ready.eq(self.o.ready)
        m.submodules.unpack = unpack = Unpack(self.fmt, B)
        m.submodules.blockmax = bmax = BlockMax(B)
        m.submodules.shexp = shexp = SharedExponent(self.fmt, emax)
        p = self.i.payload
        m.d.comb += [
            unpack.data.eq(p.data),
            bmax.mag.eq(unpack.mag), bmax.nonfinite.eq(unpack.nonfinite),
            shexp.amax.eq(bmax.amax), shexp.bad.eq(bmax.bad),
        ]
        # with the FIFO the pipeline always moves: a block enters only when accepted
        valid_in = self.i.valid & self.i.ready if self._credit is not None else self.i.valid
        carry_ = {"valid": valid_in, "last": p.last, "sign": unpack.sign,
                  "exp": unpack.exp.as_value(), "man": unpack.man.as_value(),
                  "bad": bmax.bad, "e": shexp.e, "scale": shexp.scale}
        if with_max or pre_norm is not None:
            carry_["amax"] = bmax.amax
        if pre_norm is not None:
            carry_["elow"] = shexp.low
        if self.has_mask:
            carry_["mask"] = p.mask
        carry_ = self._cut(m, en, "exp", carry_)
        if pre_norm is not None:
            carry_ = pre_norm(m, en, carry_)
        m.submodules.normalize = norm = Normalize(
            self.fmt, B, int_bits, frac_bits, idx_frac_bits, with_max=with_max,
            shift_cut="shift" in self.cuts)
        m.d.comb += [norm.e.eq(carry_.pop("e")), norm.bad.eq(carry_["bad"]), norm.en.eq(en),
                     norm.exp.as_value().eq(carry_.pop("exp")),
                     norm.man.as_value().eq(carry_.pop("man"))]
        if with_max:
            amax = carry_.pop("amax")
            m.d.comb += [norm.amax_exp.eq(amax[self.fmt.mbits:15]),
                         norm.amax_man.eq(amax[:self.fmt.mbits])]
        carry_ = self._delay(m, en, carry_, norm.latency, "shift")
        carry_["err_addr"] = norm.err_addr.as_value()
        if not self._idx_from_err(frac_bits, idx_frac_bits):
            carry_["idx_addr"] = norm.idx_addr.as_value()
        if with_max:
            carry_["max_addr"] = norm.max_idx_addr
        reps = {k: carry_.pop(k) for k in self.NORM_REPLICATED if k in carry_}
        lane_reps = {k: carry_.pop(k) for k in self._norm_lane_copies() if k in carry_}
        post = {}
        if at_norm is not None:
            post = at_norm(m, self._adv_copies if (self._adv is not None and "norm" in self.cuts)
                           else [en], carry_)
        if self._adv is not None and "norm" in self.cuts:
            carry_ = self._cut_groups(m, self._adv_copies, "norm", carry_)
        else:
            carry_ = self._cut(m, en, "norm", carry_)
        g = self.thr_groups
        for k, v in reps.items():  # lane group g reads replica g
            if "norm" in self.cuts:
                ens = self._adv_copies if len(self._adv_copies) == g else [en] * g
                carry_[k] = Cat(*register_replicas(m, v, g, ens, f"norm_{k}"))
            else:
                carry_[k] = Cat(*([v] * g))
        for k, v in lane_reps.items():  # A copies of every lane, lane-major
            n = self._norm_lane_copies()[k]
            w = len(v) // B
            ens = self._adv_copies or [en]
            lanes = []
            for i in range(B):
                lv = v[i * w:(i + 1) * w]
                if "norm" in self.cuts:
                    e = ens[i * len(ens) // B]
                    lanes += register_replicas(m, lv, n, e, f"norm_{k}{i}_c")
                else:
                    lanes += [lv] * n
            carry_[k] = Cat(*lanes)
        carry_.update(post)
        return en, carry_

    def _required_cuts(self) -> tuple[str, ...]:
        """Cut points the unit's structure needs (a synchronous ROM is a register)."""
        return ()

    def _required_cuts_why(self) -> str:
        return ""

    def _norm_lane_copies(self) -> dict[str, int]:
        """Per-lane values registered at the `norm` cut n times (`register_replicas`),
        carried lane-major (lane i copy c at i*n + c): key -> n."""
        return {}

    @staticmethod
    def _cut_groups(m, ens: list, name: str, carry_: dict) -> dict:
        """The `name` register stage with the enable copies `ens`: every carried value
        (lane arrays are lane-major) split into len(ens) contiguous parts, part g
        registered with ens[g]; `valid` with ens[0]."""
        out = {}
        for k, v in carry_.items():
            v = Value.cast(v)
            n = len(v)
            if k == "valid" or n < len(ens):
                out[k] = delay(m, v, 1, ens[0], f"{name}_{k}", reset_less=(k != "valid"))
                continue
            step = -(-n // len(ens))
            out[k] = Cat(*[delay(m, v[lo:lo + step], 1, ens[g], f"{name}_{k}{g}")
                           for g, lo in enumerate(range(0, n, step))])
        return out

    def _index_back(self, m, en, carry_: dict, idx_table) -> None:
        """Index LUT (selected dialect x exact lane address) -> 4-bit codes [thr inside
        the comparator stage], the `out` cut, and the output payload; shared by the
        SemanticDialect and two-stage units."""
        thr_cut = "thr" in self.cuts
        m.submodules.index_lut = ilut = IndexLut(idx_table, self.block_size, self.index,
                                                 thr_cut=thr_cut,
                                                 thr_groups=self.thr_groups if thr_cut else 1,
                                                 cmp_cut="cmp" in self.cuts)
        m.d.comb += [ilut.dialect.eq(carry_["dialect"]), ilut.en.eq(en),
                     ilut.idx_addr.as_value().eq(carry_.pop("idx_addr")),
                     ilut.sign.eq(carry_.pop("sign")), ilut.bad.eq(carry_.pop("bad"))]
        carry_ = self._delay(m, en, carry_, ilut.latency, "thr")
        carry_["codes"] = ilut.codes.as_value()
        carry_ = self._cut(m, en, "out", carry_)
        self._back(m, carry_, carry_["codes"], carry_["dialect"])

    def _back(self, m, carry_: dict, codes: Value, dialect: Value | None):
        if self._adv is None and self._credit is None:
            p = self.o.payload
            valid = self.o.valid
        else:
            p = Signal(self.out_layout, name="pipe_payload")
            valid = Signal(name="pipe_valid")
        m.d.comb += [valid.eq(carry_["valid"]), p.last.eq(carry_["last"]),
                     p.scale.eq(carry_["scale"]), p.codes.as_value().eq(codes)]
        if dialect is not None:
            m.d.comb += p.dialect.eq(dialect)
        if self._credit is not None:
            self._fifo_back(m, valid, p)
        elif self._adv is not None:
            self._skid(m, valid, p)

    def _fifo_back(self, m, pv: Value, p: Value) -> None:
        """The credit-counted output FIFO (`out_fifo`): the pipeline runs on every clock
        and writes each valid block of its last stage into a FIFO of n = depth + 2
        entries (registers), read at the output (latency depth + 1). `credit` counts the
        blocks accepted and not yet taken; i.ready = credit < n, so the FIFO never
        overflows, and with the consumer always ready credit stays at depth + 1: one
        block per cycle. Neither valid nor ready depends on the other side's signal.
        Both counts (credit, level) are thermometer codes (`thermometer_counter`):
        i.ready and o.valid are then one flip-flop each, not a comparator behind an
        adder (a binary credit counter was the ECP5 critical path, 6.44 ns: credit ->
        `<` carry chain -> ready -> accept -> `+` carry chain -> credit)."""
        n = self.capacity
        w = len(Value.cast(p))
        q = [Signal(w, name=f"outq{j}", reset_less=True) for j in range(n)]
        # one-hot pointers (rotated, not counted): an entry's write enable and read
        # select are one pointer bit each, not a decode of a binary pointer (the decode
        # to the 142-bit entries' clock enables was the next ECP5 critical path, 6.07 ns)
        wp = Signal(n, name="outq_wp", init=1)
        rp = Signal(n, name="outq_rp", init=1)
        level = Signal(n, name="outq_level")
        take = Signal(name="outq_take")
        acc = Signal(name="outq_accept")
        m.d.comb += [take.eq(self.o.valid & self.o.ready), acc.eq(self.i.valid & self.i.ready),
                     self.o.valid.eq(level[0])]
        # read as an AND-OR of the entries (no case statement over a non-power-of-two n)
        head = 0
        for j in range(n):
            head = head | Mux(rp[j], q[j], 0)
        m.d.comb += self.o.payload.eq(head)
        for j in range(n):
            with m.If(pv & wp[j]):
                m.d.sync += q[j].eq(Value.cast(p))
        with m.If(pv):
            m.d.sync += wp.eq(wp.rotate_left(1))
        with m.If(take):
            m.d.sync += rp.eq(rp.rotate_left(1))
        thermometer_counter(m, level, pv, take)
        thermometer_counter(m, self._credit, acc, take)

    def _skid(self, m, pv: Value, p: Value) -> None:
        """The one-block output skid buffer (`out_skid`). The pipeline advances while
        `adv` (a register) is high; the skid register `skid` loads the last stage's block
        on every advance. When a valid block is not taken (o.valid & ~o.ready), `adv`
        drops: the block that was in the last stage is now in `skid` (shown on the
        output) and the pipeline holds until it is taken. o.valid = skid_valid |
        pipe_valid never depends on o.ready; the latency is unchanged."""
        adv = self._adv
        skid = Signal(self.out_layout, name="skid", reset_less=True)
        with m.If(adv):
            m.d.sync += skid.eq(p)
        # adv' = ~(o.valid & ~o.ready): low exactly while the skid buffer holds a block
        for a in self._adv_copies:
            m.d.sync += a.eq(~((~a | pv) & ~self.o.ready))
        m.d.comb += [self.o.valid.eq(~adv | pv),
                     self.o.payload.eq(Mux(adv, p, skid))]

    def timing_parameters(self) -> dict:
        return {"pipeline": self.pipeline,
                "pipeline_cuts": [c for c in self.cut_chain if c in self.cuts],
                "target_mhz": self.target_mhz, "timed_inputs": self.timed_inputs,
                "rom_style": self.rom_style,
                "out_skid": self.out_skid,
                "out_fifo": self.out_fifo,
                "synth_scopes": list(self.SYNTH_SCOPES),
                "stage_delays_ns_model": self.stage_delays,
                "model_fmax_mhz": _model_fmax(self.stage_delays)}

    def manifest_parameters(self) -> dict:
        raise NotImplementedError


def _model_fmax(stages: list[dict]) -> float | None:
    timed = [s["delay_ns"] for s in stages if s["timed"]]
    return round(1000.0 / (max(timed) + T_STAGE), 1) if timed else None


class SemDialectQuantizer(_Unit):
    """SemanticDialect LUT engine (numerics §8) on a formatbook: every dialect evaluated.

    Stages: Unpack+BlockMax+SharedExponent | Normalize | ErrorLut | DialectAdderTree |
    MaskedArgmin | IndexLut, with pipeline registers at the chosen cut points
    (`cut_chain`; `cuts` are the chosen ones, see `_Unit`)."""

    has_mask = True
    derive_idx = True

    def __init__(self, formatbook="semdialect-32", block_size: int = 32,
                 input_format: str = "bf16", frac_bits: int = 3, err_bits: int = 8,
                 pipeline: int | None = 4, index: str = DEFAULT_INDEX,
                 target_mhz: float | None = None, timed_inputs: bool = False,
                 rom_style: str = DEFAULT_ROM_STYLE, out_skid: bool | None = None):
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
        if target_mhz is not None:
            pipeline = None
        self._init_common(block_size, input_format, pipeline, target_mhz, timed_inputs,
                          rom_style, out_skid)

    def _segments(self):
        book, W = self.book, self.luts.err_rom_width  # stored entries: ERR >> L (§8.3)
        sw = W + self.tree_levels
        B, D = self.block_size, self.num_dialects
        aq = book.int_bits + self.luts.idx_frac_bits + 1
        pas = self._pass_bits(aq)
        segs = self._front_segments(book.int_bits, self.frac_bits, self.luts.idx_frac_bits,
                                    err_addr=True)
        segs.append(Segment("lut", rom(self.luts.err_addr_bits),
                            f"error ROM per lane ({self.luts.err_addr_bits} address bits)",
                            pas + D + B * D * W))
        segs += [Segment(f"tree{j}", carry(W + j + 1), f"adder level {j} ({W + j + 1} bits)",
                         pas + D + D * -(-B >> (j + 1)) * (W + j + 1))
                 for j in range(self.tree_levels)]
        segs += [Segment(f"argmin{j}", carry(sw) + T_LUT + 0.4,
                         f"argmin level {j} ({sw}-bit compare + select)",
                         pas + -(-D >> (j + 1)) * (sw + self.id_bits + 1))
                 for j in range(self.argmin_levels)]
        segs += self._index_segments(aq, self.luts.idx)
        return segs

    def elaborate(self, platform):
        m = Module()
        B, D = self.block_size, self.num_dialects
        book = self.book
        en, carry = self._front(m, book.emax, book.int_bits, self.frac_bits,
                                self.luts.idx_frac_bits)
        m.submodules.error_lut = elut = ErrorLut(self.luts, B)
        if self._idx_from_err(self.frac_bits, self.luts.idx_frac_bits):
            carry["idx_addr"] = self._fold_idx(m, carry["err_addr"], self.frac_bits,
                                               self.luts.idx_frac_bits)
        m.d.comb += elut.addr.as_value().eq(carry.pop("err_addr"))
        carry["err"] = elut.err.as_value()
        carry = self._cut(m, en, "lut", carry)

        carry, am = self._argmin_of_sums(m, en, carry, D, "mask")
        carry["dialect"] = am.dialect

        self._index_back(m, en, carry, self.luts.idx)
        return m

    def manifest_parameters(self) -> dict:
        return {
            "unit": "semdialect",
            "selector": "lut",
            "formatbook": self.book.name,
            "formatbook_hash": self.book.content_hash,
            "num_dialects": self.num_dialects,
            "block_size": self.block_size,
            "input_format": self.input_format,
            "frac_bits": self.frac_bits,
            "err_bits": self.err_bits,
            "err_shift": self.luts.err_shift,
            "idx_frac_bits": self.luts.idx_frac_bits,
            **self.timing_parameters(),
            "index": self.index,
            "err_lut_bits": self.luts.err_rom_bits,
            "idx_lut_bits": self.luts.idx_rom_bits,
            "golden_call": (
                f"semdialect.golden.quantize(x, 'semdialect', block_size={self.block_size}, "
                f"formatbook=<book>, frac_bits={self.frac_bits}, err_bits={self.err_bits}, "
                "allowed=<mask>)"),
        }


class SemDialectTwoLevel(_Unit):
    """SemanticDialect two-level selector (numerics §15) on a class-structured formatbook.

    Stages: Unpack+BlockMax+SharedExponent | Normalize (+ the block-max lane) |
    ClassSelect (class from the max address, mask ∩ class) | ClassErrorLut (K errors per
    lane at (class, address)) | K adder trees | K-way MaskedArgmin | SlotDialect (slot ->
    global id) | IndexLut. Same stream interface, mask and last fields as the exhaustive
    `SemDialectQuantizer`; every ROM comes from `golden.build_two_level`."""

    has_mask = True
    derive_idx = True
    # issue #10 timing (docs/architecture.md "Timing"): the comparator index stage with
    # its `cmp` cut point, the enable as a register copied per lane group at every cut,
    # the one-hot slot selects registered per lane group, and each lane's slot mux and
    # the error ROM mapped as their own scopes on ECP5 (ABC otherwise relaxes their depth
    # to that of the untimed input stage)
    index_cmp_point = True
    OUT_SKID = True
    ENABLE_COPY_CUTS = "all"
    NORM_REPLICATED = ("slot_sel",)
    SYNTH_SCOPES = ("*.class_err_lut.lane*", "*_class_err_lut__err_rom*")

    def __init__(self, formatbook=DEFAULT_TWO_LEVEL_BOOK, block_size: int = 32,
                 input_format: str = "bf16", frac_bits: int = 3, err_bits: int = 8,
                 pipeline: int | None = None, index: str = DEFAULT_INDEX,
                 target_mhz: float | None = DEFAULT_TARGET_MHZ, timed_inputs: bool = False,
                 rom_style: str = DEFAULT_ROM_STYLE, err_rom: str | None = None,
                 class_from: str = DEFAULT_CLASS_FROM, out_skid: bool | None = None,
                 addr_copies: int | None = None, out_fifo: bool | None = None):
        if index not in INDEX_MODES:
            raise ValueError(f"index must be one of {INDEX_MODES}, got {index!r}")
        if err_rom is None:
            err_rom = default_err_rom(pipeline, target_mhz, class_from)
        if err_rom not in ERR_ROMS:
            raise ValueError(f"err_rom must be one of {ERR_ROMS}, got {err_rom!r}")
        if class_from not in CLASS_FROM:
            raise ValueError(f"class_from must be one of {CLASS_FROM}, got {class_from!r}")
        if err_rom == "bram" and class_from != "amax":
            raise ValueError("err_rom 'bram' reads the class ROM at the norm cut, so it needs "
                             "the class beside Normalize (class_from 'amax')")
        self.index = index
        self.err_rom = err_rom
        self.class_from = class_from
        self.tables = build_two_level(formatbook, frac_bits, err_bits)
        self.book = self.tables.book
        self.luts = self.tables.luts
        if np.any(self.luts.err[:, 0] != 0):  # NaN/Inf blocks rely on ERR[d, 0] == 0
            raise ValueError("formatbook has a dialect without magnitude 0")
        self.num_dialects = self.book.num_dialects
        self.id_bits = max(1, (self.num_dialects - 1).bit_length())
        self.frac_bits = frac_bits
        self.err_bits = err_bits
        self.k = self.tables.k
        self.num_classes = self.tables.num_classes
        self.class_bits = max(1, (self.num_classes - 1).bit_length())
        self.tree_levels = tree_levels(block_size)
        self.argmin_levels = tree_levels(self.k)
        if err_rom == "mux":
            cand, self.slot_ids, sel = slot_assignment(self.tables.class_ids)
            self.sel_bits = max(max(1, (max(col) ).bit_length()) for col in zip(*sel))
            self.max_cand = max(len(c) for c in cand)
            self.onehot_words, _, self.onehot_width = slot_onehot_words(cand, sel,
                                                                        self.class_bits)
        else:  # bram: the argmin compares (sum, global id) too (no slot -> id stage)
            self.slot_ids = ([[int(d) for d in row] for row in self.tables.class_ids]
                             if err_rom == "bram" else None)
            self.max_cand = self.onehot_width = 0
        # copies of every lane's error address at `norm`, one per group of slots (the
        # one-hot mux form only; `ClassSlotMux(addr_copies=)`); default: 4 when timed
        # for 150 MHz or more, else 1
        onehot = err_rom == "mux" and class_from == "amax"
        if addr_copies is None:
            addr_copies = 4 if onehot and _timed_fast(pipeline, target_mhz) else 1
        if addr_copies != 1 and not onehot:
            raise ValueError("address copies need the one-hot slot mux form")
        if addr_copies < 1 or self.k % addr_copies or addr_copies > MAX_REPLICAS:
            raise ValueError(f"address copies must divide the {self.k} slots and be at most "
                             f"{MAX_REPLICAS}, got {addr_copies!r}")
        self.addr_copies = addr_copies
        if err_rom == "bram":  # the index stage mapped for its own depth (ABC otherwise
            # relaxes its threshold ROM + NaN/Inf mux to the input stage's: 5 LUT levels),
            # and its threshold ROM for the ROM's own (inside the index stage it was
            # still mapped 5-6 LUT4 levels deep: the limit of seeds 1-3, 6.4-6.7 ns)
            self.SYNTH_SCOPES = ("*.index_lut", "*_index_lut__thr_rom")
        if pipeline is not None:
            target_mhz = None
        if out_fifo is None:  # bram: the block RAMs and lanes span the die; no stall net
            out_fifo = err_rom == "bram"
        self._init_common(block_size, input_format, pipeline, target_mhz, timed_inputs,
                          rom_style, out_skid, out_fifo)

    def _norm_lane_copies(self) -> dict[str, int]:
        return {"err_addr": self.addr_copies} if self.addr_copies > 1 else {}

    def _required_cuts(self) -> tuple[str, ...]:
        # bram: the ROM's address register is the norm cut, its data register the lut cut
        # (the block RAM's output register on ECP5), then a fabric register (`ramq`):
        # the RAMs sit in fixed rows across the die, the adder trees gather all lanes;
        # likewise the chosen id gets a register of its own (`idroute`) on its way from
        # the argmin to the lanes' index stage
        if self.err_rom != "bram":
            return ()
        # measured (nextpnr-ecp5, docs/architecture.md "Timing"): two adder levels in one
        # stage reach 144 MHz (6.9 ns: the lanes' sums come from RAMs across the die), so
        # every adder level gets its register
        return ("norm", "lut", "ramq", *(f"tree{j}" for j in range(self.tree_levels)),
                "idroute")

    def _required_cuts_why(self) -> str:
        return "err_rom 'bram' reads the class error ROM synchronously"

    def _segments(self):
        book, W = self.book, self.luts.err_rom_width  # stored entries: ERR >> L (§8.3)
        sw = W + self.tree_levels
        B, K, cb = self.block_size, self.k, self.class_bits
        aq = book.int_bits + self.luts.idx_frac_bits + 1
        slot_bits = max(1, (K - 1).bit_length())
        pas = self._pass_bits(aq)
        amax = self.class_from == "amax"
        segs = self._front_segments(book.int_bits, self.frac_bits, self.luts.idx_frac_bits,
                                    err_addr=True, with_max=not amax)
        onehot = self.err_rom == "mux" and amax
        G = self.thr_groups
        if amax:  # the class logic sits beside Normalize (its path, about 2 LUT levels
            # after BlockMax + the class/mask logic below, is shorter than the lanes'
            # shift + barrel shifter); the norm register holds cls + allowed, not the
            # mask, and (mux form) the slots' one-hot selects once per lane group
            segs[-1] = Segment(segs[-1].name, segs[-1].delay_ns, segs[-1].what,
                               segs[-1].bits - self.num_dialects + cb + K
                               + G * self.onehot_width * onehot
                               + B * self.luts.err_addr_bits * (self.addr_copies - 1))
        derive = self._idx_from_err(self.frac_bits, self.luts.idx_frac_bits)
        lanes = pas + B * (self.luts.err_addr_bits - aq * derive)
        if not amax:
            segs.append(Segment("classrom", rom(aq), "class ROM on the max address",
                                lanes + cb + self.num_classes + self.num_dialects))
            segs.append(Segment("class", carry(cb) + 2 * T_LUT + mux_levels(cb),
                                "mask ∩ class priority encoders, allowed-slot mux",
                                lanes + cb + K))
        if onehot:  # §8 ROM on the lane address, then per slot the AND-OR of its
            # candidates with the one-hot selects (registered per lane group at `norm`)
            segs.append(Segment("lut", max(rom(self.luts.err_addr_bits), fanout(B // G))
                                + T_LUT * (1 + (self.max_cand > 2)),
                                f"error ROM per lane + {K} one-hot slot muxes "
                                f"({K} x {W} bits)", pas + cb + K + B * K * W))
        elif self.err_rom == "mux":  # §8 ROM on the lane address + per-slot class mux
            segs.append(Segment("lut", fanout(self.block_size)
                                + max(rom(self.luts.err_addr_bits), T_LUT)
                                + mux_levels(self.sel_bits),
                                f"error ROM per lane + {K} class-selected slot muxes "
                                f"({K} x {W} bits)", pas + cb + K + B * K * W))
        elif self.err_rom == "bram":  # the ROM's address register is the norm cut
            segs.append(Segment("lut", rom(cb + self.luts.err_addr_bits),
                                f"synchronous class error ROM per lane ({K} x {W} bits; "
                                "block RAM on FPGAs)", pas + cb + K + B * K * W))
            segs.append(Segment("ramq", fanout(B), "the RAM outputs' route to the fabric",
                                pas + cb + K + B * K * W))
        else:
            segs.append(Segment("lut", fanout(self.block_size) + rom(cb + self.luts.err_addr_bits),
                                f"class error ROM per lane ({K} x {W} bits)",
                                pas + cb + K + B * K * W))
        # bram: the slot ids are looked up beside the first adder level and carried
        # through the trees instead of the class (the argmin's first compare starts at a
        # register)
        early = self.err_rom == "bram"
        tcls = K * self.id_bits if early else cb
        segs += [Segment(f"tree{j}", carry(W + j + 1), f"adder level {j} ({W + j + 1} bits)",
                         pas + tcls + K + K * -(-B >> (j + 1)) * (W + j + 1))
                 for j in range(self.tree_levels)]
        if self.slot_ids is not None:  # slot ids from the class, (sum, id) compares: id out
            segs += [Segment(f"argmin{j}", carry(sw + self.id_bits) + T_LUT + 0.4
                             + (rom(cb) if j == 0 and not early else 0.0),
                             f"argmin level {j} ({sw}-bit sum + id compare + select)",
                             pas + (cb if j < self.argmin_levels - 1 else 0)
                             + -(-K >> (j + 1)) * (sw + self.id_bits + 1))
                     for j in range(self.argmin_levels)]
        else:
            segs += [Segment(f"argmin{j}", carry(sw) + T_LUT + 0.4,
                             f"argmin level {j} ({sw}-bit compare + select)",
                             pas + cb + -(-K >> (j + 1)) * (sw + slot_bits + 1))
                     for j in range(self.argmin_levels)]
            segs.append(Segment("pick", rom(cb + slot_bits), "slot -> dialect id",
                                pas + self.id_bits))
        if early:  # the chosen id's route from the argmin to the lanes' index stage
            segs.append(Segment("idroute", fanout(B), "the chosen dialect id to the lanes",
                                pas + self.id_bits))
        segs += self._index_segments(aq, self.luts.idx)
        return segs

    def elaborate(self, platform):
        m = Module()
        B, K = self.block_size, self.k
        book = self.book
        if self.class_from == "amax":
            def pre_norm(m, en, c):  # the class beside Normalize, from amax
                m.submodules.class_select = cs = ClassSelect(self.tables, slot_ids=self.slot_ids,
                                                             fmt=self.fmt)
                m.d.comb += [cs.amax.eq(c.pop("amax")), cs.low.eq(c.pop("elow")),
                             cs.bad.eq(c["bad"]), cs.mask.eq(c.pop("mask")), cs.en.eq(en)]
                c["cls"] = cs.cls
                c["allowed"] = cs.allowed
                if self.err_rom == "mux":  # the slots' one-hot selects, from the class
                    (c["slot_sel"],) = _rom(m, "slot_sel_rom", self.onehot_width,
                                            self.onehot_words, [cs.cls])
                return c

            def at_norm(m, ens, c):  # bram: the ROM read registers at the norm cut
                m.submodules.class_err_lut = elut = ClassErrorLut(self.tables, B, sync=True)
                m.d.comb += [elut.cls.eq(c["cls"]), elut.addr.as_value().eq(c["err_addr"])]
                m.d.comb += [elut.en[i].eq(ens[i * len(ens) // B]) for i in range(B)]
                return {"err": elut.err.as_value()}

            en, carry = self._front(m, book.emax, book.int_bits, self.frac_bits,
                                    self.luts.idx_frac_bits, pre_norm=pre_norm,
                                    at_norm=at_norm if self.err_rom == "bram" else None)
        else:
            en, carry = self._front(m, book.emax, book.int_bits, self.frac_bits,
                                    self.luts.idx_frac_bits, with_max=True)
            m.submodules.class_select = cs = ClassSelect(
                self.tables, rom_cut="classrom" in self.cuts, slot_ids=self.slot_ids)
            m.d.comb += [cs.max_addr.eq(carry.pop("max_addr")), cs.mask.eq(carry.pop("mask")),
                         cs.en.eq(en)]
            carry = self._delay(m, en, carry, cs.latency, "classrom")
            carry["cls"] = cs.cls
            carry["allowed"] = cs.allowed
            carry = self._cut(m, en, "class", carry)

        if self.err_rom == "bram":  # read at the norm cut (`at_norm`): err is here already
            elut = None
        elif self.err_rom == "mux" and "slot_sel" in carry:  # one-hot selects per lane group
            m.submodules.class_err_lut = elut = ClassSlotMux(
                self.tables, B, onehot_groups=self.thr_groups, addr_copies=self.addr_copies)
            m.d.comb += elut.onehot.as_value().eq(carry.pop("slot_sel"))
        else:
            lut_cls = ClassSlotMux if self.err_rom == "mux" else ClassErrorLut
            m.submodules.class_err_lut = elut = lut_cls(self.tables, B)
            m.d.comb += elut.cls.eq(carry["cls"])
        if self._idx_from_err(self.frac_bits, self.luts.idx_frac_bits):
            carry["idx_addr"] = self._fold_idx(m, carry["err_addr"], self.frac_bits,
                                               self.luts.idx_frac_bits,
                                               copies=self.addr_copies)
        if elut is None:
            carry.pop("err_addr")
        else:
            m.d.comb += elut.addr.as_value().eq(carry.pop("err_addr"))
            carry["err"] = elut.err.as_value()
        carry = self._cut(m, en, "lut", carry)
        carry = self._cut(m, en, "ramq", carry)

        if self.slot_ids is not None:  # the argmin compares (sum, global id): id out
            m.submodules.slot_ids = sid = SlotIds(self.slot_ids, self.id_bits)
            if self.err_rom == "bram":  # looked up here, carried through the trees
                m.d.comb += sid.cls.eq(carry.pop("cls"))
                carry["ids"] = sid.ids.as_value()

            def ids(c):  # the class's slot ids, looked up where the argmin starts
                if "ids" in c:
                    return c.pop("ids")
                m.d.comb += sid.cls.eq(c.pop("cls"))
                return sid.ids.as_value()

            carry, am = self._argmin_of_sums(m, en, carry, K, "allowed", ids=ids)
            carry["dialect"] = am.dialect
            carry = self._cut(m, en, "idroute", carry)
        else:
            carry, am = self._argmin_of_sums(m, en, carry, K, "allowed")
            m.submodules.slot_dialect = sd = SlotDialect(self.tables.class_ids, self.id_bits)
            m.d.comb += [sd.cls.eq(carry.pop("cls")), sd.slot.eq(am.dialect)]
            carry["dialect"] = sd.dialect
            carry = self._cut(m, en, "pick", carry)

        self._index_back(m, en, carry, self.luts.idx)
        return m

    def manifest_parameters(self) -> dict:
        return {
            "unit": "semdialect",
            "selector": "two-level",
            "formatbook": self.book.name,
            "formatbook_hash": self.book.content_hash,
            "num_dialects": self.num_dialects,
            "num_classes": self.num_classes,
            "class_size": self.k,
            "block_size": self.block_size,
            "input_format": self.input_format,
            "frac_bits": self.frac_bits,
            "err_bits": self.err_bits,
            "err_shift": self.luts.err_shift,
            "idx_frac_bits": self.luts.idx_frac_bits,
            **self.timing_parameters(),
            "index": self.index,
            "err_rom": self.err_rom,
            "class_from": self.class_from,
            "class_err_lut_bits": self.tables.class_rom_bits,
            "idx_lut_bits": self.luts.idx_rom_bits,
            "golden_call": (
                f"semdialect.golden.quantize(x, 'semdialect', block_size={self.block_size}, "
                f"formatbook=<book>, selector='two-level', frac_bits={self.frac_bits}, "
                f"err_bits={self.err_bits}, allowed=<mask>)"),
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

    Stages: Unpack+BlockMax+SharedExponent | Normalize (exact Fq address, plus the
    block-max lane) | pair ROM on the block's max address, beside it every lane's
    beneficial bits for every pair (BeneficialColumns) | BeneficialCount (pair-selected
    bits + two popcount trees) | IndexLut (with its `cmp` cut point). No allowed-dialect
    mask (the golden two-stage selector takes none)."""

    index_cmp_point = True
    OUT_SKID = True

    def __init__(self, formatbook="dialectfp4", block_size: int = 32, input_format: str = "bf16",
                 pipeline: int | None = None, index: str = DEFAULT_INDEX,
                 target_mhz: float | None = DEFAULT_TARGET_MHZ, timed_inputs: bool = False,
                 rom_style: str = DEFAULT_ROM_STYLE, out_skid: bool | None = None):
        if index not in INDEX_MODES:
            raise ValueError(f"index must be one of {INDEX_MODES}, got {index!r}")
        self.index = index
        self.book = load_formatbook(formatbook)
        _pairs(self.book)  # raises ValueError when the book is not paired
        self.num_dialects = self.book.num_dialects
        self.id_bits = max(1, (self.num_dialects - 1).bit_length())
        self.fq = self.book.grid_frac_bits + 1
        self.addr_bits = self.book.int_bits + self.fq + 1
        self.idx = build_luts(self.book, self.fq, 8).idx
        self.pairs = pair_table(self.book)
        self.ben = beneficial_table(self.book)
        self.ben_cols = max(1, max(beneficial_columns(self.ben, self.id_bits - 1)[0])
                            .bit_length())
        self.cnt_levels = tree_levels(block_size // 2)  # a count tree per half block
        if pipeline is not None:
            target_mhz = None
        self._init_common(block_size, input_format, pipeline, target_mhz, timed_inputs,
                          rom_style, out_skid)

    @property
    def pair_groups(self) -> int:
        """Replicas of the `pair` register (`register_replicas`), each driving
        block_size / pair_groups lanes' pair-selects; used when the `pair` cut is placed."""
        return self.thr_groups

    def _segments(self):
        pb, B = self.id_bits - 1, self.block_size
        pas = self._pass_bits(self.addr_bits)
        segs = self._front_segments(self.book.int_bits, self.fq, self.fq, err_addr=False,
                                    with_max=True)
        # the pair ROM on the block max and, beside it, every lane's beneficial bits for
        # every pair (`BeneficialColumns`, on the lane's own address); the pair register
        # is replicated per group of lanes (`pair_groups`), so its fan-out is B / groups
        G = self.pair_groups
        segs.append(Segment("pair", rom(self.addr_bits) + fanout(G),
                            f"pair ROM on the max address ({G} register replicas); per-lane "
                            "beneficial columns",
                            pas + G * pb + B * self.ben_cols,
                            uncut_ns=fanout(B) - fanout(B // G)))
        segs.append(Segment("ben", fanout(B // G) + mux_levels(pb),
                            "pair-selected beneficial bits per lane", pas + pb + 2 * B))
        # one count tree per half block, 2-bit leaves (`BeneficialCount`), then one
        # compare of the two halves' sums on the carry chain
        segs += [Segment(f"cnt{j}", carry(j + 3), f"half-block count level {j}",
                         pas + pb + -(-B >> (j + 1)) * (j + 3))
                 for j in range(self.cnt_levels)]
        segs.append(Segment("count", carry(self.cnt_levels + 2) + T_LUT,
                            "half-count compare -> dialect id", pas + self.id_bits))
        segs += self._index_segments(self.addr_bits, self.idx)
        return segs

    def elaborate(self, platform):
        m = Module()
        B = self.block_size
        book = self.book
        en, carry = self._front(m, book.emax, book.int_bits, self.fq, self.fq, with_max=True)
        carry.pop("err_addr")
        pb = self.id_bits - 1
        m.submodules.pair_rom = pr = BlockMaxTable(self.pairs, self.addr_bits)
        m.d.comb += pr.max_addr.eq(carry.pop("max_addr"))
        m.submodules.ben_cols = bcol = BeneficialColumns(self.ben, B, pb)
        m.d.comb += bcol.idx_addr.as_value().eq(carry["idx_addr"])
        carry["ben_cols"] = bcol.cols.as_value()
        pair = Signal(pb, name="pair")
        m.d.comb += pair.eq(pr.out)
        if "pair" in self.cuts:  # one pair register per group of lanes
            pairs = register_replicas(m, pair, self.pair_groups, en, "pair_pair")
        else:
            pairs = [pair]
        carry = self._cut(m, en, "pair", carry)
        cnt_cuts = [j for j in range(self.cnt_levels) if f"cnt{j}" in self.cuts]
        m.submodules.ben_count = bc = BeneficialCount(
            self.ben, B, pb, rom_cut="ben" in self.cuts, cuts=cnt_cuts, groups=len(pairs))
        m.d.comb += [bc.pair.as_value().eq(Cat(*pairs)),
                     bc.cols.as_value().eq(carry.pop("ben_cols")),
                     bc.bad.eq(carry["bad"]), bc.en.eq(en)]
        carry = self._delay(m, en, carry, bc.latency, "ben")
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
            **self.timing_parameters(),
            "index": self.index,
            "idx_lut_bits": int(self.idx.size) * 3,
            "pair_rom_bits": int(self.pairs.size) * max(1, int(self.pairs.max()).bit_length()),
            "beneficial_rom_bits": len(beneficial_columns(self.ben, self.id_bits - 1)[0])
            * self.ben_cols,
            "pair_groups": self.pair_groups if "pair" in self.cuts else 1,
            "golden_call": (
                f"semdialect.golden.quantize(x, 'dialectfp4', block_size={self.block_size}, "
                "formatbook=<book>, selector='two-stage')"),
        }


class MXFP4Quantizer(_Unit):
    """OCP MXFP4 (numerics §4): E8M0 scale with emax 2, E2M1 elements by arithmetic RNE.

    Stages: Unpack+BlockMax+SharedExponent | Normalize (exact 1/4 address) | E2M1Round.
    No dialect output, no mask."""

    has_dialect = False

    def __init__(self, block_size: int = 32, input_format: str = "bf16", pipeline: int = 2,
                 target_mhz: float | None = None, timed_inputs: bool = False,
                 rom_style: str = DEFAULT_ROM_STYLE, out_skid: bool | None = None):
        self.emax = E2M1.emax
        if target_mhz is not None:
            pipeline = None
        self._init_common(block_size, input_format, pipeline, target_mhz, timed_inputs,
                          rom_style, out_skid)

    def _segments(self):
        return self._front_segments(self.emax + 1, 2, 2, err_addr=False) + [
            Segment("out", carry(5) + 3 * T_LUT, "E2M1 rounding per lane",
                    4 * self.block_size + 10)]

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
            **self.timing_parameters(),
            "golden_call": f"semdialect.golden.quantize(x, 'mxfp4', block_size={self.block_size})",
        }

"""Where the pipeline registers go: an ECP5 delay model per stage and the cut selection.

Every unit describes its datapath as a chain of *cut points* (places where a register
stage can be inserted) with the modelled delay of the logic in front of each one
(`Segment`). `choose_cuts` then places the registers where the delay is:

* `target_mhz`: every timed stage fits the period, with the fewest register *bits*
  (each cut point knows how wide its register stage is: a cut after a wide level costs
  more flip-flops than one after a narrow level), then the fewest stages (dynamic
  programming over the chain);
* `depth`: exactly that many registers, placed to minimise the longest timed stage
  (dynamic programming over the chain).

"Timed" follows the measurement (nextpnr out of context, `semdialect report`): the
register-to-register paths. The logic between the input ports and the first register
is timed only with `timed_inputs=True` (an integrator that drives the unit straight
from registers and wants the whole path inside the period); the default leaves it, as
for the MXFP4 baseline, to the integrator's own input timing. The model's delay of that
input stage is reported in the manifest either way.

The model is a sum of a few primitives, calibrated against a nextpnr-ecp5 0.11 critical
path of the DialectFP4 unit on LFE5U-85F and Yosys `ltp` depths of the ROMs
(docs/architecture.md, "Timing"):

* `T_LUT`: one LUT4 level plus its net;
* `rom(n)`: a table of n address bits, max(1, n - 3) LUT levels;
* `carry(n)`: an n-bit carry chain (adder, comparator) with its entry and exit nets;
* `fanout(n)`: a per-block value (class, pair, thresholds) routed to n lanes;
* `T_STAGE`: clock-to-Q + setup, taken off the period of every stage.

The numbers are a model, not a timing analysis: every unit's Fmax in the report comes
from nextpnr itself.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Segment", "T_LUT", "T_FANOUT", "T_STAGE", "carry", "rom", "fanout", "mux_levels",
           "choose_cuts", "stage_delays", "DEFAULT_TARGET_MHZ"]

#: the default clock target of the SemanticDialect and DialectFP4 units (issue #10)
DEFAULT_TARGET_MHZ = 150.0

T_LUT = 0.75  # ns: LUT4 + its net (nextpnr path: 0.24 logic + ~0.5 routing per level)
T_CARRY_ENTRY = 2.0  # ns: nets into and out of a carry chain (nextpnr: 2.1-2.6 ns a level)
T_CARRY_BIT = 0.055  # ns per bit of ripple (CCU2C: two bits per cell)
T_FANOUT = 0.6  # ns per doubling of the lanes a per-block value is routed to (fanout)
T_STAGE = 0.95  # ns: clock-to-Q + setup of every register stage


def carry(n: int) -> float:
    """An n-bit add/compare on the carry chain."""
    return T_CARRY_ENTRY + T_CARRY_BIT * n


def rom(in_bits: int) -> float:
    """A constant table of `in_bits` address bits in logic. The flow maps with
    `abc -lut 4` (LUT4 only): measured (Yosys `ltp`) depth max(1, in_bits - 3) LUT
    levels for 5..10 address bits."""
    return T_LUT * max(1, in_bits - 3)


def fanout(lanes: int) -> float:
    """Extra routing of a per-block value (class, pair, thresholds) driven to the logic
    of `lanes` lanes: T_FANOUT per doubling (none for one lane)."""
    return T_FANOUT * max(0, (lanes - 1).bit_length())


def mux_levels(select_bits: int) -> float:
    """A 2^s : 1 multiplexer (barrel-shifter stage set): one LUT4 level per select bit."""
    return T_LUT * select_bits


@dataclass(frozen=True)
class Segment:
    """The logic between the previous cut point (or the inputs) and cut point `name`;
    `delay_ns` its modelled delay, `what` a short description, `bits` the width of the
    register stage placed at this cut (flip-flops it costs)."""

    name: str
    delay_ns: float
    what: str = ""
    bits: int = 0
    #: extra delay of the stage when NO register is placed at this cut (the logic after
    #: it then sees the unregistered value: e.g. the thresholds straight from their ROM
    #: to all B lanes instead of from per-group register replicas)
    uncut_ns: float = 0.0


def _span(segments: list[Segment], i: int, j: int) -> float:
    """Delay of one stage made of segments i..j (no register at i..j-1)."""
    return (sum(s.delay_ns for s in segments[i:j + 1])
            + sum(s.uncut_ns for s in segments[i:j]))


def _stages(segments: list[Segment], cuts_idx: list[int]) -> list[float]:
    """Stage delays for cut indices (sorted): stage k ends at cut k; the last cut
    is the output register. Stage 0 is the input stage."""
    out, start = [], 0
    for c in cuts_idx:
        out.append(_span(segments, start, c))
        start = c + 1
    return out


def choose_cuts(segments: list[Segment], *, depth: int | None = None,
                target_mhz: float | None = None, front: str | None = None,
                timed_inputs: bool = False) -> list[str]:
    """Names of the cut points that get a register (in chain order); the last segment
    is always the output register when depth >= 1.

    target_mhz: `front` (the end of the front end shared with the MXFP4 baseline) is
    always cut and, unless timed_inputs, the logic before it is the untimed input stage
    (as the baseline's); every later stage is fitted into the period."""
    n = len(segments)
    names = [s.name for s in segments]
    if (depth is None) == (target_mhz is None):
        raise ValueError("give exactly one of depth / target_mhz")
    if target_mhz is not None:
        if not (isinstance(target_mhz, int | float) and target_mhz > 0):
            raise ValueError(f"target MHz must be a positive number, got {target_mhz!r}")
        period = 1000.0 / target_mhz - T_STAGE
        stop = -1 if (timed_inputs or front is None) else names.index(front)
        return [names[c] for c in _fewest_bits(segments, period, stop)]
    if not isinstance(depth, int) or not 0 <= depth <= n:
        raise ValueError(f"pipeline depth must be an integer in 0..{n} for this unit, "
                         f"got {depth!r}")
    if depth == 0:
        return []
    if depth >= 2 and front is not None and not timed_inputs:
        f = names.index(front)  # the baseline's input stage, then balance the rest
        n_back = n - f - 1
        if depth - 1 <= n_back:
            return [front] + [names[f + 1 + c] for c in _balanced(segments[f + 1:], depth - 1)]
        # more registers than back-end cut points: every back point, the rest in front
        return [names[c] for c in _balanced(segments[:f + 1], depth - n_back)] + names[f + 1:]
    return [names[c] for c in _balanced(segments, depth)]


def _fewest_bits(segments: list[Segment], period: float, stop: int) -> list[int]:
    """Cut indices (the last at the chain's end, `stop` forced when >= 0) such that every
    stage after `stop` fits `period` (a single segment longer than the period is a stage
    of its own), with the fewest register bits, then the fewest registers (DP)."""
    n = len(segments)
    start = stop + 1 if stop >= 0 else 0
    inf = (float("inf"), 0)
    best = {stop: (segments[stop].bits if stop >= 0 else 0, 1 if stop >= 0 else 0)}
    back: dict[int, int] = {}
    for j in range(start, n):
        best_j, arg = inf, None
        for i in best:  # previous cut i (or stop / the inputs), stage = segments i+1..j
            t = _span(segments, i + 1, j)
            if t > period + 1e-9 and j > i + 1:
                continue
            c = (best[i][0] + segments[j].bits, best[i][1] + 1)
            if c < best_j:
                best_j, arg = c, i
        if arg is not None:
            best[j], back[j] = best_j, arg
    cuts, j = [], n - 1
    while j >= start:
        cuts.append(j)
        j = back[j]
    if stop >= 0:
        cuts.append(stop)
    return sorted(cuts)


def _balanced(segments: list[Segment], k: int) -> list[int]:
    """k cut indices into the chain (the last one at its end) minimising the longest
    stage (dynamic programming; ties: the earliest cuts)."""
    n = len(segments)
    if k > n:
        raise ValueError(f"pipeline depth {k} exceeds the {n} cut points left")
    inf = float("inf")
    best = [[inf] * (k + 1) for _ in range(n)]
    back = [[-1] * (k + 1) for _ in range(n)]
    for j in range(n):
        best[j][1] = _span(segments, 0, j)
    for kk in range(2, k + 1):
        for j in range(n):
            for i in range(j):
                v = max(best[i][kk - 1], _span(segments, i + 1, j))
                if v < best[j][kk] - 1e-12:
                    best[j][kk], back[j][kk] = v, i
    cuts, j = [n - 1], n - 1
    for kk in range(k, 1, -1):
        j = back[j][kk]
        cuts.append(j)
    return sorted(cuts)


def stage_delays(segments: list[Segment], cuts: list[str]) -> list[dict]:
    """Modelled delay of every pipeline stage for the chosen cuts (stage 0 = from the
    inputs to the first register; the logic after the last cut is none: the output
    register is the last cut)."""
    names = [s.name for s in segments]
    idx = sorted(names.index(c) for c in cuts)
    if not idx:
        return [{"stage": 0, "to": "outputs",
                 "delay_ns": round(_span(segments, 0, len(segments) - 1), 2), "timed": False}]
    out = []
    for k, t in enumerate(_stages(segments, idx)):
        out.append({"stage": k, "to": names[idx[k]], "delay_ns": round(t, 2),
                    "timed": k > 0})
    return out

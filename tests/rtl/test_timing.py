"""Cut placement (rtl/timing.py): registers go where the modelled delay is, with the
fewest flip-flop bits; exact depths minimise the longest stage."""

from __future__ import annotations

import pytest

from semdialect.rtl import DialectFP4TwoStage, MXFP4Quantizer, SemDialectTwoLevel
from semdialect.rtl.timing import T_STAGE, Segment, choose_cuts, stage_delays

CHAIN = [Segment("norm", 20.0, bits=100), Segment("a", 3.0, bits=500),
         Segment("b", 3.0, bits=50), Segment("c", 3.0, bits=400), Segment("d", 3.0, bits=60),
         Segment("out", 2.0, bits=30)]


def test_target_fits_the_period_with_the_fewest_bits():
    cuts = choose_cuts(CHAIN, target_mhz=1000 / (6.5 + T_STAGE), front="norm")
    # stages after norm: a+b = 6 (cut at b, 50 bits, not at a, 500), c+d = 6, out = 2
    assert cuts == ["norm", "b", "d", "out"]
    st = stage_delays(CHAIN, cuts)
    assert [s["delay_ns"] for s in st] == [20.0, 6.0, 6.0, 2.0]
    assert max(s["delay_ns"] for s in st if s["timed"]) <= 6.5
    assert not st[0]["timed"]  # the input stage (front end) is the baseline's


def test_a_slower_clock_needs_fewer_registers():
    fast = choose_cuts(CHAIN, target_mhz=1000 / (6.5 + T_STAGE), front="norm")
    slow = choose_cuts(CHAIN, target_mhz=1000 / (14.0 + T_STAGE), front="norm")
    assert len(slow) < len(fast) and slow[0] == "norm" and slow[-1] == "out"


def test_timed_inputs_and_long_segments():
    cuts = choose_cuts(CHAIN, target_mhz=1000 / (6.5 + T_STAGE), timed_inputs=True)
    assert cuts[0] == "norm"  # the 20 ns segment is a stage of its own (no cut inside)
    st = stage_delays(CHAIN, cuts)
    assert st[0]["delay_ns"] == 20.0


def test_exact_depth_minimises_the_longest_stage():
    assert choose_cuts(CHAIN, depth=2, front="norm") == ["norm", "out"]
    cuts = choose_cuts(CHAIN, depth=3, front="norm")
    assert cuts == ["norm", "b", "out"]  # 6 + 8 beats 3 + 11 and 9 + 5
    assert choose_cuts(CHAIN, depth=0) == []
    with pytest.raises(ValueError):
        choose_cuts(CHAIN, depth=7)
    with pytest.raises(ValueError):
        choose_cuts(CHAIN, target_mhz=0)
    with pytest.raises(ValueError):
        choose_cuts(CHAIN)


def test_units_meet_their_target_in_the_model():
    """Every timed stage fits 1/150 MHz minus the register overhead, or is a single cut
    point's logic (which no register placement can split)."""
    for u in (SemDialectTwoLevel(), DialectFP4TwoStage()):
        assert u.target_mhz == 150
        names = [sg.name for sg in u.segments]
        prev = None
        for st in u.stage_delays:
            k = names.index(st["to"])
            single = prev is not None and k == prev + 1
            if st["timed"]:
                assert st["delay_ns"] <= 1000 / 150 - T_STAGE + 1e-9 or single, st
            prev = k
        # (+1: the two-level default's output FIFO is read from its registers)
        assert u.latency == len(u.cuts) + u.out_fifo and "norm" in u.cuts and "out" in u.cuts
        # the index stage registers its thresholds (per-group replicas, issue #10): the
        # ROM-to-32-lanes fan-out does not fit the period (`uncut_ns`)
        assert "thr" in u.cuts and u.thr_groups == 4
    mx = MXFP4Quantizer()  # the baseline keeps its measured configuration
    assert sorted(mx.cuts) == ["norm", "out"]

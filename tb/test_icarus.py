"""The generated Verilog on a second, independent simulator: Icarus Verilog with a plain
Verilog-2005 testbench (sim/icarus.py), bit-exact against the golden model under random
valid gaps and backpressure, with a block offered during reset (issue #10's integration
findings). Skipped where `iverilog` is not installed (`apt-get install iverilog`; the
noxfile installs it when it runs as root on Debian).

CI: MXFP4, DialectFP4 and the default two-level unit, plus a mutant whose `i__ready`
ignores reset, which must fail. Slow: the exhaustive semdialect-32 engine (seconds per
block on Icarus: its 8,192-bit error bus).
"""

from __future__ import annotations

import re
from dataclasses import replace

import numpy as np
import pytest

from semdialect.sim.configs import CONFIGS
from semdialect.sim.icarus import icarus_available, run_icarus
from semdialect.sim.stimulus import mixed_stream, random_masks

pytestmark = pytest.mark.skipif(not icarus_available(),
                                reason="Icarus Verilog not installed (apt-get install iverilog)")

#: blocks per configuration (Icarus CPU: 0.02 s per block for MXFP4 and DialectFP4, 0.15 s
#: for the two-level unit; docs/verification.md)
BLOCKS = {"mxfp4": 96, "dialectfp4": 48, "semdialect-32-2l": 48}


def _stream(gen, n, seed):
    cfg = gen.config
    x, _ = mixed_stream(n, cfg.block_size, cfg.dtype, seed)
    rng = np.random.default_rng(seed + 7)
    d = gen.manifest["parameters"].get("num_dialects")
    masks = random_masks(n, d, rng) if cfg.has_mask else None
    return x, masks, rng.integers(0, 2, n).astype(np.uint8)


def _generated(name):
    from semdialect.sim import verilator as v

    return v.generate(CONFIGS[name])


@pytest.mark.parametrize("name", list(BLOCKS))
def test_icarus_bit_exact_with_reset_offer_gaps_and_backpressure(name):
    gen = _generated(name)
    n = BLOCKS[name]
    x, masks, last = _stream(gen, n, 11)
    r = run_icarus(gen, x, masks, last, seed=11, gap=0.25, backpressure=0.4)
    assert r.compile_log == "", r.compile_log  # no iverilog warnings
    # the tables are logic (case functions), not `initial` blocks an ASIC flow ignores
    assert not any(re.search(r"\binitial\b", f.read_text()) for f in gen.verilog
                   if f.suffix == ".v")
    assert r.accepted_in_reset == 0
    assert r.report.ok, r.report.text()
    assert r.report.n_in == r.report.n_out == n
    # the flow control really throttled: more cycles than blocks + latency
    assert r.cycles > n + (gen.manifest.get("latency") or 0) + 10


def test_icarus_catches_a_unit_ready_during_reset(tmp_path):
    """A mutant MXFP4 whose i__ready ignores rst: the block offered during reset is
    taken and dropped, and the Icarus path must say so."""
    gen = _generated("mxfp4")
    src = [f for f in gen.verilog if f.suffix == ".v"]
    assert len(src) == 1
    text = src[0].read_text()
    pat = re.compile(r"assign i__ready = (.+?) & (\S+) ;")
    m = pat.search(text)
    assert m, "mutation site (assign i__ready = en & ~rst) not found"
    rst_term = re.search(r"assign " + re.escape(m.group(2)) + r"\s*= ~ rst;", text)
    assert rst_term, f"{m.group(2)} is not ~rst in the generated Verilog"
    mutant = tmp_path / src[0].name
    mutant.write_text(text[:m.start()] + f"assign i__ready = {m.group(1)};" + text[m.end():])
    x, masks, last = _stream(gen, 16, 12)
    r = run_icarus(replace(gen, verilog=[mutant]), x, masks, last, seed=12, gap=0.0,
                   backpressure=0.0)
    assert r.accepted_in_reset >= 1
    assert not r.report.ok
    assert r.report.n_out < 16  # the block taken during reset never comes out


@pytest.mark.slow
def test_icarus_exhaustive_engine():
    gen = _generated("semdialect-32")
    x, masks, last = _stream(gen, 8, 13)
    r = run_icarus(gen, x, masks, last, seed=13, gap=0.25, backpressure=0.4)
    assert r.compile_log == "" and r.accepted_in_reset == 0
    assert r.report.ok, r.report.text()

"""The compiled bulk path (sim/bulk.py) and the sharded Dask regression (sim/regress.py).

CI (`-m "not slow"`): the mxfp4 unit (the cheapest build) through the compiled harness
bit-exact under gaps/backpressure and at II = 1, the cycle budget failing loudly, the
mismatch report of the shared scoreboard; a two-worker LocalCluster regression that is
interrupted and resumed (only the missing shards run), and one in which a worker
process is killed mid-run (the result is still complete and correct).
Slow: semdialect-32 through the compiled path, a corrupted netlist caught with waves.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
from dataclasses import replace

import numpy as np
import pytest

from semdialect.sim.configs import CONFIGS, golden_quantize
from semdialect.sim.stimulus import mixed_stream, random_masks

CHEAP = "mxfp4"


@pytest.fixture(scope="module")
def bulk_mxfp4():
    from semdialect.sim import verilator as v
    from semdialect.sim.bulk import build_bulk

    return build_bulk(v.generate(CONFIGS[CHEAP]))


def _stream(cfg, n, seed, d=None):
    x, _ = mixed_stream(n, cfg.block_size, cfg.dtype, seed)
    rng = np.random.default_rng(seed + 7)
    masks = random_masks(n, d, rng) if cfg.has_mask else None
    return x, masks, rng.integers(0, 2, n).astype(np.uint8)


def test_bulk_bit_exact_with_gaps_and_backpressure(bulk_mxfp4):
    from semdialect.sim.bulk import run_bulk

    cfg = CONFIGS[CHEAP]
    x, masks, last = _stream(cfg, 6000, 3)
    r = run_bulk(bulk_mxfp4, x, masks, last, seed=3, gap=0.3, backpressure=0.5)
    assert r.report.ok, r.report.text()
    assert r.report.n_in == r.report.n_out == 6000
    assert r.report.elements_checked == 6000 * cfg.block_size
    assert len(r.out_cycles) == 6000 and (np.diff(r.out_cycles) > 0).all()
    assert 0.25 < r.stats["blocks_per_cycle"] < 0.6  # the flow control really throttled
    # valid and ready always high: one block per cycle (II = 1)
    r = run_bulk(bulk_mxfp4, x, masks, last, seed=3, gap=0.0, backpressure=0.0)
    assert r.report.ok and (np.diff(r.out_cycles) == 1).all()
    # the block accepted in cycle 0 comes out in cycle `latency` (the manifest's): the
    # testbench wrapper's input registers add no cycle at the unit's ports
    assert r.out_cycles[0] == bulk_mxfp4.itf.latency


def test_bulk_cycle_budget_fails_loudly(bulk_mxfp4):
    from semdialect.sim.bulk import CycleBudgetExceeded, run_bulk

    x, masks, last = _stream(CONFIGS[CHEAP], 2000, 4)
    with pytest.raises(CycleBudgetExceeded, match="cycle budget of 500 cycles"):
        run_bulk(bulk_mxfp4, x, masks, last, seed=4, max_cycles=500)


def test_bulk_mismatch_report_names_block_lane_field(bulk_mxfp4):
    """The harness's outputs go through the cocotb flow's Scoreboard: a wrong expected
    code / scale is reported with the stream index (shard offset included)."""
    from semdialect.sim.bulk import run_bulk

    cfg = CONFIGS[CHEAP]
    x, masks, last = _stream(cfg, 500, 5)
    g = golden_quantize(cfg, x)
    codes, scales = g.codes.copy(), g.scales.copy()
    codes[17, 5] ^= 1
    scales[40] ^= 0x10
    bad = replace(g, codes=codes, scales=scales)
    r = run_bulk(bulk_mxfp4, x, masks, last, seed=5, expected=bad, offset=1000)
    text = r.report.text()
    assert not r.report.ok and r.report.mismatching_blocks == 2
    assert re.search(rf"block 1017 lane 5: code expected 0x{codes[17, 5]:x} got "
                     rf"0x{g.codes[17, 5]:x} \(input 0x[0-9a-f]{{4}}\)", text), text
    assert "block 1040: scale" in text


def test_vector_rows_read_only_the_slice(tmp_path):
    """A shard of a .npy file reads its rows through a memory map: the same blocks as
    the whole-file load (float32 rounded to bf16, bf16 as stored, Fortran order)."""
    import ml_dtypes

    from semdialect.sim.stimulus import load_vector_blocks, vector_block_rows

    rng = np.random.default_rng(3)
    a = (rng.laplace(size=(300, 64)) * 1e3).astype(np.float32)
    a[5, 7] = 3.4e38  # rounds to +Inf in bf16
    for name, arr in (("f32", a), ("bf16", a.astype(ml_dtypes.bfloat16)),
                      ("fortran", np.asfortranarray(a))):
        p = tmp_path / f"{name}.npy"
        np.save(p, arr)
        full, _ = load_vector_blocks(p, 32, ml_dtypes.bfloat16)
        got = vector_block_rows(p, 32, ml_dtypes.bfloat16, 9, 421)
        assert got.dtype == full.dtype and not isinstance(got, np.memmap)
        assert got.tobytes() == full[9:421].tobytes(), name
    with pytest.raises(ValueError, match="not a multiple"):
        vector_block_rows(tmp_path / "f32.npy", 48, ml_dtypes.bfloat16, 0, 4)
    # a safetensors export: tensors of 48 channels (padded to 2 blocks a row), float32,
    # with stored expected outputs (skipped) and aliases; slices across tensors
    from semdialect.sw.synthetic import synthetic_vectors
    from semdialect.sw.vectors import add_expected, save_vectors

    t, m = synthetic_vectors("synthetic-timestep-scale", steps=2, tokens=5, channels=48,
                             layers=3)
    add_expected(t, m, "mxfp4")  # in place
    p = tmp_path / "v.safetensors"
    save_vectors(p, t, m)
    full, _ = load_vector_blocks(p, 32, ml_dtypes.bfloat16)
    n = len(full)
    for lo, hi in ((0, n), (0, 1), (3, 17), (9, n - 1), (n - 1, n), (5, 5)):
        got = vector_block_rows(p, 32, ml_dtypes.bfloat16, lo, hi)
        assert got.shape == (hi - lo, 32) and not isinstance(got, np.memmap)
        assert got.tobytes() == full[lo:hi].tobytes(), (lo, hi)


def test_bulk_rejects_bad_arguments(bulk_mxfp4):
    from semdialect.sim.bulk import run_bulk

    x, masks, last = _stream(CONFIGS[CHEAP], 10, 6)
    with pytest.raises(ValueError, match="probabilities"):
        run_bulk(bulk_mxfp4, x, masks, last, gap=1.0)
    with pytest.raises(ValueError, match="blocks must be"):
        run_bulk(bulk_mxfp4, x.astype(np.float32), masks, last)


# ---------------------------------------------------------------------------------------
# Dask
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client(bulk_mxfp4):
    pytest.importorskip("distributed")
    from semdialect.sim.regress import open_client

    c = open_client(workers=2)
    yield c
    cl = c.cluster
    c.close()
    cl.close()


REGRESS = dict(configs=[CHEAP], elements=12 * 4096 * 8, shard_elements=4096 * 8, seeds=1,
               gap=0.1, backpressure=0.2, progress=False, plots=False)


def test_regress_interrupted_and_resumed(client, tmp_path):
    """Ctrl-C after 3 shards: they are stored; the re-run runs only the other 9; a third
    run runs nothing; element counts add up to the input every time."""
    from semdialect.sim.regress import run_regress

    seen = []

    def interrupt(r, _client):
        seen.append(r["spec"]["key"])
        if len(seen) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_regress(tmp_path, client=client, on_result=interrupt, **REGRESS)
    assert sorted(p.stem for p in (tmp_path / "shards").glob("*.json")) == sorted(seen)
    s = run_regress(tmp_path, client=client, **REGRESS)
    assert s["ok"], s["problems"]
    assert sorted(s["shards_reused"]) == sorted(seen) and len(s["shards_ran"]) == 9
    c = s["configs"][CHEAP]
    assert c["elements_checked"] == c["elements_expected"] == REGRESS["elements"]
    assert c["counts_add_up"] and c["shards_missing"] == 0
    assert len(s["workers"]) == 2  # both workers ran shards
    md = (tmp_path / "summary.md").read_text()
    assert "**PASS**" in md and "9 ran now, 3 reused" in md
    again = run_regress(tmp_path, client=client, **REGRESS)
    assert again["ok"] and not again["shards_ran"] and len(again["shards_reused"]) == 12
    # a different seed is a different content address: everything runs again
    s2 = run_regress(tmp_path, client=client, **dict(REGRESS, seeds=2))
    assert len(s2["shards_ran"]) == 12 and len(s2["shards_reused"]) == 12
    assert s2["configs"][CHEAP]["elements_checked"] == 2 * REGRESS["elements"]


def test_regress_survives_a_killed_worker(client, tmp_path):
    """A worker process is SIGKILLed while it holds shards: Dask reschedules them; the
    merged result is complete (every shard, counts add up) and bit-exact."""
    from semdialect.sim.regress import run_regress

    killed = {}

    def kill_one(_r, c):
        if killed:
            return
        busy = {w: ts for w, ts in c.processing().items() if ts}
        if not busy:
            return
        addr = sorted(busy)[0]
        pid = c.run(os.getpid, workers=[addr])[addr]
        killed.update(addr=addr, pid=pid, tasks=list(busy[addr]))
        os.kill(pid, signal.SIGKILL)

    # a vector file this time (the workers read their slices and check their hashes)
    vec = tmp_path / "laplace.npy"
    rng = np.random.default_rng(12)
    np.save(vec, (rng.laplace(size=(16 * 1024, 32)) * 10.0).astype(np.float32))
    s = run_regress(tmp_path, client=client, on_result=kill_one,
                    **dict(REGRESS, elements=None, vectors=str(vec)))
    assert killed, "no worker held a shard when the first result arrived"
    assert s["ok"], s["problems"]
    c = s["configs"][CHEAP]
    assert len(s["shards_ran"]) == 16 and c["shards_missing"] == 0
    assert c["source"].startswith("file:") and c["blocks"] == 16 * 1024
    assert c["elements_checked"] == c["elements_expected"] == 16 * 1024 * 32
    assert c["mismatching_blocks"] == 0
    # every stored shard result is complete and bit-exact
    for p in (tmp_path / "shards").glob("*.json"):
        r = json.loads(p.read_text())
        assert r["ok"] and r["bulk"]["report"]["n_in"] == r["bulk"]["report"]["n_out"]
    assert client.cluster.workers, "the nanny restarted the killed worker"


def test_regress_command_line(tmp_path, client):
    """`semdialect regress --scheduler ADDRESS` end to end, on the running cluster."""
    from semdialect.cli import main

    out = tmp_path / "cli"
    argv = ["regress", "-o", str(out), "--configs", CHEAP, "--elements", "16384",
            "--shard-elements", "8192", "--scheduler", client.scheduler.address,
            "--no-progress"]
    assert main(argv) == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["ok"] and len(s["shards_ran"]) == 2 and s["elements_checked"] == 16384
    assert s["cluster"]["kind"] == "external scheduler"
    assert (out / "summary.md").exists() and (out / "regress.png").exists()
    assert main(argv) == 0  # everything reused, no cluster started
    assert len(json.loads((out / "summary.json").read_text())["shards_reused"]) == 2
    assert main(["regress", "--configs", CHEAP, "--elements", "0"]) == 2  # argparse
    assert main(["regress", "--configs", "nope", "--elements", "64"]) == 2


def test_regress_rejects_bad_arguments(tmp_path):
    from semdialect.sim.regress import run_regress

    for kw, msg in ((dict(configs=["nope"]), "unknown configuration"),
                    (dict(elements=0), "--elements must be"),
                    (dict(shard_elements=-1), "--shard-elements"),
                    (dict(gap=1.5), "--gap"),
                    (dict(workers=2, scheduler="tcp://h:1"), "cannot be combined"),
                    (dict(scheduler="nowhere"), "--scheduler must be"),
                    (dict(vectors=str(tmp_path / "none.npy")), "does not exist"),
                    (dict(elements=None), "give --vectors")):
        args = dict(configs=[CHEAP], elements=1024, progress=False, plots=False)
        args.update(kw)
        with pytest.raises(ValueError, match=msg):
            run_regress(tmp_path, **args)


# ---------------------------------------------------------------------------------------
# slow: the real unit, and a real fault with waves
# ---------------------------------------------------------------------------------------


@pytest.mark.slow
def test_bulk_semdialect32_bit_exact():
    from semdialect.sim import verilator as v
    from semdialect.sim.bulk import build_bulk, run_bulk

    cfg = CONFIGS["semdialect-32"]
    bb = build_bulk(v.generate(cfg))
    x, masks, last = _stream(cfg, 1 << 16, 9, bb.itf.num_dialects)
    r = run_bulk(bb, x, masks, last, seed=9, gap=0.1, backpressure=0.2)
    assert r.report.ok, r.report.text()


@pytest.mark.slow
def test_bulk_corrupted_netlist_caught_with_waves(tmp_path):
    """One idx_rom initializer of synth8-f2 changed: the compiled path reports code
    mismatches naming block and lane, and dumps the first failing block's cycles."""
    from semdialect.sim import verilator as v
    from semdialect.sim.bulk import build_bulk, run_bulk

    cfg = CONFIGS["synth8-f2"]
    gen = v.generate(cfg)
    bdir = gen.dir.parent / "synth8-f2-broken-bulk"
    shutil.rmtree(bdir / "rtl", ignore_errors=True)
    shutil.copytree(gen.dir / "rtl", bdir / "rtl")
    n_hits = 0
    for f in gen.verilog:
        text = f.read_text()
        text, k = re.subn(r"(idx_rom\[(\d+)\] = 3'h)([0-7]);",
                          lambda m: f"{m.group(1)}{(int(m.group(3)) + 1) % 8};", text)
        n_hits += k
        (bdir / "rtl" / f.name).write_text(text)
    assert n_hits > 0
    broken = replace(gen, dir=bdir, verilog=[bdir / "rtl" / f.name for f in gen.verilog])
    bb = build_bulk(broken)
    x, masks, last = _stream(cfg, 3000, 21, bb.itf.num_dialects)
    r = run_bulk(bb, x, masks, last, seed=21, waves=True, workdir=tmp_path)
    assert not r.report.ok and r.report.counts["code"] > 0
    assert re.search(r"block \d+ lane \d+: code expected", r.report.text())
    assert r.waves is not None and r.waves.exists() and r.waves.stat().st_size > 0

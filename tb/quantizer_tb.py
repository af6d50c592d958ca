"""cocotb tests of one generated block quantizer, held bit-exact against the golden model.

Run through tb/test_runner.py (pytest) or `semdialect.sim.verilator.run_tb`; the
configuration, the RTL manifest and the test parameters come from the JSON file named
by SEMDIALECT_TB_SPEC. Each test writes a summary JSON next to it.

* stream_test: random distributions + every edge class (+ SEMDIALECT_VECTORS files),
  random valid gaps and ready backpressure; scale, dialect id, every code and the
  last flag compared with the golden model in one batch; blocks out == blocks in.
* reset_test: reset asserted in the middle of a stream (valid held high, output
  stalled); the outputs before it are a prefix of the expected ones, nothing stale
  comes out, no block is accepted while rst is high (the block offered then waits and
  is not lost), and the stream after it is bit-exact and complete.
* perf_test: latency (input accepted -> output valid) and sustained throughput with
  and without backpressure.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from pathlib import Path

import cocotb
import numpy as np
from cocotb.clock import Clock
from stream import CycleClock, StreamDriver, StreamMonitor, cycle_budget

from semdialect.sim.configs import SimConfig, golden_quantize
from semdialect.sim.rtlspec import interface_from_manifest
from semdialect.sim.scoreboard import Scoreboard
from semdialect.sim.stimulus import load_vector_blocks, mixed_stream, random_masks, to_bits

PERIOD = 10  # clock period in simulator steps


class Bench:
    """The DUT's handles, clock, stimulus packing and golden expectations."""

    def __init__(self, dut):
        spec = json.loads(Path(os.environ["SEMDIALECT_TB_SPEC"]).read_text())
        self.spec = spec
        self.params = spec["params"]
        self.cfg = SimConfig.from_json(spec["config"])
        self.itf = interface_from_manifest(self.cfg, spec["manifest"])
        self.book_path = spec.get("book_path")
        self.dut = dut
        h = self.itf
        self.clk = getattr(dut, h.clk)
        self.rst = getattr(dut, h.rst)
        self.i_valid, self.i_ready = getattr(dut, h.i_valid), getattr(dut, h.i_ready)
        self.i_payload = getattr(dut, h.i_payload)
        self.o_valid, self.o_ready = getattr(dut, h.o_valid), getattr(dut, h.o_ready)
        self.o_payload = getattr(dut, h.o_payload)
        self.clock = CycleClock(self.clk, PERIOD)
        self.summary: dict = {"config": self.cfg.name}

    async def start(self) -> None:
        Clock(self.clk, PERIOD, unit="step").start()
        self.i_valid.value = 0
        self.o_ready.value = 0
        await self.reset(3)

    async def reset(self, cycles: int) -> None:
        await self.clock.falling
        self.rst.value = 1
        for _ in range(cycles):
            await self.clock.falling
        self.rst.value = 0

    # -- stimulus -----------------------------------------------------------------------
    def masks_for(self, n: int, rng) -> np.ndarray | None:
        if not self.cfg.has_mask:
            return None
        return random_masks(n, self.itf.num_dialects, rng)

    def pack(self, x: np.ndarray, masks: np.ndarray | None, last: np.ndarray) -> list[int]:
        vals = {"data": to_bits(x), "last": last}
        if masks is not None:
            vals["mask"] = masks.astype(np.uint8)
        return self.itf.in_layout.pack(len(x), **vals)

    def golden(self, x: np.ndarray, masks: np.ndarray | None):
        return golden_quantize(self.cfg, x, masks, book_path=self.book_path)

    def unpack(self, values: list[int]):
        f = self.itf.out_layout.unpack(values)
        return f["scale"], f.get("dialect"), f["codes"], f["last"]

    def write_summary(self) -> None:
        Path(self.spec["summary_path"]).write_text(json.dumps(self.summary, indent=1))


def _stimulus(bench: Bench, n: int, seed: int):
    cfg = bench.cfg
    x, labels = mixed_stream(n, cfg.block_size, cfg.dtype, seed)
    sources = [f"mixed random/edge stream: {n} blocks (seed {seed})"]
    vec = bench.params.get("vectors")
    if vec:
        xv, desc = load_vector_blocks(vec, cfg.block_size, cfg.dtype)
        limit = bench.params.get("max_vector_blocks")
        if limit and len(xv) > limit:
            xv = xv[:limit]
            desc += f" (first {limit} blocks)"
        x = np.concatenate([x, xv])
        sources.append(desc)
    return np.ascontiguousarray(x), sources


def _vector_side_inputs(bench: Bench, masks, last, n_vec: int) -> None:
    """Per-block allowed masks / flags of the vector-file blocks (the last n_vec blocks),
    e.g. SeDA sub-formatbook masks and the residual flag of activation decomposition
    (sim/method_vectors.py); otherwise they stay random."""
    p = bench.params
    if p.get("vector_masks"):
        if masks is None:
            raise ValueError(f"{bench.cfg.name} has no mask port for vector_masks")
        mv = np.load(p["vector_masks"]).astype(bool)[:n_vec]
        if mv.shape != (n_vec, masks.shape[1]) or not mv.any(axis=1).all():
            raise ValueError(f"vector_masks must be ({n_vec}, {masks.shape[1]}) with no "
                             f"empty row, got {mv.shape}")
        masks[len(masks) - n_vec:] = mv
        bench.summary["vector_masks_sha256"] = hashlib.sha256(
            np.ascontiguousarray(mv).tobytes()).hexdigest()
    if p.get("vector_last"):
        lv = np.load(p["vector_last"]).astype(np.uint8)[:n_vec]
        if lv.shape != (n_vec,):
            raise ValueError(f"vector_last must have shape ({n_vec},), got {lv.shape}")
        last[len(last) - n_vec:] = lv
        bench.summary["vector_last_sha256"] = hashlib.sha256(lv.tobytes()).hexdigest()


@cocotb.test()
async def stream_test(dut):
    bench = Bench(dut)
    p = bench.params
    seed = int(p.get("seed", 0))
    rng = np.random.default_rng(seed + 7)
    t_gen = time.perf_counter()
    x, sources = _stimulus(bench, int(p["n_blocks"]), seed)
    n = len(x)
    masks = bench.masks_for(n, rng)
    last = rng.integers(0, 2, size=n).astype(np.uint8)
    _vector_side_inputs(bench, masks, last, n - int(p["n_blocks"]))
    items = bench.pack(x, masks, last)
    hit = None
    if p.get("corrupt_golden"):
        hit = _corrupt_golden(bench, x, masks)
    expected = bench.golden(x, masks)
    t_gen = time.perf_counter() - t_gen
    dut._log.info("%s: %d blocks (%d elements); stimulus+golden %.1f s; %s",
                  bench.cfg.name, n, x.size, t_gen, "; ".join(sources))

    gap, bp = float(p.get("gap", 0.1)), float(p.get("backpressure", 0.2))
    for what, v in (("gap", gap), ("backpressure", bp)):
        if not 0 <= v < 1:  # 1 would never transfer a block: the run would never end
            raise ValueError(f"{what} must be in [0, 1), got {v}")
    await bench.start()
    drv = StreamDriver(bench.clock, bench.i_valid, bench.i_ready, bench.i_payload,
                       gap=gap, seed=seed)
    mon = StreamMonitor(bench.clock, bench.o_valid, bench.o_ready, bench.o_payload,
                        backpressure=bp, seed=seed + 1)
    c0 = bench.clock.now()
    t0 = time.perf_counter()
    cpu0 = time.process_time()  # the simulator process: Verilator model + cocotb
    mon_task = cocotb.start_soon(mon.run(expect=n, idle_limit=200 + 4 * (bench.itf.latency or 8)))
    await drv.run(items, max_cycles=cycle_budget(n, gap, bp, bench.itf.latency or 0))
    await mon_task
    wall = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    cycles = bench.clock.now() - c0
    # blocks out must equal blocks in: with ready held high, nothing more may come out
    mon.bp = 0.0
    await mon.run(expect=None, idle_limit=16 + 2 * (bench.itf.latency or 0))

    t1 = time.perf_counter()
    scales, dialects, codes, olast = bench.unpack(mon.values)
    sb = Scoreboard(to_bits(x), expected, last, masks)
    rep = sb.compare(scales, dialects, codes, olast)
    t_cmp = time.perf_counter() - t1
    bench.summary.update({
        "test": "stream", "sources": sources, "blocks_in": len(drv.accepted),
        "report": rep.to_json(), "report_text": rep.text(),
        "sim_cycles": cycles, "sim_wall_s": wall, "sim_cpu_s": cpu, "compare_s": t_cmp,
        "stimulus_golden_s": t_gen,
        "cycles_per_s": cycles / wall, "elements_per_s": rep.elements_checked / wall,
        "throughput_blocks_per_cycle": len(mon.values) / max(cycles, 1),
        "gap": drv.gap, "backpressure": mon.bp,
    })
    bench.write_summary()
    dut._log.info("%s: %d cycles in %.1f s (%.0f cycles/s, %.0f elements/s)\n%s",
                  bench.cfg.name, cycles, wall, cycles / wall, rep.elements_checked / wall,
                  rep.text())
    assert len(drv.accepted) == n, f"only {len(drv.accepted)} of {n} blocks were accepted"
    if hit is not None:
        # the testbench must catch a broken golden constant: exactly the lanes that use
        # the corrupted entry mismatch, and the report names them
        assert not rep.ok and rep.mismatches, "corrupted golden LUT was NOT detected"
        assert rep.counts["code"] == int(hit.sum()), (rep.counts, int(hit.sum()))
        assert all(hit[m.block, m.lane] for m in rep.mismatches if m.what == "code")
    else:
        assert rep.ok, rep.text()


def _corrupt_golden(bench: Bench, x: np.ndarray, masks) -> None:
    """Change one index-LUT entry of the golden model (the entry the stimulus uses most),
    so the golden model, not the DUT, is wrong. Records which entry in the summary."""
    from semdialect.golden import dialects as gd
    from semdialect.golden import lut as gl

    if bench.cfg.unit != "semdialect":
        raise ValueError("corrupt_golden needs a semdialect unit")
    frac = bench.cfg.frac_bits if bench.cfg.frac_bits is not None else gl.DEFAULT_FRAC_BITS
    book = bench.book_path or bench.cfg.formatbook
    luts = gl.build_luts(book, frac, bench.cfg.err_bits)
    ref = golden_quantize(bench.cfg, x, masks, book_path=bench.book_path)
    xb = x.astype(np.float32)
    e, v, bad = gd.normalize_blocks(luts.book, xb)
    aq = luts.idx_address(v)
    use = np.zeros(luts.idx.shape, dtype=np.int64)
    ok = ~bad
    np.add.at(use, (np.repeat(ref.dialects[ok].astype(np.int64), x.shape[1]),
                    aq[ok].ravel()), 1)
    d, a = np.unravel_index(int(use.argmax()), use.shape)
    idx = luts.idx.copy()
    idx[d, a] = (idx[d, a] + 1) % 8
    broken = dataclasses.replace(luts, idx=idx)
    orig = gd.build_luts

    def patched(book_, frac_bits=frac, err_bits=bench.cfg.err_bits):
        got = orig(book_, frac_bits, err_bits)
        return broken if got is luts else got

    gd.build_luts = patched
    gd.quantize_to_dialect = _idx_lut_quantizer(broken)
    bench.summary["corrupted"] = {"dialect": int(d), "address": int(a),
                                  "uses": int(use[d, a])}
    # (block, lane) positions that read the corrupted entry
    return (ref.dialects[:, None] == d) & (aq == a) & ~bad[:, None]


def _idx_lut_quantizer(luts):
    """The golden element quantizer routed through the (corrupted) index LUT."""

    def q(values, dialect_ids, v):
        return luts.idx[dialect_ids[:, None], luts.idx_address(v)].astype(np.int64)

    return q


@cocotb.test()
async def reset_test(dut):
    bench = Bench(dut)
    p = bench.params
    seed = int(p.get("seed", 0)) + 100
    rng = np.random.default_rng(seed)
    n = int(p.get("reset_blocks", 600))
    x, _ = mixed_stream(2 * n, bench.cfg.block_size, bench.cfg.dtype, seed)
    masks = bench.masks_for(2 * n, rng)
    last = rng.integers(0, 2, size=2 * n).astype(np.uint8)
    items = bench.pack(x, masks, last)
    expected = bench.golden(x, masks)
    lat = bench.itf.latency or 0

    await bench.start()
    drv = StreamDriver(bench.clock, bench.i_valid, bench.i_ready, bench.i_payload, rst=bench.rst,
                       gap=0.1, seed=seed)
    mon = StreamMonitor(bench.clock, bench.o_valid, bench.o_ready, bench.o_payload,
                        backpressure=0.5, seed=seed + 1)
    drv_task = cocotb.start_soon(drv.run(items))
    mon_task = cocotb.start_soon(mon.run(idle_limit=400 + 4 * lat))
    # reset in the middle of the stream, while the driver keeps presenting blocks and
    # the output is back-pressured
    reset_at = int(rng.integers(n // 3, n // 2))
    while len(drv.accepted) < reset_at:
        await bench.clock.falling
    c_reset = bench.clock.now() + 1  # first cycle with rst high
    await bench.reset(int(rng.integers(1, 4)))
    c_release = bench.clock.now()  # first cycle with rst low again
    # right after reset the pipeline must be empty
    await bench.clock.readonly
    stale = int(bench.o_valid.value)
    await drv_task
    while mon.cycles and bench.clock.now() - mon.cycles[-1] < 50 + 4 * lat:
        await bench.clock.falling
    mon.stop()
    await mon_task

    acc = np.array(drv.accepted, dtype=np.int64).reshape(-1, 3)
    pre = acc[acc[:, 1] < c_reset, 0]
    dropped = acc[(acc[:, 1] >= c_reset) & (acc[:, 1] < c_release), 0]
    post = acc[acc[:, 1] >= c_release, 0]
    out_cycles = np.array(mon.cycles, dtype=np.int64)
    n_out_pre = int((out_cycles < c_reset + 1).sum())  # an output may leave at the 1st edge
    outs = bench.unpack(mon.values)
    failures = []
    if stale:
        failures.append("o.valid high right after reset (stale block)")
    if len(dropped):  # i.ready must be low while rst is high: such a block would be lost
        failures.append(f"{len(dropped)} blocks accepted while rst was high (lost)")
    cap = bench.itf.capacity if bench.itf.capacity is not None else lat
    if not (0 <= len(pre) - n_out_pre <= max(cap, 0)):
        failures.append(f"{len(pre)} blocks accepted before reset, {n_out_pre} came out "
                        f"(more than the unit's capacity of {cap} blocks lost, or extra "
                        "outputs)")
    order = np.concatenate([pre[:n_out_pre], post])
    sb = Scoreboard(to_bits(x[order]), _take(expected, order), last[order],
                    None if masks is None else masks[order])
    rep = sb.compare(*outs)
    if not rep.ok:
        failures.append(rep.text())
    bench.summary.update({
        "test": "reset", "accepted_before": len(pre), "out_before": n_out_pre,
        "dropped_during_reset": len(dropped), "accepted_after": len(post),
        "out_total": len(mon.values), "reset_cycle": c_reset, "release_cycle": c_release,
        "report": rep.to_json(), "failures": failures,
    })
    bench.write_summary()
    assert not failures, "\n".join(failures)


def _take(g, order):
    from semdialect.sim.configs import GoldenResult

    return GoldenResult(g.scales[order], None if g.dialects is None else g.dialects[order],
                        g.codes[order])


@cocotb.test()
async def perf_test(dut):
    """Latency and sustained throughput (also checks the results bit-exact)."""
    bench = Bench(dut)
    p = bench.params
    n = int(p.get("perf_blocks", 1000))
    seed = int(p.get("seed", 0)) + 200
    rng = np.random.default_rng(seed)
    x, _ = mixed_stream(n, bench.cfg.block_size, bench.cfg.dtype, seed)
    masks = bench.masks_for(n, rng)
    last = rng.integers(0, 2, size=n).astype(np.uint8)
    items = bench.pack(x, masks, last)
    expected = bench.golden(x, masks)
    await bench.start()
    results = {}
    for name, gap, bp in (("full", 0.0, 0.0), ("backpressure50", 0.0, 0.5),
                          ("gaps30", 0.3, 0.0)):
        drv = StreamDriver(bench.clock, bench.i_valid, bench.i_ready, bench.i_payload,
                           gap=gap, seed=seed)
        mon = StreamMonitor(bench.clock, bench.o_valid, bench.o_ready, bench.o_payload,
                            backpressure=bp, seed=seed + 1)
        t0 = time.perf_counter()
        mon_task = cocotb.start_soon(mon.run(expect=n))
        await drv.run(items)
        await mon_task
        wall = time.perf_counter() - t0
        acc = np.array([c for _, c, _ in drv.accepted])
        out = np.array(mon.cycles)
        rep = Scoreboard(to_bits(x), expected, last, masks).compare(*bench.unpack(mon.values))
        assert rep.ok, f"{name}: {rep.text()}"
        span = int(out[-1] - out[0] + 1)
        lat = out - acc
        results[name] = {
            "blocks": n, "throughput_blocks_per_cycle": n / span,
            "throughput_elements_per_cycle": n * bench.cfg.block_size / span,
            "latency_min": int(lat.min()), "latency_max": int(lat.max()),
            "cycles_per_s": span / wall,
        }
    full = results["full"]
    bench.summary.update({
        "test": "perf", "latency_cycles": full["latency_min"],
        "latency_manifest": bench.itf.latency, "modes": results,
        "latency_definition": "cycles from the clock edge that accepts a block "
                              "(i.valid & i.ready) to the edge at which its result is "
                              "transferred, with o.ready held high; 0 = same edge "
                              "(combinational unit)",
    })
    bench.write_summary()
    assert full["latency_min"] == full["latency_max"], "latency varies without backpressure"
    if bench.itf.latency is not None:
        assert full["latency_min"] == bench.itf.latency, (
            f"measured latency {full['latency_min']} != manifest {bench.itf.latency}")
    assert full["throughput_blocks_per_cycle"] > 0.99, "II != 1 without backpressure"

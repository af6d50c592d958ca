"""pytest entry of the cocotb + Verilator testbenches (`nox -s rtl-tests` / `rtl-regress`).

Quick suite (`-m "not slow"`): every configuration of semdialect.sim.configs is
generated, built (cached under build/sim/<config>/) and checked bit-exact against the
golden model on >= 1M elements (random distributions + edge classes, random valid gaps
and backpressure), reset in mid-stream, latency / throughput (-> cycles.json); plus
tests of the testbench itself: a corrupted golden LUT entry and a corrupted ROM entry
of the generated netlist must both be reported as mismatches naming block and lane.

Environment: SEMDIALECT_VECTORS=PATH[:PATH...] also runs vector files (.npy or
safetensors export) through every configuration; SEMDIALECT_SIM_CONFIGS=a,b restricts
the configurations; SEMDIALECT_SIM_ELEMENTS overrides the elements per configuration;
WAVES=1 writes dump.fst, COVERAGE=1 writes coverage.dat (in build/sim/<config>/runs/).
See docs/verification.md.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from semdialect.sim.configs import CONFIGS, QUICK_CONFIGS, golden_quantize
from semdialect.sim.payload import Field, PayloadLayout
from semdialect.sim.scoreboard import Scoreboard

ROOT = Path(__file__).resolve().parent.parent
QUICK_ELEMENTS = int(os.environ.get("SEMDIALECT_SIM_ELEMENTS", 1 << 20))
REGRESS_ELEMENTS = int(os.environ.get("SEMDIALECT_SIM_REGRESS_ELEMENTS", 8 << 20))


def _selected() -> list[str]:
    sel = os.environ.get("SEMDIALECT_SIM_CONFIGS")
    names = [s.strip() for s in sel.split(",") if s.strip()] if sel else list(QUICK_CONFIGS)
    for n in names:
        if n not in CONFIGS:
            raise ValueError(f"SEMDIALECT_SIM_CONFIGS: unknown configuration {n!r}")
    return names


CONFIG_NAMES = _selected()
_BUILT: dict[str, object] = {}
_STREAM: dict[str, dict] = {}


def _built(name: str):
    """Generate + build a configuration once per session (and cached across sessions)."""
    from semdialect.sim import verilator as v

    if name not in _BUILT:
        cfg = CONFIGS[name]
        gen = v.generate(cfg)
        _BUILT[name] = v.build(gen)
    return _BUILT[name]


def _vectors() -> list[str]:
    raw = os.environ.get("SEMDIALECT_VECTORS", "")
    paths = [p for p in raw.split(os.pathsep) if p]
    for p in paths:
        if not Path(p).exists():
            raise FileNotFoundError(f"SEMDIALECT_VECTORS: {p} does not exist")
    return [str(Path(p).resolve()) for p in paths]  # the simulator runs in its run folder


def _run(built, testcase: str, params: dict, name: str | None = None) -> dict:
    from semdialect.sim import verilator as v

    return v.run_tb(built, testcase, params, name=name)


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------
# quick suite
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", CONFIG_NAMES)
def test_stream(name):
    """>= 1M elements bit-exact, random gaps and backpressure (+ vector files)."""
    built = _built(name)
    cfg = CONFIGS[name]
    n_blocks = math.ceil(QUICK_ELEMENTS / cfg.block_size)
    vecs = _vectors()
    results = []
    for i, vec in enumerate([None] + vecs):
        params = {"n_blocks": n_blocks if vec is None else 64, "seed": 1 + i,
                  "gap": 0.1, "backpressure": 0.2, "vectors": vec}
        s = _run(built, "stream_test", params, name=f"stream{i}")
        results.append(s)
        assert s["report"]["ok"], s["report_text"]
    s = results[0]
    _STREAM[name] = s
    _say(f"{name}: {s['report']['elements_checked']} elements bit-exact, "
         f"{s['sim_cycles']} cycles, {s['cycles_per_s']:.0f} cycles/s, "
         f"{s['elements_per_s']:.0f} elements/s")
    assert s["report"]["elements_checked"] >= QUICK_ELEMENTS


@pytest.mark.parametrize("name", CONFIG_NAMES)
def test_reset_midstream(name):
    s = _run(_built(name), "reset_test", {"seed": 3, "reset_blocks": 600})
    assert not s["failures"], s["failures"]
    assert s["accepted_after"] > 0 and s["out_before"] > 0


@pytest.mark.parametrize("name", CONFIG_NAMES)
def test_latency_throughput(name):
    """Latency and throughput -> build/sim/<config>/cycles.json."""
    built = _built(name)
    s = _run(built, "perf_test", {"seed": 5, "perf_blocks": 1000})
    modes = s["modes"]
    out = {
        "config": CONFIGS[name].to_json(),
        "manifest_latency": s["latency_manifest"],
        "latency_cycles": s["latency_cycles"],
        "latency_definition": s["latency_definition"],
        "throughput_blocks_per_cycle": modes["full"]["throughput_blocks_per_cycle"],
        "throughput_blocks_per_cycle_backpressure50":
            modes["backpressure50"]["throughput_blocks_per_cycle"],
        "throughput_blocks_per_cycle_valid_gaps30": modes["gaps30"]["throughput_blocks_per_cycle"],
        "elements_per_cycle": modes["full"]["throughput_elements_per_cycle"],
        "build_seconds": round(built.seconds, 1),
        "generate_seconds": round(built.gen.seconds, 1),
        "verilator_build": built.obj_dir.name,
    }
    st = _STREAM.get(name)
    if st is None:  # e.g. the stream test ran in another pytest-xdist worker
        runs = sorted((built.gen.dir / "runs").glob("stream0-*/summary.json"),
                      key=lambda p: p.stat().st_mtime)
        st = json.loads(runs[-1].read_text()) if runs else None
    if st:
        out["stream"] = {k: st[k] for k in ("sim_cycles", "sim_wall_s", "cycles_per_s",
                                            "elements_per_s", "throughput_blocks_per_cycle",
                                            "gap", "backpressure")}
        out["stream"]["elements_checked"] = st["report"]["elements_checked"]
    path = built.gen.dir / "cycles.json"
    if path.exists():  # keep the compiled path's side-by-side numbers (sim/bulk.py)
        old = json.loads(path.read_text())
        if old.get("config") == out["config"]:
            out.update({k: old[k] for k in ("bulk", "cocotb_side_by_side", "speedup_vs_cocotb",
                                            "end_to_end_speedup_vs_cocotb") if k in old})
    path.write_text(json.dumps(out, indent=1))
    _say(f"{name}: latency {out['latency_cycles']} cycles, throughput "
         f"{out['throughput_blocks_per_cycle']:.3f} blocks/cycle "
         f"({out['throughput_blocks_per_cycle_backpressure50']:.3f} with 50% backpressure)")
    assert out["latency_cycles"] == s["latency_manifest"]
    assert out["throughput_blocks_per_cycle"] > 0.99


def test_vector_files():
    """Both vector file kinds through the DUT: a frontend export (safetensors + manifest,
    synthetic profile, float32 -> rounded to bf16) and a plain float32 .npy array."""
    name = "semdialect-32" if "semdialect-32" in CONFIG_NAMES else CONFIG_NAMES[0]
    pytest.importorskip("semdialect.sw.vectors")
    from semdialect.sim import verilator as v
    from semdialect.sw.synthetic import synthetic_vectors
    from semdialect.sw.vectors import save_vectors

    vdir = v.BUILD_ROOT / "vectors"
    vdir.mkdir(parents=True, exist_ok=True)
    st = vdir / "synthetic-channel-outliers.safetensors"
    if not st.exists():
        tensors, manifest = synthetic_vectors("synthetic-channel-outliers", steps=1,
                                              tokens=64, channels=256, layers=2)
        save_vectors(st, tensors, manifest)
    npy = vdir / "laplace-f32.npy"
    npy16 = vdir / "gauss-bf16.npy"
    if not npy.exists() or not npy16.exists():
        import ml_dtypes

        rng = np.random.default_rng(3)
        np.save(npy, (rng.laplace(size=(256, 64)) * 1e3).astype(np.float32))
        np.save(npy16, rng.standard_normal((100, 32)).astype(ml_dtypes.bfloat16))
    for path in (st, npy, npy16):
        s = _run(_built(name), "stream_test", {"n_blocks": 16, "seed": 9, "gap": 0.1,
                                                "backpressure": 0.2, "vectors": str(path)},
                 name=f"vectors-{path.stem}")
        assert s["report"]["ok"], s["report_text"]
        assert len(s["sources"]) == 2 and path.name in s["sources"][1], s["sources"]
        assert s["report"]["blocks_checked"] > 16


def test_semdialect_methods_through_the_rtl():
    """Issue 6 in hardware: SeDA sub-formatbook blocks (allowed-dialect masks) and
    activation-decomposition residual blocks (residual flag = `last`) of a captured
    layer go through the DUT; the DUT matches the golden model block for block, and the
    golden stream equals the golden *method* outputs (quantize_seda / the residual pass)."""
    name = "semdialect-32"
    if name not in CONFIG_NAMES:
        pytest.skip(f"{name} not selected")
    cfg = CONFIGS[name]
    pytest.importorskip("semdialect.sw.vectors")
    from semdialect.golden.quality import MethodConfig
    from semdialect.sim import verilator as v
    from semdialect.sim.method_vectors import write_method_vectors
    from semdialect.sw.synthetic import synthetic_vectors

    tensors, _ = synthetic_vectors("synthetic-massive-activations", steps=1, tokens=64,
                                   channels=4 * cfg.block_size, layers=1)
    x = next(iter(tensors.values()))
    mv = write_method_vectors(x, v.BUILD_ROOT / "vectors" / f"methods-{name}",
                              dtype=cfg.dtype, block_size=cfg.block_size,
                              cfg=MethodConfig(top_frac=0.1, n_anchors=4, k_sub=4))
    assert mv.n_primary == 64 * 4 and mv.n_residual == 6 * 4
    blocks, masks = np.load(mv.blocks), np.load(mv.masks)
    if blocks.dtype.kind == "V":  # bf16 .npy
        blocks = blocks.view(cfg.dtype)
    ref = golden_quantize(cfg, blocks, masks)
    np.testing.assert_array_equal(ref.codes, mv.expected_codes)
    np.testing.assert_array_equal(ref.dialects, mv.expected_dialects)
    np.testing.assert_array_equal(ref.scales, mv.expected_scales)
    assert (masks.sum(1)[: mv.n_primary] == 4).all()  # sub-books of K = 4
    s = _run(_built(name), "stream_test",
             {"n_blocks": 8, "seed": 5, "gap": 0.1, "backpressure": 0.3,
              "vectors": str(mv.blocks), "vector_masks": str(mv.masks),
              "vector_last": str(mv.last)}, name="methods")
    assert s["report"]["ok"], s["report_text"]
    assert s["report"]["blocks_checked"] == 8 + mv.n_primary + mv.n_residual
    import hashlib

    # the DUT got exactly these masks and residual flags, not random ones
    assert s["vector_masks_sha256"] == hashlib.sha256(masks.tobytes()).hexdigest()
    assert s["vector_last_sha256"] == hashlib.sha256(np.load(mv.last).tobytes()).hexdigest()


# ---------------------------------------------------------------------------------------
# the testbench catches faults
# ---------------------------------------------------------------------------------------

_MISMATCH_RE = re.compile(r"block (\d+) lane (\d+): code expected 0x[0-9a-f]+ got 0x[0-9a-f]+ "
                          r"\(input 0x[0-9a-f]{4}\)")


def test_corrupted_golden_lut_is_caught():
    """One golden index-LUT entry changed: the scoreboard must name block and lane."""
    name = "semdialect-32"
    if name not in CONFIG_NAMES:
        pytest.skip(f"{name} not selected")
    s = _run(_built(name), "stream_test",
             {"n_blocks": 4000, "seed": 11, "gap": 0.1, "backpressure": 0.2,
              "corrupt_golden": True}, name="corrupt-golden")
    assert not s["report"]["ok"]
    assert s["report"]["counts"]["code"] > 0
    assert _MISMATCH_RE.search(s["report_text"]), s["report_text"]
    # every mismatch is at the corrupted (dialect, address) and nothing else differs
    assert s["report"]["counts"]["scale"] == 0 and s["report"]["counts"]["dialect"] == 0


def test_corrupted_netlist_rom_is_caught():
    """One entry of the generated index ROM changed in the Verilog: mismatch reported."""
    from semdialect.sim import verilator as v

    base = "synth8-f2"  # the configuration built with the ROM index stage, memory tables
    cfg = CONFIGS[base]
    assert cfg.unit == "semdialect" and cfg.index == "rom" and cfg.rom_style == "memory"
    gen = v.generate(cfg)
    # which (dialect, address) does the stimulus use most? corrupt exactly that one
    from semdialect.golden import build_luts
    from semdialect.golden.dialects import normalize_blocks
    from semdialect.sim.stimulus import mixed_stream, random_masks

    n, seed = 3000, 21
    x, _ = mixed_stream(n, cfg.block_size, cfg.dtype, seed)
    # the same allowed-dialect masks stream_test draws (rng seeded with seed + 7)
    masks = random_masks(n, int(gen.manifest["parameters"]["num_dialects"]),
                         np.random.default_rng(seed + 7))
    g = golden_quantize(cfg, x, masks, book_path=gen.book_path)
    luts = build_luts(str(gen.book_path), cfg.frac_bits or 3, cfg.err_bits)
    _, vv, bad = normalize_blocks(luts.book, x.astype(np.float32))
    aq = luts.idx_address(vv)
    use = np.zeros(luts.idx.shape, np.int64)
    np.add.at(use, (np.repeat(g.dialects[~bad].astype(np.int64), cfg.block_size),
                    aq[~bad].ravel()), 1)
    d, a = np.unravel_index(int(use.argmax()), use.shape)
    entry = int(d) * luts.idx.shape[1] + int(a)

    bdir = gen.dir.parent / f"{base}-broken"
    shutil.rmtree(bdir / "rtl", ignore_errors=True)
    shutil.copytree(gen.dir / "rtl", bdir / "rtl")
    n_hits = 0
    for f in gen.verilog:
        text = f.read_text()
        pat = re.compile(rf"(idx_rom\[{entry}\] = 3'h)([0-7]);")
        text, k = pat.subn(lambda m: f"{m.group(1)}{(int(m.group(2)) + 1) % 8};", text)
        n_hits += k
        (bdir / "rtl" / f.name).write_text(text)
    assert n_hits == 1, f"expected one idx_rom[{entry}] initializer in the Verilog, found {n_hits}"
    broken = replace(gen, dir=bdir, verilog=[bdir / "rtl" / f.name for f in gen.verilog])
    built = v.build(broken)
    # the run must fail (the DUT is wrong); the summary must name block and lane
    with pytest.raises(AssertionError) as ei:
        v.run_tb(built, "stream_test", {"n_blocks": n, "seed": seed, "gap": 0.1,
                                        "backpressure": 0.2}, name="broken-rom")
    summary = json.loads((bdir / "runs" / f"broken-rom-{os.getpid()}" / "summary.json").read_text())
    assert summary["report"]["counts"]["code"] > 0, summary["report_text"]
    assert _MISMATCH_RE.search(summary["report_text"]), summary["report_text"]
    assert "lane" in str(ei.value)


# ---------------------------------------------------------------------------------------
# testbench units (no simulator)
# ---------------------------------------------------------------------------------------


def test_payload_roundtrip():
    rng = np.random.default_rng(0)
    lay = PayloadLayout(16 * 8 + 5 + 1, [Field("data", 0, 16, 8), Field("mask", 128, 1, 5),
                                          Field("last", 133, 1)])
    data = rng.integers(0, 1 << 16, (50, 8))
    mask = rng.integers(0, 2, (50, 5))
    last = rng.integers(0, 2, 50)
    ints = lay.pack(50, data=data, mask=mask, last=last)
    assert ints[0] & 0xFFFF == data[0, 0] and (ints[0] >> 133) == last[0]
    out = lay.unpack(ints)
    assert (out["data"] == data).all() and (out["mask"] == mask).all()
    assert (out["last"] == last).all()


@pytest.mark.parametrize("fields", [
    [Field("data", 0, 16, 32), Field("mask", 512, 1, 32), Field("last", 544, 1)],
    [Field("codes", 0, 4, 32), Field("scale", 128, 8), Field("dialect", 136, 5),
     Field("last", 141, 1)],
    [Field("a", 0, 3), Field("b", 3, 7, 5), Field("c", 38, 57), Field("d", 95, 13),
     Field("e", 108, 64), Field("f", 172, 24, 3)],
])
def test_payload_words_match_ints(fields):
    """The compiled path's byte-wise record packing (pack_words / unpack_words) agrees
    with the bit-matrix packing of the cocotb path, aligned and unaligned fields."""
    rng = np.random.default_rng(1)
    lay = PayloadLayout(max(f.offset + f.bits for f in fields), fields)
    n = 200
    vals = {f.name: rng.integers(0, 1 << f.width, (n, f.count) if f.count > 1 else n,
                                 dtype=np.uint64) for f in fields}
    words = lay.pack_words(n, **vals)
    ints = lay.pack(n, **vals)
    assert words.dtype == np.dtype("<u4") and words.shape == (n, (lay.width + 31) // 32)
    assert [sum(int(w) << (32 * k) for k, w in enumerate(r)) for r in words] == ints
    got, ref = lay.unpack_words(words), lay.unpack(ints)
    for f in fields:
        assert got[f.name].dtype == ref[f.name].dtype == np.uint64
        assert (got[f.name] == ref[f.name]).all() and (got[f.name] == vals[f.name]).all()


def test_scoreboard_names_block_lane_and_counts():
    cfg = CONFIGS["semdialect-32"]
    from semdialect.sim.stimulus import mixed_stream, to_bits

    x, _ = mixed_stream(200, cfg.block_size, cfg.dtype, 0)
    g = golden_quantize(cfg, x)
    last = np.zeros(200, np.uint8)
    sb = Scoreboard(to_bits(x), g, last)
    assert sb.compare(g.scales, g.dialects, g.codes, last).ok
    codes = g.codes.copy()
    codes[17, 5] ^= 1
    rep = sb.compare(g.scales, g.dialects, codes, last)
    assert not rep.ok and rep.mismatching_blocks == 1
    assert f"block 17 lane 5: code expected 0x{g.codes[17, 5]:x}" in rep.text()
    assert f"input 0x{to_bits(x)[17, 5]:04x}" in rep.text()
    rep = sb.compare(g.scales[:-1], g.dialects[:-1], g.codes[:-1], last[:-1])
    assert not rep.ok and "200 blocks in, 199 out" in rep.text()
    sc = g.scales.copy()
    sc[3] ^= 0x10
    assert "block 3: scale" in sb.compare(sc, g.dialects, g.codes, last).text()


def test_stimulus_covers_edge_classes():
    from semdialect.sim.stimulus import EDGE_KINDS, edge_blocks

    rng = np.random.default_rng(0)
    for dt in (CONFIGS["semdialect-32"].dtype, CONFIGS["semdialect-32-fp16"].dtype):
        for k in EDGE_KINDS:
            x = edge_blocks(k, 64, 32, dt, rng)
            assert x.shape == (64, 32) and x.dtype == dt
        f = edge_blocks("nonfinite", 64, 32, dt, rng).astype(np.float32)
        assert (~np.isfinite(f)).any(axis=1).all()
        s = edge_blocks("subnormals", 64, 32, dt, rng).astype(np.float32)
        assert ((s != 0) & (np.abs(s) < float(np.finfo(np.float32).tiny))).any() or \
            dt == np.float16


# ---------------------------------------------------------------------------------------
# long sweep
# ---------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("mode", [(0.0, 0.0), (0.3, 0.5), (0.05, 0.05)])
def test_regress(name, mode):
    built = _built(name)
    cfg = CONFIGS[name]
    gap, bp = mode
    seed = 1000 + int(gap * 100) + int(bp * 10)
    s = _run(built, "stream_test", {"n_blocks": math.ceil(REGRESS_ELEMENTS / cfg.block_size),
                                    "seed": seed, "gap": gap, "backpressure": bp},
             name=f"regress-{gap}-{bp}")
    assert s["report"]["ok"], s["report_text"]
    _say(f"{name} gap {gap} bp {bp}: {s['report']['elements_checked']} elements, "
         f"{s['elements_per_s']:.0f} elements/s")


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CONFIGS))
def test_regress_reset(name):
    for seed in range(4):
        s = _run(_built(name), "reset_test", {"seed": 50 + seed, "reset_blocks": 2000},
                 name=f"regress-reset{seed}")
        assert not s["failures"], s["failures"]

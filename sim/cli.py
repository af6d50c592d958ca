"""`semdialect report ...`: synthesis, timing and cycle reports (registered by
semdialect/cli.py, which imports `semdialect.sim.cli` and calls `register`)."""

from __future__ import annotations

__all__ = ["register"]


def _report(args) -> int:
    from semdialect.paths import check_output_dir

    from .reports import run_report

    check_output_dir(args.output, "-o")  # before any synthesis

    run_report(args.output, names=args.configs or None, quick=args.quick,
               ecp5=False if args.no_ecp5 else None,
               run_cocotb=False if args.no_cocotb else None,
               plots=not args.no_plots, jobs=args.jobs)
    return 0


def _list(args) -> int:
    from .reports import GROUPS, QUICK, REPORT_CONFIGS

    for c in REPORT_CONFIGS.values():
        flags = ("" if c.ecp5 else "  (generic only)") + ("  (quick)" if c.name in QUICK else "")
        print(f"{c.name:28s} {c.unit:11s} B={c.block_size:<3d} book={c.formatbook} "
              f"index={c.index or 'default'} groups={','.join(c.groups)}{flags}")
    print(f"groups: {', '.join(GROUPS)}")
    return 0


def register(subparsers) -> None:
    from semdialect.validate import positive_int_arg

    p = subparsers.add_parser(
        "report", help="area / Fmax / cycle reports of the generated units",
        description="Generate each configuration's Verilog, synthesize it with open flows "
        "(Yosys generic gates; Yosys + nextpnr-ecp5), take latency/throughput from the "
        "cocotb flow (or the Amaranth simulator) and write report.md, report.json and "
        "plots (docs/reports.md).")
    p.add_argument("-o", "--output", default="build/reports", help="output directory")
    p.add_argument("--quick", action="store_true",
                   help="CI set: mxfp4 + semdialect-32 B=16, generic synthesis only "
                   "(no nextpnr, no cocotb run)")
    p.add_argument("--configs", nargs="+", metavar="NAME",
                   help="configurations or groups (main, block, dialects, depth, explore, "
                   "baseline); the mxfp4 baseline is always included; see --list")
    p.add_argument("--no-ecp5", action="store_true", help="skip synth_ecp5 + nextpnr-ecp5")
    p.add_argument("--no-cocotb", action="store_true",
                   help="never start the cocotb perf test; cycles from an existing "
                   "cycles.json or the Amaranth simulator")
    p.add_argument("--no-plots", action="store_true")
    p.add_argument("-j", "--jobs", type=positive_int_arg, default=1,
                   help="configurations synthesized in parallel (each Yosys/nextpnr run "
                   "uses one core; default 1)")
    p.add_argument("--list", action="store_true", help="list the configurations and exit")
    p.set_defaults(func=lambda a: _list(a) if a.list else _report(a))

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
               plots=not args.no_plots, jobs=args.jobs, ecp5_all=args.ecp5_all,
               scheduler=args.scheduler, seeds=args.seeds)
    return 0


def _regress(args) -> int:
    from semdialect.paths import check_output_dir

    from .regress import measure_scaling, run_regress

    check_output_dir(args.output, "-o")  # before any cluster starts

    # the configuration of the speed comparison and the scaling measurement
    first = "semdialect-32" if args.configs == ["all"] else args.configs[0]
    cmp = None
    if args.compare_cocotb:
        cmp = {"config": first, "cocotb_elements": args.cocotb_elements,
               "bulk_elements": args.bulk_elements, "gap": args.gap,
               "backpressure": args.backpressure, "repeats": args.repeats}
    if args.scaling:
        rep = measure_scaling(args.output, config=first, vectors=args.vectors,
                              elements=args.elements, shard_elements=args.shard_elements,
                              workers=args.workers or 2)
        return 0 if rep["ok"] else 1
    s = run_regress(args.output, configs=args.configs, vectors=args.vectors,
                    elements=args.elements, shard_elements=args.shard_elements,
                    seeds=args.seeds, gap=args.gap, backpressure=args.backpressure,
                    workers=args.workers, scheduler=args.scheduler, waves=args.waves,
                    progress=not args.no_progress, compare_cocotb=cmp,
                    plots=not args.no_plots)
    print(f"{'PASS' if s['ok'] else 'FAIL'}: {s['elements_checked']} elements, "
          f"{len(s['shards_ran'])} shards ran, {len(s['shards_reused'])} reused; "
          f"{args.output}/summary.md")
    return 0 if s["ok"] else 1


def _list(args) -> int:
    from .reports import GROUPS, QUICK, REPORT_CONFIGS

    for c in REPORT_CONFIGS.values():
        flags = ("" if c.ecp5 else "  (generic only)") + ("  (quick)" if c.name in QUICK else "")
        print(f"{c.name:28s} {c.unit:11s} B={c.block_size:<3d} book={c.formatbook} "
              f"index={c.index or 'default'} groups={','.join(c.groups)}{flags}")
    print(f"groups: {', '.join(GROUPS)}")
    return 0


def register(subparsers) -> None:
    from semdialect.validate import positive_int_arg, probability_arg

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
                   "baseline, twolevel); the mxfp4 baseline is always included; see --list")
    p.add_argument("--no-ecp5", action="store_true", help="skip synth_ecp5 + nextpnr-ecp5")
    p.add_argument("--ecp5-all", action="store_true",
                   help="also place and route the configurations marked generic-only")
    p.add_argument("--no-cocotb", action="store_true",
                   help="never start the cocotb perf test; cycles from an existing "
                   "cycles.json or the Amaranth simulator")
    p.add_argument("--no-plots", action="store_true")
    p.add_argument("-j", "--jobs", type=positive_int_arg, default=1,
                   help="configurations synthesized in parallel (each Yosys/nextpnr run "
                   "uses one core; default 1)")
    p.add_argument("--list", action="store_true", help="list the configurations and exit")
    p.add_argument("--scheduler", metavar="ADDRESS", default=None,
                   help="run the design points as tasks on this Dask scheduler "
                   "(tcp://HOST:8786) instead of -j local processes")
    p.add_argument("--seeds", nargs="+", type=positive_int_arg, default=[1], metavar="N",
                   help="nextpnr placement seeds: each point is placed and routed once per "
                   "seed and reports the lowest Fmax, with each seed's in report.json "
                   "(default: 1)")
    p.set_defaults(func=lambda a: _list(a) if a.list else _report(a))

    r = subparsers.add_parser(
        "regress", help="sharded bit-exact RTL regression (compiled Verilator path, Dask)",
        description="Split vector slices x configurations x seeds into shards, run each "
        "as a Dask task on the compiled Verilator harness, compare with the golden model, "
        "and write summary.md / summary.json / regress.png. Finished shards are stored by "
        "content hash: re-running the same command runs only the missing ones "
        "(docs/verification.md).")
    r.add_argument("-o", "--output", default="build/regress", help="output directory")
    r.add_argument("--vectors", default=None, metavar="FILE",
                   help="captured vector file (.safetensors export or .npy)")
    r.add_argument("--elements", type=positive_int_arg, default=None,
                   help="elements per configuration: the first N of --vectors, or a "
                   "synthetic random/edge stream of N elements without --vectors")
    r.add_argument("--configs", nargs="+", default=["semdialect-32"], metavar="NAME",
                   help="simulated configurations (semdialect sim list), or 'all'")
    r.add_argument("--shard-elements", type=positive_int_arg, default=1 << 20,
                   help="elements per shard (default 2^20)")
    r.add_argument("--seeds", type=positive_int_arg, default=1,
                   help="seeds per slice (flow control, masks, last flags)")
    r.add_argument("--gap", type=probability_arg, default=0.1, help="probability of a valid gap")
    r.add_argument("--backpressure", type=probability_arg, default=0.2,
                   help="probability of ready low")
    r.add_argument("--workers", type=positive_int_arg, default=None,
                   help="workers of the embedded LocalCluster (default: the cores)")
    r.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="existing Dask scheduler (tcp://HOST:8786) instead of a LocalCluster")
    r.add_argument("--waves", action="store_true",
                   help="dump waves (FST, or VCD) of the first failing block of a shard")
    r.add_argument("--compare-cocotb", action="store_true",
                   help="also measure the compiled path against the cocotb stream test "
                   "side by side (first configuration) -> speedup_vs_cocotb")
    r.add_argument("--cocotb-elements", type=positive_int_arg, default=1 << 20)
    r.add_argument("--bulk-elements", type=positive_int_arg, default=1 << 23)
    r.add_argument("--repeats", type=positive_int_arg, default=1,
                   help="alternating cocotb/compiled measurements (medians)")
    r.add_argument("--scaling", action="store_true",
                   help="measure elements/s at 1 and N workers and the overhead per shard")
    r.add_argument("--no-progress", action="store_true")
    r.add_argument("--no-plots", action="store_true")
    r.set_defaults(func=_regress)

"""`semdialect rtl ...`: Verilog + manifest generation (registered by semdialect/cli.py)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from semdialect.errors import LimitExceededError
from semdialect.paths import check_output_dir, write_file_group
from semdialect.validate import check_verilog_identifier

from .generate import DEFAULT_SET, SELECTORS, TWO_LEVEL_FORMS, UNITS, build_unit, generate
from .romstyle import DEFAULT_ROM_STYLE, ROM_STYLES
from .units import DEFAULT_INDEX, INDEX_MODES

__all__ = ["register"]


def _generate(args) -> int:
    check_output_dir(args.output, "-o")  # before the (slow) build
    if args.name is not None:
        check_verilog_identifier(args.name, "--name")
    try:
        u = build_unit(unit=args.unit, formatbook=args.formatbook, block_size=args.block_size,
                       input_format=args.input, frac_bits=args.frac_bits,
                       err_bits=args.err_bits, pipeline=args.pipeline, index=args.index,
                       target_mhz=args.target_mhz, timed_inputs=args.timed_inputs,
                       rom_style=args.rom_style, selector=args.selector,
                       two_level_form=args.two_level_form)
    except LimitExceededError as e:  # name the file the user gave
        raise LimitExceededError(f"--formatbook {args.formatbook}: {e}") from None
    t0 = time.perf_counter()
    man = generate(u, args.output, name=args.name)
    print(f"{Path(args.output) / man['files'][0]}: {man['toplevel']}, latency "
          f"{man['latency']} cycles ({time.perf_counter() - t0:.1f} s)")
    return 0


def _generate_defaults(args) -> int:
    out = check_output_dir(args.output, "-o")
    index = []
    for label, kw in DEFAULT_SET:
        u = build_unit(**kw)
        t0 = time.perf_counter()
        from .generate import toplevel_name

        top = toplevel_name(u)
        man = generate(u, out / top)
        index.append({"label": label, "toplevel": top, "dir": top,
                      "manifest": f"{top}/{top}.json", "latency": man["latency"]})
        print(f"{label}: {out / top / man['files'][0]} ({time.perf_counter() - t0:.1f} s)")
    write_file_group(out, {"index.json": json.dumps(index, indent=2) + "\n"})
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("rtl", help="generate the Verilog of the block quantizer units",
                              description="Generate Verilog + JSON manifests of the streaming "
                              "block quantizers (docs/architecture.md).")
    sub = p.add_subparsers(dest="rtl_command", metavar="RTL_COMMAND")
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])

    g = sub.add_parser("generate", help="one unit: Verilog, lint waivers and manifest")
    g.add_argument("--formatbook", default=None,
                   help="built-in name or JSON path ('mxfp4' for the MXFP4 unit); default "
                   "semdialect-32c8x8 (two-level, the golden default); semdialect-32 = the "
                   "exhaustive LUT engine's book")
    g.add_argument("--unit", choices=UNITS, default="auto",
                   help="auto (default): mxfp4 for --formatbook mxfp4, the BlockDialect "
                   "two-stage selector for the DialectFP4 book, the SemanticDialect LUT "
                   "engine otherwise")
    g.add_argument("--block-size", type=int, default=32, help="16, 32 or 64 (default 32)")
    g.add_argument("--input", choices=("bf16", "fp16"), default="bf16")
    g.add_argument("--frac-bits", type=int, default=None, help="F (semdialect; default 3)")
    g.add_argument("--err-bits", type=int, default=None, help="W (semdialect; default 8)")
    g.add_argument("--pipeline", type=int, default=None,
                   help="pipeline registers = latency in cycles (default: the unit's)")
    g.add_argument("--selector", choices=SELECTORS, default=None,
                   help="semdialect unit: lut = exhaustive LUT engine (every dialect), "
                   "two-level = class from the block max, LUT argmin over the class "
                   "(class-structured book, numerics §15); default: two-level on class-structured "
                   "books, lut otherwise (as the golden model)")
    g.add_argument("--two-level-form", choices=[f for f in TWO_LEVEL_FORMS if f],
                   default=None,
                   help="two-level unit: bram = one (class, address) error ROM per lane read "
                   "synchronously (block RAM on FPGAs; a pipeline that never stalls, with a "
                   "credit-counted output FIFO); mux = per-lane error ROM + class-selected "
                   "slot muxes (the smallest in logic); classrom = the first form. Default: "
                   "bram when timed for >= 150 MHz, else mux")
    g.add_argument("--target-mhz", type=float, default=None,
                   help="place the fewest pipeline registers that fit this clock in the ECP5 "
                   "delay model (rtl/timing.py); excludes --pipeline")
    g.add_argument("--timed-inputs", action="store_true",
                   help="with --target-mhz: also fit the logic from the inputs to the first "
                   "register into the period (default: as the MXFP4 baseline, the front end "
                   "up to the normalized addresses is the input stage)")
    g.add_argument("--rom-style", choices=ROM_STYLES, default=None,
                   help=f"constant tables as 'logic' (case statements, default "
                   f"{DEFAULT_ROM_STYLE}) or 'memory' (arrays with initial blocks)")
    g.add_argument("--index", choices=INDEX_MODES, default=None,
                   help="index stage (semdialect, dialectfp4): rom = one B-port ROM over "
                   "(dialect, address); compare = per-block thresholds + per-lane "
                   f"comparators (bit-identical; default {DEFAULT_INDEX})")
    g.add_argument("--name", default=None, help="toplevel module name (default: derived)")
    g.add_argument("-o", "--output", required=True, help="output directory")
    g.set_defaults(func=_generate)

    d = sub.add_parser("generate-defaults", help="the default set of units, one folder each")
    d.add_argument("-o", "--output", default="build/rtl", help="output directory")
    d.set_defaults(func=_generate_defaults)

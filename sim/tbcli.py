"""Command line of the cocotb + Verilator testbench outside pytest (docs/verification.md):

    python -m semdialect.sim.tbcli list
    python -m semdialect.sim.tbcli run CONFIG [--elements N] [--vectors FILE] [--json]

`register(subparsers)` adds the same as `semdialect sim ...` if sim/cli.py wants it."""

from __future__ import annotations

import json
import math
import sys

from semdialect.errors import SimulationError
from semdialect.validate import positive_int_arg, probability_arg

__all__ = ["register", "main"]


def _list(args) -> int:
    from .configs import CONFIGS

    for c in CONFIGS.values():
        book = c.formatbook or "-"
        print(f"{c.name:22s} unit={c.unit:10s} B={c.block_size:<3d} input={c.input} "
              f"formatbook={book}")
    return 0


def _run(args) -> int:
    from . import verilator as v
    from .configs import get_config

    cfg = get_config(args.config)
    if args.vectors:  # every argument checked before the (slow) Verilator build
        from .stimulus import load_vector_blocks

        load_vector_blocks(args.vectors, cfg.block_size, cfg.dtype)
    gen = v.generate(cfg)
    built = v.build(gen)
    params = {"n_blocks": math.ceil(args.elements / cfg.block_size), "seed": args.seed,
              "gap": args.gap, "backpressure": args.backpressure,
              "vectors": args.vectors}
    try:
        s = v.run_tb(built, "stream_test", params, name="cli-stream")
    except AssertionError as e:  # the real cause first, then where the log is
        raise SimulationError(" ".join(str(e).splitlines()[0].split())) from None
    if args.json:
        print(json.dumps(s, indent=1))
    else:
        print(f"{cfg.name}: {s['report_text']}")
        print(f"  {s['sim_cycles']} cycles in {s['sim_wall_s']:.1f} s: "
              f"{s['cycles_per_s']:.0f} cycles/s, {s['elements_per_s']:.0f} elements/s; "
              f"run folder {built.gen.dir / 'runs'}")
    return 0 if s["report"]["ok"] else 1


def register(subparsers) -> None:
    p = subparsers.add_parser("sim", help="simulate the generated RTL against the golden model",
                              description="cocotb + Verilator testbench (docs/verification.md)")
    sub = p.add_subparsers(dest="sim_command", metavar="SIM_COMMAND")
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])
    ls = sub.add_parser("list", help="the simulated configurations")
    ls.set_defaults(func=_list)
    r = sub.add_parser("run", help="generate, build (cached) and run the stream test")
    r.add_argument("config", help="configuration name (semdialect sim list)")
    r.add_argument("--elements", type=positive_int_arg, default=1 << 20)
    r.add_argument("--vectors", default=None, help=".npy or .safetensors vector file")
    r.add_argument("--seed", type=int, default=1)
    r.add_argument("--gap", type=probability_arg, default=0.1,
                   help="probability of a valid gap, in [0, 1)")
    r.add_argument("--backpressure", type=probability_arg, default=0.2,
                   help="probability of ready low, in [0, 1)")
    r.add_argument("--json", action="store_true", help="print the run summary as JSON")
    r.set_defaults(func=_run)


def main(argv=None) -> int:
    """`python -m semdialect.sim.tbcli ARGS` = `semdialect sim ARGS` (same error handling)."""
    from semdialect.cli import main as cli_main

    return cli_main(["sim", *(argv if argv is not None else sys.argv[1:])])


if __name__ == "__main__":
    sys.exit(main())

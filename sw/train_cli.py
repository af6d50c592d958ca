"""`semdialect train` (argument parsing only; torch is imported when it runs)."""

from __future__ import annotations

import json
import sys

__all__ = ["register", "cmd_train"]

TRAINABLE = ("trained-wan-tiny", "trained-mmdit-tiny")


def cmd_train(args) -> int:
    if args.model not in TRAINABLE:
        raise ValueError(f"{args.model} is not a trainable model; trainable: "
                         f"{', '.join(TRAINABLE)}")
    from dataclasses import replace

    from .cli import _quiet_libs

    _quiet_libs()
    from .train import DEFAULTS, train

    cfg = DEFAULTS[args.model]
    over = {k: getattr(args, k) for k in ("steps", "batch", "seed") if getattr(args, k)
            is not None}
    cfg = replace(cfg, **over)
    man = train(args.model, cfg, args.output, snapshot_every=args.snapshot_every,
                progress=None if args.quiet else
                (lambda m: print(m, file=sys.stderr, flush=True)))
    print(json.dumps({k: man[k] for k in ("model", "steps", "final_train_loss", "val_loss",
                                          "val_loss_empty_caption", "val_loss_random_init",
                                          "train_seconds", "sha256")}, indent=1))
    return 0


def register(subparsers) -> None:
    import argparse

    from semdialect.validate import nonneg_int_arg, positive_int_arg

    p = subparsers.add_parser(
        "train",
        help="train a trained-* tiny video DiT on the procedural sprite task (rectified flow)",
        description="Rectified-flow training of " + ", ".join(TRAINABLE) + " on the seeded "
                    "procedural text-to-video task (sw/video_task.py), one torch thread, "
                    "deterministic: the defaults reproduce the shipped checkpoint "
                    "(docs/frontend.md). Writes OUT.safetensors and OUT.safetensors."
                    "manifest.json.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", required=True, help=", ".join(TRAINABLE))
    p.add_argument("-o", "--output", required=True, help="OUT.safetensors")
    shipped = "(default: the shipped run's)"
    p.add_argument("--steps", type=positive_int_arg, help=f"optimizer steps {shipped}")
    p.add_argument("--batch", type=positive_int_arg, help=f"clips per step {shipped}")
    p.add_argument("--seed", type=nonneg_int_arg, help=f"init / noise seed {shipped}")
    p.add_argument("--snapshot-every", type=positive_int_arg,
                   help="also write OUT every N steps (each = the run with --steps N)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_train)


def reproduce(model: str, out: str) -> int:
    """`nox -s train`: retrain `model` with the shipped manifest's step count and compare
    the sha256 with the shipped file."""
    import os

    from .trained import manifest_path, weights_path

    os.nice(10)
    shipped = json.loads(manifest_path(weights_path(model)).read_text())
    from .cli import _quiet_libs

    _quiet_libs()
    from dataclasses import replace

    from .train import DEFAULTS, train

    cfg = replace(DEFAULTS[model], steps=shipped["steps"])
    man = train(model, cfg, out, progress=lambda m: print(m, file=sys.stderr, flush=True))
    same = man["sha256"] == shipped["sha256"]
    print(f"{model}: {shipped['steps']} steps, sha256 {man['sha256'][:16]} "
          f"{'==' if same else '!='} shipped {shipped['sha256'][:16]}")
    if same:
        return 0
    # Not the same bytes: say how far. One thread and deterministic algorithms make a run
    # bit-reproducible on one CPU, but BLAS picks its kernels by CPU (and by alignment),
    # so another CPU model lands ~1e-6 away (measured: docs/frontend.md).
    import torch
    from safetensors.torch import load_file

    a, b = load_file(str(weights_path(model))), load_file(out)
    dw = max((a[k].float() - b[k].float()).abs().max().item() for k in a)
    rel = abs(man["val_loss"] - shipped["val_loss"]) / shipped["val_loss"]
    close = set(a) == set(b) and dw <= 1e-4 and rel <= 1e-5
    print(f"{model}: not bit-identical; max |weight difference| {dw:.3g}, validation loss "
          f"{man['val_loss']:.7f} vs shipped {shipped['val_loss']:.7f} (relative {rel:.1e}) "
          f"on {_cpu_name()} with torch {torch.__version__}: "
          + ("numerically the same run (another CPU's BLAS kernels)" if close else
             "a DIFFERENT result"))
    return 0 if close else 1


def _cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in TRAINABLE:
        sys.exit(f"usage: python -m semdialect.sw.train_cli {{{','.join(TRAINABLE)}}} "
                 "OUT.safetensors  (retrain and compare with the shipped sha256)")
    sys.exit(reproduce(sys.argv[1], sys.argv[2]))

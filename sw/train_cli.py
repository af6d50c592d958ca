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
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(reproduce(sys.argv[1], sys.argv[2]))

"""`semdialect capture` and `semdialect e2e` (the PyTorch frontend's commands)."""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from semdialect.errors import LimitExceededError, UsageError
from semdialect.paths import check_output_file
from semdialect.validate import finite_float_arg, nonneg_int_arg, positive_int_arg

__all__ = ["register", "parse_size", "check_device"]

_SIZE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([kmgt]?i?b?)?\s*$", re.I)


def parse_size(text: str) -> int:
    """'500MB', '2GiB', '1000' -> bytes (powers of 1024 for every unit)."""
    m = _SIZE.match(str(text))
    if not m:
        raise ValueError(f"bad size {text!r}: use e.g. 500MB or 2GB")
    mult = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
    unit = (m.group(2) or "").lower()[:1]
    unit = "" if unit == "b" else unit
    return int(float(m.group(1)) * mult[unit])


def _steps_list(text: str | None, steps: int):
    """--capture-steps: distinct step indices in 0..steps-1 (None: every step)."""
    if text is None:
        return None
    try:
        out = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise UsageError(f"must be comma-separated step indices, got {text!r}",
                         "--capture-steps") from None
    bad = [s for s in out if not 0 <= s < steps]
    if not out or bad:
        raise UsageError(f"steps {bad or text!r} are not in 0..{steps - 1} (--steps {steps}): "
                         "nothing would be captured", "--capture-steps")
    return out


def check_device(name: str) -> str:
    """A torch device this machine has ('cpu', 'cuda', 'cuda:1', 'mps')."""
    import torch

    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError):
        raise UsageError(f"unknown torch device {name!r}", "--device") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(f"{name!r}: this torch has no CUDA device (torch "
                             f"{torch.__version__}); use --device cpu", "--device")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise UsageError(f"{name!r}: only {torch.cuda.device_count()} CUDA device(s)",
                             "--device")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise UsageError(f"{name!r}: MPS is not available here; use --device cpu", "--device")
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise UsageError(f"unsupported device {name!r} (cpu, cuda, mps)", "--device")
    return name


def _quiet_libs():
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    for name in ("diffusers", "torchao", "torch._dynamo"):
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        from diffusers.utils import logging as dlog

        dlog.set_verbosity_error()
    except ImportError:  # pragma: no cover
        pass


def _output_kind(output: str) -> bool:
    """True: one .safetensors file; False: a sharded vector directory."""
    from pathlib import Path

    if output.endswith(".safetensors"):
        return True
    if Path(output).suffix not in ("", ".vectors") and not Path(output).is_dir():
        raise UsageError(f"output {output!r} must end in .safetensors (one file) or name a "
                         "directory (no suffix, or .vectors: sharded vectors, docs/vectors.md)")
    return False


def _check_room(plan, max_bytes, output: str, single: bool) -> None:
    """--max-bytes and free disk against the exact estimate, before anything runs."""
    import shutil

    from .vectors import format_bytes

    total = plan.total_bytes
    if max_bytes is not None and total > max_bytes:
        raise LimitExceededError(
            f"the capture would write {format_bytes(total)}, above the limit of "
            f"{format_bytes(max_bytes)} (--max-bytes); use fewer --steps or --capture-steps, "
            "a narrower --layers regex, --max-tokens or --max-layers")
    parent = Path(output).resolve().parent
    while not parent.is_dir():  # created before writing: its disk is the first existing
        parent = parent.parent
    need = total * (2 if single else 1) + (8 << 20)  # one file: shards, then the merge
    free = shutil.disk_usage(parent).free
    if need > free:
        how = " (shards, then the merged file)" if single else ""
        raise LimitExceededError(f"not enough disk space in {parent}: the capture needs "
                         f"{format_bytes(need)}{how}, {format_bytes(free)} free")


def cmd_capture(args) -> int:
    from .vectors import add_expected, estimate_bytes, format_bytes, save_vectors

    single = _output_kind(args.output)
    if not args.dry_run:  # every argument checked before the (long) capture
        from .vectors import sidecar_path

        check_output_file(args.output, "-o")
        if single:
            check_output_file(sidecar_path(args.output), "-o (its manifest)")
    steps_list = _steps_list(args.capture_steps, args.steps)
    max_bytes = parse_size(args.max_bytes) if args.max_bytes else None
    expected = [f for f in (args.expected or "").split(",") if f]
    if args.model.startswith("synthetic"):
        from .synthetic import synthetic_vectors

        if not single:
            raise UsageError("synthetic profiles are written as one .safetensors file", "-o")
        tensors, manifest = synthetic_vectors(args.model, steps=args.steps, seed=args.seed,
                                              dtype=args.dtype or "float32")
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)  # checked up front
        for fmt in expected:
            add_expected(tensors, manifest, fmt)
        n = estimate_bytes(tensors)
        print(f"{len(tensors)} tensors, {format_bytes(n)} "
              f"({manifest['source']['label']})", file=sys.stderr)
        if args.dry_run:
            print(json.dumps({"tensors": len(tensors), "bytes": n}))
            return 0
        stored = save_vectors(args.output, tensors, manifest, max_bytes=max_bytes)
        print(f"wrote {args.output} ({format_bytes(stored['data_bytes'])}) and "
              f"{args.output}.manifest.json", file=sys.stderr)
        return 0
    from .checkpoints import resolve_model

    resolve_model(args.model, args.checkpoint)  # clear error before importing diffusers
    check_device(args.device)
    _quiet_libs()
    from .capture import plan_capture
    from .vectors import merge_shards

    video = {k: getattr(args, k) for k in ("frames", "height", "width")
             if getattr(args, k) is not None}
    plan = plan_capture(args.model, args.checkpoint, args.steps, args.layers, args.max_tokens,
                        args.max_layers, steps_list, not args.no_qk, args.guidance, args.dtype,
                        video or None, expected, args.seed, args.text_embeds)
    est = {"tensors": plan.tensors, "aliases": plan.aliases, "bytes": plan.total_bytes,
           "input_bytes": plan.bytes, "expected_bytes": plan.expected_bytes,
           "per_step_bytes": plan.per_step_bytes, "largest_tensor_bytes": plan.largest_tensor,
           "dtype": plan.dtype, "model": plan.name}
    if plan.exact and not plan.tensors:
        raise UsageError("captured 0 tensors: no matching layer ran at a captured step "
                         "(check --layers, --capture-steps, --no-qk)")
    if plan.exact:
        _check_room(plan, max_bytes, args.output, single)
        print(f"{plan.name}: {plan.tensors} tensors (+{plan.aliases} aliases of bit-identical "
              f"inputs), {format_bytes(plan.total_bytes)} in {plan.dtype} (exact, from shapes)",
              file=sys.stderr)
    else:
        est = {k: None for k in est} | {"dtype": plan.dtype, "model": plan.name}
        print(f"{plan.name}: no exact size estimate (its forward has data-dependent shapes); "
              "--max-bytes and free disk are checked shard by shard", file=sys.stderr)
    if args.dry_run:
        print(json.dumps(est))
        return 0
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)  # checked up front
    folder = out.with_name(f".{out.name}.partial") if single else out
    if single and args.resume:
        raise UsageError("only a directory output (-o OUT, no .safetensors) can be resumed",
                         "--resume")
    try:
        manifest = _capture_into(args, plan, folder, steps_list, max_bytes, expected, video)
        if single:
            manifest = merge_shards(folder, out)
    except BaseException:
        if single and folder.exists():  # one file: nothing half-written stays behind
            import shutil

            shutil.rmtree(folder)
        raise
    if single:
        print(f"wrote {out} ({format_bytes(manifest['data_bytes'])}) and "
              f"{out}.manifest.json ({manifest['source']['label']})", file=sys.stderr)
    else:
        print(f"wrote {out}/ ({len(manifest['shards'])} shards, "
              f"{format_bytes(manifest['data_bytes'])}; {manifest['source']['label']})",
              file=sys.stderr)
    return 0


def _capture_into(args, plan, folder, steps_list, max_bytes, expected, video):
    from .capture import capture_model

    return capture_model(
        args.model, checkpoint=args.checkpoint, steps=args.steps, seed=args.seed,
        layers=args.layers, max_tokens=args.max_tokens, max_layers=args.max_layers,
        capture_steps=steps_list, qk=not args.no_qk, guidance=args.guidance,
        dtype=plan.dtype, device=args.device, max_bytes=max_bytes, progress=not args.quiet,
        video=video or None, shift=args.flow_shift, text_embeds=args.text_embeds,
        output=folder, expected=expected, resume=args.resume,
        shard_bytes=parse_size(args.shard_size), plan=plan)


def cmd_e2e(args) -> int:
    from .checkpoints import resolve_model

    args.model = resolve_model(args.model, args.checkpoint)
    check_device(args.device)
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    if not formats:
        raise UsageError("is empty", "--formats")
    _quiet_libs()
    from .fakequant import e2e_table, format_table

    if args.video_dir and not args.model.startswith("trained-"):
        raise ValueError("--video-dir needs a trained-* model (its latents are videos)")
    latents = {} if args.video_dir else None
    res = e2e_table(args.model, formats, checkpoint=args.checkpoint, steps=args.steps,
                    seed=args.seed, layers=args.layers, weights=not args.no_weights,
                    guidance=args.guidance, device=args.device, progress=not args.quiet,
                    dtype=args.dtype, latents=latents, from_clip=args.from_clip)
    video = None
    if args.video_dir:
        from .video_e2e import format_video_table, video_report

        video = video_report(latents, args.model, args.video_dir, res["caption"])
        res["video"] = video
    if args.json:
        print(json.dumps(res, indent=1))
    else:
        print(format_table(res))
        if video:
            print()
            print(format_video_table(video))
            print(f"# wrote {', '.join(video['files'])} in {args.video_dir}", file=sys.stderr)
    return 0


def register(subparsers) -> None:
    from .synthetic import SYNTHETIC_PROFILES

    models = ("trained-wan-tiny, trained-mmdit-tiny (TRAINED, shipped weights), wan-tiny, "
              "mmdit-tiny, cogvideox-tiny, ltx-tiny, hunyuan-tiny, mochi-tiny, allegro-tiny, "
              "latte-tiny (random weights)")
    p = subparsers.add_parser(
        "capture",
        help="capture Linear inputs and attention q/k of a video DiT into a vector file",
        description="Run a video DiT (tiny random-weight config, or --checkpoint) for a few "
                    "seeded denoising steps with cond/uncond CFG branches and write the "
                    "inputs of every matching nn.Linear and the attention q/k to a "
                    "safetensors file with a JSON manifest (docs/vectors.md). Models: "
                    f"{models}; synthetic profiles: {', '.join(SYNTHETIC_PROFILES)}.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", required=True,
                   help="tiny model, architecture (wan, mmdit, cogvideox, ltx, hunyuan, mochi, "
                        "allegro, latte: with --checkpoint) or synthetic profile name")
    p.add_argument("--checkpoint", help="local diffusers folder, or .safetensors with its "
                                        "config.json beside it (never downloads)")
    p.add_argument("--steps", type=positive_int_arg, default=2, help="denoising steps")
    p.add_argument("--layers", help="regex on module names (Linear layers; attention modules)")
    p.add_argument("--seed", type=nonneg_int_arg, default=0)
    p.add_argument("-o", "--output", required=True,
                   help="OUT.safetensors (one file) or OUT (a directory of shards)")
    p.add_argument("--max-tokens", type=positive_int_arg, default=None,
                   help="keep at most N evenly spaced tokens per tensor")
    p.add_argument("--max-layers", type=positive_int_arg, default=None,
                   help="capture an evenly spaced subset of N Linear layers (and q/k only "
                        "of their blocks' attention)")
    p.add_argument("--capture-steps",
                   help="comma-separated step indices 0..steps-1 to record (default all)")
    p.add_argument("--no-qk", action="store_true", help="do not record attention q/k")
    p.add_argument("--guidance", type=finite_float_arg, default=5.0,
                   help="CFG scale (1: cond branch only)")
    p.add_argument("--dtype", default=None,
                   help="model and storage dtype: float32 | bfloat16 | float16 (default: the "
                        "checkpoint's; float32 for tiny models)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--flow-shift", type=finite_float_arg, default=1.0,
                   help="flow shift of the sigma schedule (Wan: 3 at 480p, 5 at 720p)")
    p.add_argument("--text-embeds", metavar="FILE.safetensors",
                   help="precomputed text conditioning: cond.<input> / uncond.<input> tensors "
                        "(e.g. cond.encoder_hidden_states) instead of random embeddings")
    p.add_argument("--frames", type=positive_int_arg,
                   help="latent frames (default: the model's tiny size)")
    p.add_argument("--height", type=positive_int_arg, help="latent height")
    p.add_argument("--width", type=positive_int_arg, help="latent width")
    p.add_argument("--expected", help="also store golden outputs for these formats (comma list)")
    p.add_argument("--max-bytes", help="refuse to capture/write more than this (e.g. 2GB); "
                                       "checked on the exact estimate before running")
    p.add_argument("--dry-run", action="store_true",
                   help="check everything and print the exact size estimate; load and run "
                        "nothing, write nothing")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted capture into the same output")
    p.add_argument("--shard-size", default="256MB",
                   help="tensors are written to disk in shards of about this size")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_capture)

    e = subparsers.add_parser(
        "e2e",
        help="end-to-end error of a video DiT with every Linear fake-quantized per format",
        description="Run the denoising loop unquantized and with every nn.Linear's input (and "
                    "weight) quantize-dequantized in each format (torch reference quantizers "
                    "= golden model bit for bit); report final-latent MSE/PSNR and the "
                    "per-layer activation SQNR.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    e.add_argument("--model", required=True)
    e.add_argument("--checkpoint")
    e.add_argument("--formats", default="mxfp4,nvfp4,dialectfp4,semdialect",
                   help="formats and/or methods semdialect-decomp, -seda, -full")
    e.add_argument("--steps", type=positive_int_arg, default=4)
    e.add_argument("--seed", type=nonneg_int_arg, default=0)
    e.add_argument("--layers", help="regex: only these Linear layers are quantized")
    e.add_argument("--no-weights", action="store_true", help="quantize activations only")
    e.add_argument("--guidance", type=finite_float_arg, default=5.0)
    e.add_argument("--dtype", default="float32")
    e.add_argument("--device", default="cpu")
    e.add_argument("--video-dir", help="trained-* models: write the sample grid (PNG), an "
                   "animated GIF and video PSNR / temporal consistency per format here")
    e.add_argument("--from-clip", type=float, metavar="SIGMA",
                   help="trained-* models: start at this sigma from a noised validation clip "
                        "(index = --seed) and its caption instead of pure noise")
    e.add_argument("--json", action="store_true", help="machine-readable output")
    e.add_argument("--quiet", action="store_true")
    e.set_defaults(func=cmd_e2e)

    from .quality_cli import register as register_quality
    from .stats import register as register_stats
    from .train_cli import register as register_train

    register_quality(subparsers)
    register_train(subparsers)
    register_stats(subparsers)

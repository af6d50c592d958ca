"""Golden-model sub-commands of `semdialect`: eval, formatbook, bench."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from semdialect.errors import InputFileError, LimitExceededError, UsageError
from semdialect.paths import check_output_dir, check_output_file, write_file_group
from semdialect.validate import positive_int_arg

__all__ = ["register", "load_dataset_file", "synthetic_datasets", "MAX_BLOCK_SIZE"]

MAX_BLOCK_SIZE = 4096  # largest --block-size of the command line (docs/limits.md)


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def synthetic_datasets(shape=(256, 4096), seed: int = 0):
    from .datasets import SYNTHETIC_DATASETS, synthetic

    return [(f"synthetic-{n}", synthetic(n, shape, seed=seed)) for n in SYNTHETIC_DATASETS]


def load_dataset_file(path: str):
    """A .npy array (float32/float16/bfloat16) or a safetensors vector export of the
    frontend (loaded with semdialect.sw.vectors.load_vectors). Returns (name, data)."""
    from semdialect.npyfile import load_float_npy

    p = Path(path)
    if p.suffix == ".npy":
        return p.stem, load_float_npy(p)
    if p.suffix == ".safetensors" or p.is_dir():  # one file or a sharded directory
        if not p.exists():
            raise InputFileError(f"no such vector file: {path}")
        if p.is_dir() and not (p / "manifest.json").is_file():
            raise InputFileError(f"{path}: is a folder, not a vector file (nor a sharded "
                                 "vector directory: no manifest.json)")
        try:
            from semdialect.sw.vectors import load_vectors
        except ImportError as e:
            raise InputFileError(
                f"{path}: reading safetensors vector exports needs the torch extra "
                f"(pip install 'semdialect[torch]'): {e}"
            ) from None
        return (p.stem if p.is_file() else p.name), load_vectors(p)  # (tensors, manifest)
    if not p.exists():
        raise InputFileError(f"no such vector file: {path}")
    raise InputFileError(
        f"{path}: unsupported vector file type {p.suffix!r} (use .npy, .safetensors or a "
        "sharded vector directory)"
    )


def _cmd_eval(args) -> int:
    from .evaluate import DEFAULT_EVAL_FORMATS, check_method, evaluate, format_table, plot_rows

    formats = [f.strip() for f in args.formats.split(",")] if args.formats is not None \
        else list(DEFAULT_EVAL_FORMATS)
    for f in formats:  # every argument checked before any work
        try:
            check_method(f)
        except ValueError as e:
            raise UsageError(str(e), "--formats") from None
    if args.plot:
        check_output_file(args.plot, "--plot")
    datasets = []
    if args.synthetic or not args.vectors:
        shape = (64, 2048) if args.quick else (256, 4096)
        datasets += synthetic_datasets(shape, seed=args.seed)
    for path in args.vectors or []:
        name, data = load_dataset_file(path)
        if isinstance(data, tuple):  # frontend export: say what the numbers come from
            label = data[1].get("source", {}).get("label")
            if label:
                _say(f"{name}: {label}")
        datasets.append((name, data))
    names = {n for n, _ in datasets}
    rows = evaluate(datasets, formats, progress=None if args.json else _say,
                    per_layer=args.per_layer, notes=_say, bar=not args.quiet)
    overall = [r for r in rows if r["dataset"] in names]
    if args.plot:
        plot_rows(overall, args.plot)
    if args.json:
        print(json.dumps(rows, indent=1))
    else:
        print(format_table(overall))
        if args.per_layer:
            print()
            print(format_table([r for r in rows if r["dataset"] not in names]))
    return 0


def _vector_calibration(args):
    """(name, calibration values, held-out values) from `--vectors` (seeded block split)."""
    from .builder import split_blocks
    from .evaluate import as_sequences

    name, data = load_dataset_file(args.vectors)
    parts = [np.asarray(a, dtype=np.float32).reshape(-1) for s in as_sequences(name, data)
             for a in s.x if a.shape[-1] % args.block_size == 0]
    if not parts:
        raise InputFileError(f"{args.vectors}: no tensor whose last axis is a multiple of "
                             f"--block-size {args.block_size}")
    x, heldout = split_blocks(np.concatenate(parts), args.block_size, args.holdout, args.seed)
    return name, x, heldout


def _write_book(args, book, report: dict, heldout) -> int:
    """Held-out report, the book file, one summary line per SQNR; the report on stdout."""
    from .builder import holdout_report

    report.update(holdout_report(book, heldout, args.block_size))
    out = Path(args.output)
    write_file_group(out.parent, {out.name: book.dumps()})  # all or nothing (issue 15)
    for key, v in report.get("heldout_sqnr_db", {}).items():
        _say(f"held-out SQNR {key:>28}: {v:.3f} dB")
    classes = (f" in {book.num_classes} classes of {book.class_size}"
               if book.has_classes else "")
    _say(f"wrote {out} ({book.num_dialects} dialects{classes}, "
         f"hash {book.content_hash[:16]})")
    print(json.dumps(report))
    return 0


def _cmd_formatbook_build(args) -> int:
    from .builder import (
        build_default_book,
        build_formatbook,
        default_calibration,
    )
    from .formatbook import MAX_DIALECTS

    if args.synthetic == bool(args.vectors):
        raise UsageError("give exactly one of --synthetic or --vectors FILE")
    if args.dialects > MAX_DIALECTS:
        raise UsageError(f"at most {MAX_DIALECTS} dialects (an 8-bit id), got {args.dialects}",
                         "--dialects")
    if args.block_size > MAX_BLOCK_SIZE:
        raise UsageError(f"at most {MAX_BLOCK_SIZE}, got {args.block_size}", "--block-size")
    if not 0 <= args.holdout < 1:
        raise UsageError(f"must be in [0, 1), got {args.holdout}", "--holdout")
    if args.class_size is not None and args.class_bits is None:
        raise UsageError("--class-size needs --class-bits", "--class-size")
    check_output_file(args.output, "-o")  # before the (long) search
    if args.class_bits is not None:
        return _build_class_book(args)
    if args.synthetic:
        heldout = default_calibration(args.seed + 1, blocks_per_dataset=512)
        if args.dialects != 32:
            book, report = build_formatbook(
                default_calibration(args.seed), args.dialects, name=args.name or
                f"synthetic-{args.dialects}", frac_bits=args.frac_bits, progress=_say,
                provenance={"command": " ".join(sys.argv), "seed": args.seed})
        else:
            book, report = build_default_book(seed=args.seed, progress=_say)
    else:
        name, x, heldout = _vector_calibration(args)
        book, report = build_formatbook(
            x, args.dialects, name=args.name or f"{name}-{args.dialects}",
            block_size=args.block_size, frac_bits=args.frac_bits, progress=_say,
            provenance={"command": " ".join(sys.argv), "vectors": str(args.vectors)})
    return _write_book(args, book, report, heldout)


def _build_class_book(args) -> int:
    """`formatbook build --class-bits B [--class-size K]`: a class-structured book (§15);
    K defaults to D / 2^B (disjoint classes); K * 2^B > D shares a D-dialect pool."""
    from .builder import (
        CLASS_BOOKS,
        build_class_formatbook,
        build_default_class_book,
        default_calibration,
    )

    b, d = args.class_bits, args.dialects
    k = args.class_size if args.class_size is not None else d >> b
    if not 0 <= b <= 6 or k < 1 or (k << b) < d:
        raise UsageError(f"--class-bits {b} --class-size {k} cannot hold {d} dialects "
                         "(need 0 <= B <= 6 and K * 2^B >= D)")
    shipped = {v: n for n, v in CLASS_BOOKS.items()}.get((b, k, d))
    common = dict(block_size=args.block_size, frac_bits=args.frac_bits, progress=_say)
    if args.synthetic:
        heldout = default_calibration(args.seed + 1, blocks_per_dataset=512)
        if shipped and args.frac_bits == 4 and args.block_size == 32 and args.name in (
                None, shipped):
            book, report = build_default_class_book(shipped, seed=args.seed, progress=_say)
        else:
            book, report = build_class_formatbook(
                default_calibration(args.seed), b, k, n_dialects=d,
                name=args.name or f"synthetic-{d}c{1 << b}x{k}",
                provenance={"command": " ".join(sys.argv), "seed": args.seed}, **common)
    else:
        name, x, heldout = _vector_calibration(args)
        book, report = build_class_formatbook(
            x, b, k, n_dialects=d, name=args.name or f"{name}-{d}c{1 << b}x{k}",
            provenance={"command": " ".join(sys.argv), "vectors": str(args.vectors)},
            **common)
    return _write_book(args, book, report, heldout)


def _cmd_formatbook_show(args) -> int:
    from .formatbook import load_formatbook
    from .lut import build_luts

    if args.export:
        check_output_dir(args.export, "--export")
    book = load_formatbook(args.book)
    try:
        luts = build_luts(book, args.frac_bits, args.err_bits)  # refuses past the size limit
    except LimitExceededError as e:
        raise LimitExceededError(f"{args.book}: {e}") from None
    print(f"formatbook {book.name}: {book.num_dialects} dialects, grid {book.grid}, "
          f"scale e8m0 emax {book.emax}, sha256 {book.content_hash}")
    print(f"bits/element at k=32: {book.bits_per_element(32)}")
    print(f"error LUT: {luts.err.shape[0]} x {luts.err.shape[1]} x {luts.err_rom_width} b "
          f"(W {luts.err_bits}, its {luts.err_shift} low bits address-only, §8.3) = "
          f"{luts.err_rom_bits} bits; index LUT: {luts.idx.shape[0]} x {luts.idx.shape[1]} "
          f"x 3 b = {luts.idx_rom_bits} bits")
    for i, d in enumerate(book.dialects):
        print(f"  {i:3d}: " + " ".join(f"{m * book.grid:4g}" for m in d))
    if book.has_classes:
        from .two_level import build_two_level

        t = build_two_level(book, args.frac_bits, args.err_bits)
        step = 2.0 ** (book.emax - book.class_bits)
        print(f"classes (numerics §15): {book.num_classes} x {book.class_size}, block max "
              f"truncated to {step:g}; class ROM {t.num_classes} x {t.luts.err.shape[1]} x "
              f"{t.k} x {t.luts.err_rom_width} b = {t.class_rom_bits} bits")
        for c, ids in enumerate(book.classes):
            lo = 2.0**book.emax + c * step
            print(f"  class {c} [{lo:g}, {lo + step:g}): {list(ids)}")
    if args.export:
        out = Path(args.export)
        write_file_group(out, {
            "err_lut.npy": _npy_bytes(luts.err.astype(np.uint32)),
            "idx_lut.npy": _npy_bytes(luts.idx),
            "luts.json": json.dumps({
                "formatbook": book.name, "sha256": book.content_hash,
                "frac_bits": luts.frac_bits, "err_bits": luts.err_bits,
                "err_shift": luts.err_shift, "idx_frac_bits": luts.idx_frac_bits,
                "err_lut": luts.err.tolist(), "idx_lut": luts.idx.tolist()})})
        _say(f"wrote {out}/err_lut.npy, idx_lut.npy, luts.json")
    return 0


def _npy_bytes(a: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def _cmd_bench(args) -> int:
    from . import bench

    return bench.run_args(args, args.bench_parser)


def register(sub: argparse._SubParsersAction) -> None:
    from .lut import DEFAULT_ERR_BITS, DEFAULT_FRAC_BITS

    p = sub.add_parser("eval", help="SQNR and bits/element of formats on synthetic or "
                       "captured data")
    p.add_argument("--vectors", action="append", metavar="FILE",
                   help=".npy array or .safetensors export of `semdialect capture` "
                   "(repeatable)")
    p.add_argument("--synthetic", action="store_true",
                   help="the seeded synthetic datasets (default when no --vectors)")
    p.add_argument("--formats", help="comma-separated format names (default: a baseline set)")
    p.add_argument("--per-layer", action="store_true", help="also one row per captured tensor")
    p.add_argument("--json", action="store_true",
                   help="print a JSON list of {format, dataset, sqnr_db, bits_per_element}")
    p.add_argument("--plot", metavar="FILE.png", help="bar chart of SQNR per format/dataset")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="smaller synthetic datasets")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_eval)

    fb = sub.add_parser("formatbook", help="build or inspect formatbooks")
    fsub = fb.add_subparsers(dest="formatbook_command", metavar="ACTION", required=True)
    b = fsub.add_parser("build", help="build an N-dialect book minimizing LUT-selected error")
    b.add_argument("--synthetic", action="store_true", help="seeded synthetic calibration")
    b.add_argument("--vectors", metavar="FILE", help="calibration vectors (.npy/.safetensors)")
    b.add_argument("--dialects", type=positive_int_arg, default=32,
                   help="dialects in the book, 1..256")
    b.add_argument("--class-bits", type=int, metavar="B",
                   help="class-structured book (numerics §15): 2^B block-max classes")
    b.add_argument("--class-size", type=positive_int_arg, metavar="K",
                   help="dialects per class (default D / 2^B: disjoint classes; "
                   "K * 2^B > D: classes drawn from a shared D-dialect pool)")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--frac-bits", type=int, default=4,
                   help="LUT resolution of the build objective")
    b.add_argument("--block-size", type=positive_int_arg, default=32,
                   help=f"elements per block, 1..{MAX_BLOCK_SIZE}")
    b.add_argument("--holdout", type=float, default=0.2,
                   help="fraction of --vectors blocks kept out of the build for the report "
                   "(--synthetic holds out fresh data drawn with seed + 1)")
    b.add_argument("--name")
    b.add_argument("-o", "--output", required=True)
    b.set_defaults(func=_cmd_formatbook_build)
    s = fsub.add_parser("show", help="print a book, its hash and LUT sizes; export LUTs")
    s.add_argument("book", help="built-in name (semdialect-32, semdialect-32c8x8, "
                   "semdialect-32c8x4, dialectfp4) or JSON path")
    s.add_argument("--frac-bits", type=int, default=DEFAULT_FRAC_BITS)
    s.add_argument("--err-bits", type=int, default=DEFAULT_ERR_BITS)
    s.add_argument("--export", metavar="DIR", help="write the LUTs as .npy and JSON")
    s.set_defaults(func=_cmd_formatbook_show)

    be = sub.add_parser("bench", help="golden throughput vs torchao (ratios, same run)")
    from . import bench  # options on the subparser itself: REMAINDER dropped leading --opts

    bench.add_arguments(be)
    be.set_defaults(func=_cmd_bench, bench_parser=be)

"""SQNR cost of two-level selection (numerics §15) against exhaustive LUT selection (§8):
the measurement behind the default decision and the design-space points of
docs/architecture.md.

    python -m semdialect.golden.two_level_study -o docs/data/two_level_sqnr.json \
        --books-dir docs/data/two_level_books

Datasets: the benchmark's four synthetic sets (`semdialect eval`: 256 x 4096, seed 0) and
the captured activations of the tiny models (3 steps, seed 0, needs the torch extra): the
two TRAINED ones shipped with the package (trained-wan-tiny, the flow's capture, and
trained-mmdit-tiny) and the three RANDOM-WEIGHT ones (wan-tiny, mmdit-tiny,
cogvideox-tiny).
SQNR pools signal and noise over a dataset's tensors. The loss of a point is
SQNR(exhaustive reference) - SQNR(point), in dB; its reference is `selector="lut"` on
semdialect-32 at the same F, W and block size (so F/W/B points isolate the selector).
Class books are built here with the shipped builder from the shipped calibration set
(`builder.default_calibration(0)`), seeded and deterministic.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from . import quantize
from .builder import build_class_formatbook, default_calibration
from .evaluate import as_sequences
from .formatbook import load_formatbook

__all__ = ["study_points", "run_study", "CAPTURE_MODELS"]

#: trained first: --quick keeps only the first, the flow's own capture
CAPTURE_MODELS = ("trained-wan-tiny", "trained-mmdit-tiny", "wan-tiny", "mmdit-tiny",
                  "cogvideox-tiny")
TRAINED_MODELS = frozenset(m for m in CAPTURE_MODELS if m.startswith("trained-"))
COMMAND = ("python -m semdialect.golden.two_level_study -o docs/data/two_level_sqnr.json "
           "--books-dir docs/data/two_level_books")


def study_points(quick: bool = False):
    """[(label, book builder spec, F, W, B)]: K in {2, 4, 8, 16, D} with 8 classes drawn
    from the semdialect-32 pool, other class counts, disjoint (partition) books, and F,
    W, B points around the default."""
    pts = []
    for b, k in ([(3, 2), (3, 4), (3, 8)] if quick else
                 [(3, 2), (3, 4), (3, 8), (3, 16), (2, 8), (4, 4), (4, 8), (0, 32)]):
        pts.append((f"pool c{1 << b}x{k}", ("pool", b, k), 3, 8, 32))
    if not quick:
        for b, k in [(3, 2), (3, 4), (3, 8)]:
            pts.append((f"partition c{1 << b}x{k}", ("partition", b, k), 3, 8, 32))
        for f, w in [(2, 8), (4, 8), (3, 6), (3, 10)]:
            pts.append((f"pool c8x8 F={f} W={w}", ("pool", 3, 8), f, w, 32))
        for blk in (16, 64):
            pts.append((f"pool c8x8 B={blk}", ("pool", 3, 8), 3, 8, blk))
    return pts


def _book(spec, cache: dict, block_size: int = 32):
    if (spec, block_size) not in cache:
        mode, b, k = spec
        x = default_calibration(0, block_size=block_size)
        pool = load_formatbook("semdialect-32") if mode == "pool" else None
        name = f"study-{mode}-c{1 << b}x{k}" + (f"-b{block_size}" if block_size != 32 else "")
        cache[spec, block_size], _ = build_class_formatbook(
            x, b, k, pool=pool, name=name, block_size=block_size)
    return cache[spec, block_size]


def _book_command(spec, block_size: int) -> str:
    """The CLI build of a study book. Pool mode: the CLI rebuilds the pool, identical to
    the shipped semdialect-32 for B = 32; for B != 32 the study keeps semdialect-32 as
    the pool, so only the saved book file reproduces those points exactly."""
    mode, b, k = spec
    d = 32 if mode == "pool" else k << b
    cmd = (f"semdialect formatbook build --synthetic --dialects {d} --class-bits {b} "
           f"--class-size {k} --seed 0")
    if block_size != 32:  # the CLI would rebuild the pool at this B; the study keeps
        cmd += f" --block-size {block_size}"  # semdialect-32 as the pool (see docstring)
    return cmd


def _datasets(quick: bool, progress):
    from .cli import synthetic_datasets

    shape = (64, 2048) if quick else (256, 4096)
    out = [(n, [x]) for n, x in synthetic_datasets(shape, seed=0)]
    try:
        from semdialect.sw.capture import capture_model
    except ImportError as e:  # the study without torch: synthetic sets only
        progress(f"no captures (torch extra missing: {e})")
        return out
    for model in CAPTURE_MODELS[:1] if quick else CAPTURE_MODELS:
        t0 = time.time()
        tensors, manifest = capture_model(model, steps=3, seed=0)
        xs = [np.asarray(a) for s in as_sequences(model, (tensors, manifest)) for a in s.x]
        out.append((model, xs))
        progress(f"captured {model}: {len(xs)} tensors ({time.time() - t0:.0f} s)")
    return out


def _pooled_sqnr(xs, block_size: int, **opts) -> float:
    sig = noise = 0.0
    for x in xs:
        if x.shape[-1] % block_size:
            continue
        x32 = x.astype(np.float32).astype(np.float64)
        deq = quantize(x, "semdialect", block_size=block_size, **opts).dequantize()
        ok = np.isfinite(x32)
        sig += float(np.sum(x32[ok] ** 2))
        noise += float(np.sum((x32[ok] - deq[ok]) ** 2))
    return 10 * np.log10(sig / noise)


def run_study(quick: bool = False, progress=None, books_dir=None) -> dict:
    """Every study point; books_dir: also save each point's book there (RTL units for
    the design-space plot are built from these files)."""
    from pathlib import Path

    say = progress or (lambda s: None)
    data = _datasets(quick, say)
    books: dict = {}
    refs: dict = {}
    rows = []
    for label, spec, f, w, blk in study_points(quick):
        book = _book(spec, books, blk)
        book_file = None
        if books_dir is not None:
            Path(books_dir).mkdir(parents=True, exist_ok=True)
            book_file = str(Path(books_dir) / f"{book.name}.json")
            book.save(book_file)
        losses = {}
        for ds, xs in data:
            key = (ds, f, w, blk)
            if key not in refs:
                refs[key] = _pooled_sqnr(xs, blk, formatbook="semdialect-32", selector="lut",
                                         frac_bits=f, err_bits=w)
            s = _pooled_sqnr(xs, blk, formatbook=book, selector="two-level", frac_bits=f,
                             err_bits=w)
            losses[ds] = round(refs[key] - s, 4)
        syn = [v for d, v in losses.items() if d.startswith("synthetic")]
        cap = [v for d, v in losses.items() if not d.startswith("synthetic")]
        trained = [v for d, v in losses.items() if d in TRAINED_MODELS]
        row = {
            "point": label, "mode": spec[0], "classes": 1 << spec[1], "K": spec[2],
            "dialects": book.num_dialects, "frac_bits": f, "err_bits": w, "block_size": blk,
            "bits_per_element": book.bits_per_element(blk),
            "reference_bits_per_element": load_formatbook("semdialect-32")
            .bits_per_element(blk),
            "loss_db": losses,
            "mean_loss_db": round(float(np.mean(list(losses.values()))), 4),
            "mean_loss_synthetic_db": round(float(np.mean(syn)), 4) if syn else None,
            "mean_loss_captured_db": round(float(np.mean(cap)), 4) if cap else None,
            "mean_loss_trained_db": round(float(np.mean(trained)), 4) if trained else None,
            "max_loss_db": round(float(max(losses.values())), 4),
            "book_hash": book.content_hash,
            "book_name": book.name,
            "book_file": book_file,
            "book_command": _book_command(spec, blk),
            "class_rom": {"classes": book.num_classes, "K": book.class_size,
                          "addresses": 2 << (book.int_bits + f), "entry_bits": w,
                          "bits": book.num_classes * book.class_size
                          * (2 << (book.int_bits + f)) * w},
        }
        rows.append(row)
        say(f"{label:26s} D={book.num_dialects:3d} mean loss {row['mean_loss_db']:+.4f} dB "
            f"(synthetic {row['mean_loss_synthetic_db']}, captured "
            f"{row['mean_loss_captured_db']}, trained {row['mean_loss_trained_db']})")
    return {
        "command": COMMAND + (" --quick" if quick else ""),
        "reference": "selector='lut' on semdialect-32 at the point's F, W, B",
        "datasets": [d for d, _ in data],
        "reference_sqnr_db": {f"{d} F={f} W={w} B={b}": round(v, 4)
                              for (d, f, w, b), v in refs.items()},
        "points": rows,
    }


SEDA_COMMAND = "python -m semdialect.golden.two_level_study --seda -o docs/data/two_level_seda.json"


def _class_aware_sub_book(rows, k_sub: int, book, block_size: int = 32) -> np.ndarray:
    """Study variant of seda.profile_sub_formatbook for class books: a dialect outside a
    block's §15.1 class costs that block 1e12 (under two-level it cannot pick it), so the
    greedy pick first covers the classes the group's blocks fall in. Not used by the
    SeDA methods (they run the exhaustive engine on semdialect-32)."""
    from .dialects import lut_block_errors, normalize_blocks
    from .inputs import as_float32, to_blocks
    from .two_level import block_class, build_two_level

    t = build_two_level(book)
    xb = to_blocks(as_float32(np.asarray(rows)), block_size).reshape(-1, block_size)
    _, v, bad = normalize_blocks(book, xb)
    v = v[~bad]
    cost = lut_block_errors(t.luts, v).astype(np.float64)
    cls = block_class(book, v.max(axis=-1, initial=0.0))
    inclass = np.zeros(cost.shape, bool)
    for c in range(t.num_classes):
        inclass[np.ix_(cls == c, t.class_ids[c])] = True
    cost = np.where(inclass, cost, 1e12)
    chosen: list[int] = []
    best = np.full(len(cost), np.inf)
    for _ in range(k_sub):
        totals = np.minimum(cost, best[:, None]).sum(axis=0)
        totals[chosen] = np.inf
        c = int(np.argmin(totals))
        chosen.append(c)
        best = np.minimum(best, cost[:, c])
    return np.array(sorted(chosen), dtype=np.int64)


def run_seda_study(progress=None, k_sub: int = 16, n_anchors: int = 2) -> dict:
    """SeDA (numerics §14: group-profiled sub-books of k_sub, n_anchors anchors per layer,
    re-picked every step) through the exhaustive engine on semdialect-32 and through
    the two-level selector on semdialect-32c8x8 (mask ∩ class, §15.3), on the tiny-model
    captures; pooled SQNR per model."""
    from semdialect.sw.capture import capture_model

    from .quality import sequences_from_vectors, token_attention
    from .seda import (
        anchor_groups_from_attention,
        profile_rows,
        profile_sub_formatbook,
        quantize_seda,
    )

    say = progress or (lambda s: None)
    lut_book, tl_book = load_formatbook("semdialect-32"), load_formatbook("semdialect-32c8x8")
    variants = {
        "seda exhaustive (semdialect-32, lut)": (lut_book, profile_sub_formatbook),
        "seda two-level (semdialect-32c8x8)": (tl_book, profile_sub_formatbook),
        "seda two-level, class-aware sub-books": (tl_book, _class_aware_sub_book),
    }
    out = {}
    for model in CAPTURE_MODELS:
        seqs = sequences_from_vectors(*capture_model(model, steps=3, seed=0))
        acc = {k: [0.0, 0.0] for k in [*variants, "plain two-level", "plain exhaustive"]}

        def add(key, x64, deq, acc=acc):
            acc[key][0] += float(np.sum(x64**2))
            acc[key][1] += float(np.sum((x64 - deq) ** 2))

        for s in seqs:
            for i, x in enumerate(s.x):
                if x.shape[-1] % 32:
                    continue
                probs = token_attention(x, s.attn[i] if s.attn else None)
                anchors, group = anchor_groups_from_attention(probs, min(n_anchors, len(x)))
                rows = profile_rows(x, group, anchors, "group")
                x64 = x.astype(np.float32).astype(np.float64)
                for key, (bk, prof) in variants.items():
                    sub = np.stack([prof(r, k_sub, bk) for r in rows])
                    r = quantize_seda(x, group, anchors, k_sub, book=bk, sub_books=sub)
                    add(key, x64, r.qt.dequantize())
                add("plain two-level", x64, quantize(x, "semdialect").dequantize())
                add("plain exhaustive", x64,
                    quantize(x, "semdialect", formatbook="semdialect-32").dequantize())
        out[model] = {k: round(10 * np.log10(a / b), 4) for k, (a, b) in acc.items()}
        say(f"{model}: {out[model]}")
    return {"command": SEDA_COMMAND, "k_sub": k_sub, "n_anchors": n_anchors,
            "profile": "group, re-picked every step", "sqnr_db": out}


def markdown_table(result: dict) -> str:
    """The docs/results.md table of a study result."""
    def num(v):
        return "-" if v is None else f"{v:.4f}"

    lines = ["| point | classes | K | D | bits/elem | F | W | B | mean loss synthetic (dB) | "
             "mean loss captured (dB) | of which trained models (dB) | mean loss (dB) | "
             "max loss (dB) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for p in result["points"]:
        lines.append(
            f"| {p['point']} | {p['classes']} | {p['K']} | {p['dialects']} | "
            f"{p['bits_per_element']:.4f} | {p['frac_bits']} | {p['err_bits']} | "
            f"{p['block_size']} | {num(p['mean_loss_synthetic_db'])} | "
            f"{num(p['mean_loss_captured_db'])} | {num(p.get('mean_loss_trained_db'))} | "
            f"{p['mean_loss_db']:.4f} | "
            f"{p['max_loss_db']:.4f} |")
    return "\n".join(lines)


def say(msg: str) -> None:
    """A study's progress line (stderr, so that stdout stays the result)."""
    print(msg, file=sys.stderr, flush=True)


def write_result(path, result: dict) -> None:
    """A study's JSON result file (indented, with a final newline, as committed)."""
    with open(path, "w") as fh:
        json.dump(result, fh, indent=1)
        fh.write("\n")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--quick", action="store_true", help="few points, small data")
    p.add_argument("--markdown", metavar="JSON", help="print the table of a result file")
    p.add_argument("--books-dir", help="save every point's class book (JSON) here")
    p.add_argument("--seda", action="store_true",
                   help="SeDA through the exhaustive and the two-level selector instead")
    args = p.parse_args(argv)
    if args.markdown:
        with open(args.markdown) as fh:
            print(markdown_table(json.load(fh)))
        return 0
    if args.seda:
        write_result(args.output, run_seda_study(progress=say))
        return 0
    write_result(args.output, run_study(args.quick, progress=say, books_dir=args.books_dir))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

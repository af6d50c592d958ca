"""SQNR cost of two-level selection (numerics §15) against exhaustive LUT selection (§8):
the measurement behind the default decision and the design-space points of
docs/architecture.md.

    python -m semdialect.golden.two_level_study -o docs/data/two_level_sqnr.json

Datasets: the benchmark's four synthetic sets (`semdialect eval`: 256 x 4096, seed 0) and
the captured activations of the flow's tiny models (`semdialect quality`: wan-tiny,
mmdit-tiny, cogvideox-tiny, 3 steps, seed 0; RANDOM-WEIGHT models, needs the torch extra).
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

CAPTURE_MODELS = ("wan-tiny", "mmdit-tiny", "cogvideox-tiny")
COMMAND = "python -m semdialect.golden.two_level_study -o docs/data/two_level_sqnr.json"


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
        name = f"study-{mode}-c{1 << b}x{k}"
        cache[spec, block_size], _ = build_class_formatbook(
            x, b, k, pool=pool, name=name, block_size=block_size)
    return cache[spec, block_size]


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


def run_study(quick: bool = False, progress=None) -> dict:
    say = progress or (lambda s: None)
    data = _datasets(quick, say)
    books: dict = {}
    refs: dict = {}
    rows = []
    for label, spec, f, w, blk in study_points(quick):
        book = _book(spec, books, blk)
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
            "max_loss_db": round(float(max(losses.values())), 4),
            "book_hash": book.content_hash,
        }
        rows.append(row)
        say(f"{label:26s} D={book.num_dialects:3d} mean loss {row['mean_loss_db']:+.4f} dB "
            f"(synthetic {row['mean_loss_synthetic_db']}, captured "
            f"{row['mean_loss_captured_db']})")
    return {
        "command": COMMAND + (" --quick" if quick else ""),
        "reference": "selector='lut' on semdialect-32 at the point's F, W, B",
        "datasets": [d for d, _ in data],
        "reference_sqnr_db": {f"{d} F={f} W={w} B={b}": round(v, 4)
                              for (d, f, w, b), v in refs.items()},
        "points": rows,
    }


def markdown_table(result: dict) -> str:
    """The docs/results.md table of a study result."""
    lines = ["| point | classes | K | D | bits/elem | F | W | B | mean loss synthetic (dB) | "
             "mean loss captured (dB) | mean loss (dB) | max loss (dB) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for p in result["points"]:
        lines.append(
            f"| {p['point']} | {p['classes']} | {p['K']} | {p['dialects']} | "
            f"{p['bits_per_element']:.4f} | {p['frac_bits']} | {p['err_bits']} | "
            f"{p['block_size']} | {p['mean_loss_synthetic_db']:.4f} | "
            f"{p['mean_loss_captured_db']:.4f} | {p['mean_loss_db']:.4f} | "
            f"{p['max_loss_db']:.4f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--quick", action="store_true", help="few points, small data")
    p.add_argument("--markdown", metavar="JSON", help="print the table of a result file")
    args = p.parse_args(argv)
    if args.markdown:
        with open(args.markdown) as fh:
            print(markdown_table(json.load(fh)))
        return 0
    res = run_study(args.quick, progress=lambda s: print(s, file=sys.stderr, flush=True))
    with open(args.output, "w") as fh:
        json.dump(res, fh, indent=1)
        fh.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Formatbook builder: choose N dialects on the integer grid that minimize the
LUT-estimated quantization error of calibration blocks (numerics §7, §8).

Algorithm (deterministic for a given calibration set):

1. Candidates: every dialect {0, m1..m6, top} with 0 < m1 < ... < m6 < top on the grid,
   top from half the normalized range (4.0) to the largest magnitude below 2^(emax+1)
   (7.5); 6434 candidates for the 0.5 grid. Rule: zero is exact, the top covers the
   normalized block max range [4, 8), magnitudes are strictly increasing integers.
2. Calibration blocks are normalized with the book's scale rule and reduced to
   histograms over LUT addresses at resolution F (no error saturation), so the error of
   candidate c on block b is H[b] . ERR[c].
3. Greedy forward selection: add the candidate that most lowers
   sum_b min_{d in book} err(b, d); then swap refinement: for each slot in turn, replace
   it by the best candidate given the others, until a full pass changes nothing (at most
   `refine_passes`). Ties go to the lowest candidate number (lexicographic order).
4. The book is ordered by top magnitude, descending, then lexicographically descending
   (like DialectFP4), so that "ties to the lowest id" prefers wider dialects.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .dialects import normalize_blocks
from .formatbook import LEVELS, Formatbook
from .lut import error_table, normalized_code

__all__ = [
    "candidate_dialects",
    "build_formatbook",
    "build_class_formatbook",
    "address_histograms",
    "default_calibration",
]


def candidate_dialects(grid_log2: int = -1, emax: int = 2) -> np.ndarray:
    limit = int(2 ** (emax + 1) / 2.0**grid_log2)  # magnitudes < limit
    out = []
    for top in range(limit // 2, limit):
        for mid in itertools.combinations(range(1, top), LEVELS - 2):
            out.append((0, *mid, top))
    return np.array(out, dtype=np.int64)


def address_histograms(x: np.ndarray, template: Formatbook, block_size: int, frac_bits: int,
                       with_vmax: bool = False):
    """Per-block LUT-address histograms of the finite blocks of x (and their normalized
    block maxima when with_vmax)."""
    xb = np.asarray(x, dtype=np.float32).reshape(-1, block_size)
    _, v, bad = normalize_blocks(template, xb)
    v = v[~bad]
    n_addr = 2 << (template.int_bits + frac_bits)
    addr = normalized_code(v, frac_bits) + np.arange(len(v))[:, None] * n_addr
    hist = np.bincount(addr.ravel(), minlength=len(v) * n_addr).reshape(len(v), n_addr)
    return (hist, v.max(axis=-1, initial=0.0)) if with_vmax else hist


def default_calibration(seed: int = 0, blocks_per_dataset: int = 2048, block_size: int = 32):
    from .datasets import SYNTHETIC_DATASETS, synthetic

    cols = 1024
    rows = blocks_per_dataset * block_size // cols
    return np.concatenate(
        [synthetic(n, (rows, cols), seed=seed).reshape(-1) for n in SYNTHETIC_DATASETS]
    )


def build_formatbook(
    x: np.ndarray,
    n_dialects: int = 32,
    *,
    name: str = "custom",
    block_size: int = 32,
    frac_bits: int = 4,
    grid_log2: int = -1,
    emax: int = 2,
    refine_passes: int = 3,
    provenance: dict | None = None,
    progress: Callable[[str], None] | None = None,
) -> tuple[Formatbook, dict]:
    """Build an n-dialect book from calibration values x. Returns (book, report)."""
    say = progress or (lambda s: None)
    cands = candidate_dialects(grid_log2, emax)
    template = Formatbook("template", grid_log2, emax, (tuple(int(c) for c in cands[-1]),))
    hist = address_histograms(x, template, block_size, frac_bits).astype(np.float32)
    if len(hist) == 0:
        raise ValueError("no finite calibration blocks")
    err = error_table(cands, template, frac_bits, err_bits=None).astype(np.float32)
    # (blocks x candidates) error matrix; float32 is exact here (integers < 2^24)
    cost = hist @ err.T
    say(f"{len(cands)} candidates x {len(hist)} calibration blocks")
    chosen: list[int] = []
    best = np.full(len(hist), np.inf, dtype=np.float32)
    for i in range(n_dialects):
        totals = np.minimum(cost, best[:, None]).sum(axis=0, dtype=np.float64)
        totals[chosen] = np.inf
        c = int(np.argmin(totals))
        chosen.append(c)
        best = np.minimum(best, cost[:, c])
        say(f"greedy {i + 1}/{n_dialects}: total error {totals[c]:.0f}")
    for p in range(refine_passes):
        changed = False
        for slot in range(n_dialects):
            others = [c for j, c in enumerate(chosen) if j != slot]
            rest = cost[:, others].min(axis=1)
            totals = np.minimum(cost, rest[:, None]).sum(axis=0, dtype=np.float64)
            totals[others] = np.inf
            c = int(np.argmin(totals))
            if c != chosen[slot] and totals[c] < totals[chosen[slot]]:
                chosen[slot] = c
                changed = True
        total = cost[:, chosen].min(axis=1).sum(dtype=np.float64)
        say(f"refine pass {p + 1}: total error {total:.0f}{'' if changed else ' (converged)'}")
        if not changed:
            break
    dialects = _book_order(tuple(int(m) for m in cands[c]) for c in chosen)
    book = Formatbook(name, grid_log2, emax, tuple(dialects), provenance=provenance or {})
    sel = np.argmin(cost[:, chosen], axis=1)
    usage = np.bincount(sel, minlength=n_dialects)
    order = {tuple(int(m) for m in cands[c]): j for j, c in enumerate(chosen)}
    report = {
        "calibration_blocks": int(len(hist)),
        "candidates": int(len(cands)),
        "usage": [int(usage[order[d]]) for d in dialects],
        "total_error": float(cost[:, chosen].min(axis=1).sum(dtype=np.float64)),
    }
    return book, report


def _book_order(dialects) -> list[tuple[int, ...]]:
    """Top magnitude descending, then lexicographically descending (wider first)."""
    return sorted(dialects, key=lambda d: (d[-1], d), reverse=True)


def _greedy_swap(cost: np.ndarray, n: int, refine_passes: int, banned=()) -> list[int]:
    """Columns of `cost` (blocks x candidates) minimizing sum_b min over the chosen:
    greedy forward selection, then swap refinement; ties to the lowest column."""
    banned = list(banned)
    chosen: list[int] = []
    best = np.full(len(cost), np.inf, dtype=np.float32)
    for _ in range(n):
        totals = np.minimum(cost, best[:, None]).sum(axis=0, dtype=np.float64)
        totals[chosen + banned] = np.inf
        c = int(np.argmin(totals))
        chosen.append(c)
        best = np.minimum(best, cost[:, c])
    for _ in range(refine_passes):
        changed = False
        for slot in range(n):
            others = [c for j, c in enumerate(chosen) if j != slot]
            rest = cost[:, others].min(axis=1) if others else np.full(len(cost), np.inf,
                                                                       dtype=np.float32)
            totals = np.minimum(cost, rest[:, None]).sum(axis=0, dtype=np.float64)
            totals[others + banned] = np.inf
            c = int(np.argmin(totals))
            if c != chosen[slot] and totals[c] < totals[chosen[slot]]:
                chosen[slot] = c
                changed = True
        if not changed:
            break
    return chosen


def build_class_formatbook(
    x: np.ndarray,
    class_bits: int = 3,
    class_size: int = 4,
    *,
    n_dialects: int | None = None,
    pool: Formatbook | None = None,
    name: str = "custom-classes",
    block_size: int = 32,
    frac_bits: int = 4,
    grid_log2: int = -1,
    emax: int = 2,
    refine_passes: int = 3,
    provenance: dict | None = None,
    progress: Callable[[str], None] | None = None,
) -> tuple[Formatbook, dict]:
    """A class-structured book (numerics §15): N = 2^class_bits classes of K = class_size
    dialects, from calibration values x. Two modes, by the dialect count D:

    - **partition** (D = N * K, the default): every class gets its own K dialects. Without
      a mask a block only sees its class, so the objective (sum over blocks of the
      smallest LUT-estimated error within the block's class) separates into one greedy +
      swap problem per class over all candidates; classes are solved in order 0, 1, ...
      and a dialect already taken by a lower class is excluded (dialects are distinct).
      Class c holds ids c*K .. c*K + K - 1, each class in book order.
    - **pool** (D < N * K): the classes share a D-dialect pool: `pool` if given, else the
      `build_formatbook(x, D)` book (with the default settings: semdialect-32 exactly).
      Each class picks its K dialects from the pool by the same greedy + swap on its
      blocks; classes may overlap. Pool dialects no class picked are dropped (ids
      renumbered in pool order), so every dialect is in a class.

    A class without calibration blocks is solved on all blocks. Deterministic for a given
    calibration set.
    """
    from .two_level import block_class

    say = progress or (lambda s: None)
    n_cls = 1 << class_bits
    d_total = n_cls * class_size if n_dialects is None and pool is None else (
        pool.num_dialects if pool is not None else n_dialects)
    if pool is None and d_total > n_cls * class_size:
        raise ValueError(f"{d_total} dialects do not fit {n_cls} classes of {class_size}")
    if pool is None and d_total < n_cls * class_size:
        pool, _ = build_formatbook(x, d_total, name="pool", block_size=block_size,
                                   frac_bits=frac_bits, grid_log2=grid_log2, emax=emax,
                                   refine_passes=refine_passes, progress=progress)
    if pool is not None:
        grid_log2, emax = pool.grid_log2, pool.emax
        cands = pool.magnitudes
        if class_size > len(cands):
            raise ValueError(f"class size {class_size} exceeds the pool's {len(cands)} dialects")
    else:
        cands = candidate_dialects(grid_log2, emax)
        if n_cls * class_size > len(cands):
            raise ValueError(f"{n_cls} x {class_size} dialects exceed the {len(cands)} "
                             "candidates")
    template = Formatbook("template", grid_log2, emax, (tuple(int(c) for c in cands[-1]),))
    hist, vmax = address_histograms(x, template, block_size, frac_bits, with_vmax=True)
    if len(hist) == 0:
        raise ValueError("no finite calibration blocks")
    err = error_table(cands, template, frac_bits, err_bits=None).astype(np.float32)
    cls = block_class(_ClassRule(class_bits, emax), vmax)
    counts = np.bincount(cls, minlength=n_cls).tolist()
    say(f"{len(cands)} {'pool dialects' if pool is not None else 'candidates'} x "
        f"{len(hist)} calibration blocks, {n_cls} classes of {class_size}; blocks per "
        f"class {counts}")
    used: list[int] = []
    picks, totals = [], []
    for c in range(n_cls):
        rows = hist[cls == c] if counts[c] else hist
        cost = rows.astype(np.float32) @ err.T
        chosen = _greedy_swap(cost, class_size, refine_passes,
                              banned=used if pool is None else ())
        used += chosen
        picks.append(chosen)
        totals.append(float(cost[:, chosen].min(axis=1).sum(dtype=np.float64)))
        say(f"class {c}: {counts[c]} blocks, total error {totals[-1]:.0f}")
    if pool is None:
        dialects = tuple(d for ch in picks for d in _book_order(
            tuple(int(m) for m in cands[i]) for i in ch))
        classes = tuple(tuple(range(c * class_size, (c + 1) * class_size))
                        for c in range(n_cls))
    else:
        keep = sorted({i for ch in picks for i in ch})
        new_id = {old: new for new, old in enumerate(keep)}
        dialects = tuple(pool.dialects[i] for i in keep)
        classes = tuple(tuple(sorted(new_id[i] for i in ch)) for ch in picks)
    book = Formatbook(name, grid_log2, emax, dialects, provenance=provenance or {},
                      class_bits=class_bits, classes=classes)
    report = {"calibration_blocks": int(len(hist)), "candidates": int(len(cands)),
              "mode": "partition" if pool is None else "pool",
              "class_blocks": counts, "class_total_error": totals,
              "total_error": float(sum(t for t, n in zip(totals, counts) if n))}
    return book, report


@dataclass(frozen=True)
class _ClassRule:
    """Just what `block_class` reads, before the book exists."""

    class_bits: int
    emax: int


DEFAULT_BOOK_COMMAND = (
    "semdialect formatbook build --synthetic --dialects 32 --seed 0 "
    "-o golden/formatbooks/semdialect-32.json"
)


def build_default_book(seed: int = 0, progress=None) -> tuple[Formatbook, dict]:
    """The shipped `semdialect-32` book, reproducibly (see DEFAULT_BOOK_COMMAND)."""
    x = default_calibration(seed)
    prov = {
        "command": DEFAULT_BOOK_COMMAND,
        "calibration": "synthetic: gaussian, laplace, student_t3, channel_outlier; "
                       "2048 blocks of 32 each (semdialect.golden.builder.default_calibration)",
        "seed": seed,
        "objective": "sum over blocks of min over book of the LUT-estimated squared error "
                     "(F=4, unsaturated); greedy forward selection + swap refinement",
    }
    return build_formatbook(x, 32, name="semdialect-32", provenance=prov, progress=progress)


#: The shipped class-structured books: name -> (class_bits, class_size, dialects).
CLASS_BOOKS = {"semdialect-32c8x4": (3, 4, 32), "semdialect-32c8x8": (3, 8, 32)}


def class_book_command(name: str) -> str:
    b, k, d = CLASS_BOOKS[name]
    return (f"semdialect formatbook build --synthetic --dialects {d} --class-bits {b} "
            f"--class-size {k} --seed 0 -o golden/formatbooks/{name}.json")


def build_default_class_book(name: str = "semdialect-32c8x8", seed: int = 0, progress=None,
                             pool: Formatbook | None = None) -> tuple[Formatbook, dict]:
    """A shipped class-structured book, reproducibly (`class_book_command(name)`); same
    calibration set as `semdialect-32`. semdialect-32c8x4: 8 disjoint classes of 4
    (partition); semdialect-32c8x8: semdialect-32's 32 dialects, same ids, in 8
    overlapping classes of 8 (pool)."""
    b, k, d = CLASS_BOOKS[name]
    x = default_calibration(seed)
    mode = ("per class over all candidates, disjoint classes" if b and d == k << b else
            "pool = the semdialect-32 build; per class over the pool")
    prov = {
        "command": class_book_command(name),
        "calibration": "synthetic: gaussian, laplace, student_t3, channel_outlier; "
                       "2048 blocks of 32 each (semdialect.golden.builder.default_calibration)",
        "seed": seed,
        "objective": "per block-max class (numerics §15.1): sum over the class's blocks of "
                     "min over the class of the LUT-estimated squared error (F=4, "
                     f"unsaturated); greedy forward selection + swap refinement ({mode})",
    }
    return build_class_formatbook(x, b, k, n_dialects=None if pool else d, pool=pool,
                                  name=name, provenance=prov, progress=progress)


def split_blocks(x: np.ndarray, block_size: int, holdout: float, seed: int):
    """Seeded split of the blocks of x into (calibration, held-out) flat arrays."""
    if not 0 <= holdout < 1:
        raise ValueError(f"holdout must be in [0, 1), got {holdout}")
    xb = np.asarray(x, dtype=np.float32).reshape(-1, block_size)
    perm = np.random.default_rng(seed).permutation(len(xb))
    n_hold = int(round(holdout * len(xb)))
    return xb[perm[n_hold:]].reshape(-1), xb[perm[:n_hold]].reshape(-1)


def holdout_report(book: Formatbook, x_holdout: np.ndarray, block_size: int = 32) -> dict:
    """SQNR (dB) on held-out blocks of the new book (LUT selection, default F/W) next to
    the shipped books and the MX/NV baselines, plus the new book's dialect usage there."""
    from . import quantize
    from .evaluate import sqnr_db

    x = np.asarray(x_holdout, dtype=np.float32).reshape(-1, block_size)
    if x.size == 0:
        return {}
    x = x.reshape(-1, 16 * block_size) if len(x) % 16 == 0 else x
    out = {}
    qt = quantize(x, "semdialect", formatbook=book, block_size=block_size, selector="lut")
    out[f"semdialect ({book.name})"] = round(sqnr_db(x, qt.dequantize()), 4)
    if book.has_classes:
        qt = quantize(x, "semdialect", formatbook=book, block_size=block_size,
                      selector="two-level")
        out[f"semdialect ({book.name}, two-level)"] = round(sqnr_db(x, qt.dequantize()), 4)
    usage = np.bincount(qt.dialects.ravel(), minlength=book.num_dialects)
    for name, fmt, opts in [("semdialect (semdialect-32)", "semdialect",
                             {"formatbook": "semdialect-32", "selector": "lut"}),
                            ("dialectfp4", "dialectfp4", {}), ("mxfp4", "mxfp4", {}),
                            ("nvfp4", "nvfp4", {})]:
        if x.shape[-1] % (16 if fmt == "nvfp4" else block_size) == 0:
            out[name] = round(sqnr_db(x, quantize(x, fmt, **opts).dequantize()), 4)
    return {"heldout_blocks": int(x.size // block_size), "heldout_sqnr_db": out,
            "heldout_usage": usage.tolist()}

"""Fewer adder trees for the two-level selector (numerics §15.4): can the K = 8 per-class
error argmin of semdialect-32c8x8 (8 adder trees of 32 lanes) run on fewer trees at
<= 0.05 dB mean SQNR loss against exhaustive selection, with <= 32 dialects?

    python -m semdialect.golden.tree_budget_study -o docs/data/tree_budget_study.json

Measured like two_level_study (its datasets, its pooled SQNR; reference
`selector="lut"` on semdialect-32 at F = 3, W = 8, B = 32). Two ways to fewer trees:

1. **Product classes.** A class is a base dialect plus n binary choices at pairwise
   non-adjacent level positions (2^n members). The error of an error-LUT address depends
   only on the levels between the two fixed levels around it, and at most one choice
   level lies there, so every entry of a member's error row (saturated or not) is
   base + sum_j b_j delta_j, and so is every block sum: n trees of the delta_j sums and
   n sign tests give the exact class argmin (delta_j < 0 picks the smaller value; ties
   keep the larger, which is the lowest id in the builder's book order; tested in
   tests/golden/test_tree_budget_study.py). The books here are the exact optimum, over
   product classes, of the shipped class builder's calibration objective
   (`builder.default_calibration(0)`, F = 4, unsaturated; dynamic program below):
   8 classes x 8 (3 trees), 8 classes x 4 (2 trees), and the 8 classes in the best 4
   contiguous groups sharing one class of 8 (3 trees, <= 32 dialects), each with choice
   positions 1..6 and with the top level (7) allowed as a choice.
2. **Low rank.** semdialect-32c8x8 unchanged. Per class, the K x 2^A error ROM minus its
   member mean (argmin-invariant) is projected on the r principal directions of the
   calibration blocks' score vectors: r trees of integer ROM values (10-bit signed), 8 x r
   integer (8-bit) multiply-adds per block, then the argmin (ties to the lowest id).
   r = 7 spans the whole centred space, so it loses only that rounding (7 trees of exact
   differences to one member would reproduce the 8-tree argmin exactly).

The shipped semdialect-32c8x8 (8 trees) and semdialect-32c8x4 (4 trees) are listed as
reference points. `trees` counts the adder trees of 32 lanes per block.
"""

from __future__ import annotations

import argparse
import itertools

import numpy as np

from .builder import _book_order, _ClassRule, address_histograms, default_calibration
from .formatbook import Formatbook, load_formatbook
from .lut import build_luts, error_table
from .two_level import block_class
from .two_level_study import _datasets, _pooled_sqnr, say, write_result

__all__ = ["COMMAND", "run_study", "segment_tables", "ClassCosts", "best_product_class",
           "choice_positions", "product_books", "low_rank_tables", "low_rank_dialects"]

COMMAND = "python -m semdialect.golden.tree_budget_study -o docs/data/tree_budget_study.json"
SEED = 0  # calibration seed (builder.default_calibration), as the shipped books
FRAC_BITS, ERR_BITS, BLOCK = 3, 8, 32  # the study point: two_level_study's default
BUDGET_DB, BUDGET_DIALECTS = 0.05, 32
BUILD_FRAC = 4  # the class builder's objective: F = 4 error tables, unsaturated
ROM_BITS, COEF_BITS = 10, 8  # low-rank ROM values and coefficients, signed integers
# the builder's scale rule and grid (0.5, emax 2): magnitudes 0..15, tops 8..15
_TEMPLATE = Formatbook("template", -1, 2, ((0, 1, 2, 3, 4, 5, 6, 15),))
N_MAGS = 16
TOPS = range(8, N_MAGS)  # as builder.candidate_dialects


# ---------------------------------------------------------------- product classes

def segment_tables():
    """(seg (16, 16, A), top (16, A)) int64 at F = 4, unsaturated: seg[p, q] (p < q) is
    the project's error_table row of the 2-magnitude 'dialect' (p, q) on the addresses
    between p and q (0 elsewhere), top[t] that of (t,) on the addresses at or above t.
    A dialect's error row is the sum of its 7 segments and its top term (tested), so a
    block's error is a sum of per-segment terms."""
    n_addr = 2 << (_TEMPLATE.int_bits + BUILD_FRAC)
    low_end = np.arange(n_addr) >> 1  # each address' lower end, in 2^-F units
    lev = np.arange(N_MAGS) << (BUILD_FRAC - _TEMPLATE.grid_frac_bits)  # same units

    def row(mags, inside):
        return np.where(inside, error_table(np.array([mags]), _TEMPLATE, BUILD_FRAC, None)[0], 0)

    seg = np.zeros((N_MAGS, N_MAGS, n_addr), dtype=np.int64)
    for p, q in itertools.combinations(range(N_MAGS), 2):
        seg[p, q] = row([p, q], (low_end >= lev[p]) & (low_end < lev[q]))
    top = np.stack([row([t], low_end >= lev[t]) for t in range(N_MAGS)])
    return seg, top


class ClassCosts:
    """Segment terms of one calibration block set (hist: blocks x F = 4 addresses), and
    the best value pair of each choice level given its fixed neighbours (cached)."""

    def __init__(self, hist: np.ndarray, tables=None):
        seg, top = tables or segment_tables()
        h = hist.astype(np.float64)  # exact: integer sums far below 2^53
        self.seg = (h @ seg.reshape(-1, seg.shape[-1]).T).reshape(len(h), N_MAGS, N_MAGS)
        self.top = h @ top.T
        self.seg_sum, self.top_sum = self.seg.sum(0), self.top.sum(0)
        self._pairs: dict = {}

    def dialect_cost(self, d) -> np.ndarray:
        """Per-block error of a full dialect (8 magnitudes) from the segment terms."""
        return sum(self.seg[:, a, b] for a, b in zip(d, d[1:])) + self.top[:, d[-1]]

    def pair(self, p: int, q: int | None):
        """(cost, (lo, hi)): the two values of a choice level between fixed magnitudes p
        and q (q None: the choice is the top) minimizing the sum over blocks of the smaller
        of the two members' errors from p to q; (inf, None) if fewer than two fit."""
        if (p, q) not in self._pairs:
            vals = list(range(p + 1, q)) if q is not None else [t for t in TOPS if t > p]
            if len(vals) < 2:
                self._pairs[p, q] = (np.inf, None)
            else:
                above = self.seg[:, vals, q] if q is not None else self.top[:, vals]
                g = self.seg[:, p, vals] + above  # (blocks, values)
                tot = np.minimum(g[:, :, None], g[:, None, :]).sum(0)
                tot[np.tril_indices(len(vals))] = np.inf  # lo < hi
                i, j = np.unravel_index(np.argmin(tot), tot.shape)
                self._pairs[p, q] = (float(tot[i, j]), (vals[i], vals[j]))
        return self._pairs[p, q]


def choice_positions(n: int, top_choice: bool):
    """The n-subsets of level positions 1..6 (1..7 with top_choice), pairwise
    non-adjacent: what makes the per-entry errors additive over the choices."""
    hi = 7 if top_choice else 6
    return [c for c in itertools.combinations(range(1, hi + 1), n)
            if all(b - a >= 2 for a, b in zip(c, c[1:]))]


def _best_at(costs: ClassCosts, choices):
    """Optimal class for one set of choice positions: a chain DP over the magnitude of
    each fixed position (0 at position 0, a top in TOPS at 7); between two fixed
    neighbours of a choice the cost is ClassCosts.pair. Returns (cost, members)."""
    fixed = [i for i in range(8) if i not in choices]
    paths = {0: (0.0, (0,))}  # magnitude at the last fixed position -> (cost, magnitudes)
    for a, b in zip(fixed, fixed[1:]):
        step = {}
        for q in (TOPS if b == 7 else range(1, N_MAGS)):
            opts = [(c + (costs.seg_sum[p, q] if b == a + 1 else costs.pair(p, q)[0]), path)
                    for p, (c, path) in paths.items() if p < q]
            if opts:
                c, path = min(opts, key=lambda o: o[0])  # ties: the smallest p
                if np.isfinite(c):
                    step[q] = (c, (*path, q))
        paths = step
    last_fixed = fixed[-1]
    ends = [(c + (costs.top_sum[p] if last_fixed == 7 else costs.pair(p, None)[0]), path)
            for p, (c, path) in paths.items()]
    total, path = min(ends, key=lambda o: o[0])
    mags = dict(zip(fixed, path))
    pairs = [costs.pair(mags[i - 1], mags.get(i + 1))[1] for i in choices]
    members = []
    for bits in itertools.product((0, 1), repeat=len(choices)):
        d = dict(mags)
        d.update({i: pr[b] for i, pr, b in zip(choices, pairs, bits)})
        members.append(tuple(d[i] for i in range(8)))
    return total, members


def best_product_class(costs: ClassCosts, n: int, top_choice: bool):
    """(cost, members, choice positions): the product class of n choices minimizing the
    calibration objective, exactly (every choice set, every magnitude)."""
    found = [(*_best_at(costs, cs), cs) for cs in choice_positions(n, top_choice)]
    return min(found, key=lambda f: f[0])


def _book(name, class_members, provenance) -> Formatbook:
    """A class book from each class's member dialects (shared dialects kept once)."""
    dialects = tuple(_book_order({d for m in class_members for d in m}))
    ids = {d: i for i, d in enumerate(dialects)}
    classes = tuple(tuple(sorted(ids[d] for d in m)) for m in class_members)
    return Formatbook(name, _TEMPLATE.grid_log2, _TEMPLATE.emax, dialects,
                      provenance=provenance, class_bits=3, classes=classes)


def _calibration_name(seed: int, blocks_per_dataset: int) -> str:
    return f"builder.default_calibration({seed}, blocks_per_dataset={blocks_per_dataset})"


def product_books(seed: int = SEED, blocks_per_dataset: int = 2048, progress=None):
    """[(label, book, trees, calibration objective)] of the six product variants."""
    say = progress or (lambda s: None)
    x = default_calibration(seed, blocks_per_dataset)
    hist, vmax = address_histograms(x, _TEMPLATE, BLOCK, BUILD_FRAC, with_vmax=True)
    cls = block_class(_ClassRule(3, _TEMPLATE.emax), vmax)
    tables = segment_tables()
    group_costs, solved, specs = {}, {}, []

    def solve(first, last, n, top):  # classes first..last share one product class
        if (first, last, n, top) not in solved:
            if (first, last) not in group_costs:
                rows = (cls >= first) & (cls <= last)
                rows = rows if rows.any() else slice(None)  # no blocks: all (as the builder)
                group_costs[first, last] = ClassCosts(hist[rows], tables)
            solved[first, last, n, top] = best_product_class(group_costs[first, last], n, top)
        return solved[first, last, n, top]

    for top in (False, True):
        sfx, levels = ("-top", "1-7") if top else ("", "1-6")
        for n in (3, 2):  # one product class per block class: 8 x 8, 8 x 4
            specs.append((f"product-c8x{1 << n}{sfx}", f"product c8x{1 << n}, choices at "
                        f"levels {levels}", n, [(c, c) for c in range(8)], top))
        cuts = itertools.combinations(range(1, 8), 3)  # 4 contiguous groups sharing a class
        bounds = [[0, *c, 8] for c in cuts]
        groups = min(([(b[i], b[i + 1] - 1) for i in range(4)] for b in bounds),
                     key=lambda g: sum(solve(a, z, 3, top)[0] for a, z in g))
        specs.append((f"product-g4x8{sfx}", f"product g4x8 (best 4 groups), choices at levels "
                    f"{levels}", 3, groups, top))
    books = []
    for name, label, n, groups, top in specs:
        members, total = [], 0.0
        for a, z in groups:
            cost, m, cs = solve(a, z, n, top)
            members += [m] * (z - a + 1)
            total += cost
            say(f"{label}: classes {a}-{z} choices {cs} members {m[0]} .. {m[-1]}")
        prov = {"command": COMMAND, "calibration": _calibration_name(seed, blocks_per_dataset),
                "objective": "per class: sum over its calibration blocks of min over the "
                             "members of the LUT-estimated squared error (F=4, unsaturated); "
                             "exact optimum over product classes",
                "structure": f"{label}; class groups {groups}"}
        books.append((label, _book(name, members, prov), n, total))
    return books


# ---------------------------------------------------------------- low rank

def low_rank_tables(book: Formatbook, ranks, seed: int = SEED, blocks_per_dataset: int = 2048):
    """{r: [(V (r, 2^A), Q (K, r)) per class]} integer ROM values and coefficients: the
    r principal directions Q of the class's centred calibration scores, V = Q^T ROM."""
    luts = build_luts(book, FRAC_BITS, ERR_BITS)
    x = default_calibration(seed, blocks_per_dataset)
    hist, vmax = address_histograms(x, book, BLOCK, FRAC_BITS, with_vmax=True)
    cls = block_class(book, vmax)
    out = {r: [] for r in ranks}
    for c, ids in enumerate(book.classes):
        rom = luts.err[list(ids)].astype(np.float64)
        rom -= rom.mean(axis=0)  # the same row off every member: argmin unchanged
        scores = hist[cls == c] @ rom.T  # (blocks, K)
        _, vecs = np.linalg.eigh(scores.T @ scores)  # ascending eigenvalues
        for r in ranks:
            q = vecs[:, ::-1][:, :r]
            v = q.T @ rom
            out[r].append((np.rint(v * (2 ** (ROM_BITS - 1) - 1) / np.abs(v).max()),
                           np.rint(q * (2 ** (COEF_BITS - 1) - 1) / np.abs(q).max())))
    return out


def low_rank_dialects(book: Formatbook, tables, blocks: np.ndarray) -> np.ndarray:
    """Dialect id of each finite block (nb, 32): argmin of Q (V . histogram) in its
    class (exact integer sums in float64; ties to the lowest id)."""
    hist, vmax = address_histograms(blocks, book, BLOCK, FRAC_BITS, with_vmax=True)
    if len(hist) != len(blocks):
        raise ValueError("low-rank selection is defined here for finite blocks only")
    cls = block_class(book, vmax)
    out = np.zeros(len(blocks), dtype=np.int64)
    for c, (v, q) in enumerate(tables):
        m = cls == c
        out[m] = np.array(book.classes[c])[np.argmin(hist[m] @ v.T @ q.T, axis=1)]
    return out


# ---------------------------------------------------------------- the study

def run_study(quick: bool = False, progress=None, data=None, seed: int = SEED) -> dict:
    """Every point. quick: a smaller calibration set and fewer ranks (a smoke run; its
    books are not the study's); data: [(name, [arrays])] instead of two_level_study's."""
    say = progress or (lambda s: None)
    data = _datasets(quick, say) if data is None else data
    blocks_per_dataset = 256 if quick else 2048
    at = {"frac_bits": FRAC_BITS, "err_bits": ERR_BITS}
    refs = {ds: _pooled_sqnr(xs, BLOCK, formatbook="semdialect-32", selector="lut", **at)
            for ds, xs in data}
    rows = []

    def add(point, kind, trees, bk, sqnr, **extra):
        losses = {ds: round(refs[ds] - sqnr(xs), 4) for ds, xs in data}
        mean = round(float(np.mean(list(losses.values()))), 4)
        rows.append({"point": point, "kind": kind, "trees": trees,
                     "dialects": bk.num_dialects, "classes": bk.num_classes,
                     "K": bk.class_size, "bits_per_element": bk.bits_per_element(BLOCK),
                     "loss_db": losses, "mean_loss_db": mean,
                     "max_loss_db": round(float(max(losses.values())), 4),
                     "within_budget": bool(mean <= BUDGET_DB
                                           and bk.num_dialects <= BUDGET_DIALECTS),
                     "book_hash": bk.content_hash, **extra})
        say(f"{point:52s} trees {trees} D={bk.num_dialects:2d} mean loss {mean:+.4f} dB")

    def two_level(book):
        return lambda xs: _pooled_sqnr(xs, BLOCK, formatbook=book, selector="two-level", **at)

    for name in ("semdialect-32c8x8", "semdialect-32c8x4"):
        book = load_formatbook(name)
        add(f"shipped {name}", "shipped", book.class_size, book, two_level(book))
    for label, book, trees, objective in product_books(seed, blocks_per_dataset, say):
        add(label, "product", trees, book, two_level(book),
            calibration_objective=objective, book=book.to_json())

    book = load_formatbook("semdialect-32c8x8")
    ranks = (1, 3, 7) if quick else tuple(range(1, 8))
    tables = low_rank_tables(book, ranks, seed, blocks_per_dataset)

    def low_rank(r):
        def sqnr(xs):  # pooled SQNR over all blocks of the dataset = over its tensors
            blocks = np.concatenate([x.astype(np.float32).reshape(-1, BLOCK) for x in xs
                                     if x.shape[-1] % BLOCK == 0])
            mask = np.zeros((len(blocks), book.num_dialects), dtype=bool)
            mask[np.arange(len(blocks)), low_rank_dialects(book, tables[r], blocks)] = True
            # the chosen dialect forced through the exhaustive path: the project's codes
            return _pooled_sqnr([blocks], BLOCK, formatbook=book, selector="lut",
                                allowed=mask, **at)
        return sqnr

    for r in ranks:
        add(f"low rank r={r} on semdialect-32c8x8", "low-rank", r, book, low_rank(r),
            rank=r, rom_bits=ROM_BITS, coef_bits=COEF_BITS, multiply_adds=8 * r)
    return {
        "command": COMMAND + (" --quick" if quick else ""),
        "question": "the two-level class argmin on fewer than K = 8 adder trees at <= "
                    f"{BUDGET_DB} dB mean loss with <= {BUDGET_DIALECTS} dialects",
        "reference": f"selector='lut' on semdialect-32, F={FRAC_BITS}, W={ERR_BITS}, "
                     f"B={BLOCK}",
        "calibration": _calibration_name(seed, blocks_per_dataset),
        "trees": "adder trees of 32 lanes per block: n choices (product), r (low rank), "
                 "K (shipped, the exhaustive class argmin)",
        "datasets": [d for d, _ in data],
        "reference_sqnr_db": {d: round(v, 4) for d, v in refs.items()},
        "points": rows,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--quick", action="store_true", help="small data, smaller calibration")
    args = p.parse_args(argv)
    write_result(args.output, run_study(args.quick, progress=say))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

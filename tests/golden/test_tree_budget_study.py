"""The tree-budget study (golden/tree_budget_study.py): the product-class identity that
lets n adder trees replace the 2^n-member class argmin, its decision rule against the
project's two-level selector, the exactness of the study's product-class builder, and a
small end-to-end run.

Expected values come a second way: error rows and block sums straight from the
project's LUTs (`build_two_level`, `LutSet.err`), and product classes enumerated by brute
force over the builder's candidate dialects with `error_table`.
"""

from __future__ import annotations

import functools
import itertools
import json

import numpy as np
import pytest

from semdialect import golden as G
from semdialect.golden import tree_budget_study as S
from semdialect.golden.builder import (
    _book_order,
    _ClassRule,
    address_histograms,
    candidate_dialects,
    default_calibration,
)
from semdialect.golden.datasets import synthetic
from semdialect.golden.dialects import normalize_blocks
from semdialect.golden.formatbook import Formatbook
from semdialect.golden.lut import error_table
from semdialect.golden.two_level import block_class


def random_product_class(rng, positions):
    """(members {bits: dialect}, book): a random base dialect with an alternative value
    at each choice position, such that all 2^n members are valid dialects."""
    while True:
        top = int(rng.integers(8, 16))
        base = [0, *np.sort(rng.choice(np.arange(1, top), 6, replace=False)).tolist(), top]
        alt = {}
        for i in positions:
            hi = base[i + 1] if i < 7 else 16
            opts = [v for v in range(base[i - 1] + 1, hi) if v != base[i]]
            if not opts:
                break
            alt[i] = int(rng.choice(opts))
        else:
            members = {}
            for bits in itertools.product((0, 1), repeat=len(positions)):
                d = list(base)
                for b, i in zip(bits, positions):
                    d[i] = alt[i] if b else d[i]
                members[bits] = tuple(d)
            if all(np.all(np.diff(d) > 0) for d in members.values()):
                book = Formatbook("product", -1, 2, tuple(_book_order(members.values())),
                                  class_bits=0, classes=(tuple(range(len(members))),))
                return members, book


def additive(members, book) -> bool:
    """Every entry of the two-level selector's error table (F = 3, W = 8) of every
    member equals base + sum_j b_j delta_j."""
    err = G.build_two_level(book, 3, 8).class_err[0]  # rows by ascending id
    row = {bits: err[book.dialects.index(d)] for bits, d in members.items()}
    n = len(next(iter(members)))
    zero = (0,) * n
    unit = [tuple(int(k == j) for k in range(n)) for j in range(n)]
    return all(np.array_equal(row[bits], row[zero] + sum(b * (row[unit[j]] - row[zero])
                                                        for j, b in enumerate(bits)))
               for bits in members)


def test_error_rows_additive_only_for_non_adjacent_choices():
    rng = np.random.default_rng(0)
    sets = S.choice_positions(3, top_choice=True)  # includes top (7) as a choice
    for _ in range(30):
        members, book = random_product_class(rng, sets[rng.integers(len(sets))])
        assert additive(members, book)
    # the identity is not vacuous: with two adjacent choice levels it breaks
    broken = [not additive(*random_product_class(rng, (i, i + 1))) for i in range(1, 7)]
    assert any(broken), broken


def test_two_level_argmin_is_the_per_choice_rule():
    """quantize(selector='two-level') on a product book picks, per choice j, the smaller
    value iff Delta_j = SSE(smaller) - SSE(larger) < 0 (ties keep the larger)."""
    rng = np.random.default_rng(1)
    sets = S.choice_positions(3, top_choice=True)
    ties = 0
    for t in range(8):
        positions = sets[t % len(sets)]
        members, book = random_product_class(rng, positions)
        nb = 512
        x = np.concatenate([
            rng.standard_normal((nb // 4, 32)), rng.laplace(size=(nb // 4, 32)),
            rng.integers(-31, 32, (nb // 4, 32)) / 4.0,  # grid points and RNE midpoints
            rng.integers(-127, 128, (nb // 4, 32)) / 16.0]).astype(np.float32)
        x[nb // 2:, 0] = 7.75  # block max 7.75: scale 2^0, so v = |x| exactly
        got = G.quantize(x, "semdialect", formatbook=book, selector="two-level").dialects
        got = got.ravel()
        luts = G.build_luts(book, 3, 8)
        _, v, _ = normalize_blocks(book, x)
        sse = luts.err[:, luts.err_address(v)].sum(axis=-1)  # (dialects, blocks)
        n = len(positions)
        base = members[(0,) * n]
        picks = []
        for j in range(n):
            lo_hi = sorted([base, members[tuple(int(k == j) for k in range(n))]],
                           key=lambda d: d[positions[j]])
            delta = sse[book.dialects.index(lo_hi[0])] - sse[book.dialects.index(lo_hi[1])]
            ties += int(np.sum(delta == 0))
            smaller_is_alt = lo_hi[0] != base
            picks.append((delta < 0) == smaller_is_alt)  # bit j: the alternative value
        want = [book.dialects.index(members[tuple(int(p[b]) for p in picks)])
                for b in range(nb)]
        np.testing.assert_array_equal(got, want)
    assert ties > 0  # the tie rule was exercised


@functools.cache
def product_classes(n, top_choice) -> dict:
    """{choice positions: (classes, 2^n) candidate indices}: every product class of n
    choices, by brute force over the builder's candidate dialects."""
    cands = candidate_dialects()
    index = {tuple(d): i for i, d in enumerate(cands.tolist())}
    out = {pos: [] for pos in S.choice_positions(n, top_choice)}
    for d in cands.tolist():  # d: the member with every choice at its smaller value
        for pos, classes in out.items():
            ranges = [range(d[i] + 1, d[i + 1] if i < 7 else 16) for i in pos]
            for alts in itertools.product(*ranges):
                ids = []
                for bits in itertools.product((0, 1), repeat=n):
                    m = list(d)
                    for b, i, a in zip(bits, pos, alts):
                        m[i] = a if b else m[i]
                    ids.append(index[tuple(m)])
                classes.append(ids)
    return {pos: np.array(c) for pos, c in out.items()}


@pytest.mark.parametrize("top_choice", [False, True])
def test_product_builder_is_optimal(top_choice):
    """The DP's class = the brute-force optimum of sum over blocks of min over members
    (error_table at F = 4, unsaturated), for every choice set, on small block sets of a
    low and a high class."""
    x = default_calibration(3, blocks_per_dataset=64)
    hist, vmax = address_histograms(x, S._TEMPLATE, 32, 4, with_vmax=True)
    cls = block_class(_ClassRule(3, 2), vmax)
    cands = candidate_dialects()
    err = error_table(cands, S._TEMPLATE, 4, None)
    for c in (0, 7):
        h = hist[cls == c][:24]
        costs = S.ClassCosts(h)
        cost = h.astype(np.float64) @ err.T  # (blocks, candidates)
        # the segment decomposition is the project's error table
        for i in np.random.default_rng(c).choice(len(cands), 100, replace=False):
            np.testing.assert_array_equal(costs.dialect_cost(tuple(cands[i])), cost[:, i])
        for n in (1, 2, 3):
            best = np.inf
            for pos, classes in product_classes(n, top_choice).items():
                want = min(cost[:, part].min(axis=-1).sum(axis=0).min()
                           for part in np.array_split(classes, 1 + len(classes) // 8192))
                assert S._best_at(costs, pos)[0] == want, (c, pos)
                best = min(best, want)
            total, members, _ = S.best_product_class(costs, n, top_choice)
            assert total == best
            ids = [int(np.flatnonzero((cands == m).all(axis=1))[0]) for m in members]
            assert cost[:, ids].min(axis=1).sum() == total  # its members achieve it


def test_quick_run_end_to_end():
    x = synthetic("gaussian", (16, 1024), seed=0)
    res = S.run_study(quick=True, data=[("gaussian", [x])])
    json.dumps(res)
    pts = {p["point"]: p for p in res["points"]}
    assert [p["kind"] for p in res["points"]].count("product") == 6
    assert [p["trees"] for p in res["points"] if p["kind"] == "low-rank"] == [1, 3, 7]
    ship = pts["shipped semdialect-32c8x8"]
    direct = res["reference_sqnr_db"]["gaussian"] - S._pooled_sqnr(
        [x], 32, formatbook="semdialect-32c8x8", selector="two-level")
    assert ship["mean_loss_db"] == pytest.approx(direct, abs=1e-4)
    for p in res["points"]:
        if p["kind"] != "product":
            continue
        book = Formatbook.from_json(p["book"])
        assert p["trees"] in (2, 3) and book.class_size == 1 << p["trees"]
        if "g4x8" in p["point"]:
            assert book.num_dialects <= 32
        for ids in book.classes:  # each class is a product of non-adjacent binary choices
            mags = book.magnitudes[list(ids)]
            pos = np.flatnonzero((mags != mags[0]).any(axis=0))
            assert len(pos) == p["trees"] and np.all(np.diff(pos) >= 2)
            assert all(len(set(mags[:, i])) == 2 for i in pos)

"""Two-level selection (numerics §15): class rule, class structure in formatbook files,
mask ∩ class with the effective-class fallback, ties, NaN/Inf and zero blocks, and the
shipped class books.

The expected selection is computed a second way: an explicit Python loop over the
class members with sums of `LutSet.err` entries (no ROM slicing, no vectorized
effective-class search), or the exhaustive §8 argmin restricted to the allowed class.
"""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from golden_testlib import FLOAT_DTYPES, to_dtype
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from semdialect import golden as G
from semdialect.golden.dialects import lut_block_errors, masked_argmin, normalize_blocks
from semdialect.golden.formatbook import BUILTIN_BOOKS, Formatbook, FormatbookError
from semdialect.golden.two_level import block_class, build_two_level, effective_class

PROPS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CLASS_BOOKS = ("semdialect-32c8x4", "semdialect-32c8x8")

# a small class-structured book: 6 dialects, 2 classes of 4 (overlapping in ids 2 and 3)
SMALL = Formatbook(
    "small", -1, 2,
    ((0, 1, 2, 3, 4, 5, 6, 7), (0, 1, 2, 3, 4, 6, 8, 10), (0, 2, 4, 6, 8, 10, 12, 15),
     (0, 1, 2, 4, 6, 8, 11, 14), (0, 1, 3, 5, 7, 9, 11, 13), (0, 1, 2, 3, 5, 7, 9, 12)),
    class_bits=1, classes=((0, 1, 2, 3), (2, 3, 4, 5)),
)


def expected_dialects(book: Formatbook, x: np.ndarray, k: int, mask=None) -> np.ndarray:
    """§15 written out block by block: class from the max, effective class by walking up
    then down, argmin over allowed members by explicit sums of ERR entries."""
    luts = G.build_luts(book)
    xb = np.asarray(x).astype(np.float32).reshape(-1, k)
    nd = book.num_dialects
    out = []
    for i, row in enumerate(xb):
        if not np.isfinite(row).all():
            row = np.zeros_like(row)  # NaN/Inf blocks select like all-zero ones
        _, v, _ = normalize_blocks(book, row[None])
        vmax = float(v.max())
        c = 0
        for cand in range(book.num_classes):  # largest class whose lower bound <= vmax
            if vmax >= 2.0**book.emax * (1 + cand / book.num_classes):
                c = cand
        allowed = np.ones(nd, bool) if mask is None else np.broadcast_to(mask, (len(xb), nd))[i]
        order = list(range(c, book.num_classes)) + list(range(c - 1, -1, -1))
        ceff = next(cc for cc in order if any(allowed[d] for d in book.classes[cc]))
        addr = luts.err_address(v[0])
        best = None
        for d in book.classes[ceff]:  # ascending ids: strict < keeps the lowest on ties
            if allowed[d]:
                s = int(sum(int(luts.err[d, a]) for a in addr))
                if best is None or s < best[0]:
                    best = (s, d)
        out.append(best[1])
    return np.array(out)


# ------------------------------------------------------------------- class rule


def test_block_class_rule_at_every_boundary():
    """class = b bits of vmax below the leading bit, truncated; vmax < 4 -> class 0."""
    for b in range(0, 5):
        rule = Formatbook("r", -1, 2, ((0, 1, 2, 3, 4, 5, 6, 7),), class_bits=b,
                          classes=((0,),) * (1 << b))
        step = 4.0 / (1 << b)
        for c in range(1 << b):
            lo = 4.0 + c * step
            below = np.nextafter(lo, 0)
            got = block_class(rule, np.array([lo, np.nextafter(lo + step, 0), below]))
            assert got[0] == c and got[1] == c
            assert got[2] == max(c - 1, 0)
        assert (block_class(rule, np.array([0.0, 1e-30, 3.999])) == 0).all()
        assert block_class(rule, np.array([np.nextafter(8.0, 0)]))[0] == (1 << b) - 1


def test_effective_class_walks_up_then_down():
    t = build_two_level("semdialect-32c8x4")
    mask = np.zeros(32, bool)
    mask[[5, 22]] = True  # classes 1 and 5 only
    cls = np.arange(8)
    np.testing.assert_array_equal(effective_class(t, cls, mask), [1, 1, 5, 5, 5, 5, 5, 5])
    assert (effective_class(t, cls, None) == cls).all()


# ------------------------------------------------------------------- file format


def _write(tmp_path, classes):
    obj = json.loads(BUILTIN_BOOKS["semdialect-32"].read_text())
    obj["classes"] = classes
    p = tmp_path / "book.json"
    p.write_text(json.dumps(obj))
    return p


@pytest.mark.parametrize("classes, msg", [
    ([[0, 1]], "must be an object"),
    ({"rule": "nearest", "class_bits": 0, "members": [list(range(32))]}, "rule must be"),
    ({"rule": "block-max", "class_bits": "3", "members": []}, "class_bits must be an integer"),
    ({"rule": "block-max", "class_bits": 7, "members": []}, "class_bits must be in 0..6"),
    ({"rule": "block-max", "class_bits": 1, "members": [list(range(32))]}, "needs 2 classes"),
    ({"rule": "block-max", "class_bits": 1, "members": [list(range(16)), list(range(16, 31))]},
     "class 1 has 15 dialects"),
    ({"rule": "block-max", "class_bits": 0, "members": [[]]}, "class 0 is empty"),
    ({"rule": "block-max", "class_bits": 0, "members": [list(range(31)) + [32]]},
     "outside 0..31"),
    ({"rule": "block-max", "class_bits": 0, "members": [[1, 0] + list(range(2, 32))]},
     "must strictly increase"),
    ({"rule": "block-max", "class_bits": 1, "members": [list(range(16)), list(range(16))]},
     r"dialect\(s\) \[16,"),
    ({"rule": "block-max", "class_bits": 0, "members": [[0, True]]}, "lists of dialect ids"),
    ({"rule": "block-max", "class_bits": 0, "members": [list(range(32))], "k": 4},
     "unknown key"),
])
def test_bad_class_structure_names_file(tmp_path, classes, msg):
    p = _write(tmp_path, classes)
    with pytest.raises(FormatbookError, match=msg) as e:
        G.load_formatbook(p)
    assert str(p) in str(e.value)


def test_class_books_round_trip_and_hash():
    for name in CLASS_BOOKS:
        book = G.load_formatbook(name)
        assert book.num_classes == 8 and book.num_dialects == 32
        again = Formatbook.from_json(json.loads(book.dumps()))
        assert again == book and again.content_hash == book.content_hash
        assert book.dumps() == BUILTIN_BOOKS[name].read_text()
    # classes are numerics: part of the hash; books without classes keep their hash
    plain = G.load_formatbook("semdialect-32")
    assert plain.content_hash == (
        "7849d5978950fc4d56d0dbbba0e6a227e12992f8e3e0bbfc7ff75c8a74745f92")
    c8x8 = G.load_formatbook("semdialect-32c8x8")
    assert c8x8.dialects == plain.dialects and c8x8.content_hash != plain.content_hash


def test_two_level_needs_a_class_book():
    x = np.ones((1, 32), np.float32)
    with pytest.raises(FormatbookError, match="declares no classes"):
        G.quantize(x, "semdialect", formatbook="semdialect-32", selector="two-level")


def test_tables_are_slices_of_build_luts():
    for name in CLASS_BOOKS:
        t = build_two_level(name, 3, 8)
        luts = G.build_luts(name, 3, 8)
        assert t.luts is luts
        n_addr = luts.err.shape[1]
        rows = t.class_err_rows
        assert rows.shape == (8 * n_addr, t.k)
        for c, j, a in itertools.product(range(8), range(t.k), (0, 1, n_addr - 1)):
            assert rows[c * n_addr + a, j] == luts.err[t.class_ids[c, j], a]
        assert (np.diff(t.class_ids, axis=1) > 0).all()


# ------------------------------------------------------------------- selection


def test_exhaustive_small_book_every_mask():
    """Blocks of 2 over a value grid (every pair), every non-empty mask of SMALL."""
    vals = np.array([0, 0.3, 1.0, 1.75, 2.5, 3.2, 4.0, 4.4, 5.0, 6.1, 7.0, 7.9], np.float32)
    x = np.array(list(itertools.product(vals, vals)), np.float32).reshape(1, -1)
    for bits in range(1, 1 << SMALL.num_dialects):
        mask = np.array([(bits >> d) & 1 for d in range(SMALL.num_dialects)], bool)
        q = G.quantize(x, "semdialect", formatbook=SMALL, selector="two-level",
                       block_size=2, allowed=mask)
        np.testing.assert_array_equal(q.dialects.ravel(), expected_dialects(SMALL, x, 2, mask))


def _restricted_lut_argmin(book, x, k, mask):
    """The §8 exhaustive argmin over (effective class ∩ mask)."""
    t = build_two_level(book)
    xb = np.asarray(x).astype(np.float32).reshape(-1, k)
    _, v, _ = normalize_blocks(t.book, xb)
    nd = t.book.num_dialects
    full = np.ones(nd, bool) if mask is None else mask
    ceff = effective_class(t, block_class(t.book, v.max(-1)), mask)
    allow = np.zeros((len(xb), nd), bool)
    for i, c in enumerate(ceff):
        allow[i, t.class_ids[c]] = True
    allow &= np.broadcast_to(full, allow.shape)
    return masked_argmin(lut_block_errors(t.luts, v), allow)


@st.composite
def blocks_and_mask(draw):
    dtype = np.dtype(draw(st.sampled_from(FLOAT_DTYPES)))
    k = draw(st.sampled_from([2, 8, 32]))
    nb = draw(st.integers(1, 6))
    mant = draw(hnp.arrays(np.float64, nb * k, elements=st.floats(-2, 2, allow_nan=False)))
    ex = draw(hnp.arrays(np.int64, nb * k, elements=st.integers(-12, 12)))
    x = np.ldexp(mant, ex)
    special = draw(hnp.arrays(np.int64, nb * k, elements=st.integers(0, 60)))
    x[special == 0] = np.nan
    x[special == 1] = np.inf
    x[special == 2] = 0.0
    if draw(st.booleans()):  # some all-zero blocks
        x.reshape(nb, k)[draw(st.integers(0, nb - 1))] = 0.0
    with np.errstate(over="ignore"):
        x = to_dtype(x, dtype).reshape(1, nb * k)
    kind = draw(st.sampled_from(["none", "ids", "rows"]))
    if kind == "none":
        mask = None
    elif kind == "ids":
        ids = draw(st.lists(st.integers(0, 31), min_size=1, max_size=6, unique=True))
        mask = np.zeros(32, bool)
        mask[ids] = True
    else:
        mask = draw(hnp.arrays(bool, (nb, 32), elements=st.booleans()))
        mask[np.arange(nb), draw(hnp.arrays(np.int64, nb, elements=st.integers(0, 31)))] = True
    return x, k, mask


@PROPS
@given(blocks_and_mask(), st.sampled_from(CLASS_BOOKS))
def test_two_level_is_lut_argmin_over_class_and_mask(xkm, name):
    x, k, mask = xkm
    q = G.quantize(x, "semdialect", formatbook=name, selector="two-level", block_size=k,
                   allowed=mask)
    d = q.dialects.ravel().astype(np.int64)
    np.testing.assert_array_equal(d, _restricted_lut_argmin(name, x, k, mask))
    np.testing.assert_array_equal(d, expected_dialects(G.load_formatbook(name), x, k, mask))
    # codes/scales: §8 with the chosen dialect, the same as the exhaustive engine's output
    # stage; checked against the exact per-dialect RNE of the golden model
    lut = G.quantize(x, "semdialect", formatbook=name, selector="lut", block_size=k,
                     allowed=mask)
    np.testing.assert_array_equal(q.scales, lut.scales)
    same = q.dialects == lut.dialects
    cb = q.block_view(q.codes)
    np.testing.assert_array_equal(cb[same], lut.block_view(lut.codes)[same])
    bad = q.scales == 0xFF
    assert (cb[bad] == 0).all()


def test_ties_zero_and_nan_blocks():
    """All sums equal (all-zero and NaN blocks): the lowest allowed id of c*(class 0)."""
    x = np.zeros((1, 4 * 32), np.float32)
    x[0, 40] = np.nan
    x[0, 70] = -np.inf
    for name in CLASS_BOOKS:
        t = build_two_level(name)
        q = G.quantize(x, "semdialect", formatbook=name, selector="two-level")
        assert (q.dialects == t.class_ids[0, 0]).all()
        assert list(q.scales[0]) == [0, 0xFF, 0xFF, 0]
        assert (q.codes == 0).all()
    # class 0 masked out entirely: the next class up that has an allowed dialect
    q = G.quantize(x, "semdialect", formatbook="semdialect-32c8x4", selector="two-level",
                   allowed=[13, 30])
    assert (q.dialects == 13).all()


def test_mask_fallback_goes_down_when_nothing_above():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 256)).astype(np.float32)
    x[:, ::32] = 7.9 * np.abs(x).max()  # every block max near 8: class 7
    q = G.quantize(x, "semdialect", formatbook="semdialect-32c8x4", selector="two-level",
                   allowed=[1, 2, 9])
    assert set(np.unique(q.dialects)) <= {9}  # class 2 is the highest allowed class


def test_shipped_class_books_are_reproduced():
    from semdialect.golden.builder import build_default_class_book

    book, report = build_default_class_book("semdialect-32c8x4")
    assert book.dumps() == BUILTIN_BOOKS["semdialect-32c8x4"].read_text()
    assert report["mode"] == "partition" and sum(report["class_blocks"]) == 4 * 2048
    # the pool is semdialect-32, whose own rebuild is test_lut_proofs'
    book, report = build_default_class_book(
        "semdialect-32c8x8", pool=G.load_formatbook("semdialect-32"))
    assert book.dumps() == BUILTIN_BOOKS["semdialect-32c8x8"].read_text()
    assert report["mode"] == "pool"


def test_builder_shapes_small_settings():
    """8 x 2, 8 x 4, 8 x 8 (disjoint) and a pool book, on a small calibration set."""
    from semdialect.golden.builder import build_class_formatbook, default_calibration

    x = default_calibration(1, blocks_per_dataset=128)
    for k in (2, 4, 8):
        book, rep = build_class_formatbook(x, 3, k, refine_passes=1)
        assert book.num_dialects == 8 * k and book.class_size == k
        assert [list(c) for c in book.classes] == [list(range(c * k, c * k + k))
                                                  for c in range(8)]
        if k == 2:  # deterministic
            again, _ = build_class_formatbook(x, 3, k, refine_passes=1)
            assert again.dumps() == book.dumps()
    pool = G.load_formatbook("semdialect-32")
    book, rep = build_class_formatbook(x, 2, 8, pool=pool, refine_passes=1)
    assert book.class_size == 8 and set(book.dialects) <= set(pool.dialects)
    q = G.quantize(x.reshape(-1, 1024), "semdialect", formatbook=book, selector="two-level")
    assert np.isfinite(q.dequantize()).all()


def test_cli_builds_class_books_from_vectors(tmp_path, capsys):
    """`semdialect formatbook build --class-bits`: partition (8 x 2) and pool (2 classes of
    6 from an 8-dialect pool); a bad shape is one error line with exit code 2."""
    from semdialect.cli import main
    from semdialect.golden.builder import default_calibration

    np.save(tmp_path / "cal.npy", default_calibration(2, blocks_per_dataset=64))
    rc = main(["formatbook", "build", "--vectors", str(tmp_path / "cal.npy"), "--dialects",
               "16", "--class-bits", "3", "-o", str(tmp_path / "c8x2.json")])
    assert rc == 0
    book = G.load_formatbook(tmp_path / "c8x2.json")
    assert (book.num_classes, book.class_size, book.num_dialects) == (8, 2, 16)
    rc = main(["formatbook", "build", "--vectors", str(tmp_path / "cal.npy"), "--dialects",
               "8", "--class-bits", "1", "--class-size", "6", "-o", str(tmp_path / "p.json")])
    assert rc == 0
    book = G.load_formatbook(tmp_path / "p.json")
    assert book.num_classes == 2 and book.class_size == 6 and book.num_dialects <= 8
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["mode"] == "pool"
    assert any("two-level" in k for k in report["heldout_sqnr_db"])
    rc = main(["formatbook", "build", "--synthetic", "--dialects", "32", "--class-bits", "3",
               "--class-size", "2", "-o", str(tmp_path / "bad.json")])
    assert rc == 2 and "cannot hold 32 dialects" in capsys.readouterr().err


def test_study_covers_the_trained_captures_and_reads_older_results():
    """The default decision's study measures the two trained tiny models too (quick mode
    keeps the flow's own capture, trained-wan-tiny); its table prints '-' for a result
    file written before the trained column existed."""
    from semdialect.golden import two_level_study as S

    assert S.CAPTURE_MODELS[0] == "trained-wan-tiny"
    assert S.TRAINED_MODELS == {"trained-wan-tiny", "trained-mmdit-tiny"}
    row = {"point": "p", "classes": 8, "K": 8, "dialects": 32, "bits_per_element": 4.40625,
           "frac_bits": 3, "err_bits": 8, "block_size": 32, "mean_loss_synthetic_db": 0.02,
           "mean_loss_captured_db": 0.03, "mean_loss_db": 0.025, "max_loss_db": 0.04}
    old = S.markdown_table({"points": [row]}).splitlines()[-1]
    new = S.markdown_table({"points": [dict(row, mean_loss_trained_db=0.033)]}).splitlines()
    assert "| 0.0300 | - | 0.0250 |" in old
    assert "| 0.0300 | 0.0330 | 0.0250 |" in new[-1] and "trained" in new[0]

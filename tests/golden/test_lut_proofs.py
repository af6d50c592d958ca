"""Exhaustive proofs of the LUT engine (numerics §7, §8) on both shipped books.

- The index LUT, addressed at the exact resolution, equals an independent
  nearest-by-distance RNE (ties to the even index, saturating) at every grid point,
  inside every interval and at every rounding boundary +-1 ulp of float32, float16 and
  bfloat16, for every dialect; and the codes of quantize() (end to end, through the
  scale rule and any block scale) equal the same reference.
- The error LUT equals a closed-form computation with Python Fractions (exact integral
  of the squared error over each address interval, round half to even, saturation) for
  F = 1..6 and several widths W; the low L bits of every entry are the same for every
  dialect, so the stored entries ERR >> L keep every sum's order exactly (§8.3).
- The selected dialect is the argmin of independently summed LUT errors (lut) and of
  Fraction-exact squared errors (mse), ties to the lowest id; codes always equal the
  exact RNE onto the selected dialect.
- The shipped semdialect-32 book is reproduced exactly by the builder.
"""

from __future__ import annotations

import json
from fractions import Fraction

import numpy as np
import pytest
from golden_testlib import (
    FLOAT_DTYPES,
    boundary_points,
    heavy_tailed,
    nextafter_dtype,
    rne_nearest,
)

from semdialect import golden as G
from semdialect.golden.formatbook import BUILTIN_BOOKS

BOOKS = ["semdialect-32", "dialectfp4"]
FRAC_BITS = [1, 2, 3, 4, 5, 6]
FMT_OF = {"semdialect-32": "semdialect", "dialectfp4": "dialectfp4"}


def _book(name):
    return G.load_formatbook(name)


def _probe_values(book, dtype) -> np.ndarray:
    """Every normalized point of interest in [0, 8) representable in dtype: multiples of
    2^-(g+2) (exact-resolution points and interval interiors), every dialect level and
    rounding boundary of every dialect, +-1 ulp of dtype around each."""
    fine = np.arange(0, 8 * 2 ** (book.grid_frac_bits + 2)) * 2.0 ** -(book.grid_frac_bits + 2)
    pts = [boundary_points(fine, dtype)]
    for lev in book.values:
        pts.append(boundary_points(lev, dtype))
    v = np.unique(np.concatenate([p.astype(np.float64) for p in pts]))
    return v[(v >= 0) & (v < 8)]


def _ref_idx_address(v, fq):
    """floor(v * 2^fq) << 1 | sticky via Fractions (independent of normalized_code)."""
    out = np.empty(len(v), dtype=np.int64)
    for i, x in enumerate(v.tolist()):
        f = Fraction(x) * 2**fq
        t = f.numerator // f.denominator
        out[i] = (t << 1) | (f != t)
    return out


@pytest.mark.parametrize("book_name", BOOKS)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=lambda d: np.dtype(d).name)
def test_index_lut_equals_rne(book_name, dtype):
    book = _book(book_name)
    luts = G.build_luts(book)
    v = _probe_values(book, dtype)
    assert len(v) > 200
    aq = _ref_idx_address(v, luts.idx_frac_bits)
    np.testing.assert_array_equal(luts.idx_address(v), aq)
    for d in range(book.num_dialects):
        want = rne_nearest(book.values[d], v)
        np.testing.assert_array_equal(luts.idx[d, aq], want, err_msg=f"dialect {d}")


def _blocks_from_probes(v: np.ndarray, k: int, dtype) -> np.ndarray:
    """Blocks of k elements: element 0 = 7.5 (normalized max in [4, 8) -> e = 0), then the
    probe values with alternating signs (incl. -0)."""
    n = k - 1
    v = np.concatenate([v, np.zeros((-len(v)) % n)])
    sgn = np.where(np.arange(len(v)) % 2, -1.0, 1.0)
    body = (v * sgn).reshape(-1, n)
    x = np.concatenate([np.full((len(body), 1), 7.5), body], axis=1)
    return x.astype(dtype)


@pytest.mark.parametrize("book_name", BOOKS)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=lambda d: np.dtype(d).name)
def test_quantize_codes_equal_rne_every_dialect(book_name, dtype):
    """End to end through quantize(): every dialect forced by `allowed`, every probe,
    at several block scales (subnormal inputs and the -127 clamp included)."""
    book = _book(book_name)
    fmt = FMT_OF[book_name]
    v = _probe_values(book, dtype)
    base = _blocks_from_probes(v, 32, dtype).astype(np.float64)
    shifts = [0, -10, 8, -20] if np.dtype(dtype) == np.float16 else [0, -10, 40, -140, -127, 100]
    for sh in shifts:
        x = np.ldexp(base, sh).astype(dtype)
        xf = x.astype(np.float64)
        with np.errstate(divide="ignore"):
            e = np.clip(np.floor(np.log2(np.abs(xf).max(1))) - 2, -127, 127)
        vn = np.abs(xf) * 2.0 ** -e[:, None]
        for d in range(book.num_dialects):
            qt = G.quantize(x, fmt, formatbook=book_name, selector="lut", allowed=[d])
            assert (qt.dialects == d).all()
            np.testing.assert_array_equal(qt.scales, (e + 127).astype(np.uint8)[:, None])
            want = rne_nearest(book.values[d], vn) | (np.signbit(xf) << 3)
            np.testing.assert_array_equal(qt.codes, want, err_msg=f"dialect {d}, 2^{sh}")


def _ref_err_table(book, f: int, w: int) -> np.ndarray:
    """ERR[d, a] by closed form: exact squared error at points; for intervals, the exact
    integral of (v - q(v))^2 split at the rounding boundaries, divided by the width;
    in units of 2^-2Fm, round half to even (Python round on Fractions), saturate."""
    g = book.grid_frac_bits
    fm = max(f, g + 1)
    unit = Fraction(1, 2 ** (2 * fm))
    n = 2 ** (book.int_bits + f)
    out = np.empty((book.num_dialects, 2 * n), dtype=np.int64)
    for d, mags in enumerate(book.dialects):
        lev = [Fraction(m) * Fraction(book.grid) for m in mags]
        mids = [(a + b) / 2 for a, b in zip(lev, lev[1:])]

        def q(x, lev=lev):  # nearest level, ties to even index (x exact)
            dist = [abs(x - L) for L in lev]
            m = min(dist)
            c = [i for i, dd in enumerate(dist) if dd == m]
            return lev[next((i for i in c if i % 2 == 0), c[0])]

        for t in range(n):
            a, b = Fraction(t, 2**f), Fraction(t + 1, 2**f)
            point = (a - q(a)) ** 2 / unit
            assert point.denominator == 1
            cuts = [a] + [m for m in mids if a < m < b] + [b]
            integral = Fraction(0)
            for lo, hi in zip(cuts, cuts[1:]):
                L = q((lo + hi) / 2)
                integral += ((hi - L) ** 3 - (lo - L) ** 3) / 3
            mean = integral / (b - a) / unit
            out[d, 2 * t] = min(int(point), 2**w - 1)
            out[d, 2 * t + 1] = min(round(mean), 2**w - 1)
    return out


def _saturate_ref(ref: np.ndarray, shift: int, w: int) -> np.ndarray:
    """§8.3 saturation of unsaturated entries: the largest value <= 2^W - 1 with the
    entry's own residue mod 2^L (which must be the same for every dialect)."""
    res = ref % 2**shift
    assert (res == res[:1]).all(), "low bits depend on the dialect"
    top = 2**w - 1
    return np.minimum(ref, top - (top - res) % 2**shift)


@pytest.mark.parametrize("book_name", BOOKS)
@pytest.mark.parametrize("f", FRAC_BITS)
def test_error_lut_equals_closed_form(book_name, f):
    book = _book(book_name)
    ref = _ref_err_table(book, f, 24)
    for w in (24, 8, 5, 2):
        luts = G.build_luts(book, frac_bits=f, err_bits=w)
        shift = max(0, min(f - book.grid_frac_bits, w - 1))  # L = F - g, below W
        assert luts.err_shift == shift
        np.testing.assert_array_equal(luts.err, _saturate_ref(ref, shift, w), err_msg=f"W={w}")
        np.testing.assert_array_equal(luts.err_rom, luts.err >> shift)
        assert luts.err_rom.max() < 2**luts.err_rom_width
    assert (ref > 2**5 - 1).any()  # W = 5 really saturates somewhere
    if f > book.grid_frac_bits:  # and L is the most there is: bit L depends on the dialect
        bit = (ref >> (f - book.grid_frac_bits)) & 1
        assert (bit != bit[:1]).any()


@pytest.mark.parametrize("book_name", ["semdialect-32", "dialectfp4", "semdialect-32c8x8"])
@pytest.mark.parametrize("f", FRAC_BITS)
@pytest.mark.parametrize("w", [8, 5])
def test_stored_errors_sum_to_the_same_order(book_name, f, w):
    """sum_i ERR[d, a_i] = 2^L sum_i (ERR >> L)[d, a_i] + sum_i residue(a_i) for every
    dialect d, the last term the same for all d: the hardware's narrower sums give the
    same argmin, ties included. Blocks drawn to mix saturated and exact entries."""
    luts = G.build_luts(_book(book_name), frac_bits=f, err_bits=w)
    n_addr = luts.err.shape[1]
    rng = np.random.default_rng(f * 10 + w)
    addr = rng.integers(0, n_addr, (4000, 32))
    addr[:2000, :4] = rng.integers(n_addr * 3 // 4, n_addr, (2000, 4))  # large values
    res = luts.err[0, addr] & ((1 << luts.err_shift) - 1)
    full = luts.err[:, addr].sum(-1)  # (D, nb)
    stored = luts.err_rom[:, addr].sum(-1)
    np.testing.assert_array_equal(full, (stored << luts.err_shift) + res.sum(-1))
    if w == 5:  # (at W = 8 and F = 1 nothing saturates)
        sat = luts.err[:, addr] >= 2**w - 2**luts.err_shift
        assert sat.any() and (~sat).any()


@pytest.mark.parametrize("book_name", BOOKS)
@pytest.mark.parametrize("f", FRAC_BITS)
def test_error_lut_addresses(book_name, f):
    """Every err-LUT address: the points t*2^-F map to (t << 1), their float32/float16/
    bfloat16 neighbours inside an interval map to (t << 1 | 1)."""
    book = _book(book_name)
    luts = G.build_luts(book, frac_bits=f)
    t = np.arange(2 ** (book.int_bits + f))
    pts = t * 2.0**-f
    np.testing.assert_array_equal(luts.err_address(pts), t << 1)
    for dt in FLOAT_DTYPES:
        p = pts.astype(dt)
        ok = p.astype(np.float64) == pts
        assert ok.sum() >= min(len(pts), 256)
        up = nextafter_dtype(p[ok], 8.0, dt).astype(np.float64)
        inside = up < pts[ok] + 2.0**-f  # (bfloat16 at F >= 5 may hit the next point)
        assert inside.sum() >= 8
        np.testing.assert_array_equal(luts.err_address(up[inside]), (t[ok][inside] << 1) | 1)
        np.testing.assert_array_equal(luts.err_address(p[ok].astype(np.float64)), t[ok] << 1)


def _lut_sum_ref(luts, vn):
    f = luts.frac_bits
    addr = _ref_idx_address(vn.ravel(), f).reshape(vn.shape)
    return luts.err[:, addr].sum(-1).T  # (nb, D)


def _test_data(dtype, seed):
    rng = np.random.default_rng(seed)
    f16 = np.dtype(dtype) == np.float16
    x = heavy_tailed(rng, (96, 64), spread=3.0 if f16 else 20.0)
    x[0] = 0
    x[1, ::3] = -0.0
    x[2] = rng.standard_normal(64) * np.float32(2.0**-20 if f16 else 2.0**-135)
    return x.astype(dtype)


@pytest.mark.parametrize("book_name", BOOKS)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("f", [1, 3, 6])
def test_lut_selector_is_argmin_and_codes_are_rne(book_name, dtype, f):
    book = _book(book_name)
    x = _test_data(dtype, seed=f)
    qt = G.quantize(x, FMT_OF[book_name], formatbook=book_name, selector="lut", frac_bits=f)
    xb = x.astype(np.float64).reshape(-1, 32)
    e = qt.scales.reshape(-1).astype(np.int64) - 127
    vn = np.abs(xb) * 2.0 ** -e[:, None]
    sums = _lut_sum_ref(G.build_luts(book, frac_bits=f), vn)
    d = qt.dialects.reshape(-1)
    np.testing.assert_array_equal(d, np.argmin(sums, axis=1))
    want = rne_nearest(book.values[d], vn) | (np.signbit(xb) << 3)
    np.testing.assert_array_equal(qt.codes.reshape(-1, 32), want)


@pytest.mark.parametrize("book_name", BOOKS)
def test_mse_selector_is_exact_argmin(book_name):
    book = _book(book_name)
    x = _test_data(np.float32, seed=11)[:40]
    qt = G.quantize(x, FMT_OF[book_name], formatbook=book_name, selector="mse")
    xb = x.astype(np.float64).reshape(-1, 32)
    e = qt.scales.reshape(-1).astype(np.int64) - 127
    vn = np.abs(xb) * 2.0 ** -e[:, None]
    lev = [[Fraction(m) / 2 for m in dd] for dd in book.dialects]
    for b, row in enumerate(vn):
        fr = [Fraction(v) for v in row.tolist()]
        errs = []
        for d in range(book.num_dialects):
            idx = rne_nearest(book.values[d], row)
            errs.append(sum((v - lev[d][i]) ** 2 for v, i in zip(fr, idx)))
        assert qt.dialects.reshape(-1)[b] == errs.index(min(errs))
    d = qt.dialects.reshape(-1)
    want = rne_nearest(book.values[d], vn) | (np.signbit(xb) << 3)
    np.testing.assert_array_equal(qt.codes.reshape(-1, 32), want)


def test_selection_ties_go_to_lowest_id():
    """An all-zero block has zero error on every dialect: lowest (allowed) id, §8.7."""
    x = np.zeros((2, 32), np.float32)
    for sel in ("lut", "mse"):
        assert (G.quantize(x, "semdialect", selector=sel).dialects == 0).all()
        q = G.quantize(x, "semdialect", selector=sel, allowed=[5, 9, 30])
        assert (q.dialects == 5).all()
        assert (q.scales == 0).all() and (q.codes == 0).all()


def test_shipped_default_book_is_reproduced():
    from semdialect.golden.builder import build_default_book

    book, report = build_default_book()
    shipped = json.loads(BUILTIN_BOOKS["semdialect-32"].read_text())
    assert [list(d) for d in book.dialects] == shipped["dialects"]
    assert book.provenance == shipped["provenance"]
    assert book.dumps() == BUILTIN_BOOKS["semdialect-32"].read_text()
    assert report["calibration_blocks"] == 4 * 2048

"""The integer fast paths of the golden model (golden/bitaddress.py) against the exact
float64 paths they replaced (numerics §4, §7, §8): addresses, LUT selection and codes,
MX element codes, on adversarial data (ties, boundaries +-1 ulp, zeros, -0, subnormals,
NaN/Inf blocks, huge and tiny block scales)."""

from __future__ import annotations

import numpy as np
import pytest
from golden_testlib import adversarial, boundary_points

from semdialect import golden as G
from semdialect.golden import bitaddress as ba
from semdialect.golden import scalar_formats as sf
from semdialect.golden.dialects import (
    address_block_errors,
    address_luts,
    finite_block_errors,
    lut_block_errors,
    masked_argmin,
    normalize_blocks,
)
from semdialect.golden.lut import normalized_code, quantize_to_dialect


@pytest.mark.parametrize("frac_bits", [1, 2, 3, 5, 8])
def test_magnitude_address_equals_float64_normalized_code(frac_bits):
    book = G.load_formatbook("semdialect-32")
    xb = adversarial(np.random.default_rng(frac_bits), 3000, 32)
    e, v, bad = normalize_blocks(book, xb)
    ab = ba.magnitude_bits(xb)
    e2, bad2 = ba.block_exponent_bits(ab, book.emax)
    assert np.array_equal(e, e2) and np.array_equal(bad, bad2)
    ab[bad2] = 0
    got = ba.magnitude_address(ab, e2, frac_bits, book.int_bits)
    assert np.array_equal(got, normalized_code(v, frac_bits))


@pytest.mark.parametrize("fine,coarse", [(3, 2), (5, 1), (2, 2), (8, 3)])
def test_coarsen_map_equals_address_at_coarse_resolution(fine, coarse):
    v = boundary_points(np.arange(0, 8 * 2**fine) / 2.0**fine, np.float64)
    v = v[(v >= 0) & (v < 8)]
    m = ba.coarsen_map(3, fine, coarse)
    assert np.array_equal(m[normalized_code(v, fine)], normalized_code(v, coarse))


@pytest.mark.parametrize("book_name", ["semdialect-32", "dialectfp4"])
@pytest.mark.parametrize("frac_bits,err_bits", [(1, 8), (3, 8), (3, 24), (4, 5), (6, 12)])
def test_lut_fast_path_equals_float64_path(book_name, frac_bits, err_bits):
    """Selection sums (float32 / float64 GEMM of address histograms) and index-LUT codes
    equal the float64-normalized histogram sums and the midpoint-compare RNE."""
    rng = np.random.default_rng(frac_bits * 31 + err_bits)
    xb = adversarial(rng, 2500, 32)
    luts = G.build_luts(book_name, frac_bits, err_bits)
    e, v, bad = normalize_blocks(luts.book, xb)
    mask = rng.random((len(xb), luts.book.num_dialects)) < 0.4
    mask[np.arange(len(xb)), rng.integers(0, luts.book.num_dialects, len(xb))] = True
    want_d = masked_argmin(lut_block_errors(luts, v), mask)
    first = np.argmax(mask, axis=-1)
    want_d = np.where(bad, first, want_d)
    want = (np.signbit(xb).astype(np.uint8) << 3) | quantize_to_dialect(
        luts.book.values, want_d, v).astype(np.uint8)
    want[bad] = 0
    qt = G.quantize(xb, "semdialect", formatbook=book_name, frac_bits=frac_bits,
                    err_bits=err_bits, allowed=mask)
    assert np.array_equal(qt.dialects.ravel(), want_d)
    assert np.array_equal(qt.codes, want)
    assert np.array_equal(qt.scales.ravel(), np.where(bad, 0xFF, e + 127))
    fine = max(frac_bits, luts.idx_frac_bits)
    err_f, _ = address_luts(luts, fine)
    ab = ba.magnitude_bits(xb)
    ab[bad] = 0
    addr = ba.magnitude_address(ab, e, fine, luts.book.int_bits)
    assert np.array_equal(address_block_errors(err_f, addr), lut_block_errors(luts, v))


@pytest.mark.parametrize("frac_bits,err_bits", [(3, 8), (4, 5), (6, 12)])
def test_finite_block_errors_equal_float64_sums_of_finite_blocks(frac_bits, err_bits):
    """SeDA's profiling cost (integer address path) = the float64 path's sums over the
    blocks free of NaN/Inf, in order, on adversarial blocks (and on no block at all)."""
    xb = adversarial(np.random.default_rng(7 * frac_bits + err_bits), 2500, 32)
    luts = G.build_luts("semdialect-32", frac_bits, err_bits)
    _, v, bad = normalize_blocks(luts.book, xb)
    assert bad.any()
    assert np.array_equal(finite_block_errors(luts, xb), lut_block_errors(luts, v[~bad]))
    assert finite_block_errors(luts, xb[bad]).shape == (0, luts.book.num_dialects)


def test_error_sums_fall_back_to_float64_beyond_float32():
    """k * (2^W - 1) >= 2^24: the sums are formed in float64 and stay exact."""
    err = np.full((2, 4), (1 << 24) - 1, dtype=np.int64)
    err[1, 3] = (1 << 24) - 2
    addr = np.full((3, 64), 3, dtype=np.int32)
    got = address_block_errors(err, addr)
    assert got[0, 0] == 64 * ((1 << 24) - 1) and got[0, 1] == 64 * ((1 << 24) - 2)


@pytest.mark.parametrize("fmt", ["mxfp4", "mxfp6_e2m3", "mxfp6_e3m2"])
@pytest.mark.parametrize("k", [32, 8])
def test_mx_address_path_equals_codec_path(fmt, k, monkeypatch):
    impl = sf.MX_FORMATS[fmt]
    xb = adversarial(np.random.default_rng(k), 4000, k)
    fast = impl._quantize_blocks(xb)
    assert ba.element_address_bits(impl.elem) is not None
    monkeypatch.setattr(sf, "element_address_bits", lambda elem: None)
    slow = impl._quantize_blocks(xb)
    assert np.array_equal(fast[0], slow[0]) and np.array_equal(fast[1], slow[1])


def test_big_element_formats_keep_the_codec_path():
    for fmt in ("mxfp8_e4m3", "mxfp8_e5m2", "mxint8"):
        assert ba.element_address_bits(sf.MX_FORMATS[fmt].elem) is None


@pytest.mark.parametrize("book_name", ["semdialect-32c8x8", "semdialect-32c8x4"])
@pytest.mark.parametrize("frac_bits", [1, 3, 5])
def test_two_level_fast_path_equals_float64_path(book_name, frac_bits):
    """Class from the block-max address and in-class argmin of the exhaustive sums equal
    two_level_select on the float64 v (class rule, effective class with masks, ties)."""
    from semdialect.golden.two_level import build_two_level, two_level_select

    rng = np.random.default_rng(frac_bits + len(book_name))
    xb = adversarial(rng, 2500, 32)
    tables = build_two_level(book_name, frac_bits, 8)
    book = tables.book
    e, v, bad = normalize_blocks(book, xb)
    for mask in (None, rng.random((len(xb), 32)) < 0.15):
        if mask is not None:
            mask[np.arange(len(xb)), rng.integers(0, 32, len(xb))] = True
        want_d = two_level_select(tables, v, mask)
        want = (np.signbit(xb).astype(np.uint8) << 3) | quantize_to_dialect(
            book.values, want_d, v).astype(np.uint8)
        want[bad] = 0
        qt = G.quantize(xb, "semdialect", formatbook=book_name, selector="two-level",
                        frac_bits=frac_bits, allowed=mask)
        assert np.array_equal(qt.dialects.ravel(), want_d)
        assert np.array_equal(qt.codes, want)

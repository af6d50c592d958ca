"""Element and scale codecs against ml_dtypes and gfloat (numerics §2, §3, §12).

Every code is decoded, every tie boundary (midpoints of consecutive values, +-1 float32
ulp) and random/huge/tiny data are encoded; the deliberate differences (saturation vs
ml_dtypes' overflow to NaN/Inf, E8M0 zero and overflow, NaN into NaN-less formats) are
tested as exactly those differences.
"""

from __future__ import annotations

import gfloat
import gfloat.formats as gf
import ml_dtypes
import numpy as np
import pytest
from golden_testlib import boundary_points
from reference_versions import ML_DTYPES_ROUNDS_LOWEST_BINADE_UP

from semdialect import golden as G

# golden codec, ml_dtypes dtype, gfloat format
CODECS = {
    "e2m1": (G.E2M1, ml_dtypes.float4_e2m1fn, gf.format_info_ocp_e2m1),
    "e2m3": (G.E2M3, ml_dtypes.float6_e2m3fn, gf.format_info_ocp_e2m3),
    "e3m2": (G.E3M2, ml_dtypes.float6_e3m2fn, gf.format_info_ocp_e3m2),
    "e4m3": (G.E4M3, ml_dtypes.float8_e4m3fn, gf.format_info_ocp_e4m3),
    "e5m2": (G.E5M2, ml_dtypes.float8_e5m2, gf.format_info_ocp_e5m2),
}
NAMES = list(CODECS)


def _codes(elem):
    return np.arange(1 << elem.bits, dtype=np.uint8)


def _inputs(elem, seed=0) -> np.ndarray:
    """float32 test inputs: values, ties +-1 ulp (both signs), random over a wide range,
    float32 subnormals, huge values up to float32 max."""
    rng = np.random.default_rng(seed)
    mags = elem.magnitudes[np.isfinite(elem.magnitudes)]
    pts = boundary_points(mags, np.float32)
    rnd = (rng.standard_normal(4000) * np.exp2(rng.uniform(-30, 30, 4000))).astype(np.float32)
    tiny = (rng.integers(-300, 300, 200) * np.float32(1e-45)).astype(np.float32)
    huge = (rng.uniform(-1, 1, 200) * np.float32(3.4e38)).astype(np.float32)
    edges = np.array([0.0, -0.0, np.finfo(np.float32).max, -np.finfo(np.float32).max,
                      np.finfo(np.float32).tiny], dtype=np.float32)
    return np.concatenate([pts, -pts, rnd, tiny, huge, edges]).astype(np.float32)


@pytest.mark.parametrize("name", NAMES)
def test_decode_every_code_matches_ml_dtypes_and_gfloat(name):
    elem, mdt, gfi = CODECS[name]
    codes = _codes(elem)
    got = elem.decode(codes)
    ref = codes.view(mdt).astype(np.float64)
    gref = gfloat.decode_ndarray(gfi, codes.astype(np.uint64))
    for r in (ref, gref):
        np.testing.assert_array_equal(np.isnan(got), np.isnan(r))
        ok = ~np.isnan(got)
        np.testing.assert_array_equal(got[ok], r[ok])
        np.testing.assert_array_equal(np.signbit(got[ok]), np.signbit(r[ok]))


@pytest.mark.parametrize("name", NAMES)
def test_encode_matches_ml_dtypes_below_saturation(name):
    """Every finite input whose RNE does not overflow: identical codes (incl. -0)."""
    elem, mdt, _ = CODECS[name]
    x = _inputs(elem)
    got = elem.encode(x)
    ref_v = x.astype(mdt)
    ref = ref_v.view(np.uint8)
    fin = np.isfinite(ref_v.astype(np.float64))
    np.testing.assert_array_equal(got[fin], ref[fin])
    assert fin.sum() > 4000


@pytest.mark.parametrize("name", NAMES)
def test_encode_matches_gfloat_satfinite(name):
    """gfloat's round_ndarray(sat=True) is the OCP satfinite conversion: equal everywhere
    (finite inputs, Inf included)."""
    elem, _, gfi = CODECS[name]
    x = np.concatenate([_inputs(elem), np.array([np.inf, -np.inf], np.float32)])
    ref = gfloat.encode_ndarray(gfi, gfloat.round_ndarray(gfi, x.astype(np.float64), sat=True))
    np.testing.assert_array_equal(elem.encode(x), ref.astype(np.uint8))


@pytest.mark.parametrize("name", ["e4m3", "e5m2"])
def test_overflow_saturates_where_ml_dtypes_gives_nan_or_inf(name):
    """§3/§12: ml_dtypes overflows to NaN (E4M3) / Inf (E5M2); we saturate to +-max.
    Exactly the inputs at or above the RNE overflow threshold differ."""
    elem, mdt, _ = CODECS[name]
    x = _inputs(elem)
    x = np.concatenate([x, np.array([np.inf, -np.inf], np.float32)])
    ref = x.astype(mdt).astype(np.float64)
    over = ~np.isfinite(ref)
    # threshold: the midpoint between max and the next value of the unbounded format
    # (ties go to the even max for both formats), so |x| > threshold overflows there
    step = 2.0 ** (elem.emax - elem.mbits)
    thr = elem.max_value + step / 2
    np.testing.assert_array_equal(over, np.abs(x.astype(np.float64)) > thr)
    got = elem.encode(x[over])
    want = np.where(np.signbit(x[over]), 0x80, 0) | elem.max_code
    np.testing.assert_array_equal(got, want)
    assert over.sum() > 50


@pytest.mark.parametrize("name", ["e2m1", "e2m3", "e3m2"])
def test_nan_into_nanless_format_raises(name):
    """§12: ml_dtypes casts NaN to -0 for these formats; our codec refuses NaN (the block
    formats never pass NaN in: NaN blocks are marked by the scale)."""
    elem, mdt, _ = CODECS[name]
    assert np.array([np.nan], np.float32).astype(mdt).view(np.uint8)[0] == 1 << (elem.bits - 1)
    with pytest.raises(ValueError, match="no NaN"):
        elem.encode(np.array([1.0, np.nan], np.float32))


@pytest.mark.parametrize("name", ["e4m3", "e5m2"])
def test_nan_encodes_to_a_nan_code(name):
    elem, _, _ = CODECS[name]
    c = elem.encode(np.array([np.nan, -np.nan], np.float32))
    assert np.isnan(elem.decode(c)).all()


def test_encode_float64_inputs_exact():
    """float64 input (used for normalized values) is rounded once, exactly: values one
    float64 ulp around every tie."""
    for elem, _mdt, gfi in CODECS.values():
        mags = elem.magnitudes[np.isfinite(elem.magnitudes)]
        mids = (mags[1:] + mags[:-1]) / 2
        x = np.concatenate([np.nextafter(mids, np.inf), np.nextafter(mids, -np.inf), mids])
        ref = gfloat.encode_ndarray(gfi, gfloat.round_ndarray(gfi, x, sat=True))
        np.testing.assert_array_equal(elem.encode(x), ref.astype(np.uint8))


# ------------------------------------------------------------------------------ E8M0 ----

def _e8m0_inputs():
    pw = np.ldexp(1.0, np.arange(-127, 128))
    mids = 1.5 * pw  # linear midpoints between consecutive powers of two
    x = np.concatenate([pw, mids])
    x32 = x.astype(np.float32)
    x32 = x32[np.isfinite(x32) & (x32.astype(np.float64) == x)]
    rng = np.random.default_rng(5)
    rnd = np.exp2(rng.uniform(-126, 127, 2000)).astype(np.float32)
    return np.concatenate([x32, np.nextafter(x32, np.float32(np.inf)),
                           np.nextafter(x32, np.float32(0)), rnd])


def test_e8m0_decode_every_code():
    codes = np.arange(256, dtype=np.uint8)
    ref = codes.view(ml_dtypes.float8_e8m0fnu).astype(np.float64)
    got = G.decode_e8m0(codes)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
    np.testing.assert_array_equal(got[:255], ref[:255])
    gref = gfloat.decode_ndarray(gf.format_info_ocp_e8m0, codes.astype(np.uint64))
    np.testing.assert_array_equal(got[:255], gref[:255])


def test_e8m0_encode_matches_ml_dtypes_in_range():
    """Nearest power of two, linear-midpoint ties up, as ml_dtypes, for every positive
    finite input that ml_dtypes does not overflow (< 1.5 * 2^127)."""
    x = _e8m0_inputs()
    ref_v = x.astype(ml_dtypes.float8_e8m0fnu)
    nan = np.isnan(ref_v.astype(np.float64))
    # exactly the ones at or above 1.5 * 2^127 overflow in ml_dtypes
    np.testing.assert_array_equal(nan, x.astype(np.float64) >= 1.5 * 2.0**127)
    if ML_DTYPES_ROUNDS_LOWEST_BINADE_UP:  # ml_dtypes < 0.7, see test_e8m0_lowest_binade
        ok = ~nan & ~((x > 2.0**-127) & (x < 1.5 * 2.0**-127))
    else:
        ok = ~nan
    assert ok.sum() > 2000
    np.testing.assert_array_equal(G.encode_e8m0(x[ok]), ref_v.view(np.uint8)[ok])


def test_e8m0_lowest_binade():
    """§12: in (2^-127, 1.5 * 2^-127) we give the nearest power of two, 0x00 (float32 and
    float64 inputs alike). ml_dtypes >= 0.7 (the pinned 0.7.0) does the same; ml_dtypes
    < 0.7 rounded these up to 2^-126 (code 0x01), a difference that no longer exists."""
    x = np.linspace(1.0, 1.5, 41)[1:-1] * 2.0**-127
    ref_code = 1 if ML_DTYPES_ROUNDS_LOWEST_BINADE_UP else 0
    for xx in (x, x.astype(np.float32)):
        assert (xx.astype(ml_dtypes.float8_e8m0fnu).view(np.uint8) == ref_code).all()
        assert (G.encode_e8m0(xx) == 0).all()
    edge = np.array([2.0**-127, 1.5 * 2.0**-127])
    np.testing.assert_array_equal(G.encode_e8m0(edge), [0, 1])
    np.testing.assert_array_equal(edge.astype(ml_dtypes.float8_e8m0fnu).view(np.uint8), [0, 1])


def test_e8m0_documented_differences():
    """§12: zero -> 0x00 here (NaN in ml_dtypes); >= 1.5*2^127 saturates to 0xFE here
    (NaN in ml_dtypes); negative, NaN, Inf -> 0xFF in both."""
    big = np.array([1.5 * 2.0**127, np.finfo(np.float32).max], np.float32)
    assert (G.encode_e8m0(big) == 0xFE).all()
    assert (big.astype(ml_dtypes.float8_e8m0fnu).view(np.uint8) == 0xFF).all()
    assert G.encode_e8m0(np.array([0.0, -0.0]))[0] == 0x00
    assert np.array([0.0], np.float32).astype(ml_dtypes.float8_e8m0fnu).view(np.uint8)[0] == 0xFF
    bad = np.array([-1.0, -2.0**-130, np.nan, np.inf, -np.inf], np.float32)
    assert (G.encode_e8m0(bad) == 0xFF).all()
    assert (bad.astype(ml_dtypes.float8_e8m0fnu).view(np.uint8) == 0xFF).all()
    tiny = np.array([2.0**-128, 2.0**-140, 1e-45], np.float32)  # below 2^-127 -> 0x00
    assert (G.encode_e8m0(tiny) == 0).all()
    assert (tiny.astype(ml_dtypes.float8_e8m0fnu).view(np.uint8) == 0).all()

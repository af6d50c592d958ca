"""OCP MX block formats against gfloat's reference (numerics §4, §12).

gfloat computes the block scale with `compute_scale_amax` (floor(log2 amax) - emax,
clipped to 2^[-127, 127]) and encodes with `encode_block` (RNE, saturating): the OCP MX
v1.0 reference algorithm. It has no NaN/Inf block convention, so non-finite blocks are
not compared here (see the torchao tests).
"""

from __future__ import annotations

import gfloat
import gfloat.formats as gf
import numpy as np
import pytest
from golden_testlib import heavy_tailed, mx_cases, ref_block_exponent

from semdialect import golden as G

BLOCK = {
    "mxfp4": gf.format_info_mxfp4_e2m1,
    "mxfp6_e2m3": gf.format_info_mxfp6_e2m3,
    "mxfp6_e3m2": gf.format_info_mxfp6_e3m2,
    "mxfp8_e4m3": gf.format_info_mxfp8_e4m3,
    "mxfp8_e5m2": gf.format_info_mxfp8_e5m2,
    "mxint8": gf.format_info_mxint8,
}


def gfloat_mx(fi, x: np.ndarray):
    """Per block: gfloat compute_scale_amax, then round/encode (vectorized twin of
    gfloat.encode_block). Returns (scale codes, element codes)."""
    xb = x.astype(np.float64)
    scales = np.array([gfloat.compute_scale_amax(fi.etype.emax, b) for b in xb])
    sc = gfloat.encode_ndarray(fi.stype, scales).astype(np.uint8)
    y = xb / scales[:, None]
    codes = gfloat.encode_ndarray(fi.etype, gfloat.round_ndarray(fi.etype, y, sat=True))
    return sc, codes.astype(np.uint8)


@pytest.mark.parametrize("fmt", list(BLOCK))
def test_mx_matches_gfloat(fmt):
    fi = BLOCK[fmt]
    x = mx_cases(fmt, seed=7)
    if fmt == "mxint8":  # normalized values in (-2, -127/64]: where gfloat differs
        neg = np.linspace(-1.9, 1.9, 32)
        neg[:8] = -127.5 / 64 - 2.0**-10 * np.arange(8)  # in (-2, -127.5/64]
        neg = neg.astype(np.float32)
        x = np.concatenate([x, neg[None, :], np.ldexp(neg, -100)[None, :]]).astype(np.float32)
    qt = G.quantize(x, fmt)
    sc, codes = gfloat_mx(fi, x)
    np.testing.assert_array_equal(qt.scales[:, 0], sc)
    # independent Fraction-based exponent too
    np.testing.assert_array_equal(qt.scales[:, 0].astype(np.int64) - 127,
                                  ref_block_exponent(x, fi.etype.emax))
    if fmt == "mxint8":
        # §12: gfloat saturates to -2.0 (0x80) where x / X * 64 <= -127.5; we clamp at -127
        low = x.astype(np.float64) / np.ldexp(1.0, qt.scales.astype(np.int64) - 127) * 64 <= -127.5
        assert low.sum() > 3
        assert (codes[low] == 0x80).all() and (qt.codes[low] == 0x81).all()
        np.testing.assert_array_equal(qt.codes[~low], codes[~low])
    else:
        np.testing.assert_array_equal(qt.codes, codes)


@pytest.mark.parametrize("fmt", list(BLOCK))
def test_mx_encode_block_api_spot_check(fmt):
    """The literal gfloat.encode_block / quantize_block on a few blocks."""
    fi = BLOCK[fmt]
    rng = np.random.default_rng(8)
    x = heavy_tailed(rng, (6, 32), spread=20.0)
    x[1] = 0
    qt = G.quantize(x, fmt)
    deq = qt.dequantize().astype(np.float64)
    for b in range(len(x)):
        scale = gfloat.compute_scale_amax(fi.etype.emax, x[b].astype(np.float64))
        enc = list(gfloat.encode_block(fi, scale, x[b].astype(np.float64) / scale))
        assert enc[0] == qt.scales[b, 0]
        ref = gfloat.quantize_block(fi, x[b].astype(np.float64), gfloat.compute_scale_amax)
        if fmt == "mxint8":
            ok = np.asarray(enc[1:]) != 0x80
            np.testing.assert_array_equal(np.asarray(enc[1:])[ok], qt.codes[b][ok])
            np.testing.assert_array_equal(ref[ok], deq[b][ok])
        else:
            np.testing.assert_array_equal(enc[1:], qt.codes[b])
            np.testing.assert_array_equal(ref, deq[b])

"""Bit-exact cross-checks of the MX and NVFP4 formats against torchao (numerics §4, §5).

Agreement is required everywhere except the deliberate differences of numerics §12, each
of which is tested here as exactly that difference (and shown to occur in the data, so
no test passes vacuously).
"""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from golden_testlib import (
    BF16,
    MX_ELEMS,
    _pin_blocks,
    boundary_points,
    heavy_tailed,
    mx_cases,
    torchao_mx,
    torchao_nvfp4,
)

from semdialect import golden as G
from semdialect.golden.elements import ELEMENT_FORMATS

pytest.importorskip("torchao")

MX = list(MX_ELEMS)
ELEM = {
    "mxfp4": G.E2M1,
    "mxfp6_e2m3": G.E2M3,
    "mxfp6_e3m2": G.E3M2,
    "mxfp8_e4m3": G.E4M3,
    "mxfp8_e5m2": G.E5M2,
}


@pytest.mark.parametrize("fmt", MX)
def test_mx_matches_torchao(fmt):
    """Scales everywhere, codes everywhere except blocks with scale 0x00 (§12: torchao
    divides by 2^-126 there, not by the scale 2^-127)."""
    x = mx_cases(fmt)
    qt = G.quantize(x, fmt)
    s_t, c_t = torchao_mx(x, fmt)
    np.testing.assert_array_equal(qt.scales, s_t)
    clamped = (qt.scales == 0)[:, 0]
    np.testing.assert_array_equal(qt.codes[~clamped], c_t[~clamped])
    assert (~clamped).sum() > 500


@pytest.mark.parametrize("fmt", MX)
def test_mx_torchao_scale_clamp_difference(fmt):
    """§12: for E8M0 scale 0x00 (2^-127) torchao computes elements as x / 2^-126 (it
    clamps its float32 scale to the smallest normal); we compute x / 2^-127."""
    elem = ELEM[fmt]
    x = mx_cases(fmt)
    qt = G.quantize(x, fmt)
    _, c_t = torchao_mx(x, fmt)
    blk = (qt.scales == 0)[:, 0] & (np.abs(x).max(axis=1) > 0)
    xs = x[blk].astype(np.float64)
    mldt = getattr(ml_dtypes, MX_ELEMS[fmt][0])
    sat = lambda y: np.clip(y, -elem.max_value, elem.max_value)  # noqa: E731
    want_ours = sat(xs * 2.0**127).astype(mldt).view(np.uint8)
    want_torchao = sat(xs * 2.0**126).astype(mldt).view(np.uint8)
    np.testing.assert_array_equal(qt.codes[blk], want_ours)
    np.testing.assert_array_equal(c_t[blk], want_torchao)
    differs = (qt.codes[blk] != c_t[blk]).any(axis=1)
    assert differs.sum() >= 5, "the data must exercise the difference"


@pytest.mark.parametrize("fmt", MX)
def test_mx_bfloat16_input_matches_torchao(fmt):
    rng = np.random.default_rng(1)
    x = heavy_tailed(rng, (128, 64)).astype(BF16)
    qt = G.quantize(x, fmt)
    s_t, c_t = torchao_mx(x, fmt)
    ok = qt.scales > 0
    np.testing.assert_array_equal(qt.scales, s_t)
    np.testing.assert_array_equal(
        qt.codes.reshape(128, 2, 32)[ok], c_t.reshape(128, 2, 32)[ok]
    )


@pytest.mark.parametrize("fmt", MX)
def test_mx_nan_inf_blocks_differ_as_documented(fmt):
    """§12: NaN blocks: both give scale 0xFF, our codes are 0. Inf blocks (no NaN):
    we give 0xFF; torchao gives 0xFF - emax_elem (its exponent clamp at 128) and does not
    mark the block NaN. Finite blocks next to them are unaffected."""
    elem = ELEM[fmt]
    rng = np.random.default_rng(2)
    x = rng.standard_normal((6, 32)).astype(np.float32)
    x[0, 3] = np.nan
    x[1, 7] = np.inf
    x[2, 0] = -np.inf
    x[3, 5] = np.nan
    x[3, 6] = np.inf
    qt = G.quantize(x, fmt)
    s_t, c_t = torchao_mx(x, fmt)
    assert (qt.scales[:4, 0] == 0xFF).all()
    assert (qt.codes[:4] == 0).all()
    assert s_t[0, 0] == 0xFF and s_t[3, 0] == 0xFF
    assert s_t[1, 0] == s_t[2, 0] == 0xFF - elem.emax
    np.testing.assert_array_equal(qt.scales[4:], s_t[4:])
    np.testing.assert_array_equal(qt.codes[4:], c_t[4:])
    assert np.isnan(qt.dequantize()[:4]).all()
    assert np.isfinite(qt.dequantize()[4:]).all()


# ---------------------------------------------------------------------------- NVFP4 ----

E4M3_NORMAL_MIN = 2.0**-6  # torchao's E4M3_EPS = finfo(float8_e4m3fn).tiny


def _nvfp4_cases(seed=0):
    rng = np.random.default_rng(seed)
    e2m1 = G.E2M1.magnitudes
    pts = boundary_points(e2m1, np.float32)
    base = np.concatenate([e2m1, -e2m1, pts, -pts]).astype(np.float32)
    parts = [_pin_blocks(base, np.float32(6.0), 16)]
    # block maxima over the whole UE4M3 range relative to the tensor max
    for sb in G.UE4M3.magnitudes[1:-1:3]:
        parts.append(_pin_blocks(base, np.float32(6.0), 16) * np.float32(sb / 448))
    parts.append(heavy_tailed(rng, (512, 16), spread=4.0))
    parts.append(rng.standard_normal((256, 16)).astype(np.float32))
    z = np.zeros((4, 16), np.float32)
    z[1] = -0.0
    z[2, 0] = np.float32(2.0**-149)
    parts.append(z)
    x = np.concatenate(parts).astype(np.float32)
    return x.reshape(-1, 64)  # rows of 4 blocks


def test_nvfp4_matches_torchao():
    """Bit exact everywhere, tiny blocks included (both clamp the block scale at 2^-6)."""
    x = _nvfp4_cases()
    amax = np.abs(x).max()
    qt = G.quantize(x, "nvfp4")
    sb_t, c_t, st_t = torchao_nvfp4(x, amax)
    assert np.float32(qt.tensor_scale) == st_t
    xb = x.reshape(len(x), 4, 16)
    scaled = (np.abs(xb).max(-1) / np.float32(6)).astype(np.float32) / np.float32(qt.tensor_scale)
    small = scaled < E4M3_NORMAL_MIN
    assert small.sum() > 20 and (~small).sum() > 700  # both regimes are exercised
    assert (qt.scales[small] == 0x08).all()  # clamped to 2^-6
    np.testing.assert_array_equal(qt.scales, sb_t)
    np.testing.assert_array_equal(qt.codes, c_t)


def test_nvfp4_tiny_tensor_floor_keeps_elements_finite():
    """§5/§12: s_t is floored at 2^-120 so 1 / (s_t * s_b) is finite; torchao's is not."""
    x = np.full((1, 32), 1e-38, np.float32)
    x[0, 0] = 0.0
    x[0, 20:] = 3e-39  # a second block 3x smaller
    qt = G.quantize(x, "nvfp4")
    assert np.float32(qt.tensor_scale) == np.float32(2.0**-120)
    d = qt.dequantize()
    assert np.isfinite(d).all() and d[0, 0] == 0
    np.testing.assert_allclose(d[0, 1:16], x[0, 1:16], rtol=0.26)
    _, c_t, _ = torchao_nvfp4(x, np.abs(x).max())
    assert not np.array_equal(qt.codes, c_t)  # torchao's elements are NaN/Inf garbage here


def test_nvfp4_bfloat16_and_explicit_tensor_amax():
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((64, 64)) * 3).astype(BF16)
    amax = 20.0  # calibrated amax larger than the data's
    qt = G.quantize(x, "nvfp4", tensor_amax=amax)
    sb_t, c_t, st_t = torchao_nvfp4(x, amax)
    assert np.float32(qt.tensor_scale) == st_t
    np.testing.assert_array_equal(qt.scales, sb_t)
    np.testing.assert_array_equal(qt.codes, c_t)


def test_nvfp4_nonfinite_and_zero_tensor_differences():
    """§12: NaN blocks: block scale 0x7F both; Inf blocks: 0x7F here, torchao saturates
    the scale to 448 (0x7E). An all-zero tensor: s_t = 1 here, torchao's scale is 0."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((1, 64)).astype(np.float32)
    x[0, 1] = np.nan
    x[0, 17] = np.inf
    finite_amax = np.abs(x[np.isfinite(x)]).max()
    qt = G.quantize(x, "nvfp4")
    sb_t, c_t, _ = torchao_nvfp4(x, finite_amax)
    assert qt.scales[0, 0] == 0x7F and sb_t[0, 0] == 0x7F
    assert qt.scales[0, 1] == 0x7F and sb_t[0, 1] == 0x7E
    assert (qt.codes[0, :32] == 0).all()
    np.testing.assert_array_equal(qt.scales[0, 2:], sb_t[0, 2:])
    np.testing.assert_array_equal(qt.codes[0, 32:], c_t[0, 32:])
    z = np.zeros((2, 32), np.float32)
    qz = G.quantize(z, "nvfp4")
    assert qz.tensor_scale == np.float32(1)
    _, _, st_t = torchao_nvfp4(z, 0.0)
    assert st_t == 0
    assert (qz.dequantize() == 0).all()


def test_ue4m3_codec_is_positive_e4m3():
    codes = np.arange(128, dtype=np.uint8)
    ref = codes.view(ml_dtypes.float8_e4m3fn).astype(np.float64)
    got = ELEMENT_FORMATS["ue4m3"].decode(codes)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
    np.testing.assert_array_equal(got[~np.isnan(got)], ref[~np.isnan(ref)])

"""Hypothesis property tests: shapes, dtypes, block sizes, LUT-vs-exact equivalence,
symmetries, and pack/unpack round trips (numerics §1-§10)."""

from __future__ import annotations

import numpy as np
import pytest
from golden_testlib import BF16, FLOAT_DTYPES, rne_nearest, to_dtype
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from semdialect import golden as G

# per-test settings (no global profile: other test packages share the process)
GOLDEN = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

SIGN_BIT = {"mxfp4": 8, "mxfp6_e2m3": 32, "mxfp6_e3m2": 32, "mxfp8_e4m3": 128,
            "mxfp8_e5m2": 128, "nvfp4": 8, "int4": 8, "dialectfp4": 8, "semdialect": 8}
SCALE_FREE = ["mxfp4", "mxfp6_e2m3", "mxfp6_e3m2", "mxfp8_e4m3", "mxfp8_e5m2", "mxint8",
              "dialectfp4", "semdialect"]


@st.composite
def tensors(draw, block=None, dtype=None, finite=True):
    dtype = np.dtype(draw(st.sampled_from(FLOAT_DTYPES)) if dtype is None else dtype)
    k = draw(st.sampled_from([1, 2, 8, 16, 32, 64])) if block is None else block
    lead = draw(st.lists(st.integers(1, 3), min_size=0, max_size=2))
    nb = draw(st.integers(1, 4))
    shape = (*lead, nb * k)
    # heavy-tailed magnitudes over the dtype's range, with exact zeros and -0
    n = int(np.prod(shape))
    hi = {np.dtype(np.float16): 15}.get(dtype, 120)
    mant = draw(hnp.arrays(np.float64, n, elements=st.floats(-2, 2, allow_nan=False)))
    ex = draw(hnp.arrays(np.int64, n, elements=st.integers(-hi, hi)))
    ex = ex // draw(st.sampled_from([1, 4, 64]))
    with np.errstate(over="ignore", under="ignore"):
        x = to_dtype(np.ldexp(mant, ex), dtype)
    if not finite:
        specials = draw(hnp.arrays(np.int64, n, elements=st.integers(0, 40)))
        x = x.astype(np.float32)
        x[specials == 0] = np.nan
        x[specials == 1] = np.inf
        x[specials == 2] = -np.inf
        x = to_dtype(x, dtype)
    x = np.where(np.isfinite(x.astype(np.float32)) | (not finite), x, to_dtype(0, dtype))
    return x.reshape(shape).astype(dtype), k


@GOLDEN
@given(tensors(), st.sampled_from(SCALE_FREE))
def test_shapes_dtypes_and_dtype_independence(xk, fmt):
    x, k = xk
    qt = G.quantize(x, fmt, block_size=k)
    assert qt.codes.shape == x.shape and qt.codes.dtype == np.uint8
    assert qt.scales.shape == (*x.shape[:-1], x.shape[-1] // k)
    assert qt.scales.dtype == np.uint8
    if qt.dialects is not None:
        assert qt.dialects.shape == qt.scales.shape
    # widening to float32 is exact: same result from the float32 copy
    q32 = G.quantize(x.astype(np.float32), fmt, block_size=k)
    np.testing.assert_array_equal(qt.codes, q32.codes)
    np.testing.assert_array_equal(qt.scales, q32.scales)
    deq = qt.dequantize()
    assert deq.shape == x.shape and np.isfinite(deq).all()
    # blocks are independent: quantizing one block alone gives the same bits
    flat = x.reshape(-1, k)
    one = G.quantize(np.ascontiguousarray(flat[-1:]), fmt, block_size=k)
    np.testing.assert_array_equal(one.codes[0], qt.codes.reshape(-1, k)[-1])


@GOLDEN
@given(tensors(), st.sampled_from([f for f in SCALE_FREE if f != "mxint8"]))
def test_sign_symmetry(xk, fmt):
    x, k = xk
    q = G.quantize(x, fmt, block_size=k)
    n = G.quantize(-x, fmt, block_size=k)
    np.testing.assert_array_equal(n.codes, q.codes ^ SIGN_BIT[fmt])
    np.testing.assert_array_equal(n.scales, q.scales)


@GOLDEN
@given(tensors(dtype=np.float32), st.sampled_from(SCALE_FREE), st.integers(-20, 20))
def test_power_of_two_equivariance(xk, fmt, s):
    """x * 2^s: same codes, scale + s, while no block hits the scale clamp."""
    x, k = xk
    q = G.quantize(x, fmt, block_size=k)
    e = q.scales.astype(np.int64) - 127
    xs = np.ldexp(x.astype(np.float64), s).astype(np.float32)
    assume((np.abs(e + s) <= 100).all() and (e > -100).all())
    assume((xs.astype(np.float64) == np.ldexp(x.astype(np.float64), s)).all())
    qs = G.quantize(xs, fmt, block_size=k)
    np.testing.assert_array_equal(qs.codes, q.codes)
    np.testing.assert_array_equal(qs.scales.astype(np.int64), q.scales.astype(np.int64) + s)


@GOLDEN
@given(tensors(), st.sampled_from(["semdialect-32", "dialectfp4"]),
       st.sampled_from(["lut", "mse", "two-stage"]), st.integers(1, 6))
def test_dialect_codes_are_exact_rne(xk, book_name, selector, f):
    """Whatever the selector picks, the codes are the exact RNE of the chosen dialect and
    dequantize = level * 2^e with the input's sign."""
    x, k = xk
    assume(selector != "two-stage" or book_name == "dialectfp4")
    book = G.load_formatbook(book_name)
    opts = {"frac_bits": f} if selector == "lut" else {}
    qt = G.quantize(x, "semdialect", formatbook=book_name, selector=selector,
                    block_size=k, **opts)
    xb = x.astype(np.float64).reshape(-1, k)
    e = qt.scales.reshape(-1).astype(np.int64) - 127
    vn = np.abs(xb) * np.ldexp(1.0, -e)[:, None]
    d = qt.dialects.reshape(-1).astype(np.int64)
    idx = rne_nearest(book.values[d], vn)
    np.testing.assert_array_equal(qt.codes.reshape(-1, k), idx | (np.signbit(xb) << 3))
    deq = qt.dequantize().astype(np.float64).reshape(-1, k)
    mag = book.values[d[:, None], idx] * np.ldexp(1.0, e)[:, None]
    want = np.where(np.signbit(xb), -1, 1) * mag
    np.testing.assert_array_equal(deq, want)


@GOLDEN
@given(tensors(), st.integers(1, 6))
def test_lut_selection_close_to_exact(xk, f):
    """The LUT-selected dialect's exact error is within the LUT's resolution of the best:
    at F = 6 with unsaturated entries, never worse than the MSE choice by more than the
    per-element estimate slack (k * 2^-2F * 8^2 is a loose, always-true bound)."""
    x, k = xk
    lut = G.quantize(x, "semdialect", selector="lut", frac_bits=f, err_bits=24, block_size=k)
    mse = G.quantize(x, "semdialect", selector="mse", block_size=k)
    book = G.load_formatbook("semdialect-32")
    xb = x.astype(np.float64).reshape(-1, k)
    e = lut.scales.reshape(-1).astype(np.int64) - 127
    vn = np.abs(xb) * np.ldexp(1.0, -e)[:, None]

    def err(q):
        d = q.dialects.reshape(-1)
        return ((vn - book.values[d][np.arange(len(d))[:, None], rne_nearest(
            book.values[d], vn)]) ** 2).sum(1)

    el, em = err(lut), err(mse)
    assert (em <= el + 1e-12).all()  # mse is the true optimum
    # per element the LUT estimate is off by less than (2 * 8 * 2^-F)
    assert (el - em <= k * 2 * 2 * 8 * 2.0**-f + 1e-9).all()


@GOLDEN
@given(tensors(dtype=np.float32), st.sampled_from([1.0, 1e3, 1e6, 3e38]))
def test_int4_scale_is_finite_and_saturating(xk, gain):
    """§6: the fp16 scale saturates at 65504 instead of becoming Inf."""
    x, k = xk
    x = np.clip(x.astype(np.float64) * gain, -3e38, 3e38).astype(np.float32)
    qt = G.quantize(x, "int4", block_size=k)
    s = qt.scales.view(np.float16).astype(np.float32)
    assert np.isfinite(s).all() and (s <= 65504).all()
    deq = qt.dequantize()
    assert np.isfinite(deq).all()
    big = np.abs(x).reshape(-1, k).max(-1) > 7 * 65504
    assert (np.abs(deq.reshape(-1, k)[big]).max(-1) == np.float32(7 * 65504)).all()


@GOLDEN
@given(tensors(finite=False), st.sampled_from(SCALE_FREE))
def test_nonfinite_blocks_are_nan_and_others_untouched(xk, fmt):
    x, k = xk
    qt = G.quantize(x, fmt, block_size=k)
    bad = ~np.isfinite(x.astype(np.float32).reshape(-1, k)).all(-1)
    deq = qt.dequantize().reshape(-1, k)
    assert np.isnan(deq[bad]).all()
    assert np.isfinite(deq[~bad]).all()
    assert (qt.codes.reshape(-1, k)[bad] == 0).all()
    if (~bad).any():
        clean = x.reshape(-1, k)[~bad]
        qc = G.quantize(np.ascontiguousarray(clean), fmt, block_size=k)
        np.testing.assert_array_equal(qc.codes, qt.codes.reshape(-1, k)[~bad])


@GOLDEN
@given(tensors(block=16, finite=False))
def test_nvfp4_shapes_and_nan_blocks(xk):
    x, _ = xk
    qt = G.quantize(x, "nvfp4")
    bad = ~np.isfinite(x.astype(np.float32).reshape(-1, 16)).all(-1)
    assert (qt.scales.reshape(-1)[bad] == 0x7F).all()
    assert (qt.scales.reshape(-1)[~bad] <= 0x7E).all()
    assert np.isnan(qt.dequantize().reshape(-1, 16)[bad]).all()


# --------------------------------------------------------------------------- packing ---

def _ref_pack(codes: np.ndarray, bits: int) -> np.ndarray:
    """Python-int little-endian bit stream, element 0 at bit 0 (§10)."""
    out = []
    for row in codes.reshape(-1, codes.shape[-1]):
        acc = 0
        for i, c in enumerate(row.tolist()):
            acc |= int(c) << (i * bits)
        nbytes = len(row) * bits // 8
        out.append(list(acc.to_bytes(nbytes, "little")))
    return np.array(out, dtype=np.uint8).reshape(*codes.shape[:-1], -1)


@GOLDEN
@given(st.sampled_from([4, 6, 8]), st.integers(1, 3), st.integers(1, 12), st.data())
def test_pack_unpack_roundtrip(bits, rows, groups, data):
    n = groups * (4 if bits == 6 else 2)
    codes = data.draw(hnp.arrays(np.uint8, (rows, n), elements=st.integers(0, (1 << bits) - 1)))
    packed = G.pack_codes(codes, bits)
    assert packed.shape == (rows, n * bits // 8)
    np.testing.assert_array_equal(packed, _ref_pack(codes, bits))
    np.testing.assert_array_equal(G.unpack_codes(packed, bits, n), codes)


@GOLDEN
@given(st.integers(1, 4), st.integers(1, 8), st.data())
def test_pack4_matches_torchao_pack_uint4(rows, pairs, data):
    torch = pytest.importorskip("torch")
    from torchao.prototype.mx_formats.kernels import pack_uint4, unpack_uint4

    codes = data.draw(hnp.arrays(np.uint8, (rows, 2 * pairs), elements=st.integers(0, 15)))
    ref = pack_uint4(torch.from_numpy(codes)).numpy()
    np.testing.assert_array_equal(G.pack_codes(codes, 4), ref)
    assert (ref[..., 0] & 0xF == codes[..., 0]).all()  # element 0 in the low nibble
    np.testing.assert_array_equal(
        unpack_uint4(torch.from_numpy(G.pack_codes(codes, 4))).numpy(), codes
    )


@pytest.mark.parametrize("fmt", ["mxfp4", "mxfp6_e3m2", "mxfp8_e4m3", "semdialect", "nvfp4"])
def test_quantized_tensor_pack(fmt):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 64)).astype(BF16)
    qt = G.quantize(x, fmt)
    p = qt.pack()
    assert p.shape == (3, 64 * qt.code_bits // 8)
    np.testing.assert_array_equal(G.unpack_codes(p, qt.code_bits, 64), qt.codes)

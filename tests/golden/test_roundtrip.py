"""Decode -> encode round trips over every code of every element and block format,
including every (dialect, index) of both shipped formatbooks (numerics §2-§9)."""

from __future__ import annotations

import numpy as np
import pytest

from semdialect import golden as G
from semdialect.golden.elements import ELEMENT_FORMATS
from semdialect.golden.scalar_formats import MX_FORMATS


@pytest.mark.parametrize("name", list(ELEMENT_FORMATS))
def test_element_decode_encode_every_code(name):
    elem = ELEMENT_FORMATS[name]
    codes = np.arange(1 << elem.bits)
    vals = elem.decode(codes)
    nan = np.isnan(vals)
    if name == "int8":
        nan = codes == 0x80  # -2.0: never produced (§4), encodes to -127/64
        assert elem.encode(vals[nan])[0] == 0x81
    inf = np.isinf(vals)  # E5M2 +-Inf: saturate to +-max (satfinite, §3)
    if inf.any():
        np.testing.assert_array_equal(elem.encode(vals[inf]), codes[inf] - 1)
    nan |= inf
    np.testing.assert_array_equal(elem.encode(vals[~nan]), codes[~nan])
    # as float32 too (every element value is a float32)
    np.testing.assert_array_equal(elem.encode(vals[~nan].astype(np.float32)), codes[~nan])


@pytest.mark.parametrize("fmt", list(MX_FORMATS))
@pytest.mark.parametrize("e", [-127, -100, -3, 0, 5, 120, 127 - 8])
def test_mx_block_every_code(fmt, e):
    """Blocks [top code, every code...] scaled by 2^e: quantize(dequantized) gives the
    same scale and codes back."""
    elem = MX_FORMATS[fmt].elem
    codes = np.arange(1 << elem.bits)
    vals = elem.decode(codes)
    ok = ~np.isnan(vals) & (np.abs(vals) != np.inf)
    if fmt == "mxint8":
        ok &= codes != 0x80
    codes = codes[ok]
    top = int(elem.encode(np.array([elem.max_value]))[0])
    body = np.concatenate([codes, np.zeros((-len(codes)) % 31, dtype=codes.dtype)])
    body = body.reshape(-1, 31)
    cb = np.concatenate([np.full((len(body), 1), top), body], axis=1).astype(np.uint8)
    if e + elem.emax > 127:
        pytest.skip("scale out of range")
    x = np.ldexp(elem.decode(cb), e).astype(np.float32)
    assert (np.ldexp(x.astype(np.float64), -e) == elem.decode(cb)).all()  # exact input
    qt = G.quantize(x, fmt)
    assert (qt.scales == e + 127).all()
    np.testing.assert_array_equal(qt.codes, cb)
    np.testing.assert_array_equal(qt.dequantize(), x)


def test_nvfp4_every_code_every_block_scale():
    """s_t = 1 (tensor amax 2688); blocks [6 * s_b, every E2M1 code] for every finite
    normal UE4M3 block scale s_b: codes and scales come back. (Subnormal block scales are
    never produced: the block scale is clamped at 2^-6 = 0x08, numerics §5.)"""
    sbs = np.arange(0x08, 0x7F)
    e2m1 = np.arange(16)
    rows = []
    for _sb in sbs:
        rows.append(np.concatenate([[7], e2m1[:15]]))
        rows.append(np.concatenate([[15], e2m1[15:], e2m1[:14]]))
    cb = np.array(rows, dtype=np.uint8)
    scale = G.UE4M3.decode(np.repeat(sbs, 2))
    x = (G.E2M1.decode(cb) * scale[:, None]).astype(np.float32)
    x = x.reshape(-1, 32)
    qt = G.quantize(x, "nvfp4", tensor_amax=2688.0)
    assert qt.tensor_scale == np.float32(1)
    np.testing.assert_array_equal(qt.scales.reshape(-1), np.repeat(sbs, 2))
    np.testing.assert_array_equal(qt.codes.reshape(-1, 16), cb)
    np.testing.assert_array_equal(qt.dequantize(), x)


def test_int4_every_code_every_fp16_scale():
    s16 = np.arange(0x0001, 0x7C00, 97, dtype=np.uint16)  # finite positive fp16 scales
    s = s16.view(np.float16).astype(np.float64)
    mags = np.array([7, 0, 1, 2, 3, 4, 5, 6, 7, 1, 2, 3, 4, 5, 6, 7] * 2, dtype=np.float64)
    sign = np.array([0] * 9 + [1] * 7 + [0] * 16)
    sign[16:] = 1 - sign[16:]
    cb = (sign << 3 | mags.astype(np.int64)).astype(np.uint8)
    x = (np.where(sign, -mags, mags)[None, :] * s[:, None]).astype(np.float32)
    assert (x.astype(np.float64) == np.where(sign, -mags, mags)[None, :] * s[:, None]).all()
    qt = G.quantize(x, "int4")
    np.testing.assert_array_equal(qt.scales[:, 0], s16)
    np.testing.assert_array_equal(qt.codes, np.broadcast_to(cb, x.shape))


def _dialect_blocks(book, d, e):
    """Blocks of dialect d: [top, every index with both signs...] * 2^e."""
    lev = book.values[d]
    idx = np.concatenate([np.arange(8), np.arange(8)])
    sign = np.repeat([0, 1], 8)
    body = np.tile(np.stack([idx, sign], -1), (2, 1))[:31]
    idx = np.concatenate([[7], body[:, 0]])
    sign = np.concatenate([[0], body[:, 1]])
    x = np.ldexp(np.where(sign, -lev[idx], lev[idx]), e).astype(np.float32)
    return x, (sign << 3 | idx).astype(np.uint8)


@pytest.mark.parametrize("book_name", ["semdialect-32", "dialectfp4"])
@pytest.mark.parametrize("selector", ["lut", "mse"])
def test_dialect_every_dialect_every_index(book_name, selector):
    """Every (dialect, index, sign): forced to its dialect the codes come back; left
    free, the selector finds a zero-error dialect and the values come back exactly."""
    book = G.load_formatbook(book_name)
    fmt = "semdialect" if book_name == "semdialect-32" else "dialectfp4"
    for e in (-127, -5, 0, 30, 124):
        xs, cs = zip(*(_dialect_blocks(book, d, e) for d in range(book.num_dialects)))
        x, c = np.stack(xs), np.stack(cs)
        ids = np.arange(book.num_dialects)
        mask = ids[:, None] == ids[None, :]
        qt = G.quantize(x, fmt, formatbook=book_name, selector=selector, allowed=mask)
        np.testing.assert_array_equal(qt.dialects[:, 0], ids)
        np.testing.assert_array_equal(qt.scales[:, 0], e + 127)
        np.testing.assert_array_equal(qt.codes, c)
        free = G.quantize(x, fmt, formatbook=book_name, selector=selector)
        np.testing.assert_array_equal(free.dequantize(), x)
        assert (free.dialects[:, 0] <= ids).all()  # ties to the lowest id


def test_dialectfp4_two_stage_roundtrips_pair_members():
    """The two-stage selector picks the pair by the block max, then the member; blocks
    made only of levels the pair shares plus the max come back exactly."""
    book = G.load_formatbook("dialectfp4")
    x = []
    for j in range(8):
        lev = book.values[2 * j]
        x.append(np.concatenate([[lev[7]], lev[:6], -lev[:6], np.zeros(19)]))
    x = np.array(x, dtype=np.float32)
    qt = G.quantize(x, "dialectfp4")
    np.testing.assert_array_equal(qt.dequantize(), x)
    np.testing.assert_array_equal(qt.dialects[:, 0] // 2, np.arange(8))

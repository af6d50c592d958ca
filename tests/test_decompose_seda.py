"""Activation decomposition (numerics §13) and SeDA sub-formatbooks (§14)."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

import semdialect.golden as g
from semdialect.golden.datasets import synthetic
from semdialect.golden.decompose import (
    quantize_decomposed,
    salient_from_attention,
    salient_from_qk,
)
from semdialect.golden.dialects import lut_block_errors, normalize_blocks
from semdialect.golden.evaluate import sqnr_db
from semdialect.golden.lut import build_luts
from semdialect.golden.seda import (
    anchor_groups_from_attention,
    dialect_consistency,
    profile_sub_formatbook,
    quantize_seda,
)


def _attention(t=64, h=2, d=8, seed=0):
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((h, t, d))
    k = q + 0.3 * rng.standard_normal((h, t, d))
    logits = np.einsum("hqd,hkd->hqk", q, k) / np.sqrt(d)
    p = np.exp(logits - logits.max(-1, keepdims=True))
    return q, k, p / p.sum(-1, keepdims=True)


def test_salient_from_qk_matches_probabilities():
    q, k, p = _attention()
    a = salient_from_attention(p, 0.25)
    b = salient_from_qk(q, k, 0.25, chunk=7)  # chunking must not change the answer
    assert a.sum() == 16 and np.array_equal(a, b)
    score = p.sum(axis=(0, 1))
    assert score[a].min() >= score[~a].max()


@pytest.mark.parametrize("dtype", [np.float32, np.float16, ml_dtypes.bfloat16])
def test_decomposition_adds_back_the_quantized_residual(dtype):
    x = synthetic("student_t3", (32, 256), seed=4).astype(dtype)
    sal = np.zeros(32, bool)
    sal[[1, 5, 9]] = True
    d = quantize_decomposed(x, "semdialect", sal)
    x32 = x.astype(np.float32)
    base = g.quantize(x, "semdialect").dequantize()
    resid = (x32[sal] - base[sal]).astype(dtype)
    expect = base.copy()
    expect[sal] += g.quantize(resid, "semdialect").dequantize()
    assert np.array_equal(d.dequantize(), expect)
    # non-salient rows are untouched; salient rows get strictly better
    assert np.array_equal(d.dequantize()[~sal], base[~sal])
    assert sqnr_db(x32[sal], d.dequantize()[sal]) > sqnr_db(x32[sal], base[sal]) + 10
    # 3 salient of 32 rows: an index list (3 x 5 bits) is cheaper than 32 flag bits
    assert d.row_index_bits == 15
    rows_bits = d.residual.bits_per_element * 3 / 32 + 15 / (32 * 256)
    assert d.bits_per_element == pytest.approx(4.40625 + rows_bits)


def test_decomposition_with_no_salient_rows_is_plain_quantization():
    x = synthetic("gaussian", (8, 64)).astype(np.float32)
    d = quantize_decomposed(x, "mxfp4", np.zeros(8, bool))
    assert d.residual is None
    assert np.array_equal(d.dequantize(), g.quantize(x, "mxfp4").dequantize())
    with pytest.raises(ValueError, match="salient mask must have shape"):
        quantize_decomposed(x, "mxfp4", np.zeros(7, bool))
    with pytest.raises(ValueError, match="out of range"):
        quantize_decomposed(x, "mxfp4", [8])


def test_anchor_groups():
    _, _, p = _attention(t=48)
    anchors, group = anchor_groups_from_attention(p, 4)
    assert len(set(anchors.tolist())) == 4
    assert np.array_equal(group[anchors], np.arange(4))
    summed = p.sum(0)
    assert np.array_equal(group, np.where(np.isin(np.arange(48), anchors),
                                          group, np.argmax(summed[:, anchors], axis=1)))
    with pytest.raises(ValueError, match="n_anchors"):
        anchor_groups_from_attention(p, 0)


def test_sub_formatbook_is_greedy_optimal_first_pick():
    x = synthetic("laplace", (1, 512), seed=2)
    sub = profile_sub_formatbook(x, 1)
    # with K = 1 the pick is the dialect with the lowest total LUT error on the anchor
    book = g.load_formatbook("semdialect-32")
    _, v, _ = normalize_blocks(book, x.reshape(-1, 32))
    assert sub[0] == np.argmin(lut_block_errors(build_luts(book), v).sum(0))
    sub8 = profile_sub_formatbook(x, 8)
    assert len(sub8) == 8 and np.all(np.diff(sub8) > 0) and sub[0] in sub8


def test_seda_blocks_choose_inside_their_sub_book():
    x = synthetic("channel_outlier", (48, 256), seed=5)
    _, _, p = _attention(t=48, seed=1)
    anchors, group = anchor_groups_from_attention(p, 3)
    r = quantize_seda(x, group, anchors, 4)
    d = r.qt.dialects.reshape(48, -1)
    for row in range(48):
        assert np.isin(d[row], r.sub_books[group[row]]).all()
    # same as the LUT engine with that allowed mask, block by block (SeDA runs the
    # exhaustive engine on semdialect-32, numerics §15.7)
    for row in (0, 17, 47):
        ref = g.quantize(x[row : row + 1], "semdialect", formatbook="semdialect-32",
                         allowed=r.sub_books[group[row]])
        assert np.array_equal(ref.codes[0], r.qt.codes[row])
        assert np.array_equal(ref.dialects[0], d[row])
    assert r.local_dialects.max() < 4
    # K = full book: identical to unconstrained exhaustive semdialect
    full = quantize_seda(x, group, anchors, 32)
    assert np.array_equal(full.qt.codes,
                          g.quantize(x, "semdialect", formatbook="semdialect-32").codes)
    assert r.bits_per_element < g.quantize(x, "semdialect").bits_per_element


def test_dialect_consistency():
    assert dialect_consistency(np.array([1, 2, 3, 4]), np.array([1, 2, 0, 4])) == 0.75
    with pytest.raises(ValueError, match="differ in shape"):
        dialect_consistency(np.zeros(3), np.zeros(4))


def test_seda_group_profile_uses_every_token_of_the_group():
    from semdialect.golden.seda import profile_rows

    x = synthetic("channel_outlier", (24, 64), seed=6)
    _, _, p = _attention(t=24, seed=2)
    anchors, group = anchor_groups_from_attention(p, 3)
    rows = profile_rows(x, group, anchors, "group")
    assert sum(len(r) for r in rows) == 24
    r = quantize_seda(x, group, anchors, 4, profile="group")
    for gi in range(3):
        assert np.array_equal(r.sub_books[gi], profile_sub_formatbook(x[group == gi], 4))
    a = quantize_seda(x, group, anchors, 4)  # default: the anchor alone
    for gi, an in enumerate(anchors):
        assert np.array_equal(a.sub_books[gi], profile_sub_formatbook(x[an : an + 1], 4))
    with pytest.raises(ValueError, match="profile"):
        profile_rows(x, group, anchors, "all")


def test_salient_index_bits_take_the_cheaper_encoding():
    from semdialect.golden.decompose import salient_index_bits

    assert salient_index_bits(128, 0) == 0
    assert salient_index_bits(128, 2) == 14  # 2 indices of 7 bits
    assert salient_index_bits(128, 64) == 128  # bitmap
    assert salient_index_bits(1, 1) == 1

"""The quality benchmark engine (golden/quality.py): sequences, methods, consistency."""

from __future__ import annotations

import numpy as np
import pytest

import semdialect.golden as g
from semdialect.golden.evaluate import evaluate
from semdialect.golden.quality import (
    MethodConfig,
    MethodResult,
    Sequence,
    quality_table,
    run_method,
    sequences_from_vectors,
)


def _qk_manifest(steps=3, tokens=64, channels=64, seed=0):
    """A manifest in the frontend's schema: one block with a linear input and its
    self-attention q/k per step, plus a cross-attention whose token count differs."""
    rng = np.random.default_rng(seed)
    tensors, entries = {}, {}
    base = rng.standard_normal((1, tokens, channels)).astype(np.float32)
    for s in range(steps):
        x = base + 0.05 * rng.standard_normal(base.shape).astype(np.float32)
        q = rng.standard_normal((1, 2, tokens, 8)).astype(np.float32)
        for name, arr, role in [
            (f"s{s:03d}/cond/blocks.0.attn1.to_q/in", x, "linear_input"),
            (f"s{s:03d}/cond/blocks.0.attn1/q", q, "attn_q"),
            (f"s{s:03d}/cond/blocks.0.attn1/k", q * 0.5, "attn_k"),
            (f"s{s:03d}/cond/blocks.0.attn2/q", q, "attn_q"),
            (f"s{s:03d}/cond/blocks.0.attn2/k", q[:, :, :5], "attn_k"),
            (f"s{s:03d}/cond/blocks.0.ffn.net.2/in", x[..., :48], "linear_input"),
        ]:
            tensors[name] = arr
            entries[name] = {"role": role, "shape": list(arr.shape), "dtype": "float32"}
    return tensors, {"tensors": entries}


def test_sequences_pair_linear_inputs_with_their_blocks_self_attention():
    tensors, manifest = _qk_manifest()
    seqs = sequences_from_vectors(tensors, manifest)
    # the ffn input has 48 channels (not a multiple of 32): skipped
    assert [s.name for s in seqs] == ["blocks.0.attn1.to_q/cond"]
    s = seqs[0]
    assert s.steps == [0, 1, 2] and s.attention_source == "captured"
    for i, (q, k) in enumerate(s.attn):
        assert q.shape == (2, 64, 8)  # batch merged into heads
        assert np.array_equal(q, tensors[f"s{i:03d}/cond/blocks.0.attn1/q"].reshape(2, 64, 8))
        assert np.array_equal(k, q * 0.5)  # attn1, not the cross-attention attn2


def test_baseline_rows_equal_plain_quantization():
    x = np.random.default_rng(3).standard_normal((64, 128)).astype(np.float32)
    rows = evaluate([("d", x)], ["mxfp4", "semdialect"])
    for r in rows:
        qt = g.quantize(x, r["format"])
        d = qt.dequantize().astype(np.float64)
        expect = 10 * np.log10((x.astype(np.float64) ** 2).sum() / ((x - d) ** 2).sum())
        assert r["sqnr_db"] == pytest.approx(expect, abs=1e-4)
        assert r["bits_per_element"] == pytest.approx(qt.bits_per_element, abs=1e-5)
        assert r["consistency"] is None


def test_consistency_counts_unchanged_codes_between_steps():
    x = np.random.default_rng(4).standard_normal((32, 64)).astype(np.float32)
    y = x.copy()
    y[0, :8] *= 3  # changes a few codes of the first block only
    seq = Sequence("l", [0, 1], [x, y], [None, None])
    acc = MethodResult()
    run_method("mxfp4", seq, MethodConfig(), acc)
    c0, c1 = g.quantize(x, "mxfp4").codes, g.quantize(y, "mxfp4").codes
    assert acc.compared == x.size
    assert acc.same_codes == int((c0 == c1).sum()) < x.size
    same = quality_table([("d", [Sequence("l", [0, 1], [x, x], [None, None])])],
                         ["semdialect-seda"])
    assert same[0]["consistency"] == 1.0


@pytest.mark.parametrize("method", ["semdialect-decomp", "semdialect-seda",
                                    "semdialect-full"])
def test_methods_run_on_captured_layout(method):
    tensors, manifest = _qk_manifest()
    seqs = sequences_from_vectors(tensors, manifest)
    base = quality_table([("d", seqs)], ["semdialect"])[0]
    r = quality_table([("d", seqs)], [method], MethodConfig(top_frac=0.25, n_anchors=4,
                                                            k_sub=4))[0]
    assert r["format"] == method and 0 <= r["consistency"] <= 1
    if method == "semdialect-decomp":
        # a quarter of the tokens get a residual pass: better SQNR, more bits
        assert r["sqnr_db"] > base["sqnr_db"] + 1
        assert r["bits_per_element"] > base["bits_per_element"]
    if method == "semdialect-seda":
        # 4 of 32 dialects per group: close to, but not above, the whole book here
        assert base["sqnr_db"] - 3 < r["sqnr_db"] < base["sqnr_db"] + 0.5

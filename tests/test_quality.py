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
    assert s.steps == [0, 1, 2] and s.attention_source == "self:blocks.0.attn1"
    for i, ref in enumerate(s.attn):
        q, k = ref.q, ref.k
        assert ref.mode == "self" and ref.span is None
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


def _joint_manifest(text=4, image=12, channels=32, seed=1):
    """A Flux-layout export: double-stream block (image + text stream Linears, joint q/k
    text-first), single-stream block (Linears over the concatenation), Wan-like
    cross-attention (video queries, text keys) in another block."""
    rng = np.random.default_rng(seed)
    t = text + image
    tensors, entries = {}, {}

    def put(name, arr, role):
        tensors[name] = arr.astype(np.float32)
        entries[name] = {"role": role, "shape": list(arr.shape), "dtype": "float32"}

    for s in range(2):
        p = f"s{s:03d}/cond/"
        put(p + "transformer_blocks.0.attn.to_q/in", rng.standard_normal((1, image, channels)),
            "linear_input")
        put(p + "transformer_blocks.0.attn.add_q_proj/in",
            rng.standard_normal((1, text, channels)), "linear_input")
        put(p + "transformer_blocks.0.ff_context.net.2/in",
            rng.standard_normal((1, text, channels)), "linear_input")
        put(p + "transformer_blocks.0.attn/q", rng.standard_normal((1, 2, t, 8)), "attn_q")
        put(p + "transformer_blocks.0.attn/k", rng.standard_normal((1, 2, t, 8)), "attn_k")
        put(p + "single_transformer_blocks.0.proj_mlp/in", rng.standard_normal((1, t, channels)),
            "linear_input")
        put(p + "single_transformer_blocks.0.attn/q", rng.standard_normal((1, 2, t, 8)),
            "attn_q")
        put(p + "single_transformer_blocks.0.attn/k", rng.standard_normal((1, 2, t, 8)),
            "attn_k")
        put(p + "blocks.0.attn2.to_k/in", rng.standard_normal((1, text, channels)),
            "linear_input")
        put(p + "blocks.0.attn2.to_q/in", rng.standard_normal((1, image, channels)),
            "linear_input")
        put(p + "blocks.0.attn2/q", rng.standard_normal((1, 2, image, 8)), "attn_q")
        put(p + "blocks.0.attn2/k", rng.standard_normal((1, 2, text, 8)), "attn_k")
        put(p + "proj_out/in", rng.standard_normal((1, image, channels)), "linear_input")
    manifest = {"source": {"kind": "model", "name": "mmdit-tiny",
                           "model_class": "FluxTransformer2DModel"}, "tensors": entries}
    return tensors, manifest


def test_joint_and_cross_attention_sources():
    from semdialect.golden.quality import attention_probs, token_attention

    tensors, manifest = _joint_manifest()
    seqs = {s.name: s for s in sequences_from_vectors(tensors, manifest)}
    src = {n: s.attention_source for n, s in seqs.items()}
    # text first (diffusers' Flux: cat([encoder_query, query])): image rows/cols 4..16
    assert src["transformer_blocks.0.attn.to_q/cond"] == "joint[4:16]:transformer_blocks.0.attn"
    assert src["transformer_blocks.0.attn.add_q_proj/cond"] == \
        "joint[0:4]:transformer_blocks.0.attn"
    assert src["transformer_blocks.0.ff_context.net.2/cond"] == \
        "joint[0:4]:transformer_blocks.0.attn"
    assert src["single_transformer_blocks.0.proj_mlp/cond"] == \
        "joint[0:16]:single_transformer_blocks.0.attn"
    assert src["blocks.0.attn2.to_k/cond"] == "cross-keys:blocks.0.attn2"
    # video queries with no self-attention in the block: co-attention P P^T
    assert src["blocks.0.attn2.to_q/cond"] == "cross-queries:blocks.0.attn2"
    assert src["proj_out/cond"] == "self-similarity"
    # the sliced probabilities are the joint softmax's image rows/columns (not renormalized)
    s = seqs["transformer_blocks.0.attn.to_q/cond"]
    ref = s.attn[0]
    full = attention_probs(ref.q, ref.k)
    a = token_attention(s.x[0], ref)
    assert a.shape == (2, 12, 12) and np.array_equal(a, full[:, 4:, 4:])
    assert np.all(a.sum(-1) < 1)
    # cross-keys: A = P^T P; its column sums are the attention mass each text token gets
    s = seqs["blocks.0.attn2.to_k/cond"]
    a = token_attention(s.x[0], s.attn[0])
    p = attention_probs(s.attn[0].q, s.attn[0].k)
    assert a.shape == (2, 4, 4)
    assert np.allclose(a.sum(1), p.sum(1), rtol=1e-12)
    # the methods run on every kind of source
    rows = quality_table([("d", list(seqs.values()))], ["semdialect-full", "mxfp4"],
                         MethodConfig(top_frac=0.25, n_anchors=2, k_sub=4))
    assert rows[0]["attention"] == {"joint": 4, "cross-keys": 1, "cross-queries": 1,
                                    "self-similarity": 1}
    assert rows[1]["dialect_consistency"] is None and rows[1]["anchor_dialect_consistency"] \
        is None


def test_wan_cross_attention_queries_use_the_blocks_self_attention():
    tensors, manifest = _qk_manifest()
    for s in range(3):  # a cross-attention in the same block: attn2 (64 queries, 5 keys)
        x = np.ones((1, 64, 64), np.float32)
        tensors[f"s{s:03d}/cond/blocks.0.attn2.to_q/in"] = x
        manifest["tensors"][f"s{s:03d}/cond/blocks.0.attn2.to_q/in"] = {
            "role": "linear_input", "shape": [1, 64, 64], "dtype": "float32"}
    seqs = {s.name: s for s in sequences_from_vectors(tensors, manifest)}
    assert seqs["blocks.0.attn2.to_q/cond"].attention_source == "self:blocks.0.attn1"


def test_anchor_and_dialect_consistency_fields():
    x = np.random.default_rng(5).standard_normal((16, 64)).astype(np.float32)
    y = x.copy()
    y[3] = x[0]  # token 3 equals token 0
    seq = Sequence("l", [0, 1], [y, y], [None, None])
    acc = MethodResult()
    run_method("semdialect", seq, MethodConfig(n_anchors=2), acc)
    r = acc.row("semdialect", "d")
    assert r["consistency"] == 1.0 and r["dialect_consistency"] == 1.0
    # recompute by hand: non-anchor tokens vs their anchor, per block
    from semdialect.golden.quality import token_attention
    from semdialect.golden.seda import anchor_groups_from_attention

    anchors, group = anchor_groups_from_attention(token_attention(y, None), 2)
    qt = g.quantize(y, "semdialect")
    d = qt.dialects.reshape(16, -1)
    mem = ~np.isin(np.arange(16), anchors)
    expect = np.mean(d[mem] == d[anchors[group]][mem])
    assert r["anchor_dialect_consistency"] == pytest.approx(expect, abs=1e-5)
    # SeDA confines a group to K dialects: token-vs-anchor agreement can only grow here
    acc2 = MethodResult()
    run_method("semdialect-seda", seq, MethodConfig(n_anchors=2, k_sub=1), acc2)
    assert acc2.row("s", "d")["anchor_dialect_consistency"] == 1.0

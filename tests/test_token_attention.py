"""Salient tokens and anchors in row blocks (golden.token_attention) are bit-identical to
the whole-matrix computation, for every attention source, and plain formats never
touch the attention in `eval`."""

from __future__ import annotations

import numpy as np
import pytest

from semdialect.golden import quality as Q
from semdialect.golden.decompose import salient_from_attention
from semdialect.golden.seda import anchor_groups_from_attention
from semdialect.golden.token_attention import TokenAttention
from tests.test_quality import _joint_manifest


def _all_sources():
    tensors, manifest = _joint_manifest(text=5, image=23, channels=32, seed=3)
    seqs = Q.sequences_from_vectors(tensors, manifest)
    out = [(s.x[0], s.attn[0]) for s in seqs]
    rng = np.random.default_rng(0)
    out.append((rng.standard_normal((37, 64)).astype(np.float32), None))  # self-similarity
    q = rng.standard_normal((3, 41, 16))
    out.append((rng.standard_normal((41, 32)), Q.AttnRef(q, q[:, ::-1] * 0.5, "self", "a")))
    return out


@pytest.mark.parametrize("chunk_bytes", [8, 8 * 7 * 3, 8 * 40 * 5, 1 << 30])
def test_chunked_equals_whole_matrix(chunk_bytes):
    modes = set()
    for x, ref in _all_sources():
        full = Q.token_attention(x, ref)
        ta = TokenAttention(x, ref, chunk_bytes)
        modes.add(ref.mode if ref else "self-similarity")
        t = full.shape[-1]
        score = full.reshape(-1, t).sum(axis=0)
        assert np.array_equal(ta.salient_score(), score)  # bit for bit
        for frac in (0.05, 0.25, 0.5):
            assert np.array_equal(Q._top_fraction(ta.salient_score(), frac),
                                  salient_from_attention(full, frac))
        for n in (1, 2, 3):
            a, g = ta.anchor_groups(n)
            ea, eg = anchor_groups_from_attention(full, n)
            assert np.array_equal(a, ea) and np.array_equal(g, eg) and g.dtype == eg.dtype
        # row blocks are the whole matrix's rows, bit for bit
        assert np.array_equal(ta.rows(0, full.shape[0], 1, min(4, t)), full[:, 1:min(4, t)])
    assert modes == {"joint", "self", "cross-keys", "cross-queries", "self-similarity"}


def test_quality_table_identical_in_row_blocks():
    tensors, manifest = _joint_manifest(text=5, image=23, channels=32, seed=3)
    methods = ["semdialect-full", "mxfp4"]  # full = decomposition + SeDA
    cfg = Q.MethodConfig(top_frac=0.2, n_anchors=2, k_sub=4)
    whole = Q.quality_table([("d", Q.sequences_from_vectors(tensors, manifest))], methods, cfg)
    blocks = Q.quality_table([("d", Q.sequences_from_vectors(tensors, manifest))], methods, cfg,
                             chunk_bytes=64)
    assert whole == blocks


def test_plain_formats_compute_no_attention(monkeypatch):
    tensors, manifest = _joint_manifest()
    seqs = Q.sequences_from_vectors(tensors, manifest)
    with_anchor = Q.quality_table([("d", seqs)], ["mxfp4", "semdialect"])

    def boom(*a, **k):
        raise AssertionError("attention computed for a plain format")

    monkeypatch.setattr(TokenAttention, "salient_score", boom)
    monkeypatch.setattr(TokenAttention, "anchor_groups", boom)
    seqs = Q.sequences_from_vectors(tensors, manifest)
    rows = Q.quality_table([("d", seqs)], ["mxfp4", "semdialect"], anchor_metrics=False)
    for r, w in zip(rows, with_anchor):
        assert r["anchor_code_consistency"] is None and r["anchor_dialect_consistency"] is None
        keep = {k: v for k, v in w.items() if not k.startswith("anchor_")}
        assert {k: v for k, v in r.items() if not k.startswith("anchor_")} == keep


def test_bf16_qk_kept_as_captured():
    """q/k stay in their captured dtype (no float32 copy): same results as converting."""
    import ml_dtypes

    tensors, manifest = _joint_manifest(text=5, image=23, channels=32, seed=3)
    bf = {k: (v.astype(ml_dtypes.bfloat16) if k.endswith(("/q", "/k")) else v)
          for k, v in tensors.items()}
    f32 = {k: v.astype(np.float32) for k, v in bf.items()}
    seqs = Q.sequences_from_vectors(bf, manifest)
    assert any(a is not None and a.q.dtype == ml_dtypes.bfloat16 for s in seqs for a in s.attn)
    cfg = Q.MethodConfig(top_frac=0.2, n_anchors=2, k_sub=4)
    assert Q.quality_table([("d", seqs)], ["semdialect-decomp"], cfg) == \
        Q.quality_table([("d", Q.sequences_from_vectors(f32, manifest))], ["semdialect-decomp"],
                        cfg)

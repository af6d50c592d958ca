"""Torch SemanticDialect methods (sw/methods.py) against the golden model, bit for bit."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
import torch

import semdialect.golden as g
from semdialect.golden import decompose as gd
from semdialect.golden import seda as gs
from semdialect.golden.datasets import synthetic
from semdialect.golden.quality import (
    AttnRef,
    MethodConfig,
    MethodResult,
    Sequence,
    run_method,
)
from semdialect.golden.quality import token_attention as g_token_attention
from semdialect.sw import methods as m

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
DTYPES = {"float32": (np.float32, torch.float32), "float16": (np.float16, torch.float16),
          "bfloat16": (ml_dtypes.bfloat16, torch.bfloat16)}


def _t(x: np.ndarray, dev="cpu") -> torch.Tensor:
    if x.dtype == ml_dtypes.bfloat16:
        return torch.from_numpy(x.view(np.int16).copy()).view(torch.bfloat16).to(dev)
    return torch.from_numpy(x.copy()).to(dev)


def _same_bits(a: torch.Tensor, b: np.ndarray) -> bool:
    a = a.detach().cpu().float().numpy()
    return a.shape == b.shape and np.array_equal(a.view(np.uint32), b.astype(np.float32)
                                                 .view(np.uint32))


def _qk(t=48, h=2, d=8, seed=0, tk=None):
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((h, t, d)).astype(np.float32)
    k = (rng.standard_normal((h, tk or t, d)) * 1.5).astype(np.float32)
    return q, k


@pytest.mark.parametrize("dev", DEVICES)
@pytest.mark.parametrize("mode", ["self", "joint", "cross-keys", "cross-queries", None])
def test_attention_selection_matches_golden(dev, mode):
    tk = 12 if mode and mode.startswith("cross") else None
    q, k = _qk(tk=tk)
    x = synthetic("laplace", (48 if mode != "cross-keys" else 12, 64), seed=1)
    if mode == "joint":
        x = x[:36]
    span = (12, 48) if mode == "joint" else None
    ref = AttnRef(q, k, mode, "a", span) if mode else None
    ga = g_token_attention(x, ref)
    ta = m.token_attention(_t(x, dev), *((_t(q, dev), _t(k, dev), mode, span) if mode else ()))
    assert ta.shape == ga.shape
    # torch and NumPy reduce the float64 q.k products in their own BLAS orders (which
    # also change with the thread count under pytest -n): the logits agree to ~1e-13,
    # and exp() turns that into a relative difference of up to ~1e-9 on probabilities
    # near 0 (measured 3.9e-10 once). The rankings below are compared exactly.
    np.testing.assert_allclose(ta.cpu().numpy(), ga, rtol=1e-8, atol=1e-15)
    for frac in (0.0, 0.1, 0.25, 1.0):
        assert np.array_equal(m.salient_from_attention(ta, frac).cpu().numpy(),
                              gd.salient_from_attention(ga, frac))
    for n in (1, 3, 8):
        an_t, gr_t = m.anchor_groups_from_attention(ta, n)
        an_g, gr_g = gs.anchor_groups_from_attention(ga, n)
        assert np.array_equal(an_t.cpu().numpy(), an_g)
        assert np.array_equal(gr_t.cpu().numpy(), gr_g)


@pytest.mark.parametrize("dev", DEVICES)
@pytest.mark.parametrize("k_sub", [1, 3, 8, 32])
def test_profile_sub_formatbook_matches_golden(dev, k_sub):
    for name, shape in [("laplace", (1, 512)), ("channel_outlier", (6, 256)),
                        ("student_t3", (2, 32))]:
        x = synthetic(name, shape, seed=k_sub)
        sub_t = m.profile_sub_formatbook(_t(x, dev), k_sub)
        assert np.array_equal(sub_t.cpu().numpy(), gs.profile_sub_formatbook(x, k_sub))


@pytest.mark.parametrize("dev", DEVICES)
@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("profile", ["anchor", "group"])
def test_seda_bit_identical(dev, dtype, profile):
    x = synthetic("channel_outlier", (40, 128), seed=3).astype(DTYPES[dtype][0])
    q, k = _qk(t=40, seed=4)
    p = g_token_attention(x.astype(np.float32), AttnRef(q, k, "self", "a"))
    anchors, group = gs.anchor_groups_from_attention(p, 5)
    gr = gs.quantize_seda(x, group, anchors, 4, profile=profile)
    tr = m.quantize_seda(_t(x, dev), torch.from_numpy(group), torch.from_numpy(anchors), 4,
                         profile=profile)
    assert np.array_equal(tr.sub_books.cpu().numpy(), gr.sub_books)
    assert np.array_equal(tr.qt.codes.cpu().numpy(), gr.qt.codes)
    assert np.array_equal(tr.qt.dialects.cpu().numpy(), gr.qt.dialects)
    assert np.array_equal(tr.qt.scales.cpu().numpy(), gr.qt.scales)
    assert _same_bits(tr.qt.dequantize(), gr.qt.dequantize())
    assert tr.bits_per_element == pytest.approx(gr.bits_per_element, abs=1e-12)


@pytest.mark.parametrize("dev", DEVICES)
@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("fmt", ["semdialect", "mxfp4", "nvfp4"])
def test_decomposition_bit_identical(dev, dtype, fmt):
    x = synthetic("student_t3", (32, 256), seed=7).astype(DTYPES[dtype][0])
    sal = np.zeros(32, bool)
    sal[[0, 3, 30]] = True
    gdt = gd.quantize_decomposed(x, fmt, sal)
    deq, bits = m.quantize_decomposed(_t(x, dev), fmt, torch.from_numpy(sal))
    assert _same_bits(deq, gdt.dequantize())
    assert bits == pytest.approx(gdt.bits_per_element, abs=1e-12)
    deq2, _ = m.quantize_decomposed(_t(x, dev), fmt, torch.tensor([30, 0, 3]))
    assert _same_bits(deq2, gdt.dequantize())
    none, nbits = m.quantize_decomposed(_t(x, dev), fmt, torch.zeros(32, dtype=torch.bool))
    assert _same_bits(none, g.quantize(x, fmt).dequantize())


@pytest.mark.parametrize("method", ["semdialect-decomp", "semdialect-seda",
                                    "semdialect-full"])
@pytest.mark.parametrize("profile", ["anchor", "group"])
def test_method_steps_match_the_golden_benchmark(method, profile):
    """Three steps with refresh 2: the torch state machine reproduces golden run_method."""
    rng = np.random.default_rng(9)
    base = synthetic("channel_outlier", (32, 64), seed=9)
    xs = [(base + 0.1 * rng.standard_normal(base.shape)).astype(np.float32)
          for _ in range(3)]
    refs = [AttnRef(*_qk(t=32, seed=s), "self", "a") for s in range(3)]
    cfg = MethodConfig(top_frac=0.1, n_anchors=4, k_sub=4, refresh=2, profile=profile)
    acc = MethodResult()
    run_method(method, Sequence("l", [0, 1, 2], xs, refs), cfg, acc)
    state, sig, noise, bits = {}, 0.0, 0.0, 0.0
    for i, (x, r) in enumerate(zip(xs, refs)):
        a = m.token_attention(_t(x), _t(r.q), _t(r.k), "self")
        deq, b = m.quantize_method(_t(x), method, a, cfg, state, step=i)
        x64 = x.astype(np.float64)
        sig += float((x64 ** 2).sum())
        noise += float(((x64 - deq.double().numpy()) ** 2).sum())
        bits += b * x.size
    assert sig == acc.sig and noise == acc.noise  # same dequantized values, bit for bit
    assert bits / (3 * xs[0].size) == pytest.approx(acc.bits / acc.n, abs=1e-12)


def test_e2e_runs_the_methods_on_a_tiny_model():
    from semdialect.sw.fakequant import e2e_table

    res = e2e_table("mmdit-tiny", ["semdialect", "semdialect-full"], steps=2)
    rows = {r["format"]: r for r in res["rows"]}
    assert res["weights"] == "random-init" and "RANDOM-WEIGHT" in res["label"]
    full = rows["semdialect-full"]
    assert full["latent_mse"] > 0 and np.isfinite(full["latent_psnr_db"])
    assert full["bits_per_element"] > rows["semdialect"]["bits_per_element"] - 0.2
    srcs = {s for r in res["per_layer"]["semdialect-full"].values()
            for s in r.get("attention", [])}
    # step 1 uses step 0's joint attention: image and text slices of the double block
    assert "joint:transformer_blocks.0.attn" in srcs and "self-similarity" in srcs

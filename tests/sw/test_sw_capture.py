"""Tiny capture of every architecture: export, load_vectors round trip, golden model."""

import numpy as np
import pytest
import torch

from semdialect import golden
from semdialect.sw import vectors as V
from semdialect.sw.capture import Capture, capture_model
from semdialect.sw.models import MODELS, build_model

ARCHS = [m for m in MODELS if not m.startswith("trained-")]  # random-init ones


@pytest.fixture(scope="module", params=ARCHS)
def captured(request, tmp_path_factory):
    name = request.param
    t, m = capture_model(name, steps=2, seed=1, max_tokens=16)
    V.add_expected(t, m, "semdialect")
    p = tmp_path_factory.mktemp(name) / f"{name}.safetensors"
    V.save_vectors(p, t, m)
    return name, t, m, p


def test_roundtrip_and_metadata(captured):
    name, t, m, p = captured
    t2, m2 = V.load_vectors(p)
    assert set(t2) == set(t)
    for k in t:
        assert t2[k].tobytes() == t[k].tobytes() and t2[k].dtype == t[k].dtype
    src = m2["source"]
    assert src["name"] == name and src["weights"] == "random-init"
    assert "RANDOM-WEIGHT" in src["label"]
    assert src["model_class"] == MODELS[name].cls_name and src["config"]
    roles = {v["role"] for v in m2["tensors"].values()}
    assert {"linear_input", "attn_q", "attn_k", "expected"} <= roles
    steps, branches = set(), set()
    for k in V.input_names(m2):
        e = m2["tensors"][k]
        assert e["model"] == name and e["layer"] and e["module_type"]
        assert e["dtype"] == "float32" and e["shape"] == list(t2[k].shape)
        assert e["timestep"] == pytest.approx(m2["run"]["timesteps"][e["step"]])
        steps.add(e["step"])
        branches.add(e["branch"])
        if e["role"] in ("attn_q", "attn_k"):
            assert t2[k].ndim == 4 and t2[k].shape[-2] <= 16
    assert steps == {0, 1} and branches == {"cond", "uncond"}


def test_every_linear_captured(captured):
    name, t, m, _ = captured
    lm = build_model(name, seed=1)
    linears = {n for n, mod in lm.module.named_modules() if isinstance(mod, torch.nn.Linear)}
    got = {e["layer"] for e in m["tensors"].values() if e["role"] == "linear_input"}
    # every Linear that ran is captured (some, e.g. unused image branches, never run)
    assert got <= linears and len(got) >= 0.8 * len(linears)


def test_golden_roundtrip(captured):
    name, t, m, p = captured
    t2, m2 = V.load_vectors(p)
    for k in V.input_names(m2)[:40]:
        x = t2[k]
        pad = -x.shape[-1] % 32
        if pad:
            x = np.concatenate([x, np.zeros(x.shape[:-1] + (pad,), x.dtype)], -1)
        qt = golden.quantize(x, "semdialect")
        np.testing.assert_array_equal(t2[V.expected_key(k, "semdialect", "codes")], qt.codes)
        np.testing.assert_array_equal(t2[V.expected_key(k, "semdialect", "dialects")],
                                      qt.dialects)
        deq = qt.dequantize()
        assert np.isfinite(deq).all()


def test_capture_is_deterministic():
    a, _ = capture_model("mmdit-tiny", steps=1, seed=3, max_tokens=8)
    b, _ = capture_model("mmdit-tiny", steps=1, seed=3, max_tokens=8)
    c, _ = capture_model("mmdit-tiny", steps=1, seed=4, max_tokens=8)
    assert all(a[k].tobytes() == b[k].tobytes() for k in a)
    assert any(a[k].tobytes() != c[k].tobytes() for k in a)


def test_layer_step_token_sampling():
    t, m = capture_model("wan-tiny", steps=3, layers=r"blocks\.1\.", capture_steps=[2],
                         max_tokens=10, guidance=1.0)
    assert t
    for k, e in m["tensors"].items():
        assert e["layer"].startswith("blocks.1.") and e["step"] == 2 and e["branch"] == "cond"
        assert t[k].shape[-2] <= 10 or t[k].ndim == 2
    t2, _ = capture_model("wan-tiny", steps=1, max_layers=3, qk=False)
    assert len({e["layer"] for e in _["tensors"].values()}) == 3


def test_bf16_capture_keeps_dtype(tmp_path):
    import ml_dtypes

    t, m = capture_model("mmdit-tiny", steps=1, dtype="bfloat16", max_tokens=8)
    p = tmp_path / "b.safetensors"
    V.save_vectors(p, t, m)
    t2, m2 = V.load_vectors(p)
    assert all(a.dtype == ml_dtypes.bfloat16 for a in t2.values())
    assert {e["dtype"] for e in m2["tensors"].values()} == {"bfloat16"}


def test_any_module_with_hooks():
    class Toy(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = torch.nn.Linear(32, 64)
            self.attn = torch.nn.Module()
            self.fc2 = torch.nn.Linear(64, 32)

        def forward(self, x):
            return self.fc2(torch.relu(self.fc1(x)))

    mod = Toy()
    cap = Capture(mod, max_tokens=4, model_name="toy")
    x = torch.randn(2, 7, 32)
    with cap:
        for step in range(2):
            with cap.context(step=step, timestep=500.0 * step, branch="cond"):
                mod(x)
    assert sorted(cap.tensors) == ["s000/cond/fc1/in", "s000/cond/fc2/in",
                                   "s001/cond/fc1/in", "s001/cond/fc2/in"]
    np.testing.assert_array_equal(cap.tensors["s000/cond/fc1/in"],
                                  x[:, [0, 2, 4, 6]].numpy())
    assert cap.meta["s001/cond/fc2/in"]["timestep"] == 500.0
    # hooks are removed on exit
    with torch.no_grad():
        mod(x)
    assert len(cap.tensors) == 4


def test_capture_limit_and_bad_regex():
    with pytest.raises(ValueError, match="exceed the limit"):
        capture_model("mmdit-tiny", steps=1, max_bytes=1000)
    with pytest.raises(ValueError, match="regex"):
        capture_model("mmdit-tiny", steps=1, layers="(")
    with pytest.raises(ValueError, match="no Linear"):
        capture_model("mmdit-tiny", steps=1, layers="^does-not-exist$")
    with pytest.raises(ValueError, match="unknown model"):
        capture_model("sora-huge", steps=1)
    # sdpa is restored even after an error inside the capture
    assert torch.nn.functional.scaled_dot_product_attention.__module__.startswith("torch")


def test_qk_matches_manual_attention():
    """The recorded q/k reproduce the attention output the model computed."""
    lm = build_model("mmdit-tiny", seed=0)
    cap = Capture(lm.module, layers=r"^transformer_blocks\.0\.attn$", model_name="m")
    outs = []
    orig = torch.nn.functional.scaled_dot_product_attention

    g = torch.Generator().manual_seed(0)
    x = torch.randn(lm.latent_shape(), generator=g)
    txt = lm.text(g, torch.float32)
    with cap, cap.context(0, 1000.0, "cond"), torch.no_grad():
        inner = torch.nn.functional.scaled_dot_product_attention

        def spy(query, key, value, *a, **kw):
            o = inner(query, key, value, *a, **kw)
            outs.append((query.clone(), key.clone(), value.clone(), o.clone()))
            return o

        torch.nn.functional.scaled_dot_product_attention = spy
        try:
            lm.predict(x, 1.0, txt)
        finally:
            torch.nn.functional.scaled_dot_product_attention = inner
    assert torch.nn.functional.scaled_dot_product_attention is orig
    q = cap.tensors["s000/cond/transformer_blocks.0.attn/q"]
    k = cap.tensors["s000/cond/transformer_blocks.0.attn/k"]
    q0, k0, v0, o0 = outs[0]
    np.testing.assert_array_equal(q, q0.numpy())
    np.testing.assert_array_equal(k, k0.numpy())
    p = torch.softmax(torch.from_numpy(q) @ torch.from_numpy(k).transpose(-1, -2)
                      / q.shape[-1] ** 0.5, -1)
    torch.testing.assert_close(p @ v0, o0, rtol=1e-4, atol=1e-5)

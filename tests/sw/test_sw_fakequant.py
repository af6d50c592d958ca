"""Fake-quant wrappers, per-layer SQNR and the end-to-end error table."""

import math

import numpy as np
import pytest
import torch

from semdialect import golden
from semdialect.sw.fakequant import FakeQuant, e2e_table, format_table


def _toy():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(48, 64), torch.nn.GELU(), torch.nn.Linear(64, 32))


def test_fakequant_matches_golden_and_restores():
    m = _toy()
    x = torch.randn(5, 48) * 3
    w0 = m[0].weight.detach().clone()
    with torch.no_grad():
        ref = m(x)
        with FakeQuant(m, "semdialect") as fq:
            out = m(x)
            # inside: the weight is the golden quantize-dequantize of the original
            np.testing.assert_array_equal(
                m[2].weight.numpy(),
                golden.quantize(m_w2 := fq._saved["2"].numpy(), "semdialect").dequantize())
        assert torch.equal(m[0].weight, w0) and not m[0]._forward_pre_hooks
        again = m(x)
    assert torch.equal(again, ref) and not torch.equal(out, ref)
    sq = fq.sqnr()
    # activation SQNR of layer 0 from the golden model (48 wide: zero-padded to 64)
    xp = np.concatenate([x.numpy(), np.zeros((5, 16), np.float32)], 1)
    xq = golden.quantize(xp, "semdialect").dequantize()[:, :48].astype(np.float64)
    xx = x.numpy().astype(np.float64)
    want = 10 * math.log10((xx**2).sum() / ((xx - xq) ** 2).sum())
    assert sq["0"]["act_sqnr_db"] == pytest.approx(want, rel=1e-9)
    wq = golden.quantize(m_w2, "semdialect").dequantize().astype(np.float64)
    w2 = m_w2.astype(np.float64)
    assert sq["2"]["weight_sqnr_db"] == pytest.approx(
        10 * math.log10((w2**2).sum() / ((w2 - wq) ** 2).sum()), rel=1e-9)
    assert sq["0"]["calls"] == 1


def test_fakequant_layer_filter_and_errors():
    m = _toy()
    with FakeQuant(m, "mxfp4", layers=r"^2$", weights=False) as fq:
        m(torch.randn(2, 48))
    assert list(fq.sqnr()) == ["2"] and "weight_sqnr_db" not in fq.sqnr()["2"]
    with pytest.raises(ValueError, match="no nn.Linear"):
        FakeQuant(m, "mxfp4", layers="nope")
    with pytest.raises(ValueError, match="unknown format"):
        with FakeQuant(m, "fp3"):
            pass
    assert torch.isfinite(m(torch.randn(2, 48))).all()


def test_e2e_table_mmdit():
    res = e2e_table("mmdit-tiny", ["mxfp4", "semdialect", "mxfp8_e4m3"], steps=2)
    assert "RANDOM-WEIGHT" in res["label"] and res["weights"] == "random-init"
    rows = {r["format"]: r for r in res["rows"]}
    for r in rows.values():
        assert r["latent_mse"] > 0 and math.isfinite(r["latent_psnr_db"])
        assert r["layers"] == len(res["per_layer"][r["format"]])
    # 8-bit elements must beat 4-bit ones end to end and per layer
    assert rows["mxfp8_e4m3"]["latent_mse"] < rows["mxfp4"]["latent_mse"]
    assert rows["mxfp8_e4m3"]["act_sqnr_mean_db"] > rows["mxfp4"]["act_sqnr_mean_db"] + 6
    assert rows["semdialect"]["bits_per_element"] == pytest.approx(4.40625)
    text = format_table(res)
    assert "RANDOM-WEIGHT" in text and "| semdialect |" in text


def test_e2e_rejects_unknown_format():
    with pytest.raises(ValueError, match="unknown format"):
        e2e_table("mmdit-tiny", ["fp3"], steps=1)

"""Torch reference quantizers vs the NumPy golden model: bit-exact (numerics §1-§9)."""

import ml_dtypes
import numpy as np
import pytest
import torch

from semdialect import golden
from semdialect.sw.quant import FORMATS, fake_quantize, quantize

NP = {torch.float32: np.float32, torch.float16: np.float16, torch.bfloat16: ml_dtypes.bfloat16}
DTYPES = list(NP)
# (format, options): every torch-reference format, both DialectFP4 selectors
CASES = [(f, {}) for f in FORMATS] + [("dialectfp4", {"selector": "lut"}),
                                      ("semdialect", {"selector": "two-stage",
                                                      "formatbook": "dialectfp4"})]
# the two-level selector (numerics §15) on both shipped class books
CASES += [("semdialect", {"selector": "two-level", "formatbook": b})
          for b in ("semdialect-32c8x8", "semdialect-32c8x4")]
IDS = [f + ("-" + "-".join(map(str, o.values())) if o else "") for f, o in CASES]


def to_torch(xn: np.ndarray, device="cpu") -> torch.Tensor:
    if xn.dtype == ml_dtypes.bfloat16:
        return torch.from_numpy(xn.view(np.int16).copy()).view(torch.bfloat16).to(device)
    return torch.from_numpy(xn.copy()).to(device)


def assert_same(xn: np.ndarray, fmt: str, opts: dict, device="cpu"):
    try:
        g = golden.quantize(xn, fmt, **opts)
    except ValueError as e:  # the golden model refuses: so must the reference
        with pytest.raises(ValueError, match=str(e)[:20]):
            quantize(to_torch(xn, device), fmt, **opts)
        return
    q = quantize(to_torch(xn, device), fmt, **opts)
    np.testing.assert_array_equal(q.codes.cpu().numpy(), g.codes)
    np.testing.assert_array_equal(q.scales_numpy(), g.scales)
    if g.dialects is None:
        assert q.dialects is None
    else:
        np.testing.assert_array_equal(q.dialects.cpu().numpy(), g.dialects)
    if g.tensor_scale is not None:
        assert np.float32(q.tensor_scale.item()).tobytes() == np.float32(g.tensor_scale).tobytes()
    dq, dg = q.dequantize().cpu().numpy(), g.dequantize()
    assert dq.dtype == np.float32
    # bit-exact, NaN where NaN
    assert np.array_equal(np.isnan(dq), np.isnan(dg))
    np.testing.assert_array_equal(np.nan_to_num(dq).view(np.uint32),
                                  np.nan_to_num(dg).view(np.uint32))


def heavy_tailed(seed, shape=(48, 128)):
    rng = np.random.default_rng(seed)
    x = rng.standard_t(2, size=shape) * np.exp(rng.normal(0, 4, size=shape[:-1] + (1,)))
    x[rng.random(shape) < 0.02] *= 1e3  # outliers
    return x


def edge_cases():
    rows = []
    z = np.zeros(64)
    rows.append(z)
    rows.append(-z)  # -0.0: sign bits kept
    r = np.linspace(-7, 7, 64)
    r[3] = np.nan
    rows.append(r)
    r = np.linspace(-7, 7, 64)
    r[40] = np.inf
    rows.append(r)
    r = np.linspace(-7, 7, 64)
    r[1] = -np.inf
    rows.append(r)
    rows.append(np.linspace(-1, 1, 64) * 1e-40)  # float32 subnormals
    rows.append(np.linspace(-1, 1, 64) * 6e-6)  # fp16 subnormals
    rows.append(np.r_[1e38, np.linspace(-1, 1, 63) * 1e-38])  # huge and tiny in one block
    rows.append(np.r_[3e38, -3e38, np.ones(62)])
    rows.append(np.r_[2.0**-126, np.full(63, 2.0**-149)])
    # rounding ties on every grid: multiples of 1/8 and 1/16 with a power-of-two max
    ties = np.arange(-64, 64) / 16.0
    rows.append(ties[:64])
    rows.append(ties[64:])
    rows.append(np.r_[8.0, np.arange(63) * 0.25 - 7.75])
    rows.append(np.r_[6.0, 0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0, np.full(56, 0.125)])
    rows.append(np.r_[448.0 * 6, np.arange(1, 64) * 3.0])
    return np.array(rows)


@pytest.mark.parametrize("dt", DTYPES, ids=str)
@pytest.mark.parametrize("fmt,opts", CASES, ids=IDS)
def test_random_heavy_tailed(fmt, opts, dt):
    for seed in range(3):
        with np.errstate(all="ignore"):
            xn = heavy_tailed(seed).astype(NP[dt])
        assert_same(xn, fmt, opts)


@pytest.mark.parametrize("dt", DTYPES, ids=str)
@pytest.mark.parametrize("fmt,opts", CASES, ids=IDS)
def test_edge_cases(fmt, opts, dt):
    with np.errstate(all="ignore"):
        xn = edge_cases().astype(NP[dt])
    assert_same(xn, fmt, opts)


@pytest.mark.parametrize("fmt,opts", CASES, ids=IDS)
def test_random_bit_patterns_float32(fmt, opts):
    """Arbitrary float32 bit patterns: NaNs, Infs, subnormals, every exponent."""
    rng = np.random.default_rng(7)
    bits = rng.integers(0, 2**32, size=(64, 64), dtype=np.uint64).astype(np.uint32)
    xn = bits.view(np.float32).copy()
    # most blocks finite, so the element paths are exercised
    finite_rows = rng.random(64) < 0.8
    xn[finite_rows] = np.where(np.isfinite(xn[finite_rows]), xn[finite_rows], 1.0)
    # nvfp4: tensor amax over finite values; keep one block small so it is not all 0
    assert_same(xn, fmt, opts)


@pytest.mark.parametrize("dt", [torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("fmt,opts", CASES, ids=IDS)
def test_every_16bit_value(fmt, opts, dt):
    """All 65536 bit patterns of bf16 / fp16, shuffled into blocks (finite blocks mostly)."""
    bits = np.random.default_rng(1).permutation(np.arange(65536, dtype=np.uint32))
    xn = bits.astype(np.uint16).view(NP[dt]).reshape(-1, 64).copy()
    # replace non-finite values in 7/8 of the rows so those blocks exercise the elements
    keep = np.arange(len(xn)) % 8 == 0
    fin = np.isfinite(xn.astype(np.float32))
    xn[~keep] = np.where(fin[~keep], xn[~keep], np.zeros((), NP[dt]))
    assert_same(xn, fmt, opts)


@pytest.mark.parametrize("fmt,opts", [
    ("mxfp4", {"block_size": 16}), ("mxfp8_e4m3", {"block_size": 64}),
    ("semdialect", {"frac_bits": 1, "err_bits": 6}), ("semdialect", {"frac_bits": 5}),
    ("semdialect", {"allowed": [3, 7, 30]}), ("semdialect", {"block_size": 16}),
    ("dialectfp4", {"selector": "lut", "allowed": np.arange(16) % 3 == 0}),
    ("nvfp4", {"tensor_amax": 100.0}), ("int4", {"block_size": 64}),
    *[("semdialect", {"selector": "two-level", "formatbook": b, **o})
      for b in ("semdialect-32c8x8", "semdialect-32c8x4")
      for o in ({"frac_bits": 1, "err_bits": 6}, {"frac_bits": 5}, {"block_size": 16},
                {"allowed": [3, 7, 30]}, {"allowed": [0]}, {"allowed": [31]},
                {"allowed": np.arange(32) % 5 == 2})],
])
def test_options(fmt, opts):
    xn = heavy_tailed(11, (16, 128)).astype(np.float32)
    assert_same(xn, fmt, opts)


@pytest.mark.parametrize("dt", DTYPES, ids=str)
@pytest.mark.parametrize("book", ["semdialect-32c8x8", "semdialect-32c8x4"])
def test_two_level_per_block_masks(book, dt):
    """Random per-block SeDA masks (many leave a block's class empty: effective class,
    numerics §15.3), with NaN/Inf and all-zero blocks."""
    rng = np.random.default_rng(5)
    with np.errstate(all="ignore"):
        x = heavy_tailed(12, (8, 256))
        x[0, 3] = np.nan
        x[1, 40] = -np.inf
        x[2, :32] = 0.0
        xn = x.astype(NP[dt])
    nb = xn.size // 32
    for p in (0.05, 0.3):
        mask = rng.random((nb, 32)) < p
        mask[np.arange(nb), rng.integers(0, 32, nb)] = True
        assert_same(xn, "semdialect", {"selector": "two-level", "formatbook": book,
                                       "allowed": mask})


def test_two_level_refuses_plain_book():
    xn = heavy_tailed(1, (2, 64)).astype(np.float32)
    assert_same(xn, "semdialect", {"selector": "two-level", "formatbook": "semdialect-32"})


def test_per_block_allowed_mask():
    xn = heavy_tailed(12, (4, 64)).astype(np.float32)
    mask = np.zeros((8, 32), bool)
    mask[np.arange(8), np.arange(8) * 3] = True
    mask[:, 31] = True
    assert_same(xn, "semdialect", {"allowed": mask})


def test_nvfp4_tiny_tensor_amax_floor_like_golden():
    """numerics §5: s_t is floored at 2^-120, so 1/s_t never overflows; same bits as golden."""
    xn = np.full((1, 32), 1e-38, np.float32)
    xn[0, 0] = 0
    xn[0, 20:] = 3e-39
    assert np.isfinite(golden.quantize(xn, "nvfp4").dequantize()).all()
    assert_same(xn, "nvfp4", {})


def test_int4_scale_saturates_like_golden():
    """numerics §6: amax > 7 * 65504 keeps a finite fp16 scale (65504)."""
    xn = np.linspace(-1e6, 1e6, 64, dtype=np.float32).reshape(2, 32)
    qt = golden.quantize(xn, "int4")
    assert (qt.scales.view(np.float16) == np.float16(65504)).all()
    assert np.isfinite(qt.dequantize()).all()
    assert_same(xn, "int4", {})


def test_bad_inputs():
    with pytest.raises(TypeError, match="dtype"):
        quantize(torch.zeros(32, dtype=torch.float64), "mxfp4")
    with pytest.raises(TypeError):
        quantize(np.zeros(32, np.float32), "mxfp4")
    with pytest.raises(ValueError, match="multiple of the block size"):
        quantize(torch.zeros(3, 33), "semdialect")
    with pytest.raises(ValueError, match="unknown format"):
        quantize(torch.zeros(32), "fp5")
    with pytest.raises(ValueError, match="mse"):
        quantize(torch.zeros(32), "semdialect", selector="mse")
    with pytest.raises(TypeError, match="does not take"):
        quantize(torch.zeros(32), "mxfp4", selector="lut")
    with pytest.raises(ValueError, match="16"):
        quantize(torch.zeros(32), "nvfp4", block_size=32)
    with pytest.raises(ValueError, match="frac_bits"):
        quantize(torch.zeros(32), "semdialect", frac_bits=0)


def test_fake_quantize_pads_and_keeps_dtype():
    x = torch.randn(3, 40, dtype=torch.bfloat16)
    y = fake_quantize(x, "mxfp4")
    assert y.shape == x.shape and y.dtype == torch.bfloat16
    xp = np.concatenate([x.float().numpy(), np.zeros((3, 24), np.float32)], 1)
    ref = golden.quantize(xp, "mxfp4").dequantize()[:, :40]
    np.testing.assert_array_equal(y.float().numpy(), ref)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("fmt,opts", CASES, ids=IDS)
def test_cuda_matches_golden(fmt, opts):
    for dt in DTYPES:
        with np.errstate(all="ignore"):
            assert_same(heavy_tailed(3).astype(NP[dt]), fmt, opts, device="cuda")
            assert_same(edge_cases().astype(NP[dt]), fmt, opts, device="cuda")

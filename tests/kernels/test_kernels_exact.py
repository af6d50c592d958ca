"""Triton kernels bit-exact with semdialect.golden (numerics §16) on adversarial data:
ties and rounding boundaries +-1 ulp at every block scale, zeros, -0, subnormals,
NaN/Inf blocks, huge values, random SeDA masks, odd shapes, non-contiguous inputs, for
float32, float16 and bfloat16 input. Runs in Triton's interpreter on CPU (CI) or on CUDA
(nox -s gpu)."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
import torch
from kernels_testlib import (
    adversarial_dtype,
    assert_matches_golden,
    assert_same_float_bits,
    to_numpy,
    to_torch,
)

from semdialect import golden
from semdialect.kernels import quantize

DTYPES = ["float32", "float16", "bfloat16"]
N_BLOCKS = 1536  # two programs of 1024 blocks in the interpreter, one partly masked


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("fmt", ["semdialect", "mxfp4", "nvfp4"])
def test_adversarial_blocks(device, fmt, dtype):
    k = 16 if fmt == "nvfp4" else 32
    rng = np.random.default_rng(zlib.crc32(f"{fmt}-{dtype}".encode()))
    x = adversarial_dtype(rng, N_BLOCKS, k, dtype).reshape(-1, 4 * k)
    q = quantize(to_torch(x, device), fmt)
    assert_matches_golden(q, x, fmt)


@pytest.mark.parametrize("book,frac_bits,err_bits", [
    ("semdialect-32", 1, 8), ("semdialect-32", 4, 5), ("semdialect-32", 3, 24),
    ("dialectfp4", 3, 8), ("dialectfp4", 6, 12),
])
def test_semdialect_lut_resolutions_and_books(device, book, frac_bits, err_bits):
    rng = np.random.default_rng(frac_bits * 100 + err_bits)
    x = adversarial_dtype(rng, 1024, 32, "float32").reshape(-1, 256)
    q = quantize(to_torch(x, device), "semdialect", formatbook=book, frac_bits=frac_bits,
                 err_bits=err_bits)
    assert_matches_golden(q, x, "semdialect", formatbook=book, frac_bits=frac_bits,
                          err_bits=err_bits)


@pytest.mark.parametrize("book,selector,dtype", [
    ("semdialect-32", "lut", "float32"), ("semdialect-32", "lut", "bfloat16"),
    ("semdialect-32c8x8", "two-level", "float32"), ("semdialect-32c8x4", "two-level", "float16"),
])
def test_selectors_on_adversarial_blocks(device, book, selector, dtype):
    rng = np.random.default_rng(zlib.crc32(f"{book}-{dtype}".encode()))
    x = adversarial_dtype(rng, 1024, 32, dtype).reshape(-1, 128)
    opts = {"formatbook": book, "selector": selector}
    assert_matches_golden(quantize(to_torch(x, device), "semdialect", **opts), x,
                          "semdialect", **opts)


@pytest.mark.parametrize("book,selector", [("semdialect-32", "lut"),
                                           ("semdialect-32c8x8", "two-level"),
                                           ("semdialect-32c8x4", "two-level")])
def test_seda_masks_ids_and_candidates(device, book, selector):
    """Random per-block allowed masks (SeDA; sparse ones force two-level's effective-class
    fallback), allowed id lists, and the candidate-set parameter of the exhaustive
    selector (= golden's allowed ids) give golden's dialects and codes."""
    rng = np.random.default_rng(7)
    x = adversarial_dtype(rng, 1024, 32, "bfloat16").reshape(-1, 128)
    nb = x.size // 32
    mask = rng.random((nb, 32)) < 0.1
    mask[np.arange(nb), rng.integers(0, 32, nb)] = True
    xt = to_torch(x, device)
    opts = {"formatbook": book, "selector": selector}
    fortran = np.asfortranarray(mask)  # any memory layout of the mask
    assert_matches_golden(quantize(xt, "semdialect", allowed=fortran, **opts), x,
                          "semdialect", allowed=mask, **opts)
    ids = np.array([3, 17, 5, 30])
    assert_matches_golden(quantize(xt, "semdialect", allowed=ids, **opts), x, "semdialect",
                          allowed=ids, **opts)
    if selector == "lut":
        assert_matches_golden(quantize(xt, "semdialect", candidates=ids, **opts), x,
                              "semdialect", allowed=ids, **opts)


@pytest.mark.parametrize("book", ["semdialect-32", "semdialect-32c8x8"])
def test_ties_go_to_the_lowest_id(device, book):
    """Blocks where many dialects share the smallest error (all-zero, tiny, exactly
    representable everywhere) pick the lowest (allowed) id, like golden."""
    x = np.zeros((4, 128), dtype=np.float32)
    x[1, :32] = 4.0  # 4.0 sits on a level of every dialect whose top is >= 4: ties
    x[2, 32:64] = [4.0, 0.5] * 16
    x[3] = np.float32(2.0**-149)
    xt = to_torch(x, device)
    f = {"formatbook": book}
    assert_matches_golden(quantize(xt, "semdialect", **f), x, "semdialect", **f)
    mask = np.ones((16, 32), dtype=bool)
    mask[:, :9] = False
    assert_matches_golden(quantize(xt, "semdialect", allowed=mask, **f), x, "semdialect",
                          allowed=mask, **f)


@pytest.mark.parametrize("fmt", ["semdialect", "mxfp4", "nvfp4"])
def test_odd_shapes_and_non_contiguous(device, fmt):
    k = 16 if fmt == "nvfp4" else 32
    rng = np.random.default_rng(11)
    base = adversarial_dtype(rng, 300, k, "float32").reshape(-1)
    for shape in [(k,), (3, 5, 2 * k), (1, 7 * k), (37, k)]:
        x = base[: int(np.prod(shape))].reshape(shape)
        assert_matches_golden(quantize(to_torch(x, device), fmt), x, fmt)
    big = torch.from_numpy(base[: 64 * 4 * k].reshape(4 * k, 64).copy()).to(device)
    for view in (big.t(), big.t()[::3], torch.flip(big.t(), dims=[0])):
        assert not view.is_contiguous()
        q = quantize(view, fmt)
        assert_matches_golden(q, to_numpy(view), fmt)
    wide = torch.from_numpy(base[: 6 * 8 * k].reshape(6, 8 * k).copy()).to(device)
    view = wide[:, : 4 * k]  # row stride 8k, last axis stride 1
    assert_matches_golden(quantize(view, fmt), to_numpy(view), fmt)


def test_nvfp4_tensor_scale_paths(device):
    """Explicit tensor amax (s_t = 1 puts block scales on E4M3 rounding boundaries),
    the 2^-120 floor with an all-subnormal tensor, and an all-zero tensor."""
    e4m3 = golden.E4M3.magnitudes[8:127]
    mids = (e4m3[1:] + e4m3[:-1]) / 2
    amax = np.concatenate([e4m3, mids]).astype(np.float32) * np.float32(6)
    amax = np.concatenate([amax, np.nextafter(amax, np.float32(0)),
                           np.nextafter(amax, np.float32(np.inf))])
    rng = np.random.default_rng(3)
    x = (rng.uniform(-1, 1, (len(amax), 16)) * amax[:, None]).astype(np.float32)
    x[:, 0] = amax
    x = x[: len(x) // 4 * 4].reshape(-1, 64)
    xt = to_torch(x, device)
    assert_matches_golden(quantize(xt, "nvfp4", tensor_amax=2688.0), x, "nvfp4",
                          tensor_amax=2688.0)
    assert_matches_golden(quantize(xt, "nvfp4"), x, "nvfp4")
    sub = rng.integers(0, 1 << 23, (64, 64)).astype(np.uint32).view(np.float32)
    assert_matches_golden(quantize(to_torch(sub, device), "nvfp4"), sub, "nvfp4")
    zero = np.zeros((2, 32), dtype=np.float32)
    assert_matches_golden(quantize(to_torch(zero, device), "nvfp4"), zero, "nvfp4")


def test_every_code_and_scale_dequantizes_like_golden(device):
    """Dequantize alone on every (code, dialect) pair and every scale byte."""
    from semdialect.kernels.api import KernelQuantized

    for fmt, k in (("semdialect", 32), ("mxfp4", 32)):
        rng = np.random.default_rng(5)
        rows = 256
        codes = rng.integers(0, 16, (rows, 2 * k), dtype=np.uint8)
        scales = np.arange(rows * 2, dtype=np.int64).reshape(rows, 2) % 256
        scales = scales.astype(np.uint8)
        g = golden.quantize(np.zeros((rows, 2 * k), np.float32), fmt)
        g.codes[...] = codes
        g.scales[...] = scales
        dial = None
        if fmt == "semdialect":
            g.dialects[...] = rng.integers(0, 32, (rows, 2), dtype=np.uint8)
            dial = torch.from_numpy(g.dialects.copy()).to(device)
        q = KernelQuantized(fmt, k, (rows, 2 * k), torch.from_numpy(g.pack()).to(device),
                            torch.from_numpy(scales).to(device), dial,
                            options={"formatbook": g.options.get("_book")})
        with np.errstate(over="ignore"):  # scales near 0xFE: golden's float64 -> Inf
            want = g.dequantize()
        assert_same_float_bits(q.dequantize().cpu().numpy(), want)


def test_bad_input(device):
    x = torch.zeros(4, 32, device=device)
    with pytest.raises(TypeError):
        quantize(x.double(), "mxfp4")
    with pytest.raises(ValueError):
        quantize(torch.zeros(4, 48, device=device), "mxfp4", block_size=24)
    with pytest.raises(ValueError):
        quantize(torch.zeros(4, 40, device=device), "mxfp4")
    with pytest.raises(ValueError):
        quantize(x, "int4")
    with pytest.raises(ValueError):
        quantize(x, "nvfp4", block_size=32)
    with pytest.raises(ValueError):
        quantize(x, "semdialect", allowed=np.zeros((4, 32), dtype=bool))
    with pytest.raises(ValueError):
        quantize(x, "semdialect", formatbook="semdialect-32", candidates=[40])
    with pytest.raises(ValueError):
        quantize(x, "semdialect", candidates=[1, 2])  # default two-level: no candidates
    with pytest.raises(ValueError):
        quantize(x, "semdialect", selector="mse")

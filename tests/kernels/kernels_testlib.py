"""Inputs and golden comparisons for the kernel tests."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import torch
from golden_testlib import adversarial, boundary_points

from semdialect import golden

TORCH_OF = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
NP_OF = {"float32": np.dtype(np.float32), "float16": np.dtype(np.float16),
         "bfloat16": np.dtype(ml_dtypes.bfloat16)}
# power-of-two exponents that keep a value < 8 finite (and reach the subnormals) per dtype
EXP_RANGE = {"float32": (-149, 124), "float16": (-24, 12), "bfloat16": (-133, 124)}


def adversarial_dtype(rng, n_blocks: int, k: int, dtype: str) -> np.ndarray:
    """golden_testlib.adversarial, rounded to dtype, with the first sixth replaced by
    dtype's own rounding boundaries +-1 ulp (of the 2^-3 grid and of E2M1/E4M3 values)
    at random power-of-two block scales, and a sixth of raw subnormal bit patterns."""
    npd = NP_OF[dtype]
    with np.errstate(over="ignore"):  # huge float32 values become fp16 Inf blocks
        x = adversarial(rng, n_blocks, k).astype(npd)
    grid = np.concatenate([np.arange(0, 8 * 8 + 1) / 8.0, golden.E4M3.magnitudes[:127] / 64])
    pts = boundary_points(grid, npd).astype(np.float64)
    q = n_blocks // 6
    lo, hi = EXP_RANGE[dtype]
    s = np.exp2(rng.integers(lo, hi, size=(q, 1)).astype(np.float64))
    x[:q] = (rng.choice(pts, size=(q, k)) * s * rng.choice([-1, 1], size=(q, k))).astype(npd)
    if dtype != "float32":
        bits = rng.integers(0, 1 << 10, size=(q, k)).astype(np.uint16)
        bits |= rng.choice([0, 0x8000], size=(q, k)).astype(np.uint16)
        if dtype == "bfloat16":
            bits = bits >> 3  # bf16 subnormals: exponent 0, 7-bit mantissa
            bits |= rng.choice([0, 0x8000], size=(q, k)).astype(np.uint16)
        x[q : 2 * q] = bits.view(npd)
    return x


def to_torch(x: np.ndarray, device: str) -> torch.Tensor:
    if x.dtype == NP_OF["bfloat16"]:
        return torch.from_numpy(x.view(np.int16).copy()).view(torch.bfloat16).to(device)
    return torch.from_numpy(np.ascontiguousarray(x)).to(device)


def to_numpy(t: torch.Tensor) -> np.ndarray:
    t = t.detach().cpu()
    if t.dtype == torch.bfloat16:
        return t.contiguous().view(torch.int16).numpy().view(ml_dtypes.bfloat16)
    return t.contiguous().numpy()


def assert_same_float_bits(got: np.ndarray, want: np.ndarray) -> None:
    """Bit-identical float32 arrays, NaN payloads aside (NaN where NaN)."""
    got = np.asarray(got, dtype=np.float32)
    want = np.asarray(want, dtype=np.float32)
    assert got.shape == want.shape
    gn, wn = np.isnan(got), np.isnan(want)
    assert np.array_equal(gn, wn), f"NaN positions differ at {np.argwhere(gn != wn)[:5]}"
    bad = np.flatnonzero(got[~gn].view(np.int32) != want[~wn].view(np.int32))
    assert bad.size == 0, (f"{bad.size} values differ, e.g. {got[~gn][bad[:5]]} vs "
                           f"{want[~wn][bad[:5]]}")


def assert_matches_golden(q, x_np: np.ndarray, fmt: str, **options) -> None:
    """Packed codes, scales, dialects, tensor scale and dequantized values of the
    kernel result q equal golden.quantize(x_np, fmt, **options) bit for bit."""
    g = golden.quantize(x_np, fmt, **options)
    packed = q.packed.cpu().numpy()
    want = g.pack()
    diff = np.argwhere(packed != want)
    assert diff.size == 0, f"{len(diff)} code bytes differ, first at {diff[:3].tolist()}"
    assert np.array_equal(q.scales.cpu().numpy(), g.scales), "scales differ"
    if g.dialects is not None:
        assert np.array_equal(q.dialects.cpu().numpy(), g.dialects), "dialects differ"
    if fmt == "nvfp4":
        assert np.float32(q.tensor_scale).view(np.int32) == np.float32(
            g.tensor_scale).view(np.int32)
    assert_same_float_bits(q.dequantize().cpu().numpy(), g.dequantize())

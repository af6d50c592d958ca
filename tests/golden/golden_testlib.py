"""Shared helpers of the golden-model tests: independent references and input generators.

Nothing here calls into the golden model's internals for the *expected* values: every
reference is written a second, different way (nearest-by-distance instead of midpoint
counting, Fractions instead of fine-grid sums, public libraries instead of our codecs).
"""

from __future__ import annotations

import warnings
from fractions import Fraction

import ml_dtypes
import numpy as np

warnings.filterwarnings("ignore", message=".*is an Enum subclass.*")

BF16 = np.dtype(ml_dtypes.bfloat16)
FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float16), BF16)

# golden element format name -> (ml_dtypes dtype, torchao elem dtype name, gfloat format name)
MX_ELEMS = {
    "mxfp4": ("float4_e2m1fn", "float4_e2m1fn_x2", "format_info_ocp_e2m1"),
    "mxfp6_e2m3": ("float6_e2m3fn", "fp6_e2m3", "format_info_ocp_e2m3"),
    "mxfp6_e3m2": ("float6_e3m2fn", "fp6_e3m2", "format_info_ocp_e3m2"),
    "mxfp8_e4m3": ("float8_e4m3fn", "float8_e4m3fn", "format_info_ocp_e4m3"),
    "mxfp8_e5m2": ("float8_e5m2", "float8_e5m2", "format_info_ocp_e5m2"),
}


def nextafter_dtype(x: np.ndarray, direction: float, dtype) -> np.ndarray:
    """One ulp of `dtype` (float32/float16/bfloat16) from x (already in dtype) toward
    `direction`. bfloat16 works on the bit pattern (numpy has no nextafter for it)."""
    dtype = np.dtype(dtype)
    x = np.asarray(x, dtype=dtype)
    if dtype != BF16:
        return np.nextafter(x, dtype.type(direction)).astype(dtype)
    bits = x.view(np.uint16).astype(np.int32)
    f = x.astype(np.float32)
    up = np.float32(direction) > f
    neg = np.signbit(f)
    # moving away from zero increases the magnitude bits
    away = up != neg
    nb = np.where(away, bits + 1, bits - 1)
    zero = f == 0
    nb = np.where(zero, np.where(up, 0x0001, 0x8001), nb)
    return nb.astype(np.uint16).view(BF16)


def boundary_points(levels: np.ndarray, dtype=np.float32) -> np.ndarray:
    """The representable levels, every midpoint between consecutive levels, and one ulp
    (of `dtype`) either side of each, as `dtype` values (only those that are exact)."""
    levels = np.unique(np.asarray(levels, dtype=np.float64))
    mids = (levels[1:] + levels[:-1]) / 2
    pts = np.concatenate([levels, mids])
    pd = pts.astype(dtype)
    keep = pd.astype(np.float64) == pts
    pd = pd[keep]
    out = [pd, nextafter_dtype(pd, np.inf, dtype), nextafter_dtype(pd, -np.inf, dtype)]
    return np.unique(np.concatenate(out).astype(np.float64)).astype(dtype)


def rne_nearest(levels, v) -> np.ndarray:
    """Independent RNE: index of the nearest level by *distance* (float64 is exact for
    these dyadic values); among equidistant levels the even index; saturates naturally.
    levels: (8,) or (nb, 8); v: (nb, k) or (n,)."""
    levels = np.asarray(levels, dtype=np.float64)
    v = np.asarray(v, dtype=np.float64)
    if levels.ndim == 1:
        lv = levels.reshape((1,) * v.ndim + (-1,))
    else:
        lv = levels[:, None, :]
    dist = np.abs(v[..., None] - lv)
    best = dist.min(axis=-1, keepdims=True)
    cand = dist == best
    idx = np.arange(levels.shape[-1])
    even = cand & (idx % 2 == 0)
    first_even = np.argmax(even, axis=-1)
    first = np.argmax(cand, axis=-1)
    return np.where(even.any(axis=-1), first_even, first)


def exact_floor_log2(a: float) -> int:
    """floor(log2 a) of a positive finite float, via Fraction (no frexp)."""
    f = Fraction(a)
    e = f.numerator.bit_length() - f.denominator.bit_length()
    if Fraction(2) ** e > f:
        e -= 1
    return e


def ref_block_exponent(xb: np.ndarray, emax: int) -> np.ndarray:
    """Independent §4 scale exponent per block (finite blocks): Fraction floor(log2)."""
    amax = np.abs(xb.astype(np.float64)).max(axis=-1)
    out = np.empty(amax.shape, dtype=np.int64)
    for i, a in np.ndenumerate(amax):
        out[i] = -127 if a == 0 else min(127, max(-127, exact_floor_log2(float(a)) - emax))
    return out


def heavy_tailed(rng, shape, spread=60.0) -> np.ndarray:
    """Student-t(1.5) values times a per-row log-uniform scale over e^[-spread, spread]."""
    row = np.exp(rng.uniform(-spread, spread, size=shape[:-1] + (1,)))
    x = rng.standard_t(1.5, size=shape) * row
    with np.errstate(over="ignore"):
        x = x.astype(np.float32)
    return np.where(np.isfinite(x), x, np.float32(1.0))


def _pin_blocks(vals: np.ndarray, pin: float, k: int = 32) -> np.ndarray:
    """Blocks of k: element 0 is `pin` (fixes the block max), the rest are `vals`."""
    n = k - 1
    vals = np.concatenate([vals, np.zeros((-len(vals)) % n, dtype=vals.dtype)])
    body = vals.reshape(-1, n)
    return np.concatenate([np.full((len(body), 1), pin, dtype=vals.dtype), body], axis=1)


def mx_cases(fmt: str, seed: int = 0) -> np.ndarray:
    """(n, 32) float32 test blocks: every code, every tie boundary +-1 ulp, at many
    scales; heavy-tailed random data; zeros, -0, subnormal and huge blocks."""
    elem = mx_elem(fmt)
    rng = np.random.default_rng(seed)
    if hasattr(elem, "magnitudes"):
        mags = elem.magnitudes[np.isfinite(elem.magnitudes)]
    else:  # MX INT8: k / 64
        mags = np.arange(128) / 64.0
    top = np.float32(elem.max_value)
    pts = boundary_points(mags, np.float32)
    pts = pts[pts <= top]
    base = np.concatenate([mags, -mags, pts, -pts]).astype(np.float32)
    blocks = [_pin_blocks(base, top), _pin_blocks(base, -top)]
    # same data, other block maxima: pinned by the smallest value of the top binade
    blocks.append(_pin_blocks(base[np.abs(base) <= top], np.float32(2.0**elem.emax)))
    pinned = np.concatenate(blocks)
    out = [pinned]
    for k in (-149, -140, -133, -128, -127, -126, -124, -120, -100, -60, -7, 3, 40, 100, 111,
              112, 120, 124, 126):
        with np.errstate(over="ignore", under="ignore"):
            s = np.ldexp(pinned.astype(np.float64), k).astype(np.float32)
        out.append(np.where(np.isfinite(s), s, np.float32(0)))
    out.append(heavy_tailed(rng, (256, 32)))
    out.append(heavy_tailed(rng, (64, 32), spread=85.0))
    out.append(rng.standard_normal((64, 32)).astype(np.float32))
    special = np.zeros((8, 32), dtype=np.float32)
    special[1] = -0.0
    special[2, ::2] = -0.0
    special[3] = rng.uniform(-1, 1, 32) * np.float32(2.0**-126)  # subnormal block max
    special[4] = np.float32(1e-45) * rng.integers(-5, 6, 32)  # smallest subnormals
    special[5] = rng.uniform(-1, 1, 32).astype(np.float32) * np.float32(3.4e38)  # huge
    special[6] = np.float32(np.finfo(np.float32).max)
    special[6, 1::2] = np.float32(2.0**127)
    special[7, 0] = np.float32(2.0**-126)  # smallest normal max
    special[7, 1:] = np.float32(2.0**-149)
    out.append(special)
    return np.concatenate(out).astype(np.float32)


def torch_mods():
    import torch
    from torchao.prototype.mx_formats.kernels import pack_uint4, unpack_uint4
    from torchao.prototype.mx_formats.mx_tensor import to_mx
    from torchao.prototype.mx_formats.nvfp4_tensor import (
        nvfp4_quantize,
        per_tensor_amax_to_scale,
    )

    return torch, to_mx, nvfp4_quantize, per_tensor_amax_to_scale, pack_uint4, unpack_uint4


def torchao_mx(x: np.ndarray, fmt: str, block_size: int = 32):
    """torchao.to_mx on x (float32 or bfloat16 ndarray) -> (scales uint8, codes uint8
    with the shape of x, codes in the golden layout)."""
    torch, to_mx, *_, unpack_uint4 = torch_mods()
    elem = MX_ELEMS[fmt][1]
    elem = getattr(torch, elem) if elem.startswith("float") else elem
    if x.dtype == BF16:
        t = torch.from_numpy(x.view(np.uint16).astype(np.int16)).view(torch.bfloat16)
    else:
        t = torch.from_numpy(np.ascontiguousarray(x))
    s, d = to_mx(t, elem, block_size)
    d = d.view(torch.uint8)
    if fmt == "mxfp4":
        d = unpack_uint4(d)
    return s.view(torch.uint8).numpy().copy(), d.numpy().reshape(x.shape).copy()


def torchao_nvfp4(x: np.ndarray, tensor_amax: float):
    """torchao nvfp4_quantize with per_tensor_amax_to_scale(tensor_amax) ->
    (block scale bits uint8, codes uint8 like x, tensor scale float32)."""
    torch, _, nvfp4_quantize, to_scale, _, unpack_uint4 = torch_mods()
    if x.dtype == BF16:
        t = torch.from_numpy(x.view(np.uint16).astype(np.int16)).view(torch.bfloat16)
    else:
        t = torch.from_numpy(np.ascontiguousarray(x))
    st = to_scale(torch.tensor(np.float32(tensor_amax)))
    s, d = nvfp4_quantize(t, 16, per_tensor_scale=st)
    codes = unpack_uint4(d.view(torch.uint8)).numpy().reshape(x.shape).copy()
    return s.view(torch.uint8).numpy().reshape(*x.shape[:-1], -1).copy(), codes, st.numpy()


def to_dtype(x: np.ndarray, dtype) -> np.ndarray:
    with np.errstate(over="ignore"):
        return np.asarray(x).astype(dtype)


def mx_elem(fmt: str):
    from semdialect.golden.scalar_formats import MX_FORMATS

    return MX_FORMATS[fmt].elem


def adversarial(rng, n_blocks: int, k: int) -> np.ndarray:
    """Blocks of: boundary points +-1 ulp at random block scales, gaussians over the
    whole exponent range, subnormals, zeros and -0, NaN and Inf, huge values."""
    grid = np.arange(0, 8 * 8 + 1) / 8.0
    pts = boundary_points(grid, np.float32).astype(np.float32)
    x = rng.choice(pts, size=(n_blocks, k)) * rng.choice([-1, 1], size=(n_blocks, k))
    x = x.astype(np.float32)
    scale = np.exp2(rng.integers(-149, 124, size=(n_blocks, 1))).astype(np.float32)
    q = n_blocks // 6
    x[:q] = x[:q] * scale[:q]  # boundaries at every block scale
    x[q : 2 * q] = (rng.standard_normal((q, k)) * np.exp2(
        rng.integers(-130, 120, size=(q, 1)))).astype(np.float32)
    sub = rng.integers(0, 1 << 23, size=(q, k)).astype(np.uint32).view(np.float32)
    x[2 * q : 3 * q] = sub * rng.choice([-1, 1], size=(q, k)).astype(np.float32)
    x[3 * q : 3 * q + 5] = 0.0
    x[3 * q + 5 : 3 * q + 10] = -0.0
    x[3 * q + 10, 1] = np.nan
    x[3 * q + 11, 2] = np.inf
    x[3 * q + 12, 3] = -np.inf
    x[3 * q + 13, :] = np.float32(3.4e38)
    x[3 * q + 14, 0] = np.finfo(np.float32).max
    return x

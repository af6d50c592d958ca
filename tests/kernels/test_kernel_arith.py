"""The kernels' exact float32 arithmetic (`_fdiv_rn`, `_fmul_rn`, `_round_f32`, the fp16
widening) against IEEE float32 in NumPy, bit for bit, on random bit patterns that cover
subnormal operands and results, exact ties and overflow (numerics §16)."""

from __future__ import annotations

import numpy as np
import torch
import triton
import triton.language as tl

from semdialect.kernels.triton_kernels import _f32_bits, _fdiv_rn, _fmul_rn

N = 1 << 15


@triton.jit
def _arith_kernel(a_ptr, b_ptr, div_ptr, mul_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    m = offs < n
    a = tl.load(a_ptr + offs, mask=m, other=0)
    b = tl.load(b_ptr + offs, mask=m, other=0x3F800000)
    tl.store(div_ptr + offs, _fdiv_rn(a, b), mask=m)
    tl.store(mul_ptr + offs, _fmul_rn(a, b), mask=m)


@triton.jit
def _widen_kernel(h_ptr, out_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    m = offs < n
    tl.store(out_ptr + offs, _f32_bits(tl.load(h_ptr + offs, mask=m, other=0), 2), mask=m)


def _positive_bits(rng, n, lo_exp, hi_exp):
    """Positive float32 bit patterns with biased exponents in [lo_exp, hi_exp] and
    mantissas that are random, all-zero, all-one or a single low bit (ties)."""
    e = rng.integers(lo_exp, hi_exp + 1, n).astype(np.int64)
    m = rng.integers(0, 1 << 23, n).astype(np.int64)
    pick = rng.integers(0, 4, n)
    m = np.where(pick == 1, 0, np.where(pick == 2, (1 << 23) - 1, np.where(pick == 3, 1, m)))
    return ((e << 23) | m).astype(np.int32)


def test_division_and_product_equal_ieee_float32(device):
    rng = np.random.default_rng(0)
    a = _positive_bits(rng, N, 0, 254)  # subnormal (exponent 0) to huge
    a[:64] = 0
    b = _positive_bits(rng, N, 1, 254)  # normal divisors
    # products and quotients near the subnormal range and near overflow
    b[: N // 4] = _positive_bits(rng, N // 4, 100, 154)
    ta, tb = torch.from_numpy(a).to(device), torch.from_numpy(b).to(device)
    div = torch.empty_like(ta)
    mul = torch.empty_like(ta)
    _arith_kernel[(triton.cdiv(N, 4096),)](ta, tb, div, mul, N, BLOCK=4096)
    fa, fb = a.view(np.float32), b.view(np.float32)
    with np.errstate(over="ignore", under="ignore"):
        want_div = (fa / fb).astype(np.float32).view(np.int32)
        want_mul = (fa * fb).astype(np.float32).view(np.int32)
    got_div, got_mul = div.cpu().numpy(), mul.cpu().numpy()
    bad = np.flatnonzero(got_div != want_div)
    assert bad.size == 0, f"division differs for {fa[bad[:3]]} / {fb[bad[:3]]}"
    bad = np.flatnonzero(got_mul != want_mul)
    assert bad.size == 0, f"product differs for {fa[bad[:3]]} * {fb[bad[:3]]}"


def test_fp16_widening_every_pattern(device):
    h = np.arange(1 << 16, dtype=np.uint16).view(np.int16)
    out = torch.empty(1 << 16, dtype=torch.int32, device=device)
    _widen_kernel[(16,)](torch.from_numpy(h.copy()).to(device), out, 1 << 16, BLOCK=4096)
    want = h.view(np.float16).astype(np.float32)
    got = out.cpu().numpy().view(np.float32)
    nan = np.isnan(want)
    assert np.array_equal(np.isnan(got), nan)
    assert np.array_equal(got[~nan].view(np.int32), want[~nan].view(np.int32))

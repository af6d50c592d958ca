"""Triton kernels: fused block quantize / dequantize, bit-exact with semdialect.golden.

Every step is integer arithmetic on bit patterns (docs/numerics.md §16):

- inputs are loaded as raw bits (int16 for fp16/bf16, int32 for fp32) and widened to
  float32 bits by integer code, so no conversion, rounding mode or flush-to-zero of the
  device takes part;
- normalization is the shift form of golden/bitaddress.py: address = (M >> sh) << 1 |
  sticky, then one lookup in a table built by the golden model (error / index LUTs,
  element code tables);
- selection sums int32 LUT entries and takes the integer argmin, ties to the lowest id:
  no summation order or FMA contraction can change it;
- the NVFP4 float32 divisions and products (numerics §5) are done exactly on integer
  significands and rounded to nearest even by `_round_f32` (subnormals included), so
  they do not depend on the device's division or denormal handling.

A program handles G blocks (rows of a (G, K/2) tile of even and odd elements, so two
codes pack into one byte without a reshape).
"""

from __future__ import annotations

import triton
import triton.language as tl

# ----------------------------------------------------------------------- bit helpers


@triton.jit
def _f32_bits(raw, IN_KIND: tl.constexpr):
    """float32 bit pattern (int32) of raw input bits. IN_KIND 0: fp32 (int32 raw),
    1: bf16 (int16 raw), 2: fp16 (int16 raw). Exact for every value, NaN/Inf kept."""
    if IN_KIND == 0:
        bits = raw.to(tl.int32)
    elif IN_KIND == 1:
        bits = (raw.to(tl.int32) & 0xFFFF) << 16
    else:
        h = raw.to(tl.int32) & 0xFFFF
        sign = (h & 0x8000) << 16
        ex = (h >> 10) & 0x1F
        man = h & 0x3FF
        # subnormal fp16: man * 2^-24, man < 2^10 -> normalize with the leading bit
        p = _floor_log2_small(man)
        sub = ((p + 103) << 23) | ((man << tl.minimum(23 - p, 31)) & 0x7FFFFF)
        nor = ((ex + 112) << 23) | (man << 13)
        spec = 0x7F800000 | (man << 13)
        mag = tl.where(ex == 0, tl.where(man == 0, 0, sub), tl.where(ex == 31, spec, nor))
        bits = sign | mag
    return bits


@triton.jit
def _floor_log2_small(m):
    """floor(log2 m) of int32 0 < m < 2^24 (exact: the int -> float32 conversion of such
    m is exact). m = 0 gives -127."""
    f = m.to(tl.float32).to(tl.int32, bitcast=True)
    return (f >> 23) - 127


@triton.jit
def _floor_log2_i64(q):
    """floor(log2 q) of int64 0 < q < 2^53 (exact via float64). q = 0 gives -1023."""
    f = q.to(tl.float64).to(tl.int64, bitcast=True)
    return ((f >> 52) - 1023).to(tl.int32)


@triton.jit
def _block_exponent(amax_bits, EMAX: tl.constexpr):
    """e = clamp(floor(log2 amax) - emax, -127, 127) from finite amax bits (§4, §7)."""
    ex = amax_bits >> 23
    fl = tl.where(ex > 0, ex - 127, _floor_log2_small(amax_bits & 0x7FFFFF) - 149)
    return tl.minimum(tl.maximum(fl - EMAX, -127), 127)


@triton.jit
def _address(ab, e, FINE: tl.constexpr):
    """floor(|x| 2^(FINE - e)) << 1 | sticky of finite magnitude bits (golden
    bitaddress.magnitude_address)."""
    ex = ab >> 23
    ee = tl.maximum(ex, 1)
    mant = ab - ((ee - 1) << 23)
    sh = tl.minimum(150 - FINE + e - ee, 24)
    t = mant >> sh
    sticky = ((t << sh) != mant).to(tl.int32)
    return (t << 1) | sticky


@triton.jit
def _round_f32(q, sticky, exp2):
    """float32 bits (int32) of RNE((q + d) * 2^exp2), q int64 in [0, 2^61), d in (0, 1)
    where sticky else 0 (sticky only with q >= 2^25). Subnormal results are rounded to
    the 2^-149 grid, overflow gives +Inf."""
    p = _floor_log2_i64(q)
    big_e = p + exp2  # unbiased exponent of the value
    normal = big_e >= -126
    drop = tl.where(normal, p - 23, -149 - exp2)
    rs = tl.minimum(tl.maximum(drop, 0), 62).to(tl.int64)
    ls = tl.maximum(-drop, 0).to(tl.int64)
    keep = tl.where(drop > 0, q >> rs, q << ls)
    rem = q - (keep << rs)
    half = tl.where(drop > 0, tl.full(q.shape, 1, tl.int64) << tl.maximum(rs - 1, 0), 0)
    up = (drop > 0) & ((rem > half) | ((rem == half) & ((sticky != 0) | ((keep & 1) == 1))))
    keep = keep + up.to(tl.int64)
    expo = tl.where(normal, big_e + 126, 0).to(tl.int64)  # biased exponent - 1
    bits = (expo << 23) + keep
    bits = tl.where(q == 0, 0, bits)
    return tl.minimum(bits, 0x7F800000).to(tl.int32)


@triton.jit
def _significand(bits):
    """(M int64, exponent int32) with value = M * 2^exponent, for finite positive bits."""
    ex = bits >> 23
    ee = tl.maximum(ex, 1)
    mant = (bits - ((ee - 1) << 23)).to(tl.int64)
    return mant, ee - 150


@triton.jit
def _fdiv_rn(a_bits, b_bits):
    """float32 bits of RNE(a / b) for finite a >= 0 and normal b > 0 (exact integer
    long division, then `_round_f32`)."""
    ma, ea = _significand(a_bits)
    mb, eb = _significand(b_bits)
    p = _floor_log2_i64(ma)
    shift = tl.where(ma > 0, 23 - p, 0)  # normalize a subnormal dividend to 24 bits
    ma = ma << shift.to(tl.int64)
    ea = ea - shift
    num = ma << 26
    q = num // mb
    sticky = (num - q * mb) != 0
    return _round_f32(q, sticky, ea - eb - 26)


@triton.jit
def _fmul_rn(a_bits, b_bits):
    """float32 bits of RNE(a * b) for finite a, b >= 0 (exact 48-bit product)."""
    ma, ea = _significand(a_bits)
    mb, eb = _significand(b_bits)
    return _round_f32(ma * mb, ma < 0, ea + eb)


@triton.jit
def _pack_store(codes_ptr, row, col0, j, code_even, code_odd, CODE_STRIDE, valid):
    """Two 4-bit codes per byte, element 0 in the low nibble (numerics §10)."""
    packed = (code_even | (code_odd << 4)).to(tl.uint8)
    ptr = codes_ptr + row[:, None] * CODE_STRIDE + (col0[:, None] // 2 + j[None, :])
    tl.store(ptr, packed, mask=valid[:, None])


@triton.jit
def _load_pair(x_ptr, row, col0, j, stride_r, stride_c, valid, IN_KIND: tl.constexpr):
    """float32 bits of the even and odd elements of G blocks: two (G, K/2) tiles."""
    base = x_ptr + row[:, None] * stride_r + (col0[:, None] + 2 * j[None, :]) * stride_c
    even = tl.load(base, mask=valid[:, None], other=0)
    odd = tl.load(base + stride_c, mask=valid[:, None], other=0)
    return _f32_bits(even, IN_KIND), _f32_bits(odd, IN_KIND)


@triton.jit
def _block_coords(pid, n_blocks, blocks_per_row, G: tl.constexpr, K: tl.constexpr):
    b = pid * G + tl.arange(0, G)
    valid = b < n_blocks
    b = tl.where(valid, b, 0)
    row = (b // blocks_per_row).to(tl.int64)
    col0 = ((b % blocks_per_row) * K).to(tl.int64)
    return b, valid, row, col0


# ----------------------------------------------------------------------- quantize


@triton.jit
def _try_dialect(d, best, best_d, err_ptr, addr_e, addr_o, mask_ptr, b, valid, n_dialects,
                 N_ADDR: tl.constexpr, HAS_MASK: tl.constexpr):
    """Integer LUT sum of dialect d (G,) per block; keep it if strictly smaller, or equal
    with a lower id (ties to the lowest id whatever the candidate order); disallowed
    dialects (mask 0) sum to 2^31 - 2, above every real sum."""
    row = err_ptr + d[:, None] * N_ADDR
    s = tl.sum(tl.load(row + addr_e), axis=1) + tl.sum(tl.load(row + addr_o), axis=1)
    if HAS_MASK:
        ok = tl.load(mask_ptr + b.to(tl.int64) * n_dialects + d, mask=valid, other=1)
        s = tl.where(ok != 0, s, 2147483646)
    better = (s < best) | ((s == best) & (d < best_d))
    return tl.where(better, s, best), tl.where(better, d, best_d)


@triton.jit
def shared_exponent_quant_kernel(
    x_ptr, stride_r, stride_c, n_blocks, blocks_per_row,
    err_ptr, idx_ptr, cand_ptr, n_cand, mask_ptr, n_dialects,
    codes_ptr, code_stride, scales_ptr, dialects_ptr,
    IN_KIND: tl.constexpr, K: tl.constexpr, G: tl.constexpr, EMAX: tl.constexpr,
    FINE: tl.constexpr, N_ADDR: tl.constexpr, SELECT: tl.constexpr, HAS_MASK: tl.constexpr,
    N_CLASSES: tl.constexpr = 1, CLASS_SIZE: tl.constexpr = 1, CLASS_BITS: tl.constexpr = 0,
    CLASS_DROP: tl.constexpr = 0,
):
    """E8M0-scaled 4-bit formats. SELECT 0: MX fp4 (no selection: idx_ptr is the element
    code table, one row). SELECT 1: `semdialect`, exhaustive LUT engine over the n_cand
    ids at cand_ptr. SELECT 2: two-level (numerics §15): cand_ptr is the (N_CLASSES,
    CLASS_SIZE) class table, the class comes from the block-max address. Optional allowed
    mask (n_blocks, n_dialects) uint8 in both selectors."""
    pid = tl.program_id(0)
    b, valid, row, col0 = _block_coords(pid, n_blocks, blocks_per_row, G, K)
    j = tl.arange(0, K // 2)
    be, bo = _load_pair(x_ptr, row, col0, j, stride_r, stride_c, valid, IN_KIND)
    ae = be & 0x7FFFFFFF
    ao = bo & 0x7FFFFFFF
    amax = tl.maximum(tl.max(ae, axis=1), tl.max(ao, axis=1))
    bad = amax >= 0x7F800000
    e = _block_exponent(tl.where(bad, 0, amax), EMAX)
    ae = tl.where(bad[:, None], 0, ae)
    ao = tl.where(bad[:, None], 0, ao)
    addr_e = _address(ae, e[:, None], FINE)
    addr_o = _address(ao, e[:, None], FINE)
    if SELECT == 1:
        # integer LUT sums, integer argmin, ties to the lowest id (numerics §8.4)
        best = tl.full((G,), 2147483647, tl.int32)
        best_d = tl.zeros((G,), tl.int32)
        for c in range(n_cand):
            d = tl.load(cand_ptr + c) + tl.zeros((G,), tl.int32)
            best, best_d = _try_dialect(d, best, best_d, err_ptr, addr_e, addr_o, mask_ptr,
                                        b, valid, n_dialects, N_ADDR, HAS_MASK)
        tl.store(dialects_ptr + b, best_d.to(tl.uint8), mask=valid)
        tab = idx_ptr + best_d[:, None] * N_ADDR
    elif SELECT == 2:
        # class = clamp(floor(vmax 2^(b - emax)) - 2^b, 0, 2^b - 1) (§15.1): floor is
        # monotone, so it is the largest address's t shifted right
        tmax = tl.maximum(tl.max(addr_e, axis=1), tl.max(addr_o, axis=1)) >> 1
        cls = tl.minimum(tl.maximum((tmax >> CLASS_DROP) - (1 << CLASS_BITS), 0),
                         N_CLASSES - 1)
        if HAS_MASK:  # effective class (§15.3): smallest >= cls with an allowed id, else
            up = tl.full((G,), N_CLASSES, tl.int32)  # the largest below
            down = tl.full((G,), -1, tl.int32)
            for c2 in tl.static_range(N_CLASSES):
                ne = tl.zeros((G,), tl.int32)
                for jj in tl.static_range(CLASS_SIZE):
                    dd = tl.load(cand_ptr + c2 * CLASS_SIZE + jj)
                    ok = tl.load(mask_ptr + b.to(tl.int64) * n_dialects + dd, mask=valid,
                                 other=1)
                    ne = ne | (ok != 0).to(tl.int32)
                up = tl.where((ne != 0) & (cls <= c2) & (up == N_CLASSES), c2, up)
                down = tl.where((ne != 0) & (cls > c2), c2, down)
            cls = tl.where(up < N_CLASSES, up, down)
        best = tl.full((G,), 2147483647, tl.int32)
        best_d = tl.zeros((G,), tl.int32)
        for jj in tl.static_range(CLASS_SIZE):  # the K adder trees, ties to the lowest id
            d = tl.load(cand_ptr + cls * CLASS_SIZE + jj)
            best, best_d = _try_dialect(d, best, best_d, err_ptr, addr_e, addr_o, mask_ptr,
                                        b, valid, n_dialects, N_ADDR, HAS_MASK)
        tl.store(dialects_ptr + b, best_d.to(tl.uint8), mask=valid)
        tab = idx_ptr + best_d[:, None] * N_ADDR
    else:
        tab = idx_ptr + tl.zeros((G, 1), tl.int32)
    ce = tl.load(tab + addr_e).to(tl.int32) | ((be >> 28) & 8)
    co = tl.load(tab + addr_o).to(tl.int32) | ((bo >> 28) & 8)
    ce = tl.where(bad[:, None], 0, ce)
    co = tl.where(bad[:, None], 0, co)
    _pack_store(codes_ptr, row, col0, j, ce, co, code_stride, valid)
    tl.store(scales_ptr + b, tl.where(bad, 255, e + 127).to(tl.uint8), mask=valid)


@triton.jit
def nvfp4_quant_kernel(
    x_ptr, stride_r, stride_c, n_blocks, blocks_per_row, st_bits, inv_st_bits,
    code_tab_ptr, codes_ptr, code_stride, scales_ptr,
    IN_KIND: tl.constexpr, G: tl.constexpr, F4_MAX_BITS: tl.constexpr,
    SB_MIN_BITS: tl.constexpr, SB_MAX_BITS: tl.constexpr, SB_SHIFT: tl.constexpr,
    SB_REBIAS: tl.constexpr,
):
    """NVFP4 (numerics §5): s_b = E4M3(clamp(fp32(fp32(amax / 6) / s_t), 2^-6, 448)),
    r = fp32(fp32(1 / s_t) / s_b), codes = E2M1(clamp(fp32(x r), -6, 6)); fp32(1 / s_t)
    and s_t come from the host (golden's own float32 code), and so do the constants
    (float32 bits of 6, 2^-6 and 448; the E4M3 mantissa shift 23 - 3 and rebias
    (127 - 7) << 3, from golden's E2M1 / UE4M3)."""
    K: tl.constexpr = 16
    pid = tl.program_id(0)
    b, valid, row, col0 = _block_coords(pid, n_blocks, blocks_per_row, G, K)
    j = tl.arange(0, K // 2)
    be, bo = _load_pair(x_ptr, row, col0, j, stride_r, stride_c, valid, IN_KIND)
    ae = be & 0x7FFFFFFF
    ao = bo & 0x7FFFFFFF
    amax = tl.maximum(tl.max(ae, axis=1), tl.max(ao, axis=1))
    bad = amax >= 0x7F800000
    amax = tl.where(bad, 0, amax)
    six = tl.full((G,), F4_MAX_BITS, tl.int32)
    st = tl.full((G,), 0, tl.int32) + st_bits
    scaled = _fdiv_rn(_fdiv_rn(amax, six), st)
    scaled = tl.minimum(tl.maximum(scaled, SB_MIN_BITS), SB_MAX_BITS)  # [2^-6, 448]
    # E4M3 RNE of a normal float32 in [2^-6, 448]: round the mantissa to 3 bits
    half = (1 << (SB_SHIFT - 1)) - 1
    sb_code = ((scaled + half + ((scaled >> SB_SHIFT) & 1)) >> SB_SHIFT) - SB_REBIAS
    sb_bits = (sb_code + SB_REBIAS) << SB_SHIFT
    r = _fdiv_rn(tl.full((G,), 0, tl.int32) + inv_st_bits, sb_bits)
    ye = tl.minimum(_fmul_rn(tl.where(bad[:, None], 0, ae), r[:, None]), F4_MAX_BITS)
    yo = tl.minimum(_fmul_rn(tl.where(bad[:, None], 0, ao), r[:, None]), F4_MAX_BITS)
    zero = tl.zeros((G, 1), tl.int32)
    ce = tl.load(code_tab_ptr + _address(ye, zero, 2)).to(tl.int32) | ((be >> 28) & 8)
    co = tl.load(code_tab_ptr + _address(yo, zero, 2)).to(tl.int32) | ((bo >> 28) & 8)
    ce = tl.where(bad[:, None], 0, ce)
    co = tl.where(bad[:, None], 0, co)
    _pack_store(codes_ptr, row, col0, j, ce, co, code_stride, valid)
    tl.store(scales_ptr + b, tl.where(bad, 0x7F, sb_code).to(tl.uint8), mask=valid)


# ----------------------------------------------------------------------- dequantize


@triton.jit
def _ldexp_int(m, sh):
    """float32 bits of m * 2^sh for int32 0 <= m < 2^24 where the value is exactly
    representable or overflows (then +Inf)."""
    p = _floor_log2_small(m)
    big_e = p + sh
    nor = ((big_e + 127) << 23) | ((m << tl.minimum(tl.maximum(23 - p, 0), 31)) & 0x7FFFFF)
    sub = m << tl.minimum(tl.maximum(sh + 149, 0), 31)
    bits = tl.where(big_e >= -126, nor, sub)
    bits = tl.where(big_e >= 128, 0x7F800000, bits)
    return tl.where(m == 0, 0, bits)


@triton.jit
def _unpack(codes_ptr, row, col0, j, code_stride, valid):
    ptr = codes_ptr + row[:, None] * code_stride + (col0[:, None] // 2 + j[None, :])
    byte = tl.load(ptr, mask=valid[:, None], other=0).to(tl.int32)
    return byte & 0xF, byte >> 4


@triton.jit
def _store_pair(out_ptr, row, col0, j, out_stride, ve, vo, valid):
    base = out_ptr + row[:, None] * out_stride + (col0[:, None] + 2 * j[None, :])
    tl.store(base, ve.to(tl.float32, bitcast=True), mask=valid[:, None])
    tl.store(base + 1, vo.to(tl.float32, bitcast=True), mask=valid[:, None])


@triton.jit
def shared_exponent_dequant_kernel(
    codes_ptr, code_stride, scales_ptr, dialects_ptr, mags_ptr, out_ptr, out_stride,
    n_blocks, blocks_per_row,
    K: tl.constexpr, G: tl.constexpr, GRID_BITS: tl.constexpr, HAS_DIALECTS: tl.constexpr,
):
    """value = sign * mags[dialect, index] * 2^(scale - 127 - g), built from bits; scale
    0xFF (NaN/Inf block) gives NaN. mags: (D, 8) int32 magnitudes in grid units."""
    pid = tl.program_id(0)
    b, valid, row, col0 = _block_coords(pid, n_blocks, blocks_per_row, G, K)
    j = tl.arange(0, K // 2)
    ce, co = _unpack(codes_ptr, row, col0, j, code_stride, valid)
    s = tl.load(scales_ptr + b, mask=valid, other=0).to(tl.int32)
    if HAS_DIALECTS:
        d = tl.load(dialects_ptr + b, mask=valid, other=0).to(tl.int32)
    else:
        d = tl.zeros((G,), tl.int32)
    tab = mags_ptr + d[:, None] * 8
    sh = (s - 127 - GRID_BITS)[:, None]
    ve = _ldexp_int(tl.load(tab + (ce & 7)), sh) | ((ce & 8) << 28)
    vo = _ldexp_int(tl.load(tab + (co & 7)), sh) | ((co & 8) << 28)
    nan = (s == 255)[:, None]
    ve = tl.where(nan, 0x7FC00000, ve)
    vo = tl.where(nan, 0x7FC00000, vo)
    _store_pair(out_ptr, row, col0, j, out_stride, ve, vo, valid)


@triton.jit
def nvfp4_dequant_kernel(
    codes_ptr, code_stride, scales_ptr, st_bits, halves_ptr, out_ptr, out_stride, n_blocks,
    blocks_per_row, G: tl.constexpr, SB_SHIFT: tl.constexpr, SB_REBIAS: tl.constexpr,
):
    """value = E2M1(code) * fp32(s_b * s_t) in float32 (numerics §5), exact products
    rounded by `_round_f32`; a NaN block scale (0x7F) gives NaN. halves_ptr: golden's
    E2M1 magnitudes in units of 0.5 (8 int32)."""
    K: tl.constexpr = 16
    pid = tl.program_id(0)
    b, valid, row, col0 = _block_coords(pid, n_blocks, blocks_per_row, G, K)
    j = tl.arange(0, K // 2)
    ce, co = _unpack(codes_ptr, row, col0, j, code_stride, valid)
    sb = tl.load(scales_ptr + b, mask=valid, other=0).to(tl.int32)
    total = _fmul_rn((sb + SB_REBIAS) << SB_SHIFT, tl.full((G,), 0, tl.int32) + st_bits)
    ve = _e2m1_times(ce, total, halves_ptr)
    vo = _e2m1_times(co, total, halves_ptr)
    nan = (sb == 0x7F)[:, None]
    ve = tl.where(nan, 0x7FC00000, ve)
    vo = tl.where(nan, 0x7FC00000, vo)
    _store_pair(out_ptr, row, col0, j, out_stride, ve, vo, valid)


@triton.jit
def _e2m1_times(code, total, halves_ptr):
    """float32 bits of E2M1(code) * total, exactly rounded (sign from the code)."""
    halves = tl.load(halves_ptr + (code & 7))
    mt, et = _significand(total[:, None] + tl.zeros_like(code))
    v = _round_f32(halves.to(tl.int64) * mt, halves < 0, et - 1)
    return v | ((code & 8) << 28)

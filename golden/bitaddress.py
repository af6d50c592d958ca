"""LUT addresses straight from float32 bits: the integer form of normalization (§7, §8.2).

For a finite float32 x with biased exponent Ex and stored mantissa m, |x| = M * 2^(Ee-150)
with Ee = max(Ex, 1) and M = m + 2^23 (normal) or M = m (subnormal). With the block
exponent e, the normalized magnitude scaled to F fractional bits is

    v * 2^F = |x| * 2^(F - e) = M * 2^-sh,   sh = 150 - F + e - Ee,

so the LUT address `floor(v 2^F) << 1 | sticky` is `(M >> sh) << 1 | (low sh bits != 0)`:
integer shifts only, exact for subnormals, no float64 and no rounding anywhere. It equals
`lut.normalized_code(v, F)` of the exact float64 v bit for bit (tested). The same
address at a coarser resolution is a table lookup (`coarsen_map`), which lets one fine
address index both the error LUT (resolution F) and the index LUT (resolution g + 1).

These functions are the golden model's fast path and the algorithm the Triton kernels
(`semdialect.kernels`) implement.
"""

from __future__ import annotations

import numpy as np

from semdialect.errors import UsageError

from .elements import floor_log2

__all__ = [
    "magnitude_bits",
    "block_exponent_bits",
    "magnitude_address",
    "coarsen_map",
    "MAX_ADDRESS_SHIFT",
    "element_address_bits",
    "element_code_table",
]

ABS_MASK = np.int32(0x7FFFFFFF)
INF_BITS = 0x7F800000
MAX_ADDRESS_SHIFT = 24  # M < 2^24: shifting by 24 or more leaves 0 and every bit sticky


def magnitude_bits(x32: np.ndarray) -> np.ndarray:
    """|x| as int32 bit patterns (ordered like the magnitudes; NaN/Inf >= 0x7F800000)."""
    return np.ascontiguousarray(x32, dtype=np.float32).view(np.int32) & ABS_MASK


def block_exponent_bits(ab: np.ndarray, emax: int):
    """Shared exponent e = clamp(floor(log2 amax) - emax, -127, 127) of blocks ab (nb, k)
    (§4, §7) and the NaN/Inf mask. The max of the magnitude bits is the bits of amax."""
    amax = ab.max(axis=-1)
    bad = amax >= INF_BITS
    amax = np.where(bad, 0, amax).astype(np.int32)
    e = np.clip(floor_log2(amax.view(np.float32)) - emax, -127, 127).astype(np.int32)
    return e, bad


def magnitude_address(ab: np.ndarray, e: np.ndarray, frac_bits: int, int_bits: int):
    """floor(|x| 2^(F-e)) << 1 | sticky for finite magnitude bits ab (nb, k) and block
    exponents e (nb,) with |x| < 2^(e + int_bits). int32, shape of ab."""
    if 23 - frac_bits - (int_bits - 1) < 0:  # sh >= 0 needs F + emax <= 23
        raise UsageError(f"{frac_bits} fractional + {int_bits} integer bits exceed float32")
    ee = ab >> 23
    np.maximum(ee, 1, out=ee)  # Ee (in place: this runs on every element)
    sh = (np.int32(150 - frac_bits) + e)[..., None] - ee
    np.minimum(sh, MAX_ADDRESS_SHIFT, out=sh)
    ee -= 1
    ee <<= 23
    mant = np.subtract(ab, ee, out=ee)  # M: the hidden bit restored for normals
    t = mant >> sh
    sticky = t << sh
    np.not_equal(sticky, mant, out=sticky, casting="unsafe")  # 0 / 1
    t <<= 1
    t |= sticky
    return t


def coarsen_map(int_bits: int, fine_bits: int, coarse_bits: int) -> np.ndarray:
    """Address at `coarse_bits` fractional bits of every address at `fine_bits` >= it:
    t' = t >> (fine - coarse), sticky' = sticky | (dropped bits != 0). (2^(I+fine+1),)"""
    if coarse_bits > fine_bits:
        raise UsageError("coarsen_map needs coarse_bits <= fine_bits")
    a = np.arange(2 << (int_bits + fine_bits), dtype=np.int64)
    t, s = a >> 1, a & 1
    d = fine_bits - coarse_bits
    tc = t >> d
    sc = s | ((t & ((1 << d) - 1)) != 0)
    return (tc << 1) | sc


MAX_TABLE_ADDRESSES = 1 << 12  # element formats with a small exact table take the fast path


def element_address_bits(elem) -> int | None:
    """Fractional bits of the exact address of a minifloat (every RNE boundary of an
    m-bit mantissa is a multiple of 2^(emin - m - 1)), or None if its table is too big."""
    if not hasattr(elem, "emin") or not hasattr(elem, "encode_magnitude"):
        return None  # MXINT8: not a minifloat
    fq = elem.mbits + 1 - elem.emin
    if 23 - fq - elem.emax < 0 or (2 << (elem.emax + 1 + fq)) > MAX_TABLE_ADDRESSES:
        return None
    return fq


_ELEMENT_TABLES: dict = {}


def element_code_table(elem) -> np.ndarray:
    """Magnitude code of every exact address of `elem` (uint8), through the element's
    own codec: a point t 2^-fq is encoded as itself, an open interval by its midpoint
    (no rounding boundary lies inside it)."""
    key = elem.name
    if key not in _ELEMENT_TABLES:
        fq = element_address_bits(elem)
        a = np.arange(2 << (elem.emax + 1 + fq), dtype=np.int64)
        rep = np.ldexp(a.astype(np.float64), -(fq + 1))  # (2t + sticky) 2^-(fq+1)
        table = elem.encode_magnitude(rep).astype(np.uint8)
        table.setflags(write=False)
        _ELEMENT_TABLES[key] = table
    return _ELEMENT_TABLES[key]

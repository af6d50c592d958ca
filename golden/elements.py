"""Element and scale codecs (numerics §2, §3, §4).

Every codec maps between raw codes (unsigned integers, sign in the top bit for signed
formats) and values. Encoding is round-to-nearest-even and saturating; it is exact for
any float32/float16/bfloat16 (or float64) input.

The minifloat encoder uses one identity for normals and subnormals alike: with
E = max(floor(log2 a), emin) and q = RNE(a * 2^(m - E)),

    code = ((E - emin) << m) + q

because a subnormal has exponent field 0 and mantissa q, and a normal has exponent
field E - emin + 1 and mantissa q - 2^m. When rounding carries q to 2^(m+1) the sum
lands on the next binade's first code, so no fix-up is needed; saturation is a
``min`` with the largest finite code since codes are ordered like values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

__all__ = [
    "ElementFormat",
    "E2M1",
    "E2M3",
    "E3M2",
    "E4M3",
    "E5M2",
    "UE4M3",
    "INT8_MX",
    "ELEMENT_FORMATS",
    "floor_log2",
    "encode_e8m0",
    "decode_e8m0",
    "E8M0_NAN",
]


def floor_log2(a: np.ndarray) -> np.ndarray:
    """Exact floor(log2(a)) for finite a > 0 (subnormals included); -inf is not produced:
    zeros give a very small number (-2000) so that any clamp treats them as 'below range'."""
    _, ex = np.frexp(a)
    out = ex.astype(np.int32) - 1
    return np.where(a > 0, out, np.int32(-2000))


@dataclass(frozen=True)
class ElementFormat:
    """A sign-magnitude minifloat element format (OCP MX element types and friends)."""

    name: str
    ebits: int
    mbits: int
    bias: int
    max_value: float
    # Codes reserved for Inf/NaN above the largest finite code (per sign half).
    special: str = "none"  # "none" | "e4m3fn" (S.1111.111 NaN) | "ieee" (Inf + NaNs)
    signed: bool = True
    _cache: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def bits(self) -> int:
        return self.ebits + self.mbits + (1 if self.signed else 0)

    @property
    def emin(self) -> int:
        return 1 - self.bias

    @property
    def emax(self) -> int:
        """Exponent of the largest power of two representable (OCP emax_elem)."""
        return int(np.floor(np.log2(self.max_value)))

    @property
    def sign_shift(self) -> int:
        return self.ebits + self.mbits

    @cached_property
    def max_code(self) -> int:
        """Magnitude code of the largest finite value."""
        mags = self.magnitudes
        return int(np.flatnonzero(mags == self.max_value)[0])

    @cached_property
    def magnitudes(self) -> np.ndarray:
        """float64 value of every magnitude code 0 .. 2^(e+m)-1 (NaN/Inf where special)."""
        n = 1 << (self.ebits + self.mbits)
        codes = np.arange(n)
        exp = codes >> self.mbits
        man = codes & ((1 << self.mbits) - 1)
        sub = man * 2.0 ** (self.emin - self.mbits)
        nor = (1.0 + man / 2.0**self.mbits) * 2.0 ** (exp - self.bias)
        vals = np.where(exp == 0, sub, nor).astype(np.float64)
        top = (1 << self.ebits) - 1
        if self.special == "e4m3fn":
            vals[(exp == top) & (man == (1 << self.mbits) - 1)] = np.nan
        elif self.special == "ieee":
            vals[(exp == top) & (man == 0)] = np.inf
            vals[(exp == top) & (man != 0)] = np.nan
        return vals

    @cached_property
    def values(self) -> np.ndarray:
        """float64 value of every code 0 .. 2^bits - 1 (the decode table)."""
        mags = self.magnitudes
        if not self.signed:
            return mags.copy()
        return np.concatenate([mags, -mags])

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """Codes (any integer dtype) -> float64 values."""
        codes = np.asarray(codes)
        if codes.size and (codes.min() < 0 or codes.max() >= (1 << self.bits)):
            raise ValueError(f"{self.name}: code out of range 0..{(1 << self.bits) - 1}")
        return self.values[codes.astype(np.intp)]

    def encode_magnitude(self, a: np.ndarray) -> np.ndarray:
        """Magnitude code of finite a >= 0 (float32 or float64), RNE, saturating. int32."""
        e = np.maximum(floor_log2(a), self.emin)
        q = np.rint(np.ldexp(a, (self.mbits - e).astype(np.int32)))
        code = ((e - self.emin) << self.mbits) + q.astype(np.int32)
        return np.minimum(code, self.max_code)

    def encode(self, x: np.ndarray) -> np.ndarray:
        """Values -> uint8 codes (RNE, saturating, §3). NaN -> the format's NaN code if it
        has one, else a ValueError; +-Inf saturates to +-max (satfinite)."""
        x = np.asarray(x)
        if x.dtype not in (np.float32, np.float64):
            x = x.astype(np.float32)
        nan = np.isnan(x)
        a = np.abs(x)
        a = np.where(np.isinf(a), self.max_value, a).astype(x.dtype)
        a = np.where(nan, 0, a).astype(x.dtype)
        code = self.encode_magnitude(a)
        if self.signed:
            code = code | (np.signbit(x).astype(np.int32) << self.sign_shift)
        if nan.any():
            if self.special == "none":
                raise ValueError(f"{self.name} has no NaN encoding")
            nan_code = int(np.flatnonzero(np.isnan(self.magnitudes))[-1])
            code = np.where(nan, nan_code, code)  # positive NaN (0x7F)
        return code.astype(np.uint8)


E2M1 = ElementFormat("e2m1", 2, 1, 1, 6.0)
E2M3 = ElementFormat("e2m3", 2, 3, 1, 7.5)
E3M2 = ElementFormat("e3m2", 3, 2, 3, 28.0)
E4M3 = ElementFormat("e4m3", 4, 3, 7, 448.0, special="e4m3fn")
E5M2 = ElementFormat("e5m2", 5, 2, 15, 57344.0, special="ieee")
# NVFP4 block scale: E4M3 bits with the sign fixed to 0 (codes 0x00..0x7E finite).
UE4M3 = ElementFormat("ue4m3", 4, 3, 7, 448.0, special="e4m3fn", signed=False)


@dataclass(frozen=True)
class Int8MX:
    """MX INT8: two's complement, value = code / 64 (numerics §4). Codes -127..127."""

    name: str = "int8"
    bits: int = 8
    max_value: float = 127 / 64
    emax: int = 0

    @cached_property
    def values(self) -> np.ndarray:
        return np.arange(256, dtype=np.uint8).view(np.int8).astype(np.float64) / 64.0

    def decode(self, codes: np.ndarray) -> np.ndarray:
        return self.values[np.asarray(codes).astype(np.intp)]

    def encode(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if np.isnan(x).any():
            raise ValueError("int8 has no NaN encoding")
        q = np.clip(np.rint(x * 64.0), -127, 127).astype(np.int8)
        return q.view(np.uint8)


INT8_MX = Int8MX()

ELEMENT_FORMATS = {f.name: f for f in (E2M1, E2M3, E3M2, E4M3, E5M2, UE4M3, INT8_MX)}

E8M0_NAN = 0xFF


def decode_e8m0(codes: np.ndarray) -> np.ndarray:
    """E8M0 scale codes -> float64 2^(code-127); 0xFF -> NaN."""
    codes = np.asarray(codes).astype(np.int32)
    out = np.ldexp(1.0, codes - 127)
    return np.where(codes == E8M0_NAN, np.nan, out)


def encode_e8m0(x: np.ndarray) -> np.ndarray:
    """Values -> E8M0 codes: nearest power of two, ties up (as ml_dtypes), saturating to
    [2^-127, 2^127]; 0 -> 0x00; negative, NaN, Inf -> 0xFF (numerics §12)."""
    x = np.asarray(x, dtype=np.float64)
    bad = ~np.isfinite(x) | (x < 0)
    a = np.where(bad, 1.0, x)
    m, ex = np.frexp(a)  # a = m * 2^ex, m in [0.5, 1)
    # nearest power of two: 2^(ex-1) if m < 0.75 else 2^ex (tie m == 0.75 goes up)
    e = np.where(m >= 0.75, ex, ex - 1)
    e = np.where(a == 0, -127, e)
    code = np.clip(e + 127, 0, 254)
    return np.where(bad, E8M0_NAN, code).astype(np.uint8)

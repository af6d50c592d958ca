"""Fixed-grid block formats: OCP MX (§4), NVFP4 (§5) and INT4 (§6)."""

from __future__ import annotations

import numpy as np

from semdialect.errors import UsageError

from ._parallel import run_chunks
from .bitaddress import (
    block_exponent_bits,
    element_address_bits,
    element_code_table,
    magnitude_address,
    magnitude_bits,
)
from .elements import E2M1, E2M3, E3M2, E4M3, E5M2, E8M0_NAN, INT8_MX, UE4M3, floor_log2
from .inputs import to_blocks
from .quantized import QuantizedTensor

__all__ = ["MXFormat", "NVFP4Format", "Int4Format", "block_exponent", "nvfp4_tensor_scale"]


def block_exponent(amax: np.ndarray, emax: int) -> np.ndarray:
    """e = clamp(floor(log2 amax) - emax, -127, 127); amax = 0 gives -127 (§4)."""
    return np.clip(floor_log2(amax) - emax, -127, 127).astype(np.int32)


def _nonfinite_blocks(xb: np.ndarray) -> np.ndarray:
    return ~np.isfinite(xb).all(axis=-1)


class MXFormat:
    """OCP MX v1.0 block format with an E8M0 shared scale (numerics §4)."""

    def __init__(self, name: str, elem, default_block: int = 32):
        self.name = name
        self.elem = elem
        self.default_block = default_block
        self.code_bits = elem.bits

    def quantize(self, x32: np.ndarray, block_size: int | None = None) -> QuantizedTensor:
        k = self.default_block if block_size is None else block_size
        xb = to_blocks(x32, k)
        lead = xb.shape[:-1]
        xb = xb.reshape(-1, k)
        codes = np.empty(xb.shape, dtype=np.uint8)
        scales = np.empty(len(xb), dtype=np.uint8)

        def chunk(s0, s1):
            codes[s0:s1], scales[s0:s1] = self._quantize_blocks(xb[s0:s1])

        run_chunks(chunk, len(xb), k)
        return QuantizedTensor(self.name, k, codes.reshape(x32.shape), scales.reshape(lead),
                               _impl=self)

    def _quantize_blocks(self, xb: np.ndarray):
        """(nb, k) float32 blocks -> (codes (nb, k) uint8, scale codes (nb,) uint8)."""
        fq = element_address_bits(self.elem)
        if fq is not None:
            return self._quantize_blocks_by_address(xb, fq)
        bad = _nonfinite_blocks(xb)
        a = np.abs(xb)
        amax = np.where(bad, 0, a.max(axis=-1))
        e = block_exponent(amax, self.elem.emax)
        # x * 2^-e is exact in float32 (power-of-two scaling; anything that underflows
        # is far below half the smallest element subnormal and rounds to 0 either way).
        with np.errstate(over="ignore", invalid="ignore"):
            y = np.ldexp(xb, -e[..., None])
        y = np.where(bad[..., None], 0, y).astype(np.float32)
        codes = self.elem.encode(y)
        codes[bad] = 0
        scales = np.where(bad, E8M0_NAN, e + 127).astype(np.uint8)
        return codes, scales

    def _quantize_blocks_by_address(self, xb: np.ndarray, fq: int):
        """The same codes through the exact address of x * 2^-e (bitaddress.py): integer
        shifts from the float32 bits and one lookup in the element's code table."""
        el = self.elem
        ab = magnitude_bits(xb)
        e, bad = block_exponent_bits(ab, el.emax)
        ab[bad] = 0
        addr = magnitude_address(ab, e, fq, el.emax + 1)
        codes = element_code_table(el)[addr]
        codes |= np.signbit(xb).astype(np.uint8) << el.sign_shift
        codes[bad] = 0
        return codes, np.where(bad, E8M0_NAN, e + 127).astype(np.uint8)

    def dequantize(self, qt: QuantizedTensor) -> np.ndarray:
        vals = self.elem.decode(qt.block_view(qt.codes))
        s = qt.scales.astype(np.int32)
        out = np.ldexp(vals, (s - 127)[..., None])
        out = np.where((s == E8M0_NAN)[..., None], np.nan, out)
        return out.reshape(qt.codes.shape)

    def bits_per_element(self, qt: QuantizedTensor) -> float:
        return self.code_bits + 8 / qt.block_size


F4_MAX = np.float32(6.0)
E4M3_MAX = np.float32(448.0)
E4M3_MIN_NORMAL = np.float32(2.0**-6)  # torchao's E4M3_EPS = finfo(float8_e4m3fn).tiny
# Floor of the tensor scale: keeps 1 / (s_t * s_b) finite in float32 for every block scale
# s_b >= 2^-6 (numerics §5); only tensors with amax below 448 * 6 * 2^-120 reach it.
TENSOR_SCALE_FLOOR = np.float32(2.0**-120)
FP16_MAX = np.float32(65504.0)  # INT4's fp16 block scale saturates here (numerics §6)


def check_tensor_amax(v) -> np.float32:
    """tensor_amax must be a finite real number >= 0 that float32 holds (numerics §5)."""
    a = np.asarray(v)
    if a.ndim != 0 or a.dtype.kind not in "iuf":
        raise UsageError(f"tensor_amax must be a real number, got {v!r}")
    with np.errstate(over="ignore"):
        f = np.float32(a)
    if not np.isfinite(f) or f < 0:
        raise UsageError(f"tensor_amax must be finite and >= 0 (in float32), got {v!r}")
    return f


def nvfp4_tensor_scale(tensor_amax) -> np.float32:
    """s_t = max(fp32(amax / (448 * 6)), 2^-120); 1 for amax = 0 (numerics §5).
    tensor_amax is validated first (finite, >= 0, a real number)."""
    tensor_amax = check_tensor_amax(tensor_amax)
    if tensor_amax > 0:
        return max(np.float32(tensor_amax / (E4M3_MAX * F4_MAX)), TENSOR_SCALE_FLOOR)
    return np.float32(1)


class NVFP4Format:
    """NVFP4: E2M1 elements, UE4M3 block scale per 16, float32 tensor scale (§5).

    Every operation is an IEEE float32 operation in the order torchao (and the MSLK
    Triton kernel) performs them, so float32 input matches torchao bit for bit.
    """

    name = "nvfp4"
    code_bits = 4
    default_block = 16

    def quantize(self, x32, block_size: int | None = None, tensor_amax=None) -> QuantizedTensor:
        k = self.default_block if block_size is None else block_size
        if k != 16:
            raise ValueError(f"nvfp4 uses blocks of 16 elements, got block_size={k}")
        xb = to_blocks(x32, k)
        bad = _nonfinite_blocks(xb)
        a = np.abs(xb)
        amax_b = np.where(bad, np.float32(0), a.max(axis=-1)).astype(np.float32)
        if tensor_amax is None:
            finite = a[np.isfinite(a)]
            tensor_amax = finite.max() if finite.size else np.float32(0)
        s_t = nvfp4_tensor_scale(tensor_amax)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            block_scale = (amax_b / F4_MAX).astype(np.float32)
            scaled = np.clip((block_scale / s_t).astype(np.float32), E4M3_MIN_NORMAL, E4M3_MAX)
            sb_code = UE4M3.encode(scaled)
            sb = UE4M3.decode(sb_code).astype(np.float32)
            recip = ((np.float32(1) / s_t) / sb).astype(np.float32)
            y = (xb * recip[..., None]).astype(np.float32)
        y = np.clip(np.where(bad[..., None], 0, y), -F4_MAX, F4_MAX).astype(np.float32)
        codes = E2M1.encode(y)
        codes[bad] = 0
        sb_code = np.where(bad, 0x7F, sb_code).astype(np.uint8)
        return QuantizedTensor(
            self.name, k, codes.reshape(x32.shape), sb_code, tensor_scale=s_t, _impl=self
        )

    def dequantize(self, qt: QuantizedTensor) -> np.ndarray:
        vals = E2M1.decode(qt.block_view(qt.codes)).astype(np.float32)
        sb = UE4M3.decode(qt.scales).astype(np.float32)
        total = (sb * np.float32(qt.tensor_scale)).astype(np.float32)
        return (vals * total[..., None]).astype(np.float32).reshape(qt.codes.shape)

    def bits_per_element(self, qt: QuantizedTensor) -> float:
        return 4 + 8 / qt.block_size + 32 / max(1, qt.codes.size)


class Int4Format:
    """Symmetric per-block absmax INT4 with an fp16 scale (§6)."""

    name = "int4"
    code_bits = 4
    default_block = 32

    def quantize(self, x32, block_size: int | None = None) -> QuantizedTensor:
        k = self.default_block if block_size is None else block_size
        xb = to_blocks(x32, k)
        bad = _nonfinite_blocks(xb)
        amax = np.where(bad, np.float32(0), np.abs(xb).max(axis=-1))
        # saturate: an fp16 scale never becomes Inf (numerics §6)
        s16 = np.minimum(amax / np.float32(7), FP16_MAX).astype(np.float16)
        s = s16.astype(np.float32)
        with np.errstate(divide="ignore", invalid="ignore"):
            q = np.where(s[..., None] > 0, xb / s[..., None], 0).astype(np.float32)
        q = np.clip(np.rint(np.where(bad[..., None], 0, q)), -7, 7)
        codes = (np.signbit(xb).astype(np.uint8) << 3) | np.abs(q).astype(np.uint8)
        codes[bad] = 0
        s16 = np.where(bad, np.float16(np.nan), s16).astype(np.float16)
        return QuantizedTensor(self.name, k, codes.reshape(x32.shape), s16.view(np.uint16),
                               _impl=self)

    def dequantize(self, qt: QuantizedTensor) -> np.ndarray:
        c = qt.block_view(qt.codes).astype(np.int32)
        mag = (c & 7).astype(np.float32)
        val = np.where(c & 8, -mag, mag)
        s = qt.scales.view(np.float16).astype(np.float32)
        return (val * s[..., None]).astype(np.float32).reshape(qt.codes.shape)

    def bits_per_element(self, qt: QuantizedTensor) -> float:
        return 4 + 16 / qt.block_size


MX_FORMATS = {
    "mxfp4": MXFormat("mxfp4", E2M1),
    "mxfp6_e2m3": MXFormat("mxfp6_e2m3", E2M3),
    "mxfp6_e3m2": MXFormat("mxfp6_e3m2", E3M2),
    "mxfp8_e4m3": MXFormat("mxfp8_e4m3", E4M3),
    "mxfp8_e5m2": MXFormat("mxfp8_e5m2", E5M2),
    "mxint8": MXFormat("mxint8", INT8_MX),
}

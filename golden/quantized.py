"""QuantizedTensor: the result of `semdialect.golden.quantize`, and bit packing (§10)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["QuantizedTensor", "pack_codes", "unpack_codes"]


def pack_codes(codes: np.ndarray, bits: int) -> np.ndarray:
    """Little-endian bit stream, element 0 at bit 0 (4-bit: element 0 in the low nibble).
    Packs along the last axis; its length * bits must be a multiple of 8."""
    codes = np.asarray(codes)
    n = codes.shape[-1]
    if (n * bits) % 8:
        raise ValueError(f"{n} codes of {bits} bits do not fill whole bytes")
    if codes.size and int(codes.max()) >= (1 << bits):
        raise ValueError(f"code does not fit in {bits} bits")
    if bits == 8:
        return codes.astype(np.uint8)
    if bits == 4:
        c = codes.astype(np.uint8).reshape(*codes.shape[:-1], n // 2, 2)
        return c[..., 0] | (c[..., 1] << 4)
    bitarr = ((codes[..., None].astype(np.uint16) >> np.arange(bits)) & 1).astype(np.uint8)
    bitarr = bitarr.reshape(*codes.shape[:-1], n * bits)
    return np.packbits(bitarr, axis=-1, bitorder="little")


def unpack_codes(packed: np.ndarray, bits: int, n: int | None = None) -> np.ndarray:
    """Inverse of `pack_codes`: (..., nbytes) uint8 -> (..., n) uint8 codes."""
    packed = np.asarray(packed, dtype=np.uint8)
    if bits == 8:
        out = packed
    elif bits == 4:
        out = np.stack([packed & 0xF, packed >> 4], axis=-1).reshape(*packed.shape[:-1], -1)
    else:
        bitarr = np.unpackbits(packed, axis=-1, bitorder="little")
        m = bitarr.shape[-1] // bits
        bitarr = bitarr[..., : m * bits].reshape(*packed.shape[:-1], m, bits).astype(np.uint8)
        out = (bitarr << np.arange(bits, dtype=np.uint8)).sum(-1).astype(np.uint8)
    if n is not None:
        out = out[..., :n]
    return out


@dataclass
class QuantizedTensor:
    """A block-quantized tensor (numerics §2, §10).

    codes: uint8, same shape as the input (4-bit formats: sign << 3 | index).
    scales: raw scale bits, shape input.shape[:-1] + (n_blocks,) (uint8, int4: uint16).
    dialects: uint8 per block (dialect formats) or None.
    tensor_scale: float32 scalar (nvfp4) or None.
    """

    format: str
    block_size: int
    codes: np.ndarray
    scales: np.ndarray
    dialects: np.ndarray | None = None
    tensor_scale: np.float32 | None = None
    options: dict[str, Any] = field(default_factory=dict)
    _impl: Any = field(default=None, repr=False)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.codes.shape)

    @property
    def code_bits(self) -> int:
        return self._impl.code_bits

    @property
    def bits_per_element(self) -> float:
        """Storage cost with all metadata counted (numerics §11)."""
        return self._impl.bits_per_element(self)

    def dequantize(self) -> np.ndarray:
        """float32 values (exact: every dequantized value fits float32)."""
        return self._impl.dequantize(self).astype(np.float32)

    def pack(self) -> np.ndarray:
        """Element codes as a little-endian bit stream along the last axis (§10)."""
        return pack_codes(self.codes, self.code_bits)

    def block_view(self, arr: np.ndarray) -> np.ndarray:
        return arr.reshape(*arr.shape[:-1], arr.shape[-1] // self.block_size, self.block_size)

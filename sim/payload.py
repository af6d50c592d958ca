"""Stream payload layouts: bulk packing of input blocks into port integers and bulk
unpacking of captured output integers into NumPy arrays (no per-element Python)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Field", "PayloadLayout", "ints_to_bits", "bits_to_ints"]


@dataclass(frozen=True)
class Field:
    name: str
    offset: int  # LSB position in the port
    width: int
    count: int = 1  # > 1: an array of `count` elements of `width` bits, element 0 lowest

    @property
    def bits(self) -> int:
        return self.width * self.count


def ints_to_bits(values, width: int) -> np.ndarray:
    """Python ints (M,) -> (M, width) uint8 bit matrix, bit 0 first."""
    nbytes = (width + 7) // 8
    buf = b"".join(int(v).to_bytes(nbytes, "little") for v in values)
    by = np.frombuffer(buf, dtype=np.uint8).reshape(-1, nbytes)
    return np.unpackbits(by, axis=1, bitorder="little")[:, :width]


def bits_to_ints(bits: np.ndarray) -> list[int]:
    """(M, width) bit matrix -> Python ints."""
    by = np.packbits(bits.astype(np.uint8), axis=1, bitorder="little")
    return [int.from_bytes(r.tobytes(), "little") for r in by]


class PayloadLayout:
    """Fields of one stream payload port (offsets from the RTL manifest)."""

    def __init__(self, width: int, fields: list[Field]):
        self.width = width
        self.fields = {f.name: f for f in fields}
        for f in fields:
            if f.offset + f.bits > width:
                raise ValueError(f"field {f.name} [{f.offset}+{f.bits}] exceeds port width "
                                 f"{width}")

    def __contains__(self, name: str) -> bool:
        return name in self.fields

    def __getitem__(self, name: str) -> Field:
        return self.fields[name]

    def pack(self, n: int, **values: np.ndarray) -> list[int]:
        """Pack n payloads. values: name -> (n,) ints or (n, count) array elements.
        Fields not given are 0."""
        bits = np.zeros((n, self.width), dtype=np.uint8)
        for name, v in values.items():
            f = self.fields[name]
            v = np.asarray(v).astype(np.uint64).reshape(n, f.count)
            fb = ((v[:, :, None] >> np.arange(f.width, dtype=np.uint64)) & 1).astype(np.uint8)
            bits[:, f.offset:f.offset + f.bits] = fb.reshape(n, f.bits)
        return bits_to_ints(bits)

    def unpack(self, values) -> dict[str, np.ndarray]:
        """Unpack captured payload ints: name -> (M,) or (M, count) uint64 arrays."""
        bits = ints_to_bits(values, self.width)
        out = {}
        for name, f in self.fields.items():
            fb = bits[:, f.offset:f.offset + f.bits].reshape(-1, f.count, f.width)
            v = (fb.astype(np.uint64) << np.arange(f.width, dtype=np.uint64)).sum(-1)
            out[name] = v[:, 0] if f.count == 1 else v
        return out

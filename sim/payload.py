"""Stream payload layouts: bulk packing of input blocks into port integers and bulk
unpacking of captured output integers into NumPy arrays (no per-element Python)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Field", "PayloadLayout", "ints_to_bits", "bits_to_ints", "words_of"]


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


def words_of(width: int) -> int:
    """32-bit words of a payload record (Verilator's EData words, word 0 lowest)."""
    return (width + 31) // 32


def _uint_dtype(width: int) -> np.dtype:
    for dt in (np.uint8, np.uint16, np.uint32, np.uint64):
        if width <= np.dtype(dt).itemsize * 8:
            return np.dtype(dt).newbyteorder("<")
    raise ValueError(f"field element of {width} bits is wider than 64")


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

    def _bits(self, n: int, values: dict) -> np.ndarray:
        bits = np.zeros((n, self.width), dtype=np.uint8)
        for name, v in values.items():
            f = self.fields[name]
            dt = _uint_dtype(f.width)
            v = np.ascontiguousarray(np.asarray(v).astype(dt).reshape(n, f.count))
            fb = np.unpackbits(v.view(np.uint8).reshape(n, f.count, dt.itemsize), axis=2,
                               bitorder="little")[:, :, :f.width]
            bits[:, f.offset:f.offset + f.bits] = fb.reshape(n, f.bits)
        return bits

    def pack(self, n: int, **values: np.ndarray) -> list[int]:
        """Pack n payloads. values: name -> (n,) ints or (n, count) array elements.
        Fields not given are 0."""
        return bits_to_ints(self._bits(n, values))

    def pack_words(self, n: int, **values: np.ndarray) -> np.ndarray:
        """Like pack, as (n, words_of(width)) little-endian uint32 records (the compiled
        harness's file format, sim/bulk_harness.cpp)."""
        nw = words_of(self.width)
        by = np.packbits(self._bits(n, values), axis=1, bitorder="little")
        rec = np.zeros((n, 4 * nw), dtype=np.uint8)
        rec[:, :by.shape[1]] = by
        return rec.view("<u4")

    def unpack_words(self, words: np.ndarray) -> dict[str, np.ndarray]:
        """unpack() of (M, words_of(width)) uint32 records."""
        w = np.ascontiguousarray(np.asarray(words, dtype="<u4").reshape(-1, words_of(self.width)))
        bits = np.unpackbits(w.view(np.uint8).reshape(len(w), 4 * w.shape[1]), axis=1,
                             bitorder="little")[:, :self.width]
        return self._fields(bits)

    def unpack(self, values) -> dict[str, np.ndarray]:
        """Unpack captured payload ints: name -> (M,) or (M, count) uint64 arrays."""
        return self._fields(ints_to_bits(values, self.width))

    def _fields(self, bits: np.ndarray) -> dict[str, np.ndarray]:
        out = {}
        for name, f in self.fields.items():
            fb = bits[:, f.offset:f.offset + f.bits].reshape(-1, f.count, f.width)
            dt = _uint_dtype(f.width).newbyteorder("=")  # the narrowest that holds it
            v = (fb.astype(dt) << np.arange(f.width, dtype=dt)).sum(-1, dtype=dt)
            v = v.astype(np.uint64)
            out[name] = v[:, 0] if f.count == 1 else v
        return out

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
        harness's file format, sim/bulk_harness.cpp). Byte-wise, field by field (no
        bit matrix of the whole record): fields of whole bytes are copied, the others
        are bit-packed on their own and OR-ed in at their byte offset (fields do not
        overlap)."""
        nw = words_of(self.width)
        rec = np.zeros((n, 4 * nw + 1), dtype=np.uint8)  # + 1: an unaligned field's spill
        for name, v in values.items():
            f = self.fields[name]
            dt = _uint_dtype(f.width)
            v = np.ascontiguousarray(np.asarray(v).astype(dt).reshape(n, f.count))
            o = f.offset // 8
            if f.width % 8 == 0 and f.offset % 8 == 0:
                nb = f.width // 8
                by = v.view(np.uint8).reshape(n, f.count, dt.itemsize)[:, :, :nb]
                rec[:, o:o + f.bits // 8] = by.reshape(n, f.bits // 8)
                continue
            pad = f.offset % 8
            fb = np.zeros((n, pad + f.bits), dtype=np.uint8)
            if f.width == 1:
                fb[:, pad:] = v & 1
            else:
                fb[:, pad:] = np.unpackbits(v.view(np.uint8).reshape(n, f.count, dt.itemsize),
                                            axis=2, count=f.width,
                                            bitorder="little").reshape(n, f.bits)
            by = np.packbits(fb, axis=1, bitorder="little")
            rec[:, o:o + by.shape[1]] |= by
        return np.ascontiguousarray(rec[:, :4 * nw]).view("<u4")

    def unpack_words(self, words: np.ndarray) -> dict[str, np.ndarray]:
        """unpack() of (M, words_of(width)) uint32 records: name -> (M,) or (M, count)
        uint64 arrays. Byte-wise: each element is gathered from the (at most 8) bytes it
        spans, shifted and masked."""
        w = np.ascontiguousarray(np.asarray(words, dtype="<u4").reshape(-1, words_of(self.width)))
        m = len(w)
        by = np.zeros((m, 4 * w.shape[1] + 8), dtype=np.uint8)  # + 8: the gathers' overrun
        by[:, :4 * w.shape[1]] = w.view(np.uint8).reshape(m, 4 * w.shape[1])
        out = {}
        for name, f in self.fields.items():
            if f.width > 57:  # may span 9 bytes: the bit matrix
                bits = np.unpackbits(by, axis=1, bitorder="little")[:, :self.width]
                out[name] = self._fields(bits)[name]
                continue
            pos = f.offset + np.arange(f.count) * f.width
            lo, sh = pos // 8, pos % 8
            nb = int((sh.max() + f.width + 7) // 8)
            dt = _uint_dtype(8 * nb).newbyteorder("=")  # the narrowest that holds nb bytes
            v = by[:, lo].astype(dt)
            for k in range(1, nb):
                v |= by[:, lo + k].astype(dt) << dt.type(8 * k)
            v = ((v >> sh.astype(dt)) & dt.type((1 << f.width) - 1)).astype(np.uint64)
            out[name] = v[:, 0] if f.count == 1 else v
        return out

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

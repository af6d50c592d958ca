"""Two-level dialect selection (numerics §15): the block max picks a class of K candidate
dialects, the LUT error argmin runs over that class only.

The tables here are the hardware's: `semdialect.rtl` reads `TwoLevelTables.class_ids`
and `TwoLevelTables.class_err_rows` to generate its ROMs, and the golden quantizer
selects through the very same arrays. They are slices of the §8 `LutSet` built by
`build_luts` (one source of truth: no second error table).

Kept apart from the exhaustive path (dialects.lut_block_errors / masked_argmin) on
purpose: the error sums here are per-element ROM reads of the K class candidates, the
way the two-level unit computes them, not a D-wide histogram product.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from semdialect.errors import UsageError

from .formatbook import Formatbook, FormatbookError, load_formatbook
from .lut import DEFAULT_ERR_BITS, DEFAULT_FRAC_BITS, LutSet, build_luts

__all__ = [
    "TwoLevelTables",
    "build_two_level",
    "block_class",
    "effective_class",
    "two_level_select",
    "two_level_select_from_errors",
    "class_from_address",
]


@dataclass(frozen=True)
class TwoLevelTables:
    """Class tables of one class-structured formatbook at one LUT resolution (§15)."""

    luts: LutSet  # the §8 tables: ERR (D, 2^A) and IDX, unchanged
    class_ids: np.ndarray  # (N, K) int64: ascending dialect ids of each class
    class_err: np.ndarray  # (N, K, 2^A) int64: class_err[c, j, a] = ERR[class_ids[c, j], a]

    @property
    def book(self) -> Formatbook:
        return self.luts.book

    @property
    def class_bits(self) -> int:
        return self.book.class_bits

    @property
    def num_classes(self) -> int:
        return self.class_ids.shape[0]

    @property
    def k(self) -> int:
        return self.class_ids.shape[1]

    @property
    def class_err_rows(self) -> np.ndarray:
        """(N * 2^A, K) int64: the (class, address) error ROM, row c << A | a holds the K
        W-bit errors of class c's candidates at address a (slot j = j-th smallest id)."""
        return self.class_err.transpose(0, 2, 1).reshape(-1, self.k)

    @property
    def class_rom_rows(self) -> np.ndarray:
        """`class_err_rows` as the hardware stores them: ERR >> L, W - L bits (§8.3)."""
        return self.class_err_rows >> self.luts.err_shift

    @property
    def class_rom_bits(self) -> int:
        return int(self.class_err.size) * self.luts.err_rom_width


@lru_cache(maxsize=64)
def _build_cached(book: Formatbook, frac_bits: int, err_bits: int) -> TwoLevelTables:
    luts = build_luts(book, frac_bits, err_bits)
    ids = np.array(book.classes, dtype=np.int64)
    ids.setflags(write=False)
    err = luts.err[ids]
    err.setflags(write=False)
    return TwoLevelTables(luts, ids, err)


def build_two_level(book="semdialect-32c8x8", frac_bits: int = DEFAULT_FRAC_BITS,
                    err_bits: int = DEFAULT_ERR_BITS) -> TwoLevelTables:
    """The §15 tables of a class-structured book (cached). The book must declare classes."""
    book = load_formatbook(book)
    if not book.has_classes:
        raise FormatbookError(
            f"formatbook '{book.name}' declares no classes: the two-level selector needs a "
            "class-structured book (numerics §15; e.g. semdialect-32c8x4)"
        )
    build_luts(book, frac_bits, err_bits)  # validates frac_bits / err_bits
    return _build_cached(book, int(frac_bits), int(err_bits))


def block_class(book: Formatbook, vmax: np.ndarray) -> np.ndarray:
    """§15.1: class of each block from its normalized block max vmax (exact float64):
    the class_bits bits of vmax right below the bit of weight 2^emax, i.e.
    clamp(floor(vmax * 2^(b - emax)) - 2^b, 0, 2^b - 1). vmax < 2^emax (all-zero blocks,
    blocks whose exponent clamped at -127, NaN/Inf blocks after zeroing) -> class 0."""
    b = book.class_bits
    t = np.floor(np.ldexp(np.asarray(vmax, dtype=np.float64), b - book.emax)).astype(np.int64)
    return np.clip(t - (1 << b), 0, (1 << b) - 1)


def effective_class(tables: TwoLevelTables, cls: np.ndarray, mask: np.ndarray | None):
    """§15.3: the class whose candidates are searched. Without a mask: cls. With a SeDA
    mask (D,) or (nb, D): the smallest class >= cls that has an allowed candidate; if
    none, the largest class < cls that has one (the mask is never empty)."""
    cls = np.asarray(cls, dtype=np.int64)
    if mask is None:
        return cls
    m = np.broadcast_to(mask, (len(cls), tables.book.num_dialects))
    nonempty = m[:, tables.class_ids].any(axis=-1)  # (nb, N)
    n = tables.num_classes
    c = np.arange(n)
    up = nonempty & (c[None, :] >= cls[:, None])
    down = nonempty & (c[None, :] < cls[:, None])
    first_up = np.argmax(up, axis=-1)  # lowest set bit at or above cls
    last_down = n - 1 - np.argmax(down[:, ::-1], axis=-1)  # highest set bit below cls
    return np.where(up.any(axis=-1), first_up, last_down)


def class_block_errors(tables: TwoLevelTables, ceff: np.ndarray, v: np.ndarray) -> np.ndarray:
    """(nb, K) int64: sum over the block's elements of the K error-ROM entries of row
    (ceff, address) -- the K adder trees of the unit."""
    addr = tables.luts.err_address(v)  # (nb, k)
    rows = tables.class_err[ceff[:, None], :, addr]  # (nb, k, K)
    return rows.sum(axis=1)


def two_level_select(tables: TwoLevelTables, v: np.ndarray,
                     mask: np.ndarray | None = None) -> np.ndarray:
    """§15: dialect id of each block from normalized magnitudes v (nb, k) (NaN/Inf blocks
    zeroed by the caller, which then selects them like all-zero blocks)."""
    ceff = effective_class(tables, block_class(tables.book, v.max(axis=-1)), mask)
    return _argmin_in_class(tables, ceff, class_block_errors(tables, ceff, v), mask)


def _argmin_in_class(tables: TwoLevelTables, ceff: np.ndarray, err: np.ndarray,
                     mask: np.ndarray | None) -> np.ndarray:
    """§15.4: the allowed slot with the smallest sum (nb, K), ties to the lowest slot."""
    ids = tables.class_ids[ceff]  # (nb, K)
    if mask is not None:
        m = np.broadcast_to(mask, (len(ids), tables.book.num_dialects))
        allowed = np.take_along_axis(m, ids, axis=-1)
        err = np.where(allowed, err, np.iinfo(np.int64).max)
    slot = np.argmin(err, axis=-1)  # first minimum = lowest slot = lowest id
    return ids[np.arange(len(ids)), slot]


def class_from_address(book: Formatbook, addr: np.ndarray, fine_bits: int) -> np.ndarray:
    """§15.1 from the LUT addresses (nb, k) at `fine_bits` >= b - emax fractional bits
    (the golden fast path, bitaddress.py): floor is monotone, so floor(vmax 2^(b-emax))
    is the largest floor(v_i 2^fine) shifted right by fine - (b - emax)."""
    b = book.class_bits
    drop = fine_bits - (b - book.emax)
    if drop < 0:
        raise UsageError(f"addresses at {fine_bits} fractional bits cannot give {b} class bits")
    t = ((addr.max(axis=-1) >> 1) >> drop).astype(np.int64)
    return np.clip(t - (1 << b), 0, (1 << b) - 1)


def two_level_select_from_errors(tables: TwoLevelTables, cls: np.ndarray,
                                 err_all: np.ndarray, mask: np.ndarray | None = None):
    """`two_level_select` from the block classes and the exhaustive (nb, D) LUT sums: the
    class columns of those sums are exactly the K adder-tree sums of §15.4."""
    ceff = effective_class(tables, cls, mask)
    err = np.take_along_axis(err_all, tables.class_ids[ceff], axis=-1)
    return _argmin_in_class(tables, ceff, err, mask)

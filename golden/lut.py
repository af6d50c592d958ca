"""The LUT engine (numerics §8): error and index lookup tables built from a formatbook.

These arrays are the single source of truth for the hardware: `semdialect.rtl` reads
`LutSet.err` and `LutSet.idx` to generate its ROMs, and the golden quantizer selects and
quantizes through the very same arrays.

All table entries are computed with exact integer arithmetic on a "fine" grid of
2^-Fm (Fm = max(F, g + 1)): every dialect rounding boundary is a fine grid point, so the
quantized value is constant on each open fine interval and the integral of the squared
error over it is (A^2 + AB + B^2) / 3 with integer A, B.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from semdialect.errors import LimitExceededError

from .formatbook import Formatbook, load_formatbook

__all__ = [
    "LutSet",
    "build_luts",
    "rne_index",
    "quantize_to_dialect",
    "exact_block_errors",
    "normalized_code",
    "DEFAULT_FRAC_BITS",
    "DEFAULT_ERR_BITS",
    "MAX_LUT_ENTRIES",
    "lut_entries",
    "check_lut_size",
    "err_shift",
    "err_residue",
]

DEFAULT_FRAC_BITS = 3
DEFAULT_ERR_BITS = 8
#: Largest error or index LUT built (entries = dialects x addresses; docs/limits.md). The
#: built-in books need 2^12; 256 dialects at emax 2, grid 0.5, F = 8 need 2^20.
MAX_LUT_ENTRIES = 1 << 22


def lut_entries(book: Formatbook, frac_bits: int) -> tuple[int, int]:
    """(error-LUT entries, index-LUT entries) of a book at resolution F, without building:
    D x 2^(I+F+1) and D x 2^(I+g+2) (numerics §8)."""
    d, ib, g = book.num_dialects, book.int_bits, book.grid_frac_bits
    return d << (ib + frac_bits + 1), d << (ib + g + 2)


def check_lut_size(book: Formatbook, frac_bits: int, limit: int = MAX_LUT_ENTRIES,
                   what: str = "LUT") -> None:
    """Refuse (LimitExceededError, giving the sizes) before building LUTs past `limit`."""
    err_n, idx_n = lut_entries(book, frac_bits)
    if max(err_n, idx_n) > limit:
        raise LimitExceededError(
            f"formatbook '{book.name}': its {what}s would be too large: error LUT "
            f"{book.num_dialects} x {err_n // book.num_dialects} = {err_n} entries, index LUT "
            f"{book.num_dialects} x {idx_n // book.num_dialects} = {idx_n} entries (emax "
            f"{book.emax}, grid {book.grid}, F {frac_bits}); the limit is {limit} entries "
            "per table (docs/limits.md)")


def rne_index(levels: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Index of the RNE quantization of v onto each row of `levels` (numerics §7).

    levels: (D, 8) strictly increasing; v: (...,) values in the same units (exact
    integers or float64). Returns (D, ...) int64. Ties go to the even index; values
    above the top level saturate to index 7. Exact: only compares v with midpoints.
    """
    levels = np.asarray(levels)
    mids = (levels[:, 1:] + levels[:, :-1]) / 2  # (D, 7), exact (dyadic)
    v = np.asarray(v)
    vv = v.reshape(1, -1, 1)
    m = mids[:, None, :]
    below = (m < vv).sum(axis=-1)  # boundaries strictly below v
    at = (m == vv).any(axis=-1)  # v exactly on a boundary: tie between below, below+1
    idx = below + (at & (below % 2 == 1))
    return idx.reshape(levels.shape[0], *v.shape)


def quantize_to_dialect(values: np.ndarray, dialect_ids: np.ndarray, v: np.ndarray):
    """Exact arithmetic reference: RNE of normalized magnitudes v (nb, k) onto the chosen
    dialect of each block. values: (D, 8) normalized level values. Returns index (nb, k)."""
    mids = (values[:, 1:] + values[:, :-1]) / 2
    m = mids[dialect_ids]  # (nb, 7)
    below = np.zeros(v.shape, dtype=np.int64)
    at = np.zeros(v.shape, dtype=bool)
    for j in range(m.shape[1]):  # one pass per boundary: no (nb, k, 7) temporaries
        mj = m[:, j : j + 1]
        below += mj < v
        at |= mj == v
    return below + (at & (below % 2 == 1))


def exact_block_errors(values: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Exact sum of squared errors of every dialect on every block: (nb, D) float64.
    v: (nb, k) normalized magnitudes. Used by exhaustive MSE selection and reports."""
    nb, k = v.shape
    out = np.empty((nb, values.shape[0]))
    for d in range(values.shape[0]):
        idx = rne_index(values[d : d + 1], v)[0]
        out[:, d] = ((v - values[d][idx]) ** 2).sum(axis=1)
    return out


def normalized_code(v: np.ndarray, frac_bits: int) -> np.ndarray:
    """LUT address of normalized magnitudes v (float64, exact): floor(v*2^F) << 1 | sticky."""
    s = np.ldexp(v, frac_bits)
    t = np.floor(s)
    return (t.astype(np.int64) << 1) | (s != t)


@dataclass(frozen=True)
class LutSet:
    """Error and index LUTs of one formatbook at one resolution (numerics §8)."""

    book: Formatbook
    frac_bits: int  # F: fractional bits of the error-LUT address
    err_bits: int  # W: width of an error-LUT entry (saturating)
    idx_frac_bits: int  # Fq = g + 1: fractional bits of the exact index-LUT address
    err: np.ndarray  # (D, 2^(I+F+1)) int64, entries < 2^W
    idx: np.ndarray  # (D, 2^(I+Fq+1)) uint8, entries 0..7
    #: L: the low L bits of every ERR entry are the same for every dialect (a function of
    #: the address only, numerics §8.3), so the hardware stores and sums ERR >> L
    err_shift: int
    err_rom: np.ndarray  # (D, 2^(I+F+1)) int64: ERR >> L, entries < 2^(W-L)

    @property
    def err_addr_bits(self) -> int:
        return self.book.int_bits + self.frac_bits + 1

    @property
    def idx_addr_bits(self) -> int:
        return self.book.int_bits + self.idx_frac_bits + 1

    @property
    def err_rom_width(self) -> int:
        """W - L: the width of a stored error entry (`err_rom`)."""
        return self.err_bits - self.err_shift

    @property
    def err_rom_bits(self) -> int:
        return int(self.err.size) * self.err_rom_width

    @property
    def idx_rom_bits(self) -> int:
        return int(self.idx.size) * 3

    def err_address(self, v: np.ndarray) -> np.ndarray:
        return normalized_code(v, self.frac_bits)

    def idx_address(self, v: np.ndarray) -> np.ndarray:
        return normalized_code(v, self.idx_frac_bits)


def _round_half_even_div(num: np.ndarray, den: int) -> np.ndarray:
    q, r = np.divmod(num, den)
    up = (2 * r > den) | ((2 * r == den) & (q % 2 == 1))
    return q + up


def _point_and_interval_indices(levels_fine: np.ndarray, n_points: int):
    """RNE index of every fine point p and of every open fine interval (p, p+1)."""
    pts = np.arange(n_points, dtype=np.int64)
    at_points = rne_index(levels_fine, pts)
    # the index is constant on the open interval, equal to that at its midpoint
    at_intervals = rne_index(2 * levels_fine, 2 * pts + 1)
    return at_points, at_intervals


def err_shift(book: Formatbook, frac_bits: int, err_bits: int) -> int:
    """L = min(F - g, W - 1), at least 0: the number of low bits of every ERR entry that
    depend on the address only (numerics §8.3). With F > g an entry is in units of 2^-2F
    and every dialect level is a multiple of 2^(F-g) units: at a point t the error is
    (t - p)^2 = t^2 (mod 2^(F-g+1)), on the interval (t, t+1) it is (t - p)^2 + (t - p)
    (the mean (t-p)^2 + (t-p) + 1/3, rounded) = t^2 + t (mod 2^(F-g))."""
    return max(0, min(frac_bits - book.grid_frac_bits, err_bits - 1))


def err_residue(n_addr: int, shift: int) -> np.ndarray:
    """ERR[d, a] mod 2^L for every address a = t << 1 | s: (t^2 + s t) mod 2^L."""
    a = np.arange(n_addr, dtype=np.int64)
    t, s = a >> 1, a & 1
    return (t * t + s * t) & ((1 << shift) - 1)


def error_table(mags: np.ndarray, book: Formatbook, frac_bits: int, err_bits: int | None):
    """ERR[d, a] for magnitudes `mags` (D, 8) in grid units (also used by the builder on
    candidate dialects that are not in a book yet). err_bits None: no saturation.

    Saturation (numerics §8.3) is at the largest value <= 2^W - 1 that keeps the address's
    residue mod 2^L, so that ERR = (ERR >> L) << L | residue(a) holds for every entry and
    the sums of ERR >> L have the argmin of the sums of ERR, ties included."""
    g, ib, f = book.grid_frac_bits, book.int_bits, frac_bits
    fm = max(f, g + 1)
    lev = np.asarray(mags, dtype=np.int64) << (fm - g)  # levels in fine units
    n_fine = 1 << (ib + fm)
    ip, ii = _point_and_interval_indices(lev, n_fine)
    pts = np.arange(n_fine, dtype=np.int64)
    q_pts = np.take_along_axis(lev, ip, axis=1)
    q_int = np.take_along_axis(lev, ii, axis=1)
    err_pts = (pts[None, :] - q_pts) ** 2  # fine units^2
    a = pts[None, :] - q_int
    b = a + 1
    n_int = a * a + a * b + b * b  # 3 * integral over (p, p+1), fine units^3
    r = 1 << (fm - f)  # fine intervals per coarse interval
    n_coarse = 1 << (ib + f)
    # entries in units of 2^-2Fm: exact for points, mean over the r fine intervals
    point = err_pts[:, ::r]
    interval = _round_half_even_div(n_int.reshape(len(lev), n_coarse, r).sum(-1), 3 * r)
    err = np.empty((len(lev), 2 * n_coarse), dtype=np.int64)
    err[:, 0::2] = point
    err[:, 1::2] = interval
    if err_bits is not None:
        shift = err_shift(book, f, err_bits)
        res = err_residue(err.shape[1], shift)
        top = (1 << err_bits) - 1
        np.minimum(err, top - ((top - res) & ((1 << shift) - 1)), out=err)
        if np.any((err & ((1 << shift) - 1)) != res):  # the §8.3 proof, checked on every build
            raise AssertionError(f"ERR low bits are not address-only at F={f}, L={shift}")
    return err


def index_table(book: Formatbook) -> np.ndarray:
    g, ib = book.grid_frac_bits, book.int_bits
    fq = g + 1
    lev = book.magnitudes << (fq - g)
    ip, ii = _point_and_interval_indices(lev, 1 << (ib + fq))
    idx = np.empty((book.num_dialects, 2 << (ib + fq)), dtype=np.uint8)
    idx[:, 0::2] = ip
    idx[:, 1::2] = ii
    return idx


@lru_cache(maxsize=64)
def _build_cached(book: Formatbook, frac_bits: int, err_bits: int) -> LutSet:
    err = error_table(book.magnitudes, book, frac_bits, err_bits)
    err.setflags(write=False)
    shift = err_shift(book, frac_bits, err_bits)
    rom = err >> shift
    rom.setflags(write=False)
    idx = index_table(book)
    idx.setflags(write=False)
    return LutSet(book, frac_bits, err_bits, book.grid_frac_bits + 1, err, idx, shift, rom)


def build_luts(book="semdialect-32", frac_bits: int = DEFAULT_FRAC_BITS,
               err_bits: int = DEFAULT_ERR_BITS) -> LutSet:
    """Build (cached) the error and index LUTs of a formatbook (numerics §8)."""
    book = load_formatbook(book)
    if not isinstance(frac_bits, (int, np.integer)) or not book.grid_frac_bits <= frac_bits <= 8:
        raise ValueError(
            f"frac_bits must be an integer in {book.grid_frac_bits}..8 for grid {book.grid}, "
            f"got {frac_bits!r}"
        )
    if not isinstance(err_bits, (int, np.integer)) or not 1 <= err_bits <= 24:
        raise ValueError(f"err_bits must be an integer in 1..24, got {err_bits!r}")
    check_lut_size(book, int(frac_bits))
    return _build_cached(book, int(frac_bits), int(err_bits))

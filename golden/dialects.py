"""Formatbook (dialect) block formats: `semdialect` (LUT engine, §8) and `dialectfp4`
(BlockDialect, §9)."""

from __future__ import annotations

import numpy as np

from semdialect.errors import UsageError

from ._parallel import run_chunks
from .bitaddress import block_exponent_bits, coarsen_map, magnitude_address, magnitude_bits
from .elements import E8M0_NAN
from .formatbook import Formatbook, load_formatbook
from .inputs import to_blocks
from .lut import (
    DEFAULT_ERR_BITS,
    DEFAULT_FRAC_BITS,
    LutSet,
    build_luts,
    exact_block_errors,
    normalized_code,
    quantize_to_dialect,
    rne_index,
)
from .quantized import QuantizedTensor
from .scalar_formats import block_exponent
from .two_level import build_two_level, class_from_address, two_level_select_from_errors

__all__ = ["DialectFormat", "lut_block_errors", "finite_block_errors", "allowed_mask",
           "two_stage_select", "default_selector"]

CHUNK_BLOCKS = 1 << 15  # blocks per histogram chunk (bounds memory to ~16 MB)
HIST_BLOCKS = 1 << 9  # blocks per histogram of the address path (fits L2; 2^11 was 3x slower)
SELECTORS = ("lut", "mse", "two-stage", "two-level")


def normalize_blocks(book: Formatbook, xb: np.ndarray):
    """Shared scale and normalized magnitudes of blocks (§7). Returns (e, v, bad) with
    v float64 (exact: sticky bits of tiny elements must survive)."""
    bad = ~np.isfinite(xb).all(axis=-1)
    # NaN/Inf blocks are zeroed before the cast (their v is 0 by §7 anyway); casting a
    # NaN of a narrow dtype raised "invalid value encountered in cast"
    a = np.where(bad[..., None], np.zeros((), xb.dtype), np.abs(xb))
    amax = a.max(axis=-1)
    e = block_exponent(amax, book.emax)
    v = np.ldexp(a.astype(np.float64), -e[..., None])
    return e, v, bad


def lut_block_errors(luts: LutSet, v: np.ndarray) -> np.ndarray:
    """sum_i ERR[d, a_i] for every block and dialect: (nb, D) int64, via per-block address
    histograms times the error matrix (the same sums the RTL adder trees produce)."""
    nb, k = v.shape
    n_addr = luts.err.shape[1]
    err_t = luts.err.T.astype(np.float64)  # exact: sums stay far below 2^53
    out = np.empty((nb, luts.err.shape[0]), dtype=np.int64)
    for s in range(0, nb, CHUNK_BLOCKS):
        vc = v[s : s + CHUNK_BLOCKS]
        m = len(vc)
        addr = luts.err_address(vc) + (np.arange(m)[:, None] * n_addr)
        hist = np.bincount(addr.ravel(), minlength=m * n_addr).reshape(m, n_addr)
        out[s : s + m] = np.rint(hist @ err_t).astype(np.int64)
    return out


def finite_block_errors(luts: LutSet, xb: np.ndarray) -> np.ndarray:
    """lut_block_errors(luts, v[~bad]) of float32 blocks xb (nb, k), NaN/Inf blocks left
    out, by the integer address path the quantizer uses (bitaddress.py; equal bit for bit,
    tested) in cache-sized chunks: SeDA profiles every group with it."""
    ab = magnitude_bits(xb)
    e, bad = block_exponent_bits(ab, luts.book.emax)
    ok = ~bad
    addr = magnitude_address(ab[ok], e[ok], luts.frac_bits, luts.book.int_bits)
    return address_block_errors(luts.err, addr)


def address_luts(luts: LutSet, fine_bits: int):
    """The error and index LUTs re-addressed by one address at `fine_bits` >= F, g + 1
    fractional bits (gathers from `luts`: the same tables, no second source):
    (err (D, n) int64, idx (D, n) uint8)."""
    ib = luts.book.int_bits
    err = luts.err[:, coarsen_map(ib, fine_bits, luts.frac_bits)]
    idx = luts.idx[:, coarsen_map(ib, fine_bits, luts.idx_frac_bits)]
    return err, idx


def address_block_errors(err: np.ndarray, addr: np.ndarray) -> np.ndarray:
    """sum_i err[d, addr_i] for every block and dialect: (nb, D) int64, from address
    histograms times the error matrix. The sums are integers; float32 holds them exactly
    when k * max(err) < 2^24 (any summation order, FMA or not), else float64 does."""
    nb, k = addr.shape
    n_dial, n_addr = err.shape
    exact32 = k * int(err.max(initial=0)) < (1 << 24)
    ftype = np.float32 if exact32 else np.float64
    err_t = np.ascontiguousarray(err.T, dtype=ftype)
    # GEMMs below OpenBLAS's threading threshold (M*N*K <= 2^18) run single-threaded:
    # run_chunks already uses every core, and BLAS threads spinning against a loaded
    # machine made the product up to 100x slower. (Numerically neutral: sums are exact.)
    rows = max(8, (1 << 18) // (n_dial * n_addr))
    out = np.empty((nb, n_dial), dtype=ftype)
    base = np.arange(min(nb, HIST_BLOCKS))[:, None] * n_addr
    for s in range(0, nb, HIST_BLOCKS):
        ac = addr[s : s + HIST_BLOCKS]
        m = len(ac)
        hist = np.bincount((ac + base[:m]).ravel(), minlength=m * n_addr)
        hist = hist.reshape(m, n_addr).astype(ftype)
        for r in range(0, m, rows):
            np.matmul(hist[r : r + rows], err_t, out=out[s + r : s + min(m, r + rows)])
    return out.astype(np.int64)


def allowed_mask(allowed, n_blocks: int, n_dialects: int) -> np.ndarray | None:
    """Normalize an allowed-dialect spec to a (nb, D) or (D,) bool mask, or None (§8.4):

    - a **bool** array of shape (D,) or (nb, D): a mask (True = may be chosen);
    - a 1-D sequence of distinct **integer** ids in 0..D-1: those dialects.

    Anything else is refused (UsageError): floats, 2-D integers, duplicate ids, and, being
    ambiguous, an integer sequence of length D whose values are all 0 or 1 (a mask of the
    wrong dtype; pass ``mask.astype(bool)`` or the ids ``np.flatnonzero(mask)``)."""
    if allowed is None:
        return None
    m = np.asarray(allowed)
    if m.dtype != bool:
        if m.size and m.dtype.kind not in "iu":
            raise UsageError(f"allowed must be a bool mask or integer dialect ids, got dtype "
                             f"{m.dtype}")
        if m.ndim != 1:
            raise UsageError(f"allowed dialect ids must be a 1-D list, got shape {m.shape} "
                             "(a per-block mask must have dtype bool)")
        ids = m.astype(np.int64)
        if ids.size == 0 or ids.min() < 0 or ids.max() >= n_dialects:
            raise UsageError(f"allowed dialect ids must be in 0..{n_dialects - 1}, got {m}")
        if n_dialects > 1 and ids.size == n_dialects and np.isin(ids, (0, 1)).all():
            raise UsageError(
                f"allowed is ambiguous: {n_dialects} integers that are all 0 or 1 read like a "
                "mask; pass a bool mask (mask.astype(bool)) or dialect ids "
                "(np.flatnonzero(mask))")
        if len(np.unique(ids)) != ids.size:
            raise UsageError(f"allowed dialect ids must be distinct, got {m}")
        mask = np.zeros(n_dialects, dtype=bool)
        mask[ids] = True
        return mask
    if m.ndim == 0 or m.shape[-1] != n_dialects or m.ndim > 2 or (
            m.ndim == 2 and m.shape[0] != n_blocks):
        raise UsageError(
            f"allowed mask must have shape ({n_dialects},) or ({n_blocks}, {n_dialects}), "
            f"got {m.shape}"
        )
    if not m.any(axis=-1).all():
        raise UsageError("allowed mask leaves a block with no dialect to choose from")
    return m


def masked_argmin(err: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """argmin over allowed dialects, ties to the lowest id (§8.4)."""
    if mask is not None:
        err = np.where(mask, err, np.iinfo(np.int64).max if err.dtype.kind == "i" else np.inf)
    return np.argmin(err, axis=-1)


def _pairs(book: Formatbook) -> np.ndarray:
    mags = book.magnitudes
    if book.num_dialects % 2 or np.any(mags[0::2, -1] != mags[1::2, -1]):
        raise ValueError(
            f"two-stage selection needs dialect pairs (2j, 2j+1) sharing a maximum; "
            f"formatbook '{book.name}' does not have them"
        )
    return mags[0::2, -1]


def beneficial_table(book: Formatbook) -> np.ndarray:
    """(n_pairs, 2, n_addr) bool at the exact resolution Fq: True where that member's RNE
    error is strictly smaller than its partner's (§9). Exact: error differences change
    sign only at fine grid points, so each (t, sticky) address has one answer."""
    # Compare the exact squared errors at every fine point and at every open-interval
    # midpoint: both members' errors are continuous and quadratic between fine points,
    # where no rounding boundary and no equal-error crossing can lie, so the midpoint
    # decides the whole interval.
    fq = book.grid_frac_bits + 1
    n = 1 << (book.int_bits + fq)
    lev = book.magnitudes << (fq - book.grid_frac_bits)  # fine units
    pts2 = np.empty(2 * n, dtype=np.int64)
    pts2[0::2] = 2 * np.arange(n)  # points, in half-fine units
    pts2[1::2] = 2 * np.arange(n) + 1  # interval midpoints
    idx = rne_index(2 * lev, pts2)  # (D, 2n)
    err = (pts2[None, :] - np.take_along_axis(2 * lev, idx, axis=1)) ** 2
    a, b = err[0::2], err[1::2]
    return np.stack([a < b, b < a], axis=1)


def two_stage_select(book: Formatbook, v: np.ndarray, bad: np.ndarray) -> np.ndarray:
    """BlockDialect's online selector (§9)."""
    maxes = _pairs(book)  # grid units, one per pair
    vmax = v.max(axis=-1)
    g = book.grid
    m = np.rint(vmax / g)  # round the block max to the grid (RNE)
    m = np.clip(m, maxes.min(), maxes.max())
    # pair whose max equals m; if m falls between pair maxima take the nearest above
    order = np.argsort(maxes)
    pos = np.searchsorted(maxes[order], m, side="left")
    pair = order[np.clip(pos, 0, len(order) - 1)]
    ben = beneficial_table(book)
    aq = normalized_code(v, book.grid_frac_bits + 1)
    cnt_a = ben[pair, 0][np.arange(len(pair))[:, None], aq].sum(-1)
    cnt_b = ben[pair, 1][np.arange(len(pair))[:, None], aq].sum(-1)
    d = 2 * pair + (cnt_b > cnt_a)
    return np.where(bad, 0, d)


def default_selector(book: Formatbook) -> str:
    """numerics §15.7: 'two-level' on a class-structured book, else the exhaustive 'lut'."""
    return "two-level" if book.has_classes else "lut"


class DialectFormat:
    """A formatbook format. selector: 'lut' (§8), 'mse' (exact), 'two-stage' (§9),
    'two-level' (§15, class-structured books)."""

    code_bits = 4

    def __init__(self, name: str, book: str, selector: str | None, default_block: int = 32):
        self.name = name
        self.default_book = book
        self.default_selector = selector
        self.default_block = default_block

    def quantize(self, x32, block_size=None, formatbook=None, selector=None,
                 frac_bits: int = DEFAULT_FRAC_BITS, err_bits: int = DEFAULT_ERR_BITS,
                 allowed=None) -> QuantizedTensor:
        k = self.default_block if block_size is None else block_size
        book = load_formatbook(formatbook or self.default_book)
        selector = selector or self.default_selector or default_selector(book)
        if selector not in SELECTORS:
            raise ValueError(f"unknown selector {selector!r}: use one of {', '.join(SELECTORS)}")
        xb = to_blocks(x32, k)
        lead = xb.shape[:-1]
        xb = xb.reshape(-1, k)
        mask = allowed_mask(allowed, len(xb), book.num_dialects)
        if mask is not None and mask.ndim == 2 and mask.shape[0] != len(xb):
            raise ValueError("allowed mask rows must match the number of blocks")
        if selector == "two-stage" and mask is not None:
            raise ValueError("the two-stage selector does not take an allowed mask")
        fast = selector in ("lut", "two-level")  # integer path from the float32 bits
        luts = build_luts(book, frac_bits, err_bits) if fast else None
        tables = build_two_level(book, frac_bits, err_bits) if selector == "two-level" else None
        if fast:  # one address at the finer of F and g + 1 feeds both LUTs
            fine_bits = max(luts.frac_bits, luts.idx_frac_bits)
            err_f, idx_f = address_luts(luts, fine_bits)
            idx_flat = idx_f.ravel()
        codes = np.empty(xb.shape, dtype=np.uint8)
        scales = np.empty(len(xb), dtype=np.uint8)
        d = np.empty(len(xb), dtype=np.int64)

        def chunk(s0, s1):
            xc = xb[s0:s1]
            mc = mask[s0:s1] if mask is not None and mask.ndim == 2 else mask
            if fast:  # (bitaddress.py; equal to the float64 path bit for bit)
                ab = magnitude_bits(xc)
                e, bad = block_exponent_bits(ab, book.emax)
                ab[bad] = 0
                addr = magnitude_address(ab, e, fine_bits, book.int_bits)
                err = address_block_errors(err_f, addr)
                if selector == "lut":
                    dc = masked_argmin(err, mc)
                else:  # NaN/Inf blocks select as all-zero ones (§15.4)
                    dc = two_level_select_from_errors(
                        tables, class_from_address(book, addr, fine_bits), err, mc)
            else:
                e, v, bad = normalize_blocks(book, xc)
                if selector == "mse":
                    dc = masked_argmin(exact_block_errors(book.values, v), mc)
                else:
                    dc = two_stage_select(book, v, bad)
            if mc is not None and selector != "two-level":  # NaN/Inf: lowest allowed (§8.7)
                first = np.argmax(np.broadcast_to(mc, (len(xc), book.num_dialects)), axis=-1)
                dc = np.where(bad, first, dc)
            if fast:  # exact RNE through the index LUT (§8.5)
                idx = idx_flat[dc[:, None] * idx_f.shape[1] + addr]
            else:
                idx = quantize_to_dialect(book.values, dc, v).astype(np.uint8)
            cc = (np.signbit(xc).astype(np.uint8) << 3) | idx
            cc[bad] = 0
            codes[s0:s1] = cc
            scales[s0:s1] = np.where(bad, E8M0_NAN, e + 127)
            d[s0:s1] = dc

        run_chunks(chunk, len(xb), k)
        opts = {"formatbook": book.name, "selector": selector}
        if selector in ("lut", "two-level"):
            opts.update(frac_bits=frac_bits, err_bits=err_bits)
        qt = QuantizedTensor(
            self.name, k, codes.reshape(x32.shape), scales.reshape(lead),
            dialects=d.astype(np.uint8).reshape(lead), options=opts, _impl=self,
        )
        qt.options["_book"] = book
        return qt

    def dequantize(self, qt: QuantizedTensor) -> np.ndarray:
        book: Formatbook = qt.options["_book"]
        c = qt.block_view(qt.codes).astype(np.int64)
        d = qt.dialects.astype(np.int64)[..., None]
        mag = book.values[d, c & 7]
        val = np.where(c & 8, -mag, mag)
        s = qt.scales.astype(np.int32)
        out = np.ldexp(val, (s - 127)[..., None])
        out = np.where((s == E8M0_NAN)[..., None], np.nan, out)
        return out.reshape(qt.codes.shape)

    def bits_per_element(self, qt: QuantizedTensor) -> float:
        return qt.options["_book"].bits_per_element(qt.block_size)

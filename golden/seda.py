"""SeDA: semantic-aware dialect assignment with sub-formatbooks (numerics §14).

Anchor tokens (those receiving the most attention) each lead a group of correlated
tokens (those attending to it most). A group shares a sub-formatbook: K of the book's N
dialects, chosen by profiling the bin counts (error-LUT address histograms) of the
anchor's blocks. Every block of the group then picks its dialect inside the sub-book,
through the same LUT engine with an allowed-dialect mask, which the RTL takes as input.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .dialects import finite_block_errors
from .formatbook import load_formatbook
from .inputs import as_float32, to_blocks
from .lut import DEFAULT_ERR_BITS, DEFAULT_FRAC_BITS, build_luts
from .quantized import QuantizedTensor

__all__ = [
    "anchor_groups_from_attention",
    "profile_sub_formatbook",
    "profile_rows",
    "SedaResult",
    "quantize_seda",
    "dialect_consistency",
    "code_consistency",
]


def anchor_groups_from_attention(probs: np.ndarray, n_anchors: int):
    """probs (..., q, k) over the same tokens (self-attention). Anchors: the n tokens with
    the most received attention mass. Every token joins the anchor it attends to most
    (probability summed over heads); anchors lead their own groups.
    Returns (anchors (n,), group (tokens,) in 0..n-1)."""
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim < 2 or p.shape[-1] != p.shape[-2]:
        raise ValueError(f"self-attention probabilities need (..., t, t), got {p.shape}")
    p = p.reshape(-1, p.shape[-2], p.shape[-1]).sum(axis=0)  # (q, k)
    t = p.shape[0]
    if not 1 <= n_anchors <= t:
        raise ValueError(f"n_anchors must be in 1..{t}, got {n_anchors}")
    received = p.sum(axis=0)
    anchors = np.argsort(-received, kind="stable")[:n_anchors]
    group = np.argmax(p[:, anchors], axis=1)
    group[anchors] = np.arange(n_anchors)
    return anchors, group


def profile_sub_formatbook(anchor_rows, k_sub: int, book="semdialect-32",
                           block_size: int = 32, frac_bits: int = DEFAULT_FRAC_BITS,
                           err_bits: int = DEFAULT_ERR_BITS) -> np.ndarray:
    """K dialect ids (ascending) for the anchor's blocks: greedy selection minimizing the
    sum over anchor blocks of the smallest LUT error within the sub-book (the bin counts
    of the anchor's codes times the error LUT). Ties go to the lowest dialect id."""
    book = load_formatbook(book)
    if not 1 <= k_sub <= book.num_dialects:
        raise ValueError(f"sub-formatbook size must be in 1..{book.num_dialects}, got {k_sub}")
    luts = build_luts(book, frac_bits, err_bits)
    xb = to_blocks(as_float32(np.asarray(anchor_rows)), block_size).reshape(-1, block_size)
    cost = finite_block_errors(luts, xb).astype(np.float64)
    chosen: list[int] = []
    best = np.full(len(cost), np.inf)
    for _ in range(k_sub):
        totals = np.minimum(cost, best[:, None]).sum(axis=0) if len(cost) else np.zeros(
            book.num_dialects)
        totals[chosen] = np.inf
        c = int(np.argmin(totals))
        chosen.append(c)
        if len(cost):
            best = np.minimum(best, cost[:, c])
    return np.array(sorted(chosen), dtype=np.int64)


def profile_rows(x, group: np.ndarray, anchors: np.ndarray, profile: str = "anchor"):
    """The rows each group's sub-formatbook is profiled on: the anchor token alone
    ("anchor", numerics §14) or all tokens of the group ("group": one bin-count
    histogram accumulated over the group's blocks at the refresh step)."""
    if profile == "anchor":
        return [x[a : a + 1] for a in anchors]
    if profile == "group":
        return [x[group == g] for g in range(len(anchors))]
    raise ValueError(f"profile must be 'anchor' or 'group', got {profile!r}")


@dataclass
class SedaResult:
    qt: QuantizedTensor  # dialects are global ids; local = position in the sub-book
    sub_books: np.ndarray  # (groups, K) dialect ids
    group: np.ndarray  # (rows,) group id per row (token)

    @property
    def local_dialects(self) -> np.ndarray:
        """Per-block index inside the group's sub-book (what is stored: log2 K bits)."""
        d = self.qt.dialects.reshape(len(self.group), -1)
        sub = self.sub_books[self.group]  # (rows, K)
        return np.argmax(sub[:, None, :] == d[:, :, None], axis=-1)

    @property
    def bits_per_element(self) -> float:
        """4-bit codes + (E8M0 + log2 K) per block + per-row group id + sub-book table."""
        book = self.qt.options["_book"]
        n = self.qt.codes.size
        k = self.qt.block_size
        n_groups, k_sub = self.sub_books.shape
        local = math.ceil(math.log2(k_sub)) if k_sub > 1 else 0
        per_row = math.ceil(math.log2(n_groups)) if n_groups > 1 else 0
        table = n_groups * k_sub * book.dialect_bits
        return 4 + (8 + local) / k + (per_row * len(self.group) + table) / n


def quantize_seda(x, group: np.ndarray, anchors: np.ndarray, k_sub: int,
                  book="semdialect-32", block_size: int = 32,
                  frac_bits: int = DEFAULT_FRAC_BITS, err_bits: int = DEFAULT_ERR_BITS,
                  sub_books: np.ndarray | None = None, profile: str = "anchor"
                  ) -> SedaResult:
    """Quantize rows (tokens) of x (tokens, channels) with per-group sub-formatbooks.
    sub_books: reuse previously profiled sub-books (anchor refresh every R steps).
    profile: profile each sub-book on the anchor's blocks ("anchor") or on the blocks
    of every token of its group ("group"), see `profile_rows`."""
    from . import quantize

    x32 = as_float32(x)
    if x32.ndim != 2:
        raise ValueError(f"SeDA quantizes a (tokens, channels) matrix, got shape {x32.shape}")
    group = np.asarray(group, dtype=np.int64)
    anchors = np.asarray(anchors, dtype=np.int64)
    if group.shape != (x32.shape[0],):
        raise ValueError(f"group must have shape ({x32.shape[0]},), got {group.shape}")
    if group.min() < 0 or group.max() >= len(anchors):
        raise ValueError("group ids must index into anchors")
    bk = load_formatbook(book)
    if sub_books is None:
        sub_books = np.stack([profile_sub_formatbook(rows, k_sub, bk, block_size, frac_bits,
                                                     err_bits)
                              for rows in profile_rows(x, group, anchors, profile)])
    nb = x32.shape[1] // block_size
    mask = np.zeros((x32.shape[0], nb, bk.num_dialects), dtype=bool)
    rows = np.arange(x32.shape[0])
    mask[rows[:, None], :, sub_books[group]] = True  # broadcast: (rows,1,K) -> every block
    qt = quantize(x, "semdialect", formatbook=bk, block_size=block_size, frac_bits=frac_bits,
                  err_bits=err_bits, allowed=mask.reshape(-1, bk.num_dialects))
    return SedaResult(qt, sub_books, group)


def dialect_consistency(a: np.ndarray, b: np.ndarray) -> float:
    """Fraction of blocks whose dialect id is the same in a and b (same shape)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"dialect arrays differ in shape: {a.shape} vs {b.shape}")
    return float(np.mean(a == b)) if a.size else 1.0


def code_consistency(a: np.ndarray, b: np.ndarray) -> float:
    """Fraction of elements whose 4-bit code (quantized value) is the same."""
    return dialect_consistency(a, b)

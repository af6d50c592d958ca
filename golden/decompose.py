"""Attention-guided activation decomposition (numerics §13).

For salient tokens (rows), the quantization residual r = x - deq(q(x)) is quantized
again with the same quantizer and added back: x ~ deq(q(x)) + deq(q(r)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .inputs import INPUT_DTYPES, as_float32, input_dtype_name
from .quantized import QuantizedTensor

__all__ = [
    "salient_from_attention",
    "salient_from_qk",
    "DecomposedTensor",
    "quantize_decomposed",
    "salient_index_bits",
]


def _top_fraction(score: np.ndarray, top_frac: float) -> np.ndarray:
    if not 0 <= top_frac <= 1:
        raise ValueError(f"top_frac must be in [0, 1], got {top_frac}")
    n = score.shape[-1]
    k = int(round(top_frac * n))
    mask = np.zeros(n, dtype=bool)
    if k:
        # stable: equal scores keep the lower token index first
        order = np.argsort(-score, kind="stable")
        mask[order[:k]] = True
    return mask


def salient_from_attention(probs: np.ndarray, top_frac: float) -> np.ndarray:
    """Tokens receiving the most attention mass: probs (..., q, k) rows summing to 1;
    the score of key token j is the sum over heads/queries of probs[..., :, j]."""
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim < 2:
        raise ValueError(f"attention probabilities need (..., q, k), got shape {p.shape}")
    score = p.reshape(-1, p.shape[-1]).sum(axis=0)
    return _top_fraction(score, top_frac)


def salient_from_qk(q: np.ndarray, k: np.ndarray, top_frac: float, chunk: int = 1024):
    """Same as salient_from_attention, from q, k of shape (heads, tokens, head_dim),
    computing softmax(q k^T / sqrt(d)) in query chunks so long videos fit in memory."""
    q = np.asarray(q, dtype=np.float64)
    k = np.asarray(k, dtype=np.float64)
    if q.ndim != 3 or k.ndim != 3 or q.shape[0] != k.shape[0] or q.shape[2] != k.shape[2]:
        raise ValueError(f"q and k must be (heads, tokens, dim) alike, got {q.shape}, {k.shape}")
    score = np.zeros(k.shape[1])
    scale = 1 / np.sqrt(q.shape[-1])
    for s in range(0, q.shape[1], chunk):
        logits = np.einsum("hqd,hkd->hqk", q[:, s : s + chunk], k) * scale
        logits -= logits.max(axis=-1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(axis=-1, keepdims=True)
        score += p.sum(axis=(0, 1))
    return _top_fraction(score, top_frac)


@dataclass
class DecomposedTensor:
    """primary: the whole tensor quantized; residual: the residual of the salient rows
    (in the order of `salient_rows`), quantized with the same format and options."""

    primary: QuantizedTensor
    residual: QuantizedTensor | None
    salient_rows: np.ndarray  # int64 row indices (rows = all axes but the last, flattened)

    def dequantize(self) -> np.ndarray:
        out = self.primary.dequantize()
        if self.residual is not None and len(self.salient_rows):
            flat = out.reshape(-1, out.shape[-1])
            flat[self.salient_rows] += self.residual.dequantize().reshape(
                len(self.salient_rows), -1)
        return out

    @property
    def row_index_bits(self) -> int:
        """Bits naming the salient rows: a flag bit per row or a list of ceil(log2 rows)-bit
        row indices, whichever is smaller (numerics §13)."""
        rows = self.primary.codes.size // self.primary.codes.shape[-1]
        return salient_index_bits(rows, len(self.salient_rows))

    @property
    def bits_per_element(self) -> float:
        """Primary bits + residual bits of salient rows + the salient-row index, per
        element (numerics §13)."""
        n = self.primary.codes.size
        extra = 0.0
        if self.residual is not None:
            extra = self.residual.bits_per_element * self.residual.codes.size
        return self.primary.bits_per_element + (extra + self.row_index_bits) / n


def salient_index_bits(rows: int, n_salient: int) -> int:
    """min(rows (bitmap), n_salient * ceil(log2 rows) (index list)); 0 when none."""
    if n_salient == 0:
        return 0
    width = max(1, math.ceil(math.log2(rows)))
    return min(rows, n_salient * width)


def quantize_decomposed(x, fmt: str, salient, primary: QuantizedTensor | None = None,
                        **options) -> DecomposedTensor:
    """Quantize x; re-quantize the residual of the salient rows (numerics §13).

    salient: bool mask over rows (x.reshape(-1, x.shape[-1])) or row indices. The residual
    is computed exactly in float32 and rounded (RNE) to x's dtype before the second pass,
    which is what a unit with a bf16/fp16 input port receives. `primary`: an already
    quantized x (e.g. by SeDA sub-formatbooks) to take the residual of.
    """
    from . import quantize

    dtype_name = input_dtype_name(x)
    x32 = as_float32(x)
    rows = x32.reshape(-1, x32.shape[-1])
    sal = np.asarray(salient)
    if sal.dtype == bool:
        if sal.shape != (rows.shape[0],):
            raise ValueError(f"salient mask must have shape ({rows.shape[0]},), got {sal.shape}")
        idx = np.flatnonzero(sal)
    else:
        idx = np.unique(sal.astype(np.int64))
        if idx.size and (idx[0] < 0 or idx[-1] >= rows.shape[0]):
            raise ValueError(f"salient row index out of range 0..{rows.shape[0] - 1}")
    if primary is None:
        primary = quantize(x, fmt, **options)
    if idx.size == 0:
        return DecomposedTensor(primary, None, idx)
    deq = primary.dequantize().reshape(rows.shape)
    # exact: deq is a nearest (or saturated) rounding of x, so Sterbenz's lemma applies
    resid = (rows[idx] - deq[idx]).astype(np.float32)
    in_dtype = next(d for d, n in INPUT_DTYPES.items() if n == dtype_name)
    residual = quantize(resid.astype(in_dtype), fmt, **options)
    return DecomposedTensor(primary, residual, idx)

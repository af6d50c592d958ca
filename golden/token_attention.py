"""Salient tokens and SeDA anchors from a token attention without holding it (§13-§14).

`quality.token_attention` builds the (heads, T, T) float64 attention a Linear input's
salient tokens and anchor groups come from: 103 GB at 32k tokens. The methods need only

- the salient score: received mass, summed over (head, query) rows in order;
- the anchors: received mass of the head-summed attention, and each token's most
  attended anchor.

`TokenAttention` computes both from row blocks of that matrix, each block computed by
the very operations the whole matrix is (so every value is bit-identical), and sums
them in the same order as the whole-matrix reductions (NumPy reduces a C-ordered
matrix over axis 0 row after row). Memory: one block of `chunk_bytes` plus O(tokens)
(cross-attention modes also hold q k^T probabilities over the text tokens: O(tokens x
text tokens)). When the whole matrix fits in `chunk_bytes` it is built once and the
whole-matrix functions are used, as before. Only the results are kept.
"""

from __future__ import annotations

import numpy as np

__all__ = ["TokenAttention", "CHUNK_BYTES"]

CHUNK_BYTES = 256 << 20  # float64 working set of one row block


def _seq_add(acc, rows: np.ndarray):
    """acc + rows[0] + rows[1] + ..., in that order (= rows-first axis-0 reduction)."""
    if acc is None:
        return rows.sum(axis=0)
    return np.concatenate([acc[None], rows]).sum(axis=0)


class TokenAttention:
    """The token attention of one step of a sequence (x, AttnRef or None), queried for
    `salient_score()` and `anchor_groups(n)`, each bit-identical to the whole-matrix
    `salient_from_attention` / `anchor_groups_from_attention` inputs."""

    def __init__(self, x: np.ndarray, ref=None, chunk_bytes: int = CHUNK_BYTES):
        self.x, self.ref, self.chunk_bytes = x, ref, int(chunk_bytes)
        self._cross = None  # cross modes: probabilities (heads, Tq, Tk) or A (heads, T, T)
        self._score = None
        self._anchors: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        if ref is None:
            self.heads, self.t = 1, x.shape[0]
        else:
            self.heads = ref.q.shape[0]
            self.t = {"self": ref.q.shape[1],
                      "joint": (ref.span[1] - ref.span[0]) if ref.span else 0,
                      "cross-keys": ref.k.shape[1],
                      "cross-queries": ref.q.shape[1]}.get(ref.mode)
            if self.t is None:
                raise ValueError(f"unknown attention mode {ref.mode!r}")

    # ------------------------------------------------------------------ row blocks
    def _fits(self) -> bool:
        return self.heads * self.t * self.t * 8 <= self.chunk_bytes

    def _from_full(self, n_anchors: int | None) -> None:
        """Build the whole matrix once, take the statistics, let it go (the results are
        kept, never the matrix: a table holds many sequences)."""
        from .quality import token_attention
        from .seda import anchor_groups_from_attention

        p = token_attention(self.x, self.ref)
        if self._score is None:
            self._score = p.reshape(-1, p.shape[-1]).sum(axis=0)
        if n_anchors is not None:
            self._anchors[n_anchors] = anchor_groups_from_attention(p, n_anchors)

    def rows(self, h0: int, h1: int, r0: int, r1: int) -> np.ndarray:
        """token_attention(x, ref)[h0:h1, r0:r1], computed for those rows only."""
        from .quality import attention_probs

        ref = self.ref
        if ref is None:
            xx = np.asarray(self.x, np.float64)[None]
            return attention_probs(xx[:, r0:r1], xx)
        if ref.mode == "self":
            return attention_probs(ref.q[h0:h1, r0:r1], ref.k[h0:h1])
        if ref.mode == "joint":
            a, b = ref.span
            return attention_probs(ref.q[h0:h1, a + r0:a + r1], ref.k[h0:h1])[:, :, a:b]
        if ref.mode == "cross-keys":  # A = P^T P over the (few) text tokens, per head
            if self._cross is None:
                self._cross = np.concatenate([
                    np.einsum("hqj,hqk->hjk", p, p) for p in
                    (attention_probs(ref.q[h:h + 1], ref.k[h:h + 1])
                     for h in range(self.heads))])
            return self._cross[h0:h1, r0:r1]
        # cross-queries: A = P P^T over the video tokens, from P (heads, Tq, text tokens)
        if self._cross is None:
            self._cross = attention_probs(ref.q, ref.k)
        p = self._cross
        return np.einsum("hik,hjk->hij", p[h0:h1, r0:r1], p[h0:h1])

    def _row_step(self, heads: int) -> int:
        return max(1, self.chunk_bytes // (8 * self.t * heads))

    # ------------------------------------------------------------------ statistics
    def salient_score(self) -> np.ndarray:
        """Received mass per token: probs.reshape(-1, T).sum(axis=0)."""
        if self._score is None:
            if self._fits():
                self._from_full(None)
            else:
                acc = None
                step = self._row_step(1)
                for h in range(self.heads):  # (head, query) rows in C order
                    for r in range(0, self.t, step):
                        acc = _seq_add(acc, self.rows(h, h + 1, r, min(r + step, self.t))[0])
                self._score = acc
                self._cross = None
        return self._score

    def anchor_groups(self, n_anchors: int):
        """(anchors, group) = seda.anchor_groups_from_attention(probs, n_anchors)."""
        if n_anchors in self._anchors:
            return self._anchors[n_anchors]
        if self._fits():
            self._from_full(n_anchors)
            return self._anchors[n_anchors]
        else:
            if not 1 <= n_anchors <= self.t:
                raise ValueError(f"n_anchors must be in 1..{self.t}, got {n_anchors}")
            step = self._row_step(self.heads)
            received = None
            for r in range(0, self.t, step):  # head-summed rows, then over queries
                ps = self.rows(0, self.heads, r, min(r + step, self.t)).sum(axis=0)
                received = _seq_add(received, ps)
            anchors = np.argsort(-received, kind="stable")[:n_anchors]
            group = np.empty(self.t, dtype=np.int64)
            for r in range(0, self.t, step):
                ps = self.rows(0, self.heads, r, min(r + step, self.t)).sum(axis=0)
                group[r:r + len(ps)] = np.argmax(ps[:, anchors], axis=1)
            group[anchors] = np.arange(n_anchors)
            self._cross = None
        self._anchors[n_anchors] = (anchors, group)
        return anchors, group

"""Test vectors for the SemanticDialect methods in hardware (numerics §13, §14).

The unit runs both methods with its existing ports: SeDA restricts each block to its
group's sub-formatbook through the allowed-dialect mask, and activation decomposition
is a second pass of the salient tokens' residual blocks, flagged with `last`
(the residual flag) so the consumer adds them back. This module turns a
(tokens, channels) activation matrix into such a block stream, with the golden model's
method outputs to hold the RTL against:

    write_method_vectors(x, out_dir, ...) -> MethodVectors

writes `blocks.npy` (N, B) in the unit's input dtype, `masks.npy` (N, D) bool and
`last.npy` (N,) uint8, which `stream_test` takes as `vectors`, `vector_masks`,
`vector_last`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from semdialect import golden
from semdialect.golden.decompose import quantize_decomposed, salient_from_attention
from semdialect.golden.quality import MethodConfig, token_attention
from semdialect.golden.seda import anchor_groups_from_attention, quantize_seda

__all__ = ["MethodVectors", "write_method_vectors"]


@dataclass
class MethodVectors:
    blocks: Path
    masks: Path
    last: Path
    n_primary: int  # SeDA blocks (last = 0)
    n_residual: int  # decomposition residual blocks (last = 1)
    expected_codes: np.ndarray  # golden method codes, (n_primary + n_residual, B)
    expected_dialects: np.ndarray
    expected_scales: np.ndarray


def write_method_vectors(x: np.ndarray, out_dir, *, dtype, block_size: int = 32,
                         book="semdialect-32", attn=None,
                         cfg: MethodConfig | None = None) -> MethodVectors:
    """SeDA primary blocks of x (sub-book masks) followed by the residual blocks of the
    salient tokens (whole-book masks, last = 1), all in `dtype` (the unit's input)."""
    cfg = cfg or MethodConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    xd = np.asarray(x, dtype=np.float32).astype(dtype)
    rows = xd.reshape(-1, xd.shape[-1])
    bk = golden.load_formatbook(book)
    probs = token_attention(rows.astype(np.float32), attn)  # attn: golden.quality.AttnRef
    anchors, group = anchor_groups_from_attention(probs, min(cfg.n_anchors, len(rows)))
    seda = quantize_seda(rows, group, anchors, cfg.k_sub, book=bk, block_size=block_size,
                         profile=cfg.profile)
    nb = rows.shape[1] // block_size
    sub_mask = np.zeros((len(rows), bk.num_dialects), dtype=bool)
    sub_mask[np.arange(len(rows))[:, None], seda.sub_books[group]] = True
    primary_masks = np.repeat(sub_mask, nb, axis=0)

    sal = salient_from_attention(probs, max(cfg.top_frac, 1.0 / len(rows)))
    dec = quantize_decomposed(rows, "semdialect", sal, primary=seda.qt,
                              formatbook=bk, block_size=block_size)
    res_blocks = np.zeros((0, block_size), dtype=xd.dtype)
    res = dec.residual
    if res is not None:
        deq = seda.qt.dequantize()
        # the residual exactly as §13 forms it, in the unit's input dtype
        res_blocks = (rows[dec.salient_rows].astype(np.float32)
                      - deq[dec.salient_rows]).astype(dtype).reshape(-1, block_size)
    blocks = np.concatenate([rows.reshape(-1, block_size), res_blocks])
    masks = np.concatenate([primary_masks,
                            np.ones((len(res_blocks), bk.num_dialects), dtype=bool)])
    last = np.concatenate([np.zeros(len(primary_masks), np.uint8),
                           np.ones(len(res_blocks), np.uint8)])
    exp_codes = [seda.qt.codes.reshape(-1, block_size)]
    exp_d = [seda.qt.dialects.reshape(-1)]
    exp_s = [seda.qt.scales.reshape(-1)]
    if res is not None:
        exp_codes.append(res.codes.reshape(-1, block_size))
        exp_d.append(res.dialects.reshape(-1))
        exp_s.append(res.scales.reshape(-1))
    paths = out / "blocks.npy", out / "masks.npy", out / "last.npy"
    np.save(paths[0], blocks)
    np.save(paths[1], masks)
    np.save(paths[2], last)
    return MethodVectors(*paths, len(primary_masks), len(res_blocks),
                         np.concatenate(exp_codes), np.concatenate(exp_d),
                         np.concatenate(exp_s))

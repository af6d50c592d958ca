"""The SemanticDialect quality benchmark (numerics §13-§15): every method on sequences of
activations over denoising steps, with SQNR, bits per element and consistency.

A *sequence* is one layer's input (tokens x channels) at consecutive denoising steps of
one CFG branch, with the attention of the same transformer block when it was captured.
Where no attention is available (synthetic data, or no matching attention module), the
salient/anchor tokens come from the tokens' own similarity attention
softmax(x x^T / sqrt(C)) and the sequence says so (`attention = "self-similarity"`).
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from .decompose import quantize_decomposed, salient_from_attention, salient_from_qk
from .evaluate import resolve_format
from .seda import anchor_groups_from_attention, profile_sub_formatbook, quantize_seda

__all__ = [
    "METHODS",
    "MethodConfig",
    "Sequence",
    "sequences_from_vectors",
    "run_method",
    "quality_table",
]

# method name -> (uses decomposition, uses SeDA); baselines go through resolve_format
METHODS = {
    "semdialect-decomp": (True, False),
    "semdialect-seda": (False, True),
    "semdialect-full": (True, True),
}


@dataclass(frozen=True)
class MethodConfig:
    top_frac: float = 0.05  # salient tokens for activation decomposition
    n_anchors: int = 8  # SeDA anchor groups per layer
    k_sub: int = 8  # dialects per sub-formatbook
    refresh: int = 2  # re-pick anchors and sub-books every R denoising steps
    block_size: int = 32


@dataclass
class Sequence:
    name: str  # layer/branch
    steps: list[int]
    x: list[np.ndarray]  # (tokens, channels) per step, dtype as captured
    attn: list[tuple[np.ndarray, np.ndarray] | None] = field(default_factory=list)  # (q, k)

    @property
    def attention_source(self) -> str:
        return "captured" if any(a is not None for a in self.attn) else "self-similarity"


_NAME = re.compile(r"^s(\d+)/([^/]+)/(.+)/(in|q|k)$")


def _block_prefix(module: str) -> str:
    parts = module.split(".")
    for i, p in enumerate(parts):
        if p.isdigit():
            return ".".join(parts[: i + 1])
    return module


def sequences_from_vectors(tensors: dict, manifest: dict, block_size: int = 32):
    """Group linear inputs (and synthetic tensors) by layer and branch over steps, and pair
    each with a self-attention q/k of the same block whose token count matches."""
    seqs: dict[tuple[str, str], Sequence] = {}
    qk: dict[tuple[int, str, str], dict[str, np.ndarray]] = defaultdict(dict)
    for name, arr in tensors.items():
        entry = manifest["tensors"].get(name, {})
        m = _NAME.match(name)
        if not m:
            continue
        step, branch, module, kind = int(m[1]), m[2], m[3], m[4]
        if entry.get("role") in ("attn_q", "attn_k"):
            b, h, t, d = arr.shape
            qk[step, branch, module][kind] = np.asarray(arr, np.float32).reshape(b * h, t, d)
        elif entry.get("role") in ("linear_input", "synthetic"):
            x = arr.reshape(-1, arr.shape[-1])
            if x.shape[-1] % block_size or x.shape[0] < 2:
                continue  # channel count not a block multiple, or a single token
            key = (module, branch)
            s = seqs.setdefault(key, Sequence(f"{module}/{branch}", [], [], []))
            s.steps.append(step)
            s.x.append(x)
    for (module, branch), s in seqs.items():
        order = np.argsort(s.steps, kind="stable")
        s.steps = [s.steps[i] for i in order]
        s.x = [s.x[i] for i in order]
        prefix = _block_prefix(module)
        for step, x in zip(s.steps, s.x):
            match = None
            for (st, br, amod), d in sorted(qk.items()):
                if st == step and br == branch and _block_prefix(amod) == prefix \
                        and "q" in d and "k" in d and d["q"].shape[1] == d["k"].shape[1] \
                        == x.shape[0]:
                    match = (d["q"], d["k"])
                    break
            s.attn.append(match)
    return list(seqs.values())


def _probs(x: np.ndarray, attn) -> np.ndarray:
    if attn is not None:
        q, k = (np.asarray(a, np.float64) for a in attn)
    else:
        q = k = np.asarray(x, np.float64)[None]
    logits = np.einsum("hqd,hkd->hqk", q, k) / np.sqrt(q.shape[-1])
    logits -= logits.max(-1, keepdims=True)
    p = np.exp(logits)
    return p / p.sum(-1, keepdims=True)


@dataclass
class MethodResult:
    sig: float = 0.0
    noise: float = 0.0
    bits: float = 0.0
    n: int = 0
    same_codes: int = 0
    compared: int = 0

    def add(self, x, deq, bits):
        x64 = np.asarray(x, np.float64)
        ok = np.isfinite(x64)
        self.sig += float(np.sum(x64[ok] ** 2))
        self.noise += float(np.sum((x64[ok] - deq[ok]) ** 2))
        self.bits += bits * x64.size
        self.n += x64.size

    def row(self, fmt: str, dataset: str) -> dict:
        sqnr = 10 * np.log10(self.sig / self.noise) if self.noise > 0 else float("inf")
        if self.sig == 0:
            sqnr = float("-inf") if self.noise else float("inf")
        return {"format": fmt, "dataset": dataset,
                "sqnr_db": round(float(sqnr), 4) if np.isfinite(sqnr) else None,
                "bits_per_element": round(self.bits / self.n, 5),
                "consistency": round(self.same_codes / self.compared, 5)
                if self.compared else None}


def run_method(method: str, seq: Sequence, cfg: MethodConfig, acc: MethodResult) -> None:
    """Quantize one sequence step by step with `method`, accumulating into acc."""
    from . import quantize

    prev_codes = None
    sub_books = anchors = group = None
    for i, x in enumerate(seq.x):
        attn = seq.attn[i] if seq.attn else None
        if method in METHODS:
            decomp, seda = METHODS[method]
            probs = _probs(x, attn) if (decomp or seda) else None
            if seda:
                if sub_books is None or i % cfg.refresh == 0:
                    n_anchor = min(cfg.n_anchors, x.shape[0])
                    anchors, group = anchor_groups_from_attention(probs, n_anchor)
                    sub_books = np.stack([profile_sub_formatbook(
                        x[a : a + 1], cfg.k_sub, block_size=cfg.block_size) for a in anchors])
                r = quantize_seda(x, group, anchors, cfg.k_sub, block_size=cfg.block_size,
                                  sub_books=sub_books)
                primary, bits = r.qt, r.bits_per_element
            else:
                primary = quantize(x, "semdialect", block_size=cfg.block_size)
                bits = primary.bits_per_element
            deq, codes = primary.dequantize(), primary.codes
            if decomp:
                sal = salient_from_attention(probs, cfg.top_frac) if attn is None else \
                    salient_from_qk(attn[0], attn[1], cfg.top_frac)
                # the residual pass uses the whole book (its distribution is not the
                # anchor's), on top of whichever primary quantization ran above
                d = quantize_decomposed(x, "semdialect", sal, primary=primary,
                                        block_size=cfg.block_size)
                bits += d.bits_per_element - d.primary.bits_per_element
                deq = d.dequantize()
        else:
            fmt, opts = resolve_format(method)
            qt = quantize(x, fmt, **opts)
            deq, codes, bits = qt.dequantize(), qt.codes, qt.bits_per_element
        acc.add(x, np.asarray(deq, np.float64), bits)
        if prev_codes is not None and prev_codes.shape == codes.shape:
            acc.same_codes += int(np.sum(prev_codes == codes))
            acc.compared += codes.size
        prev_codes = codes


def quality_table(datasets: list[tuple[str, list[Sequence]]], methods, cfg=MethodConfig(),
                  progress=None) -> list[dict]:
    """One row per (method, dataset): pooled SQNR, bits per element, and consistency =
    fraction of 4-bit codes unchanged between consecutive denoising steps."""
    rows = []
    for ds_name, seqs in datasets:
        for method in methods:
            acc = MethodResult()
            for s in seqs:
                run_method(method, s, cfg, acc)
            if acc.n:
                rows.append(acc.row(method, ds_name))
                if progress:
                    r = rows[-1]
                    progress(f"{ds_name:>32} {method:>18} {r['sqnr_db']:7.2f} dB "
                             f"{r['bits_per_element']:.3f} b/e")
    return rows

"""The SemanticDialect quality benchmark (numerics §13-§14): every method on sequences of
activations over denoising steps, with SQNR, bits per element and consistency.

A *sequence* is one layer's input (tokens x channels) at consecutive denoising steps of
one CFG branch, with, per step, the attention its salient/anchor tokens come from
(`AttnRef`). Which attention a linear input gets (`attention_for`, numerics §13):

- `self`: a self-attention of the same transformer block over exactly the input's tokens
  (Wan's attn1; the video-query side of a cross-attention layer, e.g. Wan's attn2.to_q:
  the *block's self-attention*, same tokens, same step);
- `joint`: the joint text+image attention of an MMDiT block (Flux / Open-Sora 2.0 style,
  CogVideoX), probabilities softmax over all joint keys, sliced to the rows and columns
  of the input's stream (text first in both: `cat([text, image])`). Single-stream blocks
  and CogVideoX blocks feed the concatenation to their Linears: no slicing (`self`);
- `cross-keys`: a cross-attention's key side (text tokens, e.g. Wan's attn2.to_k/to_v):
  A = P^T P over the text tokens (two text tokens are correlated when the same video
  queries attend to both); its column sums are the mass each text token receives;
- `cross-queries`: the query side of a cross-attention with no self-attention in the
  block: A = P P^T (video tokens attending to the same text tokens);
- `self-similarity`: no attention captured for the input (embedders, output projection,
  synthetic data): softmax(x x^T / sqrt(C)) of the tokens themselves.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace

import numpy as np

from .decompose import _top_fraction, quantize_decomposed
from .evaluate import resolve_format
from .seda import (
    profile_rows,
    profile_sub_formatbook,
    quantize_seda,
)

__all__ = [
    "METHODS",
    "JOINT_LAYOUTS",
    "MethodConfig",
    "AttnRef",
    "Sequence",
    "attention_probs",
    "token_attention",
    "attention_for",
    "text_stream",
    "sequences_from_vectors",
    "run_method",
    "quality_table",
    "parameter_sweep",
]

# method name -> (uses decomposition, uses SeDA); baselines go through resolve_format
METHODS = {
    "semdialect-decomp": (True, False),
    "semdialect-seda": (False, True),
    "semdialect-full": (True, True),
}

# joint-attention token order per diffusers model class (checked in diffusers' code:
# FluxAttnProcessor cat([encoder_query, query]), FluxSingleTransformerBlock
# cat([encoder_hidden_states, hidden_states]), CogVideoXAttnProcessor2_0 and
# CogVideoXBlock cat([encoder_hidden_states, hidden_states]))
JOINT_LAYOUTS = {
    "FluxTransformer2DModel": "text-first",
    "CogVideoXTransformer3DModel": "text-first",
}
JOINT_MODELS = {"mmdit-tiny": "FluxTransformer2DModel",
                "cogvideox-tiny": "CogVideoXTransformer3DModel"}

# Linear layers of an MMDiT double-stream block that see the text stream
_TEXT_STREAM = re.compile(r"(add_[qkv]_proj|to_add_out|ff_context|norm1_context|context_)")


def text_stream(module: str) -> bool:
    """Does this Linear of a double-stream MMDiT block see the text stream?"""
    return bool(_TEXT_STREAM.search(module))


@dataclass(frozen=True)
class MethodConfig:
    # defaults chosen by measurement (docs/results.md, `semdialect sweep`): the best
    # worst-capture SQNR of semdialect-full at <= 4.5 b/e on both TRAINED tiny captures
    # (sw.quality_cli.choose_config; the same pick on a second capture seed). Was
    # n_anchors 2, refresh 2, chosen on random-weight models (issue 6).
    top_frac: float = 0.02  # salient tokens for activation decomposition
    n_anchors: int = 8  # SeDA anchor groups per layer
    k_sub: int = 16  # dialects per sub-formatbook
    refresh: int = 1  # re-pick anchors and sub-books every R denoising steps
    profile: str = "group"  # sub-books profiled on the whole group or the anchor (§14)
    block_size: int = 32


@dataclass(frozen=True)
class AttnRef:
    """Where a step's salient/anchor tokens come from: q, k (heads, tokens, dim) of one
    captured attention, how to turn them into a (heads, T, T) attention over the input's
    T tokens (`mode`), and for `joint` the input's token span in the joint sequence."""

    q: np.ndarray
    k: np.ndarray
    mode: str  # "self" | "joint" | "cross-keys" | "cross-queries"
    module: str
    span: tuple[int, int] | None = None

    @property
    def source(self) -> str:
        span = f"[{self.span[0]}:{self.span[1]}]" if self.span else ""
        return f"{self.mode}{span}:{self.module}"


@dataclass
class Sequence:
    name: str  # layer/branch
    steps: list[int]
    x: list[np.ndarray]  # (tokens, channels) per step, dtype as captured
    attn: list[AttnRef | None] = field(default_factory=list)
    # per step: its TokenAttention (salient scores / anchors, computed once, shared by
    # every method that needs them)
    _token_attention: dict = field(default_factory=dict, repr=False, compare=False)

    def token_attention(self, i: int, chunk_bytes: int | None = None):
        from .token_attention import CHUNK_BYTES, TokenAttention

        key = (i, chunk_bytes or CHUNK_BYTES)
        if key not in self._token_attention:
            ref = self.attn[i] if self.attn else None
            self._token_attention[key] = TokenAttention(self.x[i], ref, key[1])
        return self._token_attention[key]

    @property
    def sources(self) -> list[str]:
        """Attention source per step: AttnRef.source or "self-similarity"."""
        return [a.source if a is not None else "self-similarity" for a in
                (self.attn or [None] * len(self.x))]

    @property
    def attention_source(self) -> str:
        """The distinct sources of the steps, in order of first use."""
        return ",".join(dict.fromkeys(self.sources))

    @property
    def attention_kind(self) -> str:
        """The mode ("self", "joint", ...) or "self-similarity" of the first step."""
        a = self.attn[0] if self.attn else None
        return a.mode if a is not None else "self-similarity"


def attention_probs(q: np.ndarray, k: np.ndarray) -> np.ndarray:
    """softmax(q k^T / sqrt(d)) in float64, (heads, Tq, Tk)."""
    q = np.asarray(q, np.float64)
    k = np.asarray(k, np.float64)
    logits = np.einsum("hqd,hkd->hqk", q, k) / np.sqrt(q.shape[-1])
    logits -= logits.max(-1, keepdims=True)
    p = np.exp(logits)
    return p / p.sum(-1, keepdims=True)


def token_attention(x: np.ndarray, ref: AttnRef | None) -> np.ndarray:
    """(heads, T, T) attention over the T rows of x, for salient-token selection
    (`salient_from_attention`) and anchor groups (`anchor_groups_from_attention`)."""
    if ref is None:
        xx = np.asarray(x, np.float64)[None]
        return attention_probs(xx, xx)
    p = attention_probs(ref.q, ref.k)
    if ref.mode == "self":
        return p
    if ref.mode == "joint":
        a, b = ref.span
        return p[:, a:b, a:b]
    if ref.mode == "cross-keys":
        return np.einsum("hqj,hqk->hjk", p, p)
    if ref.mode == "cross-queries":
        return np.einsum("hik,hjk->hij", p, p)
    raise ValueError(f"unknown attention mode {ref.mode!r}")


def _block_prefix(module: str) -> str:
    parts = module.split(".")
    for i, p in enumerate(parts):
        if p.isdigit():
            return ".".join(parts[: i + 1])
    return module


def attention_for(module: str, n_tokens: int, candidates, layout: str | None = None,
                  sampled: bool = False):
    """Choose the attention for a Linear input of `n_tokens` tokens (numerics §13).

    candidates: [(attention module, Tq, Tk, sampled)] captured in the same step and branch.
    layout: the model's joint-attention order ("text-first") or None (no joint attention).
    sampled: the input's tokens were subsampled (then only an attention over the same
    tokens, sampled alike, can be used). Returns (attention module, mode, span) or None.
    """
    prefix = _block_prefix(module)
    same = [c for c in candidates if _block_prefix(c[0]) == prefix]
    # prefer the attention module the Linear belongs to (attn1.to_q -> attn1)
    same.sort(key=lambda c: (not module.startswith(c[0] + "."), c[0]))
    for name, tq, tk, smp in same:  # self-attention / whole joint sequence
        if tq == tk == n_tokens and smp == sampled:
            if layout is not None:  # joint model: the Linear sees the concatenation
                return name, "joint", (0, n_tokens)
            return name, "self", None
    if sampled:
        return None
    if layout == "text-first":
        for name, tq, tk, smp in same:
            if tq == tk > n_tokens and not smp:
                span = (0, n_tokens) if text_stream(module) else (tq - n_tokens, tq)
                return name, "joint", span
    for name, tq, tk, smp in same:
        if tq != tk and tk == n_tokens and not smp:
            return name, "cross-keys", None
    for name, tq, tk, smp in same:
        if tq != tk and tq == n_tokens and not smp:
            return name, "cross-queries", None
    return None


_NAME = re.compile(r"^s(\d+)/([^/]+)/(.+)/(in|q|k)$")


def _layout(manifest: dict) -> str | None:
    src = manifest.get("source", {})
    cls = src.get("model_class") or JOINT_MODELS.get(src.get("name", ""))
    return JOINT_LAYOUTS.get(cls)


def sequences_from_vectors(tensors: dict, manifest: dict, block_size: int = 32,
                           skipped: list | None = None):
    """Group linear inputs (and synthetic tensors) by layer and branch over steps, and give
    each step the attention chosen by `attention_for` (None: self-similarity). Inputs it
    cannot use are appended to `skipped` (when given) as (name, reason)."""
    seqs: dict[tuple[str, str], Sequence] = {}
    sampled_x: dict[tuple[str, str], bool] = {}
    qk: dict[tuple[int, str, str], dict] = defaultdict(dict)
    for name, arr in tensors.items():
        entry = manifest["tensors"].get(name, {})
        m = _NAME.match(name)
        if not m:
            continue
        step, branch, module, kind = int(m[1]), m[2], m[3], m[4]
        if entry.get("role") in ("attn_q", "attn_k"):
            b, h, t, d = arr.shape
            # kept in the captured dtype (a view, no copy): attention_probs converts to
            # float64 exactly from bf16/fp16 as it would from float32
            qk[step, branch, module][kind] = np.asarray(arr).reshape(b * h, t, d)
            qk[step, branch, module]["sampled"] = "tokens_total" in entry
        elif entry.get("role") in ("linear_input", "synthetic"):
            x = arr.reshape(-1, arr.shape[-1]) if arr.ndim else arr.reshape(1, 1)
            if x.shape[-1] % block_size or x.shape[0] < 2:
                if skipped is not None:
                    skipped.append((name, f"{x.shape[-1]} channels, not a multiple of "
                                    f"{block_size}" if x.shape[-1] % block_size else
                                    f"{x.shape[0]} token"))
                continue  # channel count not a block multiple, or a single token
            key = (module, branch)
            s = seqs.setdefault(key, Sequence(f"{module}/{branch}", [], [], []))
            s.steps.append(step)
            s.x.append(x)
            sampled_x[key] = sampled_x.get(key, False) or "tokens_total" in entry
    layout = _layout(manifest)
    for (module, branch), s in seqs.items():
        order = np.argsort(s.steps, kind="stable")
        s.steps = [s.steps[i] for i in order]
        s.x = [s.x[i] for i in order]
        for step, x in zip(s.steps, s.x):
            cands = [(amod, d["q"].shape[1], d["k"].shape[1], d["sampled"])
                     for (st, br, amod), d in sorted(qk.items())
                     if st == step and br == branch and "q" in d and "k" in d]
            pick = attention_for(module, x.shape[0], cands, layout, sampled_x[module, branch])
            if pick is None:
                s.attn.append(None)
            else:
                d = qk[step, branch, pick[0]]
                s.attn.append(AttnRef(d["q"], d["k"], pick[1], pick[0], pick[2]))
    return list(seqs.values())


@dataclass
class MethodResult:
    sig: float = 0.0
    noise: float = 0.0
    bits: float = 0.0
    n: int = 0
    same_codes: int = 0  # codes unchanged between consecutive steps
    compared: int = 0
    same_dialects: int = 0  # dialect ids unchanged between consecutive steps
    compared_blocks: int = 0
    anchor_same_dialects: int = 0  # non-anchor token block vs its anchor's block
    anchor_blocks: int = 0
    anchor_same_codes: int = 0
    anchor_elems: int = 0
    nonfinite_elements: int = 0  # inputs that are NaN/Inf
    nonfinite_blocks: int = 0  # SQNR blocks holding one: left out of sig and noise
    used: int = 0  # elements counted in sig and noise

    def add(self, x, deq, bits, block_size: int = 32):
        """Pool one step: signal and noise over the blocks of block_size (along the last
        axis) whose inputs are all finite (numerics §11), bits over every element."""
        from .evaluate import finite_block_mask

        x64 = np.asarray(x, np.float64)
        ok = finite_block_mask(x64, block_size)
        self.sig += float(np.sum(x64[ok] ** 2))
        with np.errstate(invalid="ignore", over="ignore"):
            self.noise += float(np.sum((x64[ok] - deq[ok]) ** 2))
        self.bits += bits * x64.size
        self.n += x64.size
        self.used += int(ok.sum())
        self.nonfinite_elements += int((~np.isfinite(x64)).sum())
        self.nonfinite_blocks += int((x64.size - ok.sum()) // block_size) \
            if x64.ndim and x64.shape[-1] % block_size == 0 else int((~ok).sum())

    def add_anchor(self, codes, dialects, anchors, group, block_size):
        """Agreement of every non-anchor token with its group's anchor, position by
        position (same channel block / same element)."""
        t = codes.shape[0]
        lead = anchors[group]  # (tokens,) the anchor row of each token's group
        mem = np.ones(t, bool)
        mem[anchors] = False
        if not mem.any():
            return
        self.anchor_same_codes += int(np.sum(codes[mem] == codes[lead[mem]]))
        self.anchor_elems += int(codes[mem].size)
        if dialects is not None:
            d = dialects.reshape(t, -1)
            self.anchor_same_dialects += int(np.sum(d[mem] == d[lead[mem]]))
            self.anchor_blocks += int(d[mem].size)

    def sqnr(self) -> tuple[float | None, str | None]:
        """(SQNR in dB, None), or (None, why it is not a number) (numerics §11)."""
        if self.used == 0:
            return None, "undefined: no block free of NaN/Inf"
        if self.sig == 0:
            return None, "undefined: every finite element is zero"
        if not np.isfinite(self.noise):
            return None, "-inf: a finite input dequantized to a non-finite value"
        if self.noise == 0:
            return None, "exact: zero quantization error"
        return round(float(10 * np.log10(self.sig / self.noise)), 4), None

    def row(self, fmt: str, dataset: str) -> dict:
        sqnr, note = self.sqnr()

        def frac(a, b):
            return round(a / b, 5) if b else None

        return {"format": fmt, "dataset": dataset,
                "sqnr_db": sqnr, **({"sqnr_note": note} if note else {}),
                "bits_per_element": round(self.bits / self.n, 5),
                "nonfinite_elements": self.nonfinite_elements,
                "nonfinite_blocks": self.nonfinite_blocks,
                "consistency": frac(self.same_codes, self.compared),
                "dialect_consistency": frac(self.same_dialects, self.compared_blocks),
                "anchor_dialect_consistency": frac(self.anchor_same_dialects,
                                                   self.anchor_blocks),
                "anchor_code_consistency": frac(self.anchor_same_codes, self.anchor_elems)}


def run_method(method: str, seq: Sequence, cfg: MethodConfig, acc: MethodResult,
               anchor_metrics: bool = True, chunk_bytes: int | None = None) -> None:
    """Quantize one sequence step by step with `method`, accumulating into acc.

    SeDA re-picks anchors, groups and sub-formatbooks at steps 0, R, 2R, ... (R =
    cfg.refresh) and reuses them in between. The token-vs-anchor consistency uses the
    groups SeDA used; for the other methods, the groups the same rule gives at that step.
    anchor_metrics=False: plain formats skip the attention (and the token-vs-anchor
    consistency) altogether. The attention is never held whole above `chunk_bytes`
    (`token_attention.TokenAttention`); results are bit-identical either way.
    """
    from . import quantize

    prev = None
    sub_books = anchors = group = None
    for i, x in enumerate(seq.x):
        att = seq.token_attention(i, chunk_bytes)
        n_anchor = min(cfg.n_anchors, x.shape[0])
        if method in METHODS:
            decomp, seda = METHODS[method]
            if seda:
                if sub_books is None or i % cfg.refresh == 0:
                    anchors, group = att.anchor_groups(n_anchor)
                    sub_books = np.stack([profile_sub_formatbook(
                        rows, cfg.k_sub, block_size=cfg.block_size)
                        for rows in profile_rows(x, group, anchors, cfg.profile)])
                r = quantize_seda(x, group, anchors, cfg.k_sub, block_size=cfg.block_size,
                                  sub_books=sub_books)
                primary, bits = r.qt, r.bits_per_element
                g_anchors, g_group = anchors, group
            else:
                primary = quantize(x, "semdialect", block_size=cfg.block_size)
                bits = primary.bits_per_element
                g_anchors, g_group = att.anchor_groups(n_anchor)
            deq, codes, dialects = primary.dequantize(), primary.codes, primary.dialects
            if decomp:
                sal = _top_fraction(att.salient_score(), cfg.top_frac)
                # the residual pass uses the whole book (its distribution is not the
                # anchor's), on top of whichever primary quantization ran above
                d = quantize_decomposed(x, "semdialect", sal, primary=primary,
                                        block_size=cfg.block_size)
                bits += d.bits_per_element - d.primary.bits_per_element
                deq = d.dequantize()
        else:
            fmt, opts = resolve_format(method)
            qt = quantize(x, fmt, **opts)
            deq, codes, bits, dialects = qt.dequantize(), qt.codes, qt.bits_per_element, \
                qt.dialects
            g_anchors = g_group = None
            if anchor_metrics:
                g_anchors, g_group = att.anchor_groups(n_anchor)
        acc.add(x, np.asarray(deq, np.float64), bits, cfg.block_size)
        if g_anchors is not None:
            acc.add_anchor(codes, dialects, g_anchors, g_group, cfg.block_size)
        if prev is not None and prev[0].shape == codes.shape:
            acc.same_codes += int(np.sum(prev[0] == codes))
            acc.compared += codes.size
            if dialects is not None and prev[1] is not None:
                acc.same_dialects += int(np.sum(prev[1] == dialects))
                acc.compared_blocks += dialects.size
        prev = (codes, dialects)


def quality_table(datasets: list[tuple[str, list[Sequence]]], methods, cfg=MethodConfig(),
                  progress=None, anchor_metrics: bool = True, bar: bool = False,
                  chunk_bytes: int | None = None) -> list[dict]:
    """One row per (method, dataset): pooled SQNR, bits per element, `consistency` =
    fraction of 4-bit codes unchanged between consecutive denoising steps,
    `dialect_consistency` = fraction of blocks keeping their dialect id between steps
    (dialect formats), `anchor_dialect_consistency` / `anchor_code_consistency` =
    fraction of blocks (elements) of non-anchor tokens with the same dialect (code) as
    their group's anchor at the same position, and `attention` = how many sequences used
    each attention kind. anchor_metrics=False: plain formats compute no attention (their
    anchor_* fields are None). bar: a tqdm progress bar over (format, sequence) on
    stderr (when tqdm is installed)."""
    rows = []
    total = sum(len(seqs) for _, seqs in datasets) * len(methods)
    tick = _progress_bar(total, bar)
    for ds_name, seqs in datasets:
        kinds = dict(Counter(s.attention_kind for s in seqs))
        for method in methods:
            acc = MethodResult()
            for s in seqs:
                run_method(method, s, cfg, acc, anchor_metrics=anchor_metrics,
                           chunk_bytes=chunk_bytes)
                tick(f"{ds_name} {method}")
            if acc.n:
                rows.append({**acc.row(method, ds_name), "attention": kinds})
                if progress:
                    r = rows[-1]
                    q = f"{r['sqnr_db']:7.2f} dB" if r["sqnr_db"] is not None else \
                        r["sqnr_note"]
                    progress(f"{ds_name:>32} {method:>18} {q} {r['bits_per_element']:.3f} b/e")
    return rows


def _progress_bar(total: int, on: bool):
    """tick(description) advancing a tqdm bar on stderr, or doing nothing."""
    if not on or not total:
        return lambda desc: None
    try:
        from tqdm import tqdm
    except ImportError:  # golden needs only NumPy; no bar then
        return lambda desc: None
    import sys

    pbar = tqdm(total=total, unit="seq", file=sys.stderr, leave=False)

    def tick(desc: str):
        pbar.set_description(desc, refresh=False)
        pbar.update(1)
        if pbar.n >= total:
            pbar.close()

    return tick


def parameter_sweep(datasets, grid: dict, base: MethodConfig = MethodConfig(),
                    methods=("semdialect-full",), progress=None) -> list[dict]:
    """Rows of quality_table for base with one MethodConfig field changed at a time:
    grid = {"top_frac": [...], "k_sub": [...], ...}; each row gets `param` and `value`."""
    rows = []
    for param, values in grid.items():
        for v in values:
            cfg = replace(base, **{param: v})
            for r in quality_table(datasets, methods, cfg):
                rows.append({**r, "param": param, "value": v})
                if progress:
                    progress(f"sweep {param}={v} {r['dataset']} {r['format']}: "
                             f"{r['sqnr_db']} dB {r['bits_per_element']:.4f} b/e")
    return rows

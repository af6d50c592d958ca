"""Torch implementations of the SemanticDialect methods (numerics §13, §14), bit-identical
to the golden model (`semdialect.golden.decompose`, `.seda`, `.quality`), and the
quantize-dequantize wrapper that runs them inside a denoising loop (`semdialect e2e`).

Device-agnostic (CPU, CUDA). Exactness: quantization goes through `semdialect.sw.quant`
(bit-identical to golden); the residual is one exact float32 subtraction, rounded to the
input dtype; the sub-formatbook greedy sums integer-valued float64 LUT errors (exact).
Attention scores are float64 softmaxes: the same formula as golden, but summation order
may differ in the last bit, so a token set chosen by a score tie within ~1e-16 could
differ (tests check the chosen sets on their data; everything downstream of the sets is
bit-exact by construction).

    from semdialect.sw.methods import quantize_method
    deq, bits = quantize_method(x, "semdialect-full", attn=A)   # A: (heads, T, T)
"""

from __future__ import annotations

import contextlib
import math
import re
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from semdialect import golden
from semdialect.golden.formatbook import load_formatbook
from semdialect.golden.quality import JOINT_LAYOUTS, METHODS, MethodConfig, attention_for

from .fakequant import accumulate_sqnr
from .quant import (
    _book_key,
    _book_tables,
    _err_table,
    lut_block_errors,
    normalize_blocks,
    quantize,
)

__all__ = [
    "attention_probs",
    "token_attention",
    "salient_from_attention",
    "anchor_groups_from_attention",
    "profile_sub_formatbook",
    "quantize_seda",
    "quantize_decomposed",
    "quantize_method",
    "MethodFakeQuant",
    "E2E_CONFIG",
]


# ------------------------------------------------------------------ attention (§13)


def attention_probs(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """softmax(q k^T / sqrt(d)) in float64, (heads, Tq, Tk)."""
    q = q.double()
    k = k.double()
    logits = torch.einsum("hqd,hkd->hqk", q, k) / math.sqrt(q.shape[-1])
    logits = logits - logits.amax(-1, keepdim=True)
    p = torch.exp(logits)
    return p / p.sum(-1, keepdim=True)


def token_attention(x: torch.Tensor, q=None, k=None, mode: str = "self", span=None):
    """(heads, T, T) attention over the rows of x (golden.quality.token_attention);
    q is None: self-similarity softmax(x x^T / sqrt(C))."""
    if q is None:
        xx = x.double()[None]
        return attention_probs(xx, xx)
    p = attention_probs(q, k)
    if mode == "self":
        return p
    if mode == "joint":
        a, b = span
        return p[:, a:b, a:b]
    if mode == "cross-keys":
        return torch.einsum("hqj,hqk->hjk", p, p)
    if mode == "cross-queries":
        return torch.einsum("hik,hjk->hij", p, p)
    raise ValueError(f"unknown attention mode {mode!r}")


def _top_fraction(score: torch.Tensor, top_frac: float) -> torch.Tensor:
    if not 0 <= top_frac <= 1:
        raise ValueError(f"top_frac must be in [0, 1], got {top_frac}")
    n = score.shape[-1]
    k = int(round(top_frac * n))
    mask = torch.zeros(n, dtype=torch.bool, device=score.device)
    if k:
        order = torch.sort(-score, stable=True).indices  # ties: lower token index first
        mask[order[:k]] = True
    return mask


def salient_from_attention(probs: torch.Tensor, top_frac: float) -> torch.Tensor:
    """Bool mask of the round(top_frac * T) tokens with the most received attention."""
    if probs.ndim < 2:
        raise ValueError(f"attention probabilities need (..., q, k), got {tuple(probs.shape)}")
    score = probs.double().reshape(-1, probs.shape[-1]).sum(0)
    return _top_fraction(score, top_frac)


def anchor_groups_from_attention(probs: torch.Tensor, n_anchors: int):
    """(anchors (n,), group (T,)): golden.seda.anchor_groups_from_attention."""
    if probs.ndim < 2 or probs.shape[-1] != probs.shape[-2]:
        raise ValueError(f"self-attention probabilities need (..., t, t), got "
                         f"{tuple(probs.shape)}")
    p = probs.double().reshape(-1, probs.shape[-2], probs.shape[-1]).sum(0)
    t = p.shape[0]
    if not 1 <= n_anchors <= t:
        raise ValueError(f"n_anchors must be in 1..{t}, got {n_anchors}")
    anchors = torch.sort(-p.sum(0), stable=True).indices[:n_anchors]
    group = torch.argmax(p[:, anchors], dim=1)  # first maximum, as numpy
    group[anchors] = torch.arange(n_anchors, device=p.device)
    return anchors, group


# ------------------------------------------------------------------------ SeDA (§14)


def _normalized(book, x: torch.Tensor, block_size: int):
    """Normalized magnitudes v (float64) and bad-block flags of x's blocks (§7)."""
    t = _book_tables(_book_key(book), str(x.device))
    _, v, bad = normalize_blocks(t, x.float().reshape(-1, block_size))
    return v, bad


def profile_sub_formatbook(rows: torch.Tensor, k_sub: int, book="semdialect-32",
                           block_size: int = 32, frac_bits: int = golden.DEFAULT_FRAC_BITS,
                           err_bits: int = golden.DEFAULT_ERR_BITS) -> torch.Tensor:
    """K dialect ids (ascending, int64): golden.seda.profile_sub_formatbook."""
    book = load_formatbook(book)
    if not 1 <= k_sub <= book.num_dialects:
        raise ValueError(f"sub-formatbook size must be in 1..{book.num_dialects}, got {k_sub}")
    if rows.shape[-1] % block_size:
        raise ValueError(f"rows of width {rows.shape[-1]} are not whole {block_size}-blocks")
    golden.build_luts(book, frac_bits, err_bits)  # validates F, W
    dev = str(rows.device)
    v, bad = _normalized(book, rows, block_size)
    err = _err_table(_book_key(book), int(frac_bits), int(err_bits), dev)
    cost = lut_block_errors(err, v[~bad], int(frac_bits))  # exact integers in float64
    chosen: list[int] = []
    best = torch.full((cost.shape[0],), float("inf"), dtype=torch.float64, device=rows.device)
    for _ in range(k_sub):
        if cost.shape[0]:
            totals = torch.minimum(cost, best[:, None]).sum(0)
        else:
            totals = torch.zeros(book.num_dialects, dtype=torch.float64, device=rows.device)
        totals[chosen] = float("inf")
        c = int(torch.argmin(totals))
        chosen.append(c)
        if cost.shape[0]:
            best = torch.minimum(best, cost[:, c])
    return torch.tensor(sorted(chosen), dtype=torch.int64, device=rows.device)


def _profile_rows(x, group, anchors, profile):
    if profile == "anchor":
        return [x[int(a) : int(a) + 1] for a in anchors]
    if profile == "group":
        return [x[group == g] for g in range(len(anchors))]
    raise ValueError(f"profile must be 'anchor' or 'group', got {profile!r}")


@dataclass
class SedaOut:
    qt: object  # TorchQuantized (dialects: global ids)
    sub_books: torch.Tensor  # (G, K)
    group: torch.Tensor  # (T,)
    bits_per_element: float


def seda_bits(n: int, tokens: int, block_size: int, n_groups: int, k_sub: int,
              dialect_bits: int) -> float:
    """golden.seda.SedaResult.bits_per_element for n elements in `tokens` rows."""
    local = math.ceil(math.log2(k_sub)) if k_sub > 1 else 0
    per_row = math.ceil(math.log2(n_groups)) if n_groups > 1 else 0
    table = n_groups * k_sub * dialect_bits
    return 4 + (8 + local) / block_size + (per_row * tokens + table) / n


def quantize_seda(x: torch.Tensor, group, anchors, k_sub: int, book="semdialect-32",
                  block_size: int = 32, frac_bits: int = golden.DEFAULT_FRAC_BITS,
                  err_bits: int = golden.DEFAULT_ERR_BITS, sub_books=None,
                  profile: str = "anchor") -> SedaOut:
    """golden.seda.quantize_seda on a (tokens, channels) torch tensor."""
    if x.ndim != 2:
        raise ValueError(f"SeDA quantizes a (tokens, channels) matrix, got {tuple(x.shape)}")
    dev = x.device
    group = torch.as_tensor(group, dtype=torch.int64, device=dev)
    anchors = torch.as_tensor(anchors, dtype=torch.int64, device=dev)
    if group.shape != (x.shape[0],):
        raise ValueError(f"group must have shape ({x.shape[0]},), got {tuple(group.shape)}")
    if int(group.min()) < 0 or int(group.max()) >= len(anchors):
        raise ValueError("group ids must index into anchors")
    bk = load_formatbook(book)
    if sub_books is None:
        sub_books = torch.stack([profile_sub_formatbook(r, k_sub, bk, block_size, frac_bits,
                                                        err_bits)
                                 for r in _profile_rows(x, group, anchors, profile)])
    sub_books = torch.as_tensor(sub_books, dtype=torch.int64, device=dev)
    nb = x.shape[1] // block_size
    mask = torch.zeros((x.shape[0], bk.num_dialects), dtype=torch.bool, device=dev)
    mask.scatter_(1, sub_books[group], True)
    mask = mask[:, None, :].expand(x.shape[0], nb, bk.num_dialects).reshape(-1, bk.num_dialects)
    qt = quantize(x, "semdialect", formatbook=bk, block_size=block_size, frac_bits=frac_bits,
                  err_bits=err_bits, allowed=mask)
    bits = seda_bits(x.numel(), x.shape[0], block_size, sub_books.shape[0],
                     sub_books.shape[1], bk.dialect_bits)
    return SedaOut(qt, sub_books, group, bits)


# --------------------------------------------------------------- decomposition (§13)


def salient_index_bits(rows: int, n_salient: int) -> int:
    if n_salient == 0:
        return 0
    return min(rows, n_salient * max(1, math.ceil(math.log2(rows))))


def quantize_decomposed(x: torch.Tensor, fmt: str, salient, primary=None, **options):
    """golden.decompose.quantize_decomposed: returns (dequantized float32 tensor,
    bits per element). salient: bool mask over rows or row indices."""
    rows = x.reshape(-1, x.shape[-1])
    sal = torch.as_tensor(salient, device=x.device)
    if sal.dtype == torch.bool:
        if sal.shape != (rows.shape[0],):
            raise ValueError(f"salient mask must have shape ({rows.shape[0]},), got "
                             f"{tuple(sal.shape)}")
        idx = torch.nonzero(sal).reshape(-1)
    else:
        idx = torch.unique(sal.to(torch.int64))
        if idx.numel() and (int(idx[0]) < 0 or int(idx[-1]) >= rows.shape[0]):
            raise ValueError(f"salient row index out of range 0..{rows.shape[0] - 1}")
    if primary is None:
        primary = quantize(x, fmt, **options)
    deq = primary.dequantize()
    pbits = _bits(primary)
    if idx.numel() == 0:
        return deq, pbits
    flat = deq.reshape(rows.shape).clone()
    resid = (rows.float()[idx] - flat[idx]).to(x.dtype)  # exact in float32 (Sterbenz)
    rq = quantize(resid, fmt, **options)
    flat[idx] = flat[idx] + rq.dequantize()
    n = rows.numel()
    bits = pbits + (_bits(rq) * resid.numel() + salient_index_bits(rows.shape[0],
                                                                    idx.numel())) / n
    return flat.reshape(deq.shape), bits


def _bits(qt) -> float:
    """Bits per element of a TorchQuantized (numerics §11)."""
    k = qt.block_size
    if qt.format == "semdialect" or qt.format == "dialectfp4":
        book = load_formatbook(qt.options["formatbook"])
        return book.bits_per_element(k)
    if qt.format == "nvfp4":
        return 4 + 8 / k + 32 / qt.codes.numel()
    if qt.format == "int4":
        return 4 + 16 / k
    width = {"mxfp4": 4, "mxfp6_e2m3": 6, "mxfp6_e3m2": 6}.get(qt.format, 8)
    return width + 8 / k


# ------------------------------------------------------------------- one step, a method


def quantize_method(x: torch.Tensor, method: str, attn: torch.Tensor | None = None,
                    cfg: MethodConfig | None = None, state: dict | None = None,
                    step: int = 0):
    """One step of `method` (semdialect-decomp / -seda / -full) on x (tokens, channels),
    with A = attn (heads, T, T) (None: self-similarity). `state` (a dict kept by the
    caller per layer) carries SeDA's anchors, groups and sub-books between refreshes
    (re-picked when step % refresh == 0, or when absent). Returns (deq float32, bits)."""
    decomp, seda = METHODS[method]
    cfg = cfg or MethodConfig()
    if attn is None:
        attn = token_attention(x)
    state = {} if state is None else state
    if seda:
        if "sub_books" not in state or step % cfg.refresh == 0 or \
                state["group"].shape[0] != x.shape[0]:
            anchors, group = anchor_groups_from_attention(attn, min(cfg.n_anchors, x.shape[0]))
            state.update(anchors=anchors, group=group, sub_books=None)
        r = quantize_seda(x, state["group"], state["anchors"], cfg.k_sub,
                          block_size=cfg.block_size, sub_books=state["sub_books"],
                          profile=cfg.profile)
        state["sub_books"] = r.sub_books
        primary, bits = r.qt, r.bits_per_element
    else:
        primary = quantize(x, "semdialect", block_size=cfg.block_size)
        bits = _bits(primary)
    if not decomp:
        return primary.dequantize(), bits
    sal = salient_from_attention(attn, cfg.top_frac)
    deq, dbits = quantize_decomposed(x, "semdialect", sal, primary=primary,
                                     block_size=cfg.block_size)
    return deq, bits + dbits - _bits(primary)


# ----------------------------------------------------------- end to end (semdialect e2e)

#: the e2e configuration: the defaults chosen in docs/results.md
E2E_CONFIG = MethodConfig()


class MethodFakeQuant:
    """Fake-quantize every matching nn.Linear's input with a SemanticDialect method (and
    its weight with plain `semdialect`) inside a denoising loop.

    Salient tokens / anchors of a Linear come from its block's attention at the previous
    denoising step of the same CFG branch (numerics §13: the current step's q/k do not
    exist yet when to_q/to_k/to_v run); step 0 uses self-similarity. Pass the object as
    `capture=` to `semdialect.sw.capture.denoise`, which gives it the step/branch context.
    Inputs with one token, or whose width is not a block multiple, get plain semdialect.
    """

    def __init__(self, module: torch.nn.Module, method: str, layers: str | None = None,
                 weights: bool = True, cfg: MethodConfig = E2E_CONFIG):
        from .capture import _is_attention

        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; known: {', '.join(METHODS)}")
        self.module, self.method, self.cfg, self.weights = module, method, cfg, weights
        rx = re.compile(layers) if layers else None
        self.linears = [(n, m) for n, m in module.named_modules()
                        if isinstance(m, torch.nn.Linear) and (rx is None or rx.search(n))]
        if not self.linears:
            raise ValueError(f"no nn.Linear matches {layers!r}")
        self.attns = [(n, m) for n, m in module.named_modules() if _is_attention(m)]
        self.layout = JOINT_LAYOUTS.get(type(module).__name__)
        self.step, self.branch = 0, "cond"
        self.qk: dict[tuple[int, str, str], tuple[torch.Tensor, torch.Tensor]] = {}
        self.states: dict[tuple[str, str], dict] = {}
        self.stats: dict[str, list[float]] = {}
        self.wstats: dict[str, float] = {}
        self.sources: dict[str, set] = {}
        self.bits = [0.0, 0]
        self._stack: list[str] = []
        self._saved: dict[str, torch.Tensor] = {}
        self._handles = []
        self._orig_sdpa = None

    @contextlib.contextmanager
    def context(self, step: int, timestep: float = 0.0, branch: str = "cond"):
        self.step, self.branch = int(step), str(branch)
        for key in [k for k in self.qk if k[0] < self.step - 1]:
            del self.qk[key]  # keep the previous step only
        yield self

    def _sdpa(self, query, key, value, *args, **kwargs):
        if self._stack and query.ndim == 4:
            b, h, tq, d = query.shape
            self.qk[self.step, self.branch, self._stack[-1]] = (
                query.detach().reshape(b * h, tq, d), key.detach().reshape(b * h, -1, d))
        return self._orig_sdpa(query, key, value, *args, **kwargs)

    def _attention(self, name: str, x: torch.Tensor):
        cands = [(amod, q.shape[1], k.shape[1], False)
                 for (st, br, amod), (q, k) in sorted(self.qk.items(), key=lambda i: i[0][2])
                 if st == self.step - 1 and br == self.branch]
        pick = attention_for(name, x.shape[0], cands, self.layout)
        if pick is None:
            self.sources.setdefault(name, set()).add("self-similarity")
            return token_attention(x)
        amod, mode, span = pick
        q, k = self.qk[self.step - 1, self.branch, amod]
        self.sources.setdefault(name, set()).add(f"{mode}:{amod}")
        return token_attention(x, q, k, mode, span)

    def _hook(self, name):
        def pre(_m, args):
            x = args[0]
            c = x.shape[-1]
            rows = x.reshape(-1, c)
            if rows.shape[0] < 2 or c % self.cfg.block_size:
                from .quant import fake_quantize

                xq = fake_quantize(x, "semdialect", block_size=self.cfg.block_size)
                bits = load_formatbook("semdialect-32").bits_per_element(self.cfg.block_size)
            else:
                state = self.states.setdefault((name, self.branch), {})
                deq, bits = quantize_method(rows, self.method, self._attention(name, rows),
                                            self.cfg, state, self.step)
                xq = deq.reshape(x.shape).to(x.dtype)
            self.bits[0] += bits * x.numel()
            self.bits[1] += x.numel()
            accumulate_sqnr(self.stats, name, x, xq)
            return (xq,) + tuple(args[1:])
        return pre

    def _attn_pre(self, name):
        def hook(_mod, _args):
            self._stack.append(name)
        return hook

    def _attn_post(self, _mod, _args, _out):
        if self._stack:
            self._stack.pop()

    def __enter__(self):
        from .fakequant import sqnr_db
        from .quant import fake_quantize

        with torch.no_grad():
            for name, m in self.linears:
                if self.weights:
                    w = m.weight.data
                    wq = fake_quantize(w, "semdialect", block_size=self.cfg.block_size)
                    self._saved[name] = w
                    self.wstats[name] = sqnr_db(float((w.double() ** 2).sum()),
                                                float(((w.double() - wq.double()) ** 2).sum()))
                    m.weight.data = wq
                self._handles.append(m.register_forward_pre_hook(self._hook(name)))
        for name, m in self.attns:
            self._handles.append(m.register_forward_pre_hook(self._attn_pre(name)))
            self._handles.append(m.register_forward_hook(self._attn_post))
        self._orig_sdpa = F.scaled_dot_product_attention
        F.scaled_dot_product_attention = self._sdpa
        return self

    def __exit__(self, *exc):
        for h in self._handles:
            h.remove()
        self._handles = []
        if self._orig_sdpa is not None:
            F.scaled_dot_product_attention = self._orig_sdpa
            self._orig_sdpa = None
        mods = dict(self.linears)
        for name, w in self._saved.items():
            mods[name].weight.data = w
        self._saved = {}
        self._stack = []
        return False

    @property
    def bits_per_element(self) -> float | None:
        """Activation bits per element, averaged over every quantized input element."""
        return self.bits[0] / self.bits[1] if self.bits[1] else None

    def sqnr(self) -> dict[str, dict]:
        from .fakequant import sqnr_db

        out = {}
        for name, _ in self.linears:
            row = {}
            if name in self.stats:
                sig, noise, calls = self.stats[name]
                row.update(act_sqnr_db=sqnr_db(sig, noise), calls=calls,
                           attention=sorted(self.sources.get(name, ())))
            if name in self.wstats:
                row["weight_sqnr_db"] = self.wstats[name]
            if row:
                out[name] = row
        return out

"""Capture of Linear inputs and attention q/k through forward hooks, and the small
deterministic denoising loop that drives a video DiT (cond / uncond CFG branches).

Works on any ``nn.Module``::

    cap = Capture(module, layers=r"blocks\\.0\\.", max_tokens=256)
    with cap:
        with cap.context(step=0, timestep=999.0, branch="cond"):
            module(inputs)
    tensors, manifest = cap.to_vectors(source={...})

Attention q/k: every diffusers attention module (and any module whose class name
contains "Attention"/"Attn") marks itself active while it runs; calls of
``torch.nn.functional.scaled_dot_product_attention`` made meanwhile are recorded as
that module's q and k, in the (batch, heads, tokens, head_dim) layout SDPA receives,
i.e. after q/k normalization and RoPE: what salient-token selection consumes.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from semdialect.errors import InputFileError, UsageError

from .vectors import CaptureLimitError, dtype_name, format_bytes, new_manifest

__all__ = ["Capture", "CaptureLimitError", "denoise", "to_numpy", "sigma_schedule",
           "capture_model", "plan_capture", "CapturePlan", "check_capture_steps"]



def to_numpy(t: torch.Tensor) -> np.ndarray:
    """CPU numpy copy with the dtype preserved (bf16 -> ml_dtypes.bfloat16)."""
    import ml_dtypes

    t = t.detach().to("cpu").contiguous()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().view(ml_dtypes.bfloat16).copy()
    return t.numpy().copy()


def _is_attention(m: torch.nn.Module) -> bool:
    try:
        from diffusers.models.attention import AttentionModuleMixin
        from diffusers.models.attention_processor import Attention

        if isinstance(m, (Attention, AttentionModuleMixin)):
            return True
    except ImportError:  # pragma: no cover - diffusers missing
        pass
    n = type(m).__name__
    return ("Attention" in n or "Attn" in n) and not isinstance(m, torch.nn.Linear) and \
        not n.endswith("Processor")


def _real_tensors():
    """A context where new tensors are real, also inside a FakeTensorMode."""
    from torch._subclasses.fake_tensor import unset_fake_temporarily

    return unset_fake_temporarily()


@dataclass
class _Ctx:
    step: int = 0
    timestep: float = 0.0
    branch: str = "none"


class Capture:
    """Record Linear inputs (and attention q/k) of a module while it runs.

    layers: regex searched in the qualified module name (Linear names; for q/k the
      attention module's name). max_tokens: keep at most this many rows along the token
      axis (-2), evenly spaced. max_layers: evenly spaced subset of the matching Linear
      layers; q/k then only of the attention modules in the same transformer blocks (the
      attention `eval` pairs those Linears with). steps: step indices to record (None:
      all). qk: record q/k. max_bytes: abort (CaptureLimitError) once the recorded data
      exceed it.
    sink: a `vectors.ShardWriter` (or anything with add(name, arr, entry) and
      alias(name, target, entry)) that receives every tensor as it is produced, instead
      of keeping them in memory. dedup: a Linear input that is the very tensor the
      previous Linear got (to_q/to_k/to_v; attn2.to_k/to_v) is recorded as an alias of
      it (`alias_of`), not stored again. shapes_only: record entries (shapes, dtypes,
      aliases) but no data, for the exact size estimate of `plan_capture`.
    """

    def __init__(self, module: torch.nn.Module, layers: str | None = None,
                 max_tokens: int | None = None, max_layers: int | None = None,
                 steps=None, qk: bool = True, linear: bool = True,
                 max_bytes: int | None = None, model_name: str = "module", sink=None,
                 dedup: bool = True, shapes_only: bool = False):
        self.module = module
        try:
            self.regex = re.compile(layers) if layers else None
        except re.error as e:
            raise ValueError(f"bad --layers regex {layers!r}: {e}") from None
        if max_tokens is not None and max_tokens <= 0:
            raise ValueError(f"max_tokens must be positive, got {max_tokens}")
        self.max_tokens = max_tokens
        self.steps = None if steps is None else set(int(s) for s in steps)
        self.qk = qk
        self.max_bytes = max_bytes
        self.model_name = model_name
        self.ctx = _Ctx()
        self.tensors: dict[str, np.ndarray] = {}
        self.meta: dict[str, dict] = {}
        self.nbytes = 0
        self.sink = sink
        self.dedup = dedup
        self.shapes_only = shapes_only
        self._last_input = None  # (tensor, version, key) of the last Linear input
        self._handles = []
        self._attn_stack: list[tuple[str, str]] = []
        self._calls: dict[str, int] = {}
        self._orig_sdpa = None
        lin = [(n, m) for n, m in module.named_modules() if isinstance(m, torch.nn.Linear)
               and (self.regex is None or self.regex.search(n))] if linear else []
        if max_layers is not None and len(lin) > max_layers:
            pick = np.unique(np.linspace(0, len(lin) - 1, max_layers).round().astype(int))
            lin = [lin[i] for i in pick]
        self.linears = lin
        self.attns = [(n, m) for n, m in module.named_modules() if _is_attention(m)
                      and (self.regex is None or self.regex.search(n))] if qk else []
        if max_layers is not None and linear:
            from semdialect.golden.quality import _block_prefix

            blocks = {_block_prefix(n) for n, _ in lin}
            self.attns = [(n, m) for n, m in self.attns if _block_prefix(n) in blocks]
        if not self.linears and not self.attns:
            raise ValueError(f"no Linear or attention layer matches {layers!r}")

    # ------------------------------------------------------------------ context / hooks
    @contextlib.contextmanager
    def context(self, step: int = 0, timestep: float = 0.0, branch: str = "none"):
        old = self.ctx
        self.ctx = _Ctx(int(step), float(timestep), str(branch))
        self._calls = {}
        self._last_input = None
        try:
            yield self
        finally:
            self.ctx = old
            self._last_input = None

    def _active(self) -> bool:
        return self.steps is None or self.ctx.step in self.steps

    def _sample(self, t: torch.Tensor):
        info = {}
        if self.max_tokens and t.ndim >= 2 and t.shape[-2] > self.max_tokens:
            n = t.shape[-2]
            with _real_tensors():  # real even while planning on fake tensors
                idx = torch.linspace(0, n - 1, self.max_tokens).round().long().unique()
            t = t.index_select(-2, idx.to(t.device))
            info = {"token_axis": -2, "tokens_total": int(n), "tokens_kept": int(idx.numel()),
                    "token_sampling": "evenly spaced: round(linspace(0, total-1, kept))"}
        return t, info

    def _record(self, key_base: str, t: torch.Tensor, meta: dict):
        if not self._active():
            return
        n = self._calls.get(key_base, 0)
        self._calls[key_base] = n + 1
        c = self.ctx
        key = f"s{c.step:03d}/{c.branch}/{key_base}" + (f"@{n}" if n else "")
        orig_shape = list(t.shape)
        entry = {**meta, "model": self.model_name, "step": c.step, "timestep": c.timestep,
                 "branch": c.branch, "call": n, "orig_shape": orig_shape}
        last = self._last_input
        if meta["role"] == "linear_input":
            # the same tensor object, not modified in place since: bit-identical input
            if self.dedup and last is not None and last[0] is t and last[1] == t._version:
                self._store_alias(key, last[2], entry)
                return
            self._last_input = (t, t._version, key)
        t, info = self._sample(t)
        entry.update(info)
        if self.shapes_only:
            nbytes = t.numel() * t.element_size()
            shape, dt = list(t.shape), _torch_dtype_name(t.dtype)
            arr = None
        else:
            arr = to_numpy(t)
            nbytes, shape, dt = arr.nbytes, list(arr.shape), dtype_name(arr.dtype)
        self.nbytes += nbytes
        if self.max_bytes is not None and self.nbytes > self.max_bytes:
            raise CaptureLimitError(
                f"captured data exceed the limit of {format_bytes(self.max_bytes)} (at {key}); "
                "use fewer --steps, a narrower --layers regex, --max-tokens or --max-layers")
        entry.update(shape=shape, dtype=dt)
        self.meta[key] = entry
        if self.sink is not None and arr is not None:
            self.sink.add(key, arr, entry)
        elif arr is not None:
            self.tensors[key] = arr

    def _store_alias(self, key: str, target: str, entry: dict):
        tgt = self.meta[target]
        entry = {**entry, "shape": tgt["shape"], "dtype": tgt["dtype"], "alias_of": target}
        for k in ("token_axis", "tokens_total", "tokens_kept", "token_sampling"):
            if k in tgt:
                entry[k] = tgt[k]
        self.meta[key] = entry
        if self.sink is not None and not self.shapes_only:
            self.sink.alias(key, target, entry)
        elif not self.shapes_only:
            self.tensors[key] = self.tensors[target]  # the same array, stored once

    def _linear_hook(self, name, m):
        def hook(_mod, args):
            if args and isinstance(args[0], torch.Tensor):
                self._record(f"{name}/in", args[0], {
                    "role": "linear_input", "layer": name, "module_type": type(m).__name__,
                    "in_features": m.in_features, "out_features": m.out_features})
        return hook

    def _attn_pre(self, name, m):
        def hook(_mod, _args, _kwargs=None):
            self._attn_stack.append((name, type(m).__name__))
        return hook

    def _attn_post(self, _mod, _args, _out):
        if self._attn_stack:
            self._attn_stack.pop()

    def _sdpa(self, query, key, value, *args, **kwargs):
        if self._attn_stack and self._active():
            name, typ = self._attn_stack[-1]
            base = {"layer": name, "module_type": typ, "layout": "batch,heads,tokens,head_dim",
                    "heads": int(query.shape[1]) if query.ndim == 4 else 1}
            self._record(f"{name}/q", query, {**base, "role": "attn_q"})
            self._record(f"{name}/k", key, {**base, "role": "attn_k"})
        return self._orig_sdpa(query, key, value, *args, **kwargs)

    def __enter__(self):
        for name, m in self.linears:
            self._handles.append(m.register_forward_pre_hook(self._linear_hook(name, m)))
        for name, m in self.attns:
            self._handles.append(m.register_forward_pre_hook(self._attn_pre(name, m)))
            self._handles.append(m.register_forward_hook(self._attn_post))
        if self.attns:
            self._orig_sdpa = F.scaled_dot_product_attention
            F.scaled_dot_product_attention = self._sdpa
        return self

    def __exit__(self, *exc):
        for h in self._handles:
            h.remove()
        self._handles = []
        self._attn_stack = []
        if self._orig_sdpa is not None:
            F.scaled_dot_product_attention = self._orig_sdpa
            self._orig_sdpa = None
        return False

    # --------------------------------------------------------------------------- export
    def to_vectors(self, source: dict, run: dict | None = None):
        """(tensors, manifest) ready for `vectors.save_vectors` (aliases carry
        `alias_of` and share their target's array)."""
        m = new_manifest(source, run)
        for k in self.tensors:
            m["tensors"][k] = self.meta[k]
        return dict(self.tensors), m


def _torch_dtype_name(dt: torch.dtype) -> str:
    return {torch.float32: "float32", torch.float16: "float16", torch.bfloat16: "bfloat16",
            torch.float64: "float64", torch.int64: "int64", torch.int32: "int32"}[dt]


def sigma_schedule(steps: int, shift: float = 1.0) -> torch.Tensor:
    """Flow-matching sigmas 1 -> 0 in `steps` Euler steps, with the flow shift (time
    shift) sigma' = shift*s / (1 + (shift-1)*s) that Wan (shift 5 at 720p, 3 at 480p) and
    Open-Sora 2.0 sample with; shift 1 is the plain linear schedule."""
    if steps <= 0:
        raise ValueError(f"--steps must be positive, got {steps}")
    if not shift > 0:
        raise UsageError(f"--flow-shift must be positive, got {shift}")
    s = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64)
    return shift * s / (1 + (shift - 1) * s)


def check_capture_steps(capture_steps, steps: int):
    """--capture-steps must name steps the run has (0 .. steps-1)."""
    if capture_steps is None:
        return None
    bad = [s for s in capture_steps if not 0 <= int(s) < steps]
    if bad:
        raise UsageError(f"--capture-steps {','.join(map(str, bad))} outside the run's steps "
                         f"0..{steps - 1} (--steps {steps})")
    if not capture_steps:
        raise UsageError("--capture-steps is empty")
    return sorted(set(int(s) for s in capture_steps))


def load_text_embeds(path, lm, dtype) -> tuple[dict, dict]:
    """(cond, uncond) text conditioning from a safetensors file holding the model's text
    inputs as `cond.<name>` and `uncond.<name>` (e.g. cond.encoder_hidden_states: the
    umT5 output for Wan, the T5 sequence and CLIP pooled vector for an MMDiT), checked
    against the names and feature sizes the model takes."""
    from pathlib import Path

    from safetensors import SafetensorError
    from safetensors.torch import load_file

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"--text-embeds {path} does not exist")
    try:
        raw = load_file(str(p))
    except (SafetensorError, OSError) as e:
        raise InputFileError(f"--text-embeds {path}: not a readable safetensors file ({e})"
                             ) from None
    like = lm.text(torch.Generator().manual_seed(0), dtype)  # names and shapes it takes
    need = [f"{b}.{n}" for b in ("cond", "uncond") for n, r in like.items()
            if r.is_floating_point()]
    missing = [k for k in need if k not in raw]
    if missing:
        raise InputFileError(f"--text-embeds {path}: no tensor {missing[0]!r}; this model needs "
                         f"{', '.join(need)}")
    out = []
    for branch in ("cond", "uncond"):
        d = {}
        for name, ref in like.items():
            if not ref.is_floating_point():
                continue
            key = f"{branch}.{name}"
            t = raw[key]
            if t.ndim == ref.ndim - 1:
                t = t[None]  # add the batch axis
            want = f"[1, tokens, {ref.shape[-1]}]" if ref.ndim == 3 else str(list(ref.shape))
            if t.ndim != ref.ndim or t.shape[0] != 1 or t.shape[-1] != ref.shape[-1] or (
                    ref.ndim != 3 and tuple(t.shape) != tuple(ref.shape)):
                raise InputFileError(f"--text-embeds {path}: {key} has shape {list(t.shape)}, "
                                 f"the model takes {want}")
            d[name] = t.to(ref.dtype)
        seq = d.get("encoder_hidden_states")
        for name, ref in like.items():
            if not ref.is_floating_point():  # attention masks: every given token counts
                n_tok = seq.shape[1] if seq is not None else ref.shape[1]
                d[name] = torch.ones(1, n_tok, dtype=ref.dtype)
        out.append(d)
    return out[0], out[1]


@torch.no_grad()
def denoise(lm, steps: int = 2, seed: int = 0, guidance: float = 5.0, capture=None,
            progress: bool = False, dtype=None, shift: float = 1.0, texts=None,
            start_step: int = 0, latent=None, on_step_end=None,
            init: torch.Tensor | None = None, start: float = 1.0) -> torch.Tensor:
    """Seeded latents, `steps` Euler steps over flow-matching sigmas (flow shift `shift`),
    CFG with a cond and an uncond text embedding (two seeded random embeddings, a trained
    model's caption and the empty caption, or `texts` = (cond, uncond) precomputed).
    `capture` (a Capture, already entered) gets
    the step / timestep / branch context of every forward call. `start_step` / `latent`
    continue an interrupted run (the seeded draws are made as in a fresh run);
    `on_step_end(i, x)` is called after every step.

    For every model this is the same simple sampler (the model output is used as a
    velocity), not each model's native scheduler: see docs/frontend.md.
    `init` + `start` < 1: begin at sigma = start from (1 - start) init + start noise
    (partial denoising of a given latent, SDEdit-style) instead of pure noise.
    Returns the final latent (float32, CPU)."""
    dtype = dtype or lm.dtype
    dev = next(lm.module.parameters()).device
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(lm.latent_shape(), generator=g, dtype=torch.float32)
    cond, uncond = lm.text_pair(g, dtype)
    if texts is not None:
        cond, uncond = texts
    if latent is not None:
        x = torch.as_tensor(latent, dtype=torch.float32).reshape(x.shape)
    cond = {k: v.to(dev) for k, v in cond.items()}
    uncond = {k: v.to(dev) for k, v in uncond.items()}
    sig = sigma_schedule(steps, shift)
    if init is not None:
        sig = sig * float(start)
        x = (1 - float(start)) * init.float().reshape(x.shape) + float(start) * x
    branches = [("cond", cond)] + ([("uncond", uncond)] if guidance != 1.0 else [])
    it = range(start_step, steps)
    if progress:
        from tqdm import tqdm

        it = tqdm(it, desc=f"{lm.name} denoise", unit="step", initial=start_step, total=steps)
    for i in it:
        s = float(sig[i])
        outs = {}
        for br, txt in branches:
            ctx = capture.context(i, s * 1000.0, br) if capture else contextlib.nullcontext()
            with ctx:
                outs[br] = lm.predict(x.to(dev, dtype), s, txt).float().cpu()
        v = outs["cond"]
        if "uncond" in outs:
            v = outs["uncond"] + guidance * (outs["cond"] - outs["uncond"])
        x = x + (float(sig[i + 1]) - s) * v
        if on_step_end is not None:
            on_step_end(i, x)
    return x


# ----------------------------------------------------------------------------- planning
@dataclass
class CapturePlan:
    """Everything known before a weight is read: the model's spec and config, the
    checkpoint's checks, dtypes, and the exact bytes the capture will write."""

    model: str  # registry name (wan-tiny, ...)
    name: str  # what manifests and progress call it: the checkpoint's own name
    spec: object
    config: dict
    info: object  # checkpoints.CheckpointInfo or None
    dtype: str  # model / storage dtype
    video: dict
    tensors: int = 0
    aliases: int = 0
    bytes: int = 0  # data bytes of the inputs (aliases not counted)
    expected_bytes: int = 0
    per_step_bytes: int = 0
    largest_tensor: int = 0
    exact: bool = True  # False: the forward has data-dependent shapes, no estimate

    @property
    def total_bytes(self) -> int:
        return self.bytes + self.expected_bytes


def _fake_model(spec, cfg, dtype, keep_fp32: bool):
    """The model on fake tensors (no memory), dtypes as the real load gives them."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    from .models import _cls, _keep_fp32

    cls = _cls(spec.cls_name)
    mode = FakeTensorMode(allow_non_fake_inputs=True)
    with mode:
        with torch.random.fork_rng(devices=[]):
            m = cls(**{k: v for k, v in cfg.items() if not k.startswith("_")})
        for name, p in m.named_parameters():
            want = torch.float32 if keep_fp32 and _keep_fp32(cls, name) else dtype
            p.data = p.data.to(want)
    return m.eval(), mode


def _shape_pass(plan, spec, cfg, tdtype, info, video, seed, guidance, cap_args,
                text_embeds=None):
    """Entries (shapes, dtypes, aliases) of one step's tensors, per CFG branch, from a
    forward pass on fake tensors. A model with data-dependent shapes in its forward
    (Mochi's mask nonzero) cannot run on fake tensors: a tiny model then runs for real
    (it is small); a checkpoint gets no exact estimate (None)."""
    from torch._subclasses.fake_tensor import (
        DataDependentOutputException,
        DynamicOutputShapeException,
    )

    from .models import LoadedModel, build_model

    fake, mode = _fake_model(spec, cfg, tdtype, keep_fp32=info is not None)
    lm = LoadedModel(spec, fake, "fake", None, seed, video, info)
    branches = ["cond"] + (["uncond"] if guidance != 1.0 else [])
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(lm.latent_shape(), generator=g, dtype=torch.float32)
    txt = lm.text(g, tdtype)
    texts = load_text_embeds(text_embeds, lm, tdtype) if text_embeds else (txt, txt)
    for attempt in ("fake", "real"):
        if attempt == "real":
            if info is not None:
                return None
            lm = build_model(plan.model, seed=seed, dtype=tdtype, video=video)
            mode = contextlib.nullcontext()
        cap = Capture(lm.module, steps=None, model_name=plan.name, shapes_only=True,
                      **cap_args)
        try:
            with torch.no_grad(), cap, mode:
                for br, t in zip(branches, texts):
                    with cap.context(0, 1000.0, br):
                        lm.predict(x.to(tdtype), 1.0, t)
            return cap.meta
        except (DataDependentOutputException, DynamicOutputShapeException):
            continue
        except (RuntimeError, ValueError, TypeError, IndexError) as e:
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ValueError(f"{plan.name} cannot run latent {video} (checked on shapes only, "
                             f"before loading): {msg[:300]}") from None
    return None


def _expected_row_bytes(fmt: str, channels: int) -> int:
    """Bytes of the golden outputs of one row of `channels` inputs (padded as
    add_expected pads), from a one-row probe."""
    from semdialect import golden

    k = golden.quantize(np.zeros((64,), np.float32), fmt).block_size
    c = channels + (-channels % k)
    qt = golden.quantize(np.zeros((1, c), np.float32), fmt)
    n = qt.codes.nbytes + qt.scales.nbytes
    if qt.dialects is not None:
        n += qt.dialects.nbytes
    return n


def plan_capture(model: str, checkpoint: str | None = None, steps: int = 2,
                 layers: str | None = None, max_tokens: int | None = None,
                 max_layers: int | None = None, capture_steps=None, qk: bool = True,
                 guidance: float = 5.0, dtype: str | None = None, video=None,
                 expected=(), seed: int = 0, text_embeds: str | None = None) -> CapturePlan:
    """Check everything and size the capture exactly, without reading a weight: the
    checkpoint (config, key layout, keys/shapes, dtype), the latent size, the steps, and
    one forward pass per CFG branch on fake tensors recording the shape of every tensor
    the capture would store (the shapes do not change from step to step)."""
    from .checkpoints import check_latent, inspect_checkpoint, resolve_model
    from .models import get_spec

    reg = resolve_model(model, checkpoint)
    spec = get_spec(reg)
    sigma_schedule(steps)  # --steps checked
    check_capture_steps(capture_steps, steps)
    info = inspect_checkpoint(checkpoint, spec) if checkpoint else None
    cfg = dict(info.config) if info else dict(spec.tiny_config)
    dname = dtype or (info.dtype if info else "float32")
    tdtype = parse_dtype(dname)
    dname = _torch_dtype_name(tdtype)
    v = dict(spec.video)
    v.update(video or {})
    check_latent(spec.cls_name, cfg, v)
    plan = CapturePlan(reg, info.name if info else reg, spec, cfg, info, dname, v)
    meta = _shape_pass(plan, spec, cfg, tdtype, info, v, seed, guidance,
                       dict(layers=layers, max_tokens=max_tokens, max_layers=max_layers, qk=qk),
                       text_embeds)
    if meta is None:
        plan.exact = False
        return plan
    n_steps = len(capture_steps) if capture_steps is not None else steps
    fmts = [f for f in expected if f]
    for ent in meta.values():
        if "alias_of" in ent:
            plan.aliases += n_steps
            continue
        plan.tensors += n_steps
        count = int(np.prod(ent["shape"])) if ent["shape"] else 1
        nb = count * np.dtype(np.float32 if ent["dtype"] == "float32" else np.float16).itemsize
        plan.per_step_bytes += nb
        plan.largest_tensor = max(plan.largest_tensor, nb)
        rows = count // ent["shape"][-1] if ent["shape"] else 1
        for f in fmts:
            tag = 4 if f == "nvfp4" else 0  # the (1,) float32 tensor scale
            plan.expected_bytes += n_steps * (rows * _expected_row_bytes(f, ent["shape"][-1])
                                              + tag)
    plan.bytes = plan.per_step_bytes * n_steps
    return plan


def capture_model(model: str, checkpoint: str | None = None, steps: int = 2, seed: int = 0,
                  layers: str | None = None, max_tokens: int | None = None,
                  max_layers: int | None = None, capture_steps=None, qk: bool = True,
                  guidance: float = 5.0, dtype: str | None = None, device: str = "cpu",
                  max_bytes: int | None = None, progress: bool = False, video=None,
                  shift: float = 1.0, text_embeds: str | None = None, output=None,
                  expected=(), resume: bool = False, shard_bytes: int = 256 << 20,
                  plan: CapturePlan | None = None):
    """Build (or load) `model`, run the denoising loop under a Capture.

    Without `output`: returns (tensors, manifest) for `vectors.save_vectors` (all in
    memory). With `output` (a directory): every tensor is streamed to disk as it is
    produced (`vectors.ShardWriter`, shards of `shard_bytes`, golden outputs of the
    `expected` formats added per shard); `resume` continues an interrupted capture
    there. Returns the finished manifest."""
    from .models import build_model
    from .vectors import ShardWriter

    capture_steps = check_capture_steps(capture_steps, steps)
    plan = plan or plan_capture(model, checkpoint, steps, layers, max_tokens, max_layers,
                                capture_steps, qk, guidance, dtype, video, seed=seed,
                                text_embeds=text_embeds)
    tdtype = parse_dtype(plan.dtype)
    lm = build_model(plan.model, checkpoint=checkpoint, seed=seed, dtype=tdtype, device=device,
                     video=plan.video)
    texts = load_text_embeds(text_embeds, lm, tdtype) if text_embeds else None
    source, run = _provenance(lm, plan, seed, steps, guidance, shift, layers, max_tokens,
                              max_layers, capture_steps, device, text_embeds)
    writer = None
    if output is not None:
        writer = ShardWriter(output, new_manifest(source, run), shard_bytes, expected,
                             max_bytes, resume)
    cap = Capture(lm.module, layers=layers, max_tokens=max_tokens, max_layers=max_layers,
                  steps=capture_steps, qk=qk, max_bytes=None if writer else max_bytes,
                  model_name=plan.name, sink=writer)
    start, latent, on_end = 0, None, None
    if writer is not None:
        if resume:
            start, latent = writer.resume_state()
        on_end = writer.mark_step_done
    with cap:
        x = denoise(lm, steps=steps, seed=seed, guidance=guidance, capture=cap,
                    progress=progress, dtype=tdtype, shift=shift, texts=texts,
                    start_step=start, latent=latent,
                    on_step_end=None if on_end is None else
                    (lambda i, xx: on_end(i, xx.numpy())))
    rms = float(x.pow(2).mean().sqrt())
    if writer is not None:
        return writer.close({"final_latent_rms": rms})
    run["final_latent_rms"] = rms
    return cap.to_vectors(source, run)


def _provenance(lm, plan, seed, steps, guidance, shift, layers, max_tokens, max_layers,
                capture_steps, device, text_embeds):
    """(source, run) of the manifest: what made the data, and how."""
    random = lm.weights == "random-init"
    name = plan.name
    source = {
        "kind": "model",
        "name": name,
        "architecture": plan.model,
        "model_class": lm.spec.cls_name,
        "family": lm.spec.family,
        "weights": lm.weights,
        "checkpoint": lm.checkpoint,
        "label": (f"{name}: RANDOM-WEIGHT tiny {lm.spec.family} ({lm.spec.cls_name}, "
                  f"init seed {seed}); activations are not those of a trained model")
        if random else lm.label or f"{name}: weights from checkpoint {lm.checkpoint}",
        "config": lm.config,
        "config_derived_from": lm.spec.derived_from if random else None,
    }
    if plan.info is not None:
        source["checkpoint_dtype"] = plan.info.dtype
    sig = sigma_schedule(steps, shift)
    run = {
        "seed": seed, "steps": steps, "guidance_scale": guidance, "flow_shift": shift,
        "sampler": "Euler over flow-matching sigmas linspace(1, 0, steps+1), flow shift "
                   "s' = shift*s/(1+(shift-1)*s); model output used as velocity; CFG "
                   "v = v_u + g (v_c - v_u)",
        "sigmas": [float(s) for s in sig],
        "timesteps": [float(s) * 1000.0 for s in sig[:-1]],
        "timestep_definition": "1000 * sigma (as passed to Wan/LTX/Hunyuan; Flux gets sigma; "
                               "CogVideoX round(999 * sigma))",
        "branches": ["cond", "uncond"] if guidance != 1.0 else ["cond"],
        "text": f"precomputed embeddings from {text_embeds}" if text_embeds else
                "seeded random embeddings (cond, uncond)",
        "dtype": plan.dtype, "device": str(device), "layers_regex": layers,
        "max_tokens": max_tokens, "max_layers": max_layers,
        "capture_steps": sorted(capture_steps) if capture_steps is not None else None,
        "latent_shape": list(lm.latent_shape()), "video": lm.video,
    }
    return source, run


_DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
           "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}


def parse_dtype(name: str) -> torch.dtype:
    try:
        return _DTYPES[str(name).lower()]
    except KeyError:
        raise ValueError(f"unknown dtype {name!r}; use float32, bfloat16 or float16") from None

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

from semdialect.errors import LimitExceededError

from .vectors import dtype_name, format_bytes, new_manifest

__all__ = ["Capture", "CaptureLimitError", "denoise", "to_numpy", "sigma_schedule"]


class CaptureLimitError(LimitExceededError):
    """Captured data exceed --max-bytes (a ValueError, semdialect.errors family)."""


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
      layers. steps: step indices to record (None: all). qk: record q/k.
      max_bytes: abort (CaptureLimitError) once the recorded data exceed it.
    """

    def __init__(self, module: torch.nn.Module, layers: str | None = None,
                 max_tokens: int | None = None, max_layers: int | None = None,
                 steps=None, qk: bool = True, linear: bool = True,
                 max_bytes: int | None = None, model_name: str = "module"):
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
        if not self.linears and not self.attns:
            raise ValueError(f"no Linear or attention layer matches {layers!r}")

    # ------------------------------------------------------------------ context / hooks
    @contextlib.contextmanager
    def context(self, step: int = 0, timestep: float = 0.0, branch: str = "none"):
        old = self.ctx
        self.ctx = _Ctx(int(step), float(timestep), str(branch))
        self._calls = {}
        try:
            yield self
        finally:
            self.ctx = old

    def _active(self) -> bool:
        return self.steps is None or self.ctx.step in self.steps

    def _sample(self, t: torch.Tensor):
        info = {}
        if self.max_tokens and t.ndim >= 2 and t.shape[-2] > self.max_tokens:
            n = t.shape[-2]
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
        t, info = self._sample(t)
        arr = to_numpy(t)
        self.nbytes += arr.nbytes
        if self.max_bytes is not None and self.nbytes > self.max_bytes:
            raise CaptureLimitError(
                f"captured data exceed the limit of {format_bytes(self.max_bytes)} (at {key}); "
                "use fewer --steps, a narrower --layers regex, --max-tokens or --max-layers")
        self.tensors[key] = arr
        self.meta[key] = {**meta, "model": self.model_name, "step": c.step,
                          "timestep": c.timestep, "branch": c.branch, "call": n,
                          "shape": list(arr.shape), "orig_shape": orig_shape,
                          "dtype": dtype_name(arr.dtype), **info}

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
        """(tensors, manifest) ready for `vectors.save_vectors`."""
        m = new_manifest(source, run)
        for k in self.tensors:
            m["tensors"][k] = self.meta[k]
        return dict(self.tensors), m


def sigma_schedule(steps: int, shift: float = 1.0) -> torch.Tensor:
    """Flow-matching sigmas 1 -> 0 in `steps` Euler steps, with the usual time shift
    sigma' = shift*s / (1 + (shift-1)*s)."""
    if steps <= 0:
        raise ValueError(f"--steps must be positive, got {steps}")
    s = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64)
    return shift * s / (1 + (shift - 1) * s)


@torch.no_grad()
def denoise(lm, steps: int = 2, seed: int = 0, guidance: float = 5.0, capture=None,
            progress: bool = False, dtype=None, shift: float = 1.0,
            init: torch.Tensor | None = None, start: float = 1.0) -> torch.Tensor:
    """Seeded latents, `steps` Euler steps over flow-matching sigmas, CFG with a cond and
    an uncond text embedding (two seeded random embeddings). `capture` (a Capture, already
    entered) gets the step / timestep / branch context of every forward call.

    For every model this is the same simple sampler (the model output is used as a
    velocity), not each model's native scheduler: see docs/frontend.md.
    `init` + `start` < 1: begin at sigma = start from (1 - start) init + start noise
    (partial denoising of a given latent, SDEdit-style) instead of pure noise.
    Returns the final latent (float32, CPU)."""
    dtype = dtype or next(lm.module.parameters()).dtype
    dev = next(lm.module.parameters()).device
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(lm.latent_shape(), generator=g, dtype=torch.float32)
    cond, uncond = lm.text_pair(g, dtype)
    cond = {k: v.to(dev) for k, v in cond.items()}
    uncond = {k: v.to(dev) for k, v in uncond.items()}
    sig = sigma_schedule(steps, shift)
    if init is not None:
        sig = sig * float(start)
        x = (1 - float(start)) * init.float().reshape(x.shape) + float(start) * x
    branches = [("cond", cond)] + ([("uncond", uncond)] if guidance != 1.0 else [])
    it = range(steps)
    if progress:
        from tqdm import tqdm

        it = tqdm(it, desc=f"{lm.spec.name} denoise", unit="step")
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
    return x


def capture_model(model: str, checkpoint: str | None = None, steps: int = 2, seed: int = 0,
                  layers: str | None = None, max_tokens: int | None = None,
                  max_layers: int | None = None, capture_steps=None, qk: bool = True,
                  guidance: float = 5.0, dtype: str = "float32", device: str = "cpu",
                  max_bytes: int | None = None, progress: bool = False, video=None):
    """Build (or load) `model`, run the denoising loop under a Capture and return
    (tensors, manifest) for `vectors.save_vectors`."""
    from .models import build_model

    tdtype = parse_dtype(dtype)
    lm = build_model(model, checkpoint=checkpoint, seed=seed, dtype=tdtype, device=device,
                     video=video)
    cap = Capture(lm.module, layers=layers, max_tokens=max_tokens, max_layers=max_layers,
                  steps=capture_steps, qk=qk, max_bytes=max_bytes, model_name=model)
    with cap:
        latent = denoise(lm, steps=steps, seed=seed, guidance=guidance, capture=cap,
                         progress=progress, dtype=tdtype)
    random = lm.weights == "random-init"
    source = {
        "kind": "model",
        "name": model,
        "model_class": lm.spec.cls_name,
        "family": lm.spec.family,
        "weights": lm.weights,
        "checkpoint": lm.checkpoint,
        "label": (f"{model}: RANDOM-WEIGHT tiny {lm.spec.family} ({lm.spec.cls_name}, "
                  f"init seed {seed}); activations are not those of a trained model")
        if random else lm.label or f"{model}: weights from checkpoint {lm.checkpoint}",
        "config": lm.config,
        "config_derived_from": lm.spec.derived_from if random else None,
    }
    sig = sigma_schedule(steps)
    run = {
        "seed": seed, "steps": steps, "guidance_scale": guidance,
        "sampler": "Euler over flow-matching sigmas linspace(1, 0, steps+1); model output "
                   "used as velocity; CFG v = v_u + g (v_c - v_u)",
        "sigmas": [float(s) for s in sig],
        "timesteps": [float(s) * 1000.0 for s in sig[:-1]],
        "timestep_definition": "1000 * sigma (as passed to Wan/LTX/Hunyuan; Flux gets sigma; "
                               "CogVideoX round(999 * sigma))",
        "branches": ["cond", "uncond"] if guidance != 1.0 else ["cond"],
        "dtype": dtype, "device": str(device), "layers_regex": layers,
        "max_tokens": max_tokens, "max_layers": max_layers,
        "capture_steps": sorted(capture_steps) if capture_steps is not None else None,
        "latent_shape": list(lm.latent_shape()), "video": lm.video,
        "final_latent_rms": float(latent.pow(2).mean().sqrt()),
    }
    tensors, manifest = cap.to_vectors(source, run)
    return tensors, manifest


_DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
           "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}


def parse_dtype(name: str) -> torch.dtype:
    try:
        return _DTYPES[str(name).lower()]
    except KeyError:
        raise ValueError(f"unknown dtype {name!r}; use float32, bfloat16 or float16") from None

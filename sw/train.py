"""Rectified-flow (flow-matching) training of the trained tiny models on the sprite task.

    x_t = (1 - t) x_0 + t eps,  target v = eps - x_0,  loss = mean (model(x_t, t, c) - v)^2

with t drawn logit-normal (SD3 / Open-Sora 2.0), the caption dropped (empty caption) for
10 % of the samples so classifier-free guidance has an unconditional branch, AdamW with a
linear warm-up and a cosine decay (fixed horizon `decay_steps`). The sampler in
sw/capture.py integrates exactly this velocity (x += (sigma_next - sigma) v from sigma = 1 to 0).

Deterministic: one torch thread, `torch.use_deterministic_algorithms`, every random draw
from seeded generators, training clips drawn by index from `video_task.sample(seed, i)`.
The same command on the same torch build gives the same bytes (the manifest holds the
sha256).
"""

from __future__ import annotations

import json
import platform
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from . import video_task as vt
from .trained import TASKS, build_untrained, manifest_path, sha256_file

__all__ = ["TrainConfig", "DEFAULTS", "train", "validation_loss", "flow_loss"]


@dataclass(frozen=True)
class TrainConfig:
    steps: int
    batch: int = 8
    lr: float = 1e-3
    warmup: int = 50
    # after warm-up: cosine decay to lr * min_lr_frac at step decay_steps (None: constant).
    # The schedule depends on decay_steps, never on steps, so a run of N steps is a prefix
    # of a longer one with the same decay_steps
    decay_steps: int | None = None
    min_lr_frac: float = 0.1
    ema: float = 0.99  # shipped weights: EMA, decay min(ema, (1 + s) / (10 + s))
    weight_decay: float = 0.0
    cfg_dropout: float = 0.1
    seed: int = 0  # init, noise and timesteps
    data_seed: int = 1  # training clips: video_task.sample(data_seed, i)
    val_seed: int = 2  # validation clips
    val_size: int = 48
    grad_clip: float = 1.0


# the shipped checkpoints: about 30 minutes of one CPU thread each (docs/frontend.md)
_SHIPPED = TrainConfig(steps=4000, warmup=100, decay_steps=4000, ema=0.999)
DEFAULTS = {"trained-wan-tiny": _SHIPPED, "trained-mmdit-tiny": _SHIPPED}


def _predict(module, view, x, t, txt):
    from .models import _mmdit_fwd, _wan_fwd

    if view.family == "mmdit":
        g = view.geometry
        video = dict(frames=g.frames, height=g.height // view.factor,
                     width=g.width // view.factor)
        return _mmdit_fwd(module, x, t, txt, video)
    return _wan_fwd(module, x, t, txt)


def flow_loss(module, enc, view, x0, ids, t, eps):
    """Mean squared error of the predicted velocity at x_t = (1 - t) x0 + t eps."""
    tb = t.reshape(-1, *([1] * (x0.ndim - 1)))
    xt = (1 - tb) * x0 + tb * eps
    h, pooled = enc(ids)
    pred = _predict(module, view, xt, t, view.text_inputs(h, pooled))
    return ((pred.float() - (eps - x0)) ** 2).mean()


def _val_set(cfg: TrainConfig, view):
    """Fixed validation clips, captions, stratified timesteps and noise."""
    vids, ids, caps = vt.batch(cfg.val_seed, 0, cfg.val_size, view.geometry)
    x0 = view.to_latent(vids)
    g = torch.Generator().manual_seed(cfg.val_seed)
    t = (torch.arange(cfg.val_size, dtype=torch.float32) + 0.5) / cfg.val_size
    eps = torch.randn(x0.shape, generator=g)
    return x0, ids, t, eps


@torch.no_grad()
def validation_loss(module, enc, view, cfg: TrainConfig, captions: str = "true",
                    chunk: int = 16) -> float:
    """Validation flow loss with the true captions, the empty caption ("empty") or the
    captions of other clips ("shuffled": the batch rolled by one)."""
    x0, ids, t, eps = _val_set(cfg, view)
    if captions == "empty":
        ids = torch.zeros_like(ids)
    elif captions == "shuffled":
        ids = ids.roll(1, 0)
    module.eval()
    tot = 0.0
    for i in range(0, len(x0), chunk):
        s = slice(i, i + chunk)
        tot += float(flow_loss(module, enc, view, x0[s], ids[s], t[s], eps[s])) * len(x0[s])
    return tot / len(x0)


def _lr(cfg: TrainConfig, step: int) -> float:
    """Linear warm-up, then a cosine decay to lr * min_lr_frac at decay_steps (or constant
    without decay_steps). Nothing depends on the total step count, so the state after N
    steps is the same in every run of >= N steps: a snapshot written at step N is
    reproduced by `--steps N`."""
    import math

    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    if not cfg.decay_steps:
        return cfg.lr
    u = min(1.0, (step - cfg.warmup) / max(1, cfg.decay_steps - cfg.warmup))
    return cfg.lr * (cfg.min_lr_frac + (1 - cfg.min_lr_frac) * 0.5 * (1 + math.cos(math.pi * u)))


class _Ema:
    """Exponential moving average of parameters (and buffers copied as they are)."""

    def __init__(self, modules, decay: float):
        import copy

        self.decay = decay
        self.shadow = [copy.deepcopy(m).eval() for m in modules]
        for sh in self.shadow:
            sh.requires_grad_(False)

    @torch.no_grad()
    def update(self, modules, step: int) -> None:
        d = min(self.decay, (1 + step) / (10 + step))
        for sh, m in zip(self.shadow, modules):
            for ps, p in zip(sh.parameters(), m.parameters()):
                ps.mul_(d).add_(p.detach(), alpha=1 - d)
            for bs, b in zip(sh.buffers(), m.buffers()):
                bs.copy_(b)


def train(name: str, cfg: TrainConfig | None = None, out: str | None = None,
          progress=None, log_every: int = 50, snapshot_every: int | None = None) -> dict:
    """Train `name` from its seed; write OUT (safetensors) + OUT.manifest.json if `out`
    (also every `snapshot_every` steps, each snapshot exactly what `--steps N` gives).
    Returns the manifest (losses, timings, sha256)."""
    from .models import get_spec

    spec = get_spec(name)
    if name not in TASKS:
        raise ValueError(f"{name} is not a trainable model; trainable: {', '.join(TASKS)}")
    cfg = cfg or DEFAULTS[name]
    if cfg.steps <= 0 or cfg.batch <= 0:
        raise ValueError("steps and batch must be positive")
    view = TASKS[name]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    det = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        return _train(spec, name, cfg, view, out, progress, log_every, snapshot_every)
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(det)


def _train(spec, name, cfg, view, out, progress, log_every, snapshot_every):
    module, enc = build_untrained(spec, view, cfg.seed)
    val_random = validation_loss(module, enc, view, cfg)
    val_random_empty = validation_loss(module, enc, view, cfg, "empty")
    ema = _Ema([module, enc], cfg.ema)
    params = list(module.parameters()) + list(enc.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.lr, betas=(0.9, 0.99),
                            weight_decay=cfg.weight_decay)
    g = torch.Generator().manual_seed(cfg.seed)
    curve, window = [], []
    t0 = time.time()
    module.train()
    enc.train()
    for step in range(cfg.steps):
        vids, ids, _ = vt.batch(cfg.data_seed, step * cfg.batch, cfg.batch, view.geometry)
        x0 = view.to_latent(vids)
        drop = torch.rand(cfg.batch, generator=g) < cfg.cfg_dropout
        ids = torch.where(drop[:, None], torch.zeros_like(ids), ids)
        t = torch.sigmoid(torch.randn(cfg.batch, generator=g))  # logit-normal(0, 1)
        eps = torch.randn(x0.shape, generator=g)
        for pg in opt.param_groups:
            pg["lr"] = _lr(cfg, step)
        loss = flow_loss(module, enc, view, x0, ids, t, eps)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        opt.step()
        ema.update([module, enc], step)
        window.append(float(loss.detach()))
        last = step + 1 == cfg.steps
        snap = bool(out and snapshot_every and (step + 1) % snapshot_every == 0)
        if (step + 1) % log_every == 0 or last or snap:
            curve.append({"step": step + 1, "train_loss": sum(window) / len(window)})
            window = []
            if progress:
                progress(f"[train {name}] step {step + 1}/{cfg.steps} loss "
                         f"{curve[-1]['train_loss']:.4f} ({time.time() - t0:.0f} s)")
        if out and (last or snap):
            man = _manifest(spec, name, replace(cfg, steps=step + 1), view, ema, list(curve),
                            time.time() - t0, val_random, val_random_empty, module)
            _save(out, *ema.shadow, man)
            if progress:
                progress(f"[train {name}] wrote {out} at step {step + 1} (sha256 "
                         f"{man['sha256'][:16]}): val loss "
                         f"{man['val_loss']:.4f} (random init {val_random:.4f})")
            module.train()
            enc.train()
    if not out:
        man = _manifest(spec, name, cfg, view, ema, curve, time.time() - t0, val_random,
                        val_random_empty, module)
    return man


def _manifest(spec, name, cfg, view, ema, curve, seconds, val_random, val_random_empty, raw):
    module, enc = ema.shadow
    val = {c: validation_loss(module, enc, view, cfg, c) for c in ("true", "empty", "shuffled")}
    val_raw = validation_loss(raw, enc, view, cfg)
    raw.train()
    base = DEFAULTS.get(name)
    command = f"semdialect train --model {name} --steps {cfg.steps}" + "".join(
        f" --{k} {getattr(cfg, k)}" for k in ("batch", "seed")
        if base is None or getattr(cfg, k) != getattr(base, k)) + f" -o {name}.safetensors"
    return {
        "model": name,
        "model_class": spec.cls_name,
        "config": {k: list(v) if isinstance(v, tuple) else v for k, v in spec.tiny_config.items()},
        "text_encoder": {"dim": view.text_dim, "vocab": len(vt.VOCAB),
                         "tokens": vt.MAX_TOKENS},
        "task": {"module": "semdialect.sw.video_task", "geometry": asdict(view.geometry),
                 "channels": "RGB + sprite coverage, [-1, 1]",
                 "space_to_depth": view.factor, "latent_layout": view.family},
        "command": command,
        "weights": "EMA of the parameters (train_config.ema)",
        "train_config": asdict(cfg),
        "steps": cfg.steps,
        "objective": "rectified flow: v = eps - x0 at x_t = (1-t) x0 + t eps, t ~ "
                     "logit-normal(0,1), MSE; caption dropout for CFG",
        "final_train_loss": curve[-1]["train_loss"],
        "val_loss": val["true"],
        "val_loss_empty_caption": val["empty"],
        "val_loss_shuffled_caption": val["shuffled"],
        "val_loss_raw_weights": val_raw,
        "val_loss_random_init": val_random,
        "val_loss_random_init_empty_caption": val_random_empty,
        "val_definition": f"{cfg.val_size} clips video_task.sample({cfg.val_seed}, i), t = "
                          "(i + 0.5) / N, noise seeded by val_seed",
        "curve": curve,
        "train_seconds": round(seconds, 1),
        "cpu_budget": "1 torch thread (torch.set_num_threads(1)); train_seconds is wall "
                      "time on the machine that wrote it",
        "versions": _versions(),
        "parameters": sum(p.numel() for p in module.parameters()),
        "text_parameters": sum(p.numel() for p in enc.parameters()),
    }


def _versions() -> dict:
    import diffusers
    import numpy
    import safetensors

    from semdialect import __version__

    return {"semdialect": __version__, "torch": torch.__version__,
            "diffusers": diffusers.__version__, "numpy": numpy.__version__,
            "safetensors": safetensors.__version__, "python": sys.version.split()[0],
            "machine": platform.machine()}


def state_dict_of(module, enc) -> dict:
    sd = {f"transformer.{k}": v.detach().contiguous() for k, v in module.state_dict().items()}
    sd.update({f"text.{k}": v.detach().contiguous() for k, v in enc.state_dict().items()})
    return sd


def _save(out, module, enc, man):
    from safetensors.torch import save_file

    out = Path(out)
    if out.suffix != ".safetensors":
        raise ValueError(f"output {out} must end in .safetensors")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    save_file(state_dict_of(module, enc), str(tmp), metadata={"model": man["model"]})
    tmp.replace(out)
    man["file"] = out.name
    man["bytes"] = out.stat().st_size
    man["sha256"] = sha256_file(out)
    manifest_path(out).write_text(json.dumps(man, indent=1) + "\n")

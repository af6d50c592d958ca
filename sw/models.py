"""Video DiT registry: tiny random-weight configurations, the trained tiny models
(`trained-*`, weights shipped in the package) and local-checkpoint loading.

Every entry names a diffusers transformer class, a tiny configuration (the shapes of
diffusers' own unit tests, with widths rounded up to multiples of 32 so that every
Linear input splits into whole 32- and 16-element blocks; see docs/frontend.md) and an
adapter that builds the model's inputs from a latent and a text embedding and returns
the model's prediction with the latent's shape. Nothing is ever downloaded: real
weights come only from a local `--checkpoint` path.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from semdialect.errors import InputFileError

__all__ = ["MODELS", "ModelSpec", "build_model", "model_names", "get_spec", "LoadedModel"]


@dataclass(frozen=True)
class ModelSpec:
    name: str
    cls_name: str
    family: str
    tiny_config: dict
    derived_from: str
    # (config) -> latent shape for batch 1, spatial sizes in latent units
    latent_shape: Callable[[Any, dict], tuple]
    # (config, generator, dtype) -> text conditioning dict for one branch
    text: Callable[[Any, torch.Generator, torch.dtype], dict]
    # (model, latent, sigma in [0,1], text dict) -> prediction with the latent's shape
    forward: Callable[[Any, torch.Tensor, float, dict], torch.Tensor]
    video: dict = field(default_factory=dict)  # default latent frames/height/width
    note: str = ""


def _randn(g, shape, dtype):
    return torch.randn(shape, generator=g, dtype=torch.float32).to(dtype)


def _per_sample(sigma, x: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """sigma (a float, or one value per sample when training) times `scale`, shape (batch,)."""
    if isinstance(sigma, torch.Tensor):
        return (sigma.reshape(-1).to(x.dtype) * scale).expand(x.shape[0])
    return torch.full((x.shape[0],), float(sigma) * scale, dtype=x.dtype)


def _t1000(sigma, x: torch.Tensor) -> torch.Tensor:
    return _per_sample(sigma, x, 1000.0)


def _sample(out):
    if isinstance(out, (tuple, list)):
        return out[0]
    return out.sample if hasattr(out, "sample") else out


# ----------------------------------------------------------------------------- Wan 2.x
def _wan_latent(cfg, v):
    return (1, cfg.in_channels, v["frames"], v["height"], v["width"])


def _wan_text(cfg, g, dt):
    return {"encoder_hidden_states": _randn(g, (1, 12, cfg.text_dim), dt)}


def _wan_fwd(m, x, sigma, txt):
    return _sample(m(hidden_states=x, timestep=_t1000(sigma, x), return_dict=False, **txt))


# ------------------------------------------------------- MMDiT (Open-Sora 2.0 structure)
def _mmdit_latent(cfg, v):
    return (1, v["frames"] * v["height"] * v["width"], cfg.in_channels)


def _mmdit_text(cfg, g, dt):
    return {"encoder_hidden_states": _randn(g, (1, 16, cfg.joint_attention_dim), dt),
            "pooled_projections": _randn(g, (1, cfg.pooled_projection_dim), dt)}


def _mmdit_fwd(m, x, sigma, txt, video=None):
    v = video or {}
    f, h, w = v.get("frames"), v.get("height"), v.get("width")
    n = x.shape[1]
    if not f or f * h * w != n:
        f, h, w = 1, 1, n
    tt, hh, ww = torch.meshgrid(torch.arange(f), torch.arange(h), torch.arange(w), indexing="ij")
    img_ids = torch.stack([tt, hh, ww], -1).reshape(-1, 3).to(x.dtype)  # (t, h, w) as OS2
    txt_ids = torch.zeros(txt["encoder_hidden_states"].shape[1], 3, dtype=x.dtype)
    ts = _per_sample(sigma, x)  # Flux scales by 1000 itself
    return _sample(m(hidden_states=x, timestep=ts, img_ids=img_ids, txt_ids=txt_ids,
                     return_dict=False, **txt))


# --------------------------------------------------------------------------- CogVideoX
def _cog_latent(cfg, v):
    return (1, v["frames"], cfg.in_channels, v["height"], v["width"])


def _cog_text(cfg, g, dt):
    return {"encoder_hidden_states": _randn(g, (1, cfg.max_text_seq_length, cfg.text_embed_dim),
                                            dt)}


def _cog_fwd(m, x, sigma, txt):
    t = torch.full((x.shape[0],), int(round(sigma * 999)), dtype=torch.long)
    return _sample(m(hidden_states=x, timestep=t, return_dict=False, **txt))


# ------------------------------------------------------------------------------- LTX
def _ltx_latent(cfg, v):
    return (1, v["frames"] * v["height"] * v["width"], cfg.in_channels)


def _ltx_text(cfg, g, dt):
    return {"encoder_hidden_states": _randn(g, (1, 16, cfg.caption_channels), dt),
            "encoder_attention_mask": torch.ones(1, 16, dtype=torch.long)}


def _ltx_fwd(m, x, sigma, txt, video=None):
    v = video or {}
    return _sample(m(hidden_states=x, timestep=_t1000(sigma, x), num_frames=v["frames"],
                     height=v["height"], width=v["width"], return_dict=False, **txt))


# ----------------------------------------------------------------------- HunyuanVideo
def _hy_latent(cfg, v):
    return (1, cfg.in_channels, v["frames"], v["height"], v["width"])


def _hy_text(cfg, g, dt):
    return {"encoder_hidden_states": _randn(g, (1, 12, cfg.text_embed_dim), dt),
            "encoder_attention_mask": torch.ones(1, 12, dtype=torch.long),
            "pooled_projections": _randn(g, (1, cfg.pooled_projection_dim), dt)}


def _hy_fwd(m, x, sigma, txt):
    kw = {}
    if m.config.guidance_embeds:
        kw["guidance"] = torch.full((x.shape[0],), 6000.0, dtype=x.dtype)
    return _sample(m(hidden_states=x, timestep=_t1000(sigma, x), return_dict=False, **kw, **txt))


# ------------------------------------------------------------------------------ Mochi
def _mochi_text(cfg, g, dt):
    return {"encoder_hidden_states": _randn(g, (1, 16, cfg.text_embed_dim), dt),
            "encoder_attention_mask": torch.ones(1, 16, dtype=torch.long)}


def _mochi_fwd(m, x, sigma, txt):
    return _sample(m(hidden_states=x, timestep=_t1000(sigma, x), return_dict=False, **txt))


# ----------------------------------------------------------------------------- Allegro
def _allegro_latent(cfg, v):
    return (1, cfg.in_channels, v["frames"], v["height"], v["width"])


def _allegro_text(cfg, g, dt):
    return {"encoder_hidden_states": _randn(g, (1, 16, cfg.caption_channels), dt)}


def _allegro_fwd(m, x, sigma, txt):
    return _sample(m(hidden_states=x, timestep=_t1000(sigma, x), return_dict=False, **txt))


# ------------------------------------------------------------------------------- Latte
def _latte_latent(cfg, v):
    return (1, cfg.in_channels, v["frames"], v["height"], v["width"])


def _latte_text(cfg, g, dt):
    return {"encoder_hidden_states": _randn(g, (1, 16, cfg.caption_channels), dt)}


def _latte_fwd(m, x, sigma, txt):
    out = _sample(m(hidden_states=x, timestep=_t1000(sigma, x).long(), return_dict=False, **txt))
    if out.shape[1] != x.shape[1]:  # learned sigma: keep the mean prediction
        out = out[:, : x.shape[1]]
    return out


def _spec(name, cls_name, family, cfg, src, lat, txt, fwd, video, note=""):
    return ModelSpec(name, cls_name, family, cfg, src, lat, txt, fwd, video, note)


_TESTS = "diffusers tests/models/transformers/"
MODELS: dict[str, ModelSpec] = {
    s.name: s
    for s in [
        _spec(
            "wan-tiny", "WanTransformer3DModel", "Wan 2.1 / 2.2",
            dict(patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=16,
                 in_channels=4, out_channels=4, text_dim=32, freq_dim=256, ffn_dim=64,
                 num_layers=2, cross_attn_norm=True, qk_norm="rms_norm_across_heads",
                 rope_max_seq_len=32),
            _TESTS + "test_models_transformer_wan.py (head_dim 12->16, text_dim 16->32, "
            "ffn 32->64)",
            _wan_latent, _wan_text, _wan_fwd, dict(frames=2, height=16, width=16)),
        _spec(
            "mmdit-tiny", "FluxTransformer2DModel", "MMDiT, Open-Sora 2.0 structure",
            dict(patch_size=1, in_channels=64, out_channels=None, num_layers=1,
                 num_single_layers=1, attention_head_dim=16, num_attention_heads=2,
                 joint_attention_dim=32, pooled_projection_dim=32, guidance_embeds=False,
                 axes_dims_rope=(4, 6, 6)),
            _TESTS + "test_models_transformer_flux.py (in_channels 4->64 as Open-Sora 2.0's "
            "2x2-packed 16-channel latent; joint/pooled dims 32; rope axes (t,h,w) 4/6/6)",
            _mmdit_latent, _mmdit_text, _mmdit_fwd, dict(frames=2, height=4, width=4),
            note="Open-Sora 2.0 is an MMDiT with Flux's structure (double + single stream "
                 "blocks, 3-axis RoPE over (t, h, w), in_channels 64)"),
        _spec(
            "cogvideox-tiny", "CogVideoXTransformer3DModel", "CogVideoX",
            dict(num_attention_heads=4, attention_head_dim=8, in_channels=4, out_channels=4,
                 time_embed_dim=32, text_embed_dim=32, num_layers=2, sample_width=8,
                 sample_height=8, sample_frames=8, patch_size=2, temporal_compression_ratio=4,
                 max_text_seq_length=8),
            _TESTS + "test_models_transformer_cogvideox.py (time_embed_dim 2->32, "
            "text_embed_dim 8->32)",
            _cog_latent, _cog_text, _cog_fwd, dict(frames=2, height=8, width=8)),
        _spec(
            "ltx-tiny", "LTXVideoTransformer3DModel", "LTX-Video",
            dict(in_channels=32, out_channels=32, patch_size=1, patch_size_t=1,
                 num_attention_heads=2, attention_head_dim=16, cross_attention_dim=32,
                 num_layers=1, qk_norm="rms_norm_across_heads", caption_channels=32),
            _TESTS + "test_models_transformer_ltx.py (in/out 8->32, head_dim 8->16, "
            "cross_attention_dim 16->32, caption_channels 16->32)",
            _ltx_latent, _ltx_text, _ltx_fwd, dict(frames=2, height=4, width=4)),
        _spec(
            "hunyuan-tiny", "HunyuanVideoTransformer3DModel", "HunyuanVideo",
            dict(in_channels=4, out_channels=4, num_attention_heads=2, attention_head_dim=16,
                 num_layers=1, num_single_layers=1, num_refiner_layers=1, patch_size=1,
                 patch_size_t=1, qk_norm="rms_norm", guidance_embeds=True, text_embed_dim=32,
                 pooled_projection_dim=32, rope_axes_dim=(4, 6, 6)),
            _TESTS + "test_models_transformer_hunyuan_video.py (head_dim 10->16, rope axes "
            "(2,4,4)->(4,6,6), text 16->32, pooled 8->32)",
            _hy_latent, _hy_text, _hy_fwd, dict(frames=1, height=8, width=8)),
        _spec(
            "mochi-tiny", "MochiTransformer3DModel", "Mochi 1",
            dict(patch_size=2, num_attention_heads=2, attention_head_dim=16, num_layers=2,
                 pooled_projection_dim=32, in_channels=4, out_channels=None,
                 qk_norm="rms_norm", text_embed_dim=32, time_embed_dim=32,
                 activation_fn="swiglu", max_sequence_length=16),
            _TESTS + "test_models_transformer_mochi.py (head_dim 8->16, pooled 16->32, "
            "text 16->32, time_embed_dim 4->32)",
            _wan_latent, _mochi_text, _mochi_fwd, dict(frames=2, height=8, width=8)),
        _spec(
            "allegro-tiny", "AllegroTransformer3DModel", "Allegro",
            dict(num_attention_heads=2, attention_head_dim=16, in_channels=4, out_channels=4,
                 num_layers=1, cross_attention_dim=32, sample_width=8, sample_height=8,
                 sample_frames=8, caption_channels=32),
            _TESTS + "test_models_transformer_allegro.py (head_dim 8->16, cross_attention "
            "16->32, caption 8->32)",
            _allegro_latent, _allegro_text, _allegro_fwd, dict(frames=2, height=8, width=8)),
        _spec(
            "latte-tiny", "LatteTransformer3DModel", "Latte",
            dict(sample_size=8, num_layers=1, patch_size=2, attention_head_dim=16,
                 num_attention_heads=2, caption_channels=32, in_channels=4,
                 cross_attention_dim=32, out_channels=8, attention_bias=True,
                 activation_fn="gelu-approximate", num_embeds_ada_norm=1000,
                 norm_type="ada_norm_single", norm_elementwise_affine=False, norm_eps=1e-6,
                 video_length=2),
            "diffusers tests/pipelines/latte/test_latte.py (head_dim 8->16, heads 3->2, "
            "cross_attention 24->32)",
            _latte_latent, _latte_text, _latte_fwd, dict(frames=2, height=8, width=8)),
        # trained on the procedural sprite task (sw/video_task.py, sw/trained.py); the
        # weights ship in the package, build_model loads them
        _spec(
            "trained-wan-tiny", "WanTransformer3DModel", "Wan 2.1 / 2.2",
            dict(patch_size=(1, 2, 2), num_attention_heads=4, attention_head_dim=32,
                 in_channels=16, out_channels=16, text_dim=64, freq_dim=256, ffn_dim=512,
                 num_layers=4, cross_attn_norm=True, qk_norm="rms_norm_across_heads",
                 rope_max_seq_len=32),
            "wan-tiny widened (2x16 -> 4x32 heads, ffn 64 -> 512, 2 -> 4 blocks, text 64) "
            "with Wan 2.1's 16 latent channels",
            _wan_latent, _wan_text, _wan_fwd, dict(frames=4, height=16, width=16),
            note="TRAINED (rectified flow, CPU) on the procedural sprite task"),
        _spec(
            "trained-mmdit-tiny", "FluxTransformer2DModel", "MMDiT, Open-Sora 2.0 structure",
            dict(patch_size=1, in_channels=64, out_channels=None, num_layers=2,
                 num_single_layers=3, attention_head_dim=32, num_attention_heads=4,
                 joint_attention_dim=64, pooled_projection_dim=64, guidance_embeds=False,
                 axes_dims_rope=(8, 12, 12)),
            "mmdit-tiny widened (2x16 -> 4x32 heads, 1+1 -> 2+3 double/single blocks, "
            "joint/pooled 64, rope axes 8/12/12)",
            _mmdit_latent, _mmdit_text, _mmdit_fwd, dict(frames=4, height=8, width=8),
            note="TRAINED (rectified flow, CPU) on the procedural sprite task"),
    ]
}

_NEEDS_VIDEO = {"mmdit-tiny": _mmdit_fwd, "ltx-tiny": _ltx_fwd, "trained-mmdit-tiny": _mmdit_fwd}


def model_names() -> list[str]:
    return list(MODELS)


def get_spec(name: str) -> ModelSpec:
    try:
        return MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(MODELS)} "
                         "(or a synthetic profile, see --help)") from None


@dataclass
class LoadedModel:
    """A model ready to drive: the module, its spec, and how its weights were made."""

    spec: ModelSpec
    module: torch.nn.Module
    weights: str  # "random-init" | "checkpoint"
    checkpoint: str | None
    seed: int
    video: dict
    checkpoint_info: Any = None  # checkpoints.CheckpointInfo for checkpoints
    # trained models: the caption conditioner (sw/trained.py) that makes their text input
    conditioner: Any = None
    label: str | None = None  # provenance line for manifests and tables (trained models)

    @property
    def name(self) -> str:
        """The checkpoint's own name, else the registry name."""
        return self.checkpoint_info.name if self.checkpoint_info else self.spec.name

    @property
    def dtype(self) -> torch.dtype:
        """The dtype most parameters have (diffusers keeps a few modules in float32)."""
        by: dict = {}
        for p in self.module.parameters():
            by[p.dtype] = by.get(p.dtype, 0) + p.numel()
        return max(by, key=by.get)

    @property
    def config(self) -> dict:
        return _jsonable_config(self.module.config)

    def latent_shape(self) -> tuple:
        return tuple(self.spec.latent_shape(self.module.config, self.video))

    def text(self, g: torch.Generator, dtype) -> dict:
        return self.spec.text(self.module.config, g, dtype)

    def text_pair(self, g: torch.Generator, dtype) -> tuple[dict, dict]:
        """(cond, uncond) text inputs of one sampling run: two seeded random embeddings, or
        for a trained model a caption of its task and the empty caption."""
        if self.conditioner is not None:
            return self.conditioner.pair(g, dtype)
        return self.text(g, dtype), self.text(g, dtype)

    def predict(self, x, sigma, txt) -> torch.Tensor:
        if self.spec.name in _NEEDS_VIDEO:
            return _NEEDS_VIDEO[self.spec.name](self.module, x, sigma, txt, self.video)
        return self.spec.forward(self.module, x, sigma, txt)


def _jsonable_config(cfg) -> dict:
    out = {}
    for k, v in dict(cfg).items():
        if k.startswith("_"):
            continue
        try:
            json.dumps(v)
            out[k] = v
        except TypeError:
            out[k] = list(v) if isinstance(v, tuple) else str(v)
    return out


def _cls(name: str):
    import diffusers

    return getattr(diffusers, name)


def _state_dict_from(files, path):
    from .checkpoints import read_tensors_aligned

    sd = {}
    for f in files:
        sd.update(read_tensors_aligned(f))
    return sd


def _check_keys(model, sd, spec, path):
    """Missing and unexpected keys, named."""
    want, got = set(model.state_dict()), set(sd)
    missing, extra = sorted(want - got), sorted(got - want)
    if missing or extra:
        parts = [f"{len(ks)} {what} key(s) ({', '.join(ks[:3])}{', ...' if len(ks) > 3 else ''})"
                 for what, ks in (("missing", missing), ("unexpected", extra)) if ks]
        raise InputFileError(f"incompatible checkpoint {path} for {spec.name}: "
                             + "; ".join(parts))


def _build_from_config(spec, cls, cfg, where):
    cfg = {k: v for k, v in cfg.items() if not k.startswith("_")}
    try:
        return cls(**cfg)
    except TypeError as e:
        raise ValueError(f"checkpoint config {where} does not fit {spec.cls_name}: {e}") from None


def _keep_fp32(cls, param_name: str) -> bool:
    """diffusers' rule for `_keep_in_fp32_modules` (a module name among the dotted parts)."""
    keep = cls._keep_in_fp32_modules or []
    return any(m in param_name.split(".") for m in keep)


def _load_weights(spec, cls, info, dtype):
    """Build from config.json on empty weights, load the safetensors files strictly
    (assign: the model takes the loaded tensors, no second copy), in `dtype` except
    diffusers' `_keep_in_fp32_modules` (float32, as diffusers' from_pretrained does)."""
    try:
        from accelerate import init_empty_weights
    except ImportError:  # pragma: no cover - accelerate is in the torch extra
        init_empty_weights = contextlib.nullcontext
    with init_empty_weights():
        model = _build_from_config(spec, cls, info.config, info.folder / "config.json")
    sd = _state_dict_from(info.files, info.path)
    for k, v in sd.items():
        if v.is_floating_point():
            sd[k] = v.to(torch.float32 if _keep_fp32(cls, k) else dtype)
    _check_keys(model, sd, spec, info.path)
    try:
        model.load_state_dict(sd, strict=True, assign=True)
    except RuntimeError as e:
        first = str(e).splitlines()[0:2]
        raise ValueError(f"incompatible checkpoint {info.path} for {spec.name}: "
                         f"{' '.join(first)[:300]}") from None
    return model


def _load_checkpoint(spec: ModelSpec, path: str, dtype: torch.dtype | None = None):
    """Load a checkpoint in `dtype` (default: its own), after `inspect_checkpoint`'s
    checks; diffusers' `_keep_in_fp32_modules` stay float32. Returns (module, info)."""
    from .checkpoints import inspect_checkpoint

    info = inspect_checkpoint(path, spec)
    dtype = dtype or getattr(torch, info.dtype)
    cls = _cls(spec.cls_name)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach a model hub
    # not from_pretrained: it loads extra keys silently and leaves missing ones on the
    # meta device; inspect_checkpoint compared keys and shapes, _load_weights is strict
    return _load_weights(spec, cls, info, dtype), info


def build_model(name: str, checkpoint: str | None = None, seed: int = 0,
                dtype: torch.dtype | None = None, device="cpu", video: dict | None = None
                ) -> LoadedModel:
    """Tiny random-weight model (seeded, `dtype` default float32) or the weights of a
    local checkpoint (`dtype` default: the checkpoint's)."""
    spec = get_spec(name)
    if name.startswith("trained-"):
        from .trained import load_trained

        return load_trained(spec, checkpoint=checkpoint, dtype=dtype, device=device,
                            video=video, seed=seed)
    info = None
    if checkpoint:
        module, info = _load_checkpoint(spec, checkpoint, dtype)
        weights = "checkpoint"
    else:
        cls = _cls(spec.cls_name)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            module = cls(**spec.tiny_config)
        weights = "random-init"
    module = module.to(device=device)
    if info is None:
        dtype = dtype or torch.float32
        if dtype != torch.float32 or any(p.dtype != dtype for p in module.parameters()):
            module = module.to(dtype=dtype)  # tiny models: everything in dtype
    module = module.eval()
    v = dict(spec.video)
    v.update(video or {})
    return LoadedModel(spec, module, weights, str(checkpoint) if checkpoint else None, seed, v,
                       info)

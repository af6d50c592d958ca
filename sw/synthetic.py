"""Synthetic activation profiles (every name contains "synthetic").

These are NOT captured from any model. They imitate three activation phenomena reported
for diffusion transformers and LLMs, to exercise the quantizers and the hardware on
stress cases the tiny random-weight models do not produce:

- ``synthetic-channel-outliers``: a few channels carry 10-100x larger values in every
  token (per-channel outliers, as in LLM.int8 / SmoothQuant observations).
- ``synthetic-massive-activations``: a handful of (token, channel) entries that are
  10^3-10^4 x the typical magnitude (the "massive activations" of Sun et al., 2024).
- ``synthetic-timestep-scale``: the activation scale drifts with the denoising timestep
  (large early, small late), one tensor per step, as seen in diffusion models.

All are seeded and deterministic; tensors carry step/timestep/branch metadata like the
captured ones so the same tools consume them.
"""

from __future__ import annotations

import numpy as np

__all__ = ["SYNTHETIC_PROFILES", "synthetic_vectors"]

SYNTHETIC_PROFILES = (
    "synthetic-channel-outliers",
    "synthetic-massive-activations",
    "synthetic-timestep-scale",
)


def _as(x: np.ndarray, dtype: str) -> np.ndarray:
    import ml_dtypes

    dt = {"float32": np.float32, "float16": np.float16, "bfloat16": ml_dtypes.bfloat16}
    try:
        return x.astype(np.float32).astype(dt[dtype])
    except KeyError:
        raise ValueError(f"unknown dtype {dtype!r}; use float32, bfloat16 or float16") from None


def synthetic_vectors(name: str, steps: int = 4, seed: int = 0, tokens: int = 256,
                      channels: int = 512, layers: int = 2, dtype: str = "float32"):
    """(tensors, manifest) of a synthetic profile: `layers` x `steps` tensors of shape
    (tokens, channels), branch "cond"."""
    from .vectors import dtype_name, new_manifest

    if name not in SYNTHETIC_PROFILES:
        raise ValueError(f"unknown synthetic profile {name!r}; known: "
                         f"{', '.join(SYNTHETIC_PROFILES)}")
    if steps <= 0 or tokens <= 0 or channels <= 0 or layers <= 0:
        raise ValueError("steps, tokens, channels and layers must be positive")
    rng = np.random.default_rng([seed, SYNTHETIC_PROFILES.index(name)])
    source = {"kind": "synthetic", "name": name, "weights": "none",
              "label": f"{name}: SYNTHETIC data (seed {seed}), not captured from any model"}
    run = {"seed": seed, "steps": steps, "tokens": tokens, "channels": channels,
           "layers": layers, "dtype": dtype}
    m = new_manifest(source, run)
    tensors = {}
    for layer in range(layers):
        hot = rng.choice(channels, size=max(1, channels // 64), replace=False)
        ch_gain = np.exp(rng.uniform(np.log(10), np.log(100), size=hot.size))
        for s in range(steps):
            t = 1000.0 * (1 - s / steps)
            x = rng.standard_normal((tokens, channels))
            params: dict = {}
            if name == "synthetic-channel-outliers":
                x[:, hot] *= ch_gain
                x *= np.exp(rng.normal(0, 0.5, size=(tokens, 1)))
                params = {"outlier_channels": hot.tolist()}
            elif name == "synthetic-massive-activations":
                n_tok = max(1, tokens // 128)
                toks = rng.choice(tokens, size=n_tok, replace=False)
                chs = rng.choice(channels, size=2, replace=False)
                mag = np.exp(rng.uniform(np.log(1e3), np.log(1e4), size=(n_tok, 2)))
                x[np.ix_(toks, chs)] = mag * rng.choice([-1, 1], size=(n_tok, 2))
                params = {"massive_tokens": toks.tolist(), "massive_channels": chs.tolist()}
            else:  # timestep-dependent scale: std from ~8 (t=1000) down to ~0.25 (t=0)
                scale = 0.25 * 32 ** (t / 1000.0)
                x *= scale
                x[:, hot] *= 1 + 9 * (t / 1000.0)
                params = {"scale": scale}
            arr = _as(x, dtype)
            key = f"s{s:03d}/cond/synthetic.layer{layer}/in"
            tensors[key] = arr
            m["tensors"][key] = {"role": "synthetic", "layer": f"synthetic.layer{layer}",
                                 "module_type": "synthetic", "model": name, "step": s,
                                 "timestep": t, "branch": "cond", "shape": list(arr.shape),
                                 "dtype": dtype_name(arr.dtype), "profile": params}
    return tensors, m

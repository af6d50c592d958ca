"""Seeded synthetic activation datasets for quality tables and the formatbook builder.

These are *synthetic* distributions; every dataset name says so where it is reported.
"""

from __future__ import annotations

import numpy as np

__all__ = ["SYNTHETIC_DATASETS", "synthetic"]

SYNTHETIC_DATASETS = ("gaussian", "laplace", "student_t3", "channel_outlier")


def synthetic(name: str, shape=(256, 4096), seed: int = 0) -> np.ndarray:
    """float32 array of the named distribution (rows = tokens, last axis = channels)."""
    rng = np.random.default_rng([seed, SYNTHETIC_DATASETS.index(name) if name in
                                 SYNTHETIC_DATASETS else -1 & 0xFFFF])
    if name == "gaussian":
        x = rng.standard_normal(shape)
    elif name == "laplace":
        x = rng.laplace(size=shape)
    elif name == "student_t3":
        x = rng.standard_t(3, size=shape)
    elif name == "channel_outlier":
        # Transformer-like: a few channels carry 10-100x larger values in every token,
        # on top of a per-token scale spread.
        x = rng.standard_normal(shape)
        n_ch = shape[-1]
        ch_scale = np.ones(n_ch)
        hot = rng.choice(n_ch, size=max(1, n_ch // 64), replace=False)
        ch_scale[hot] = np.exp(rng.uniform(np.log(10), np.log(100), size=hot.size))
        tok_scale = np.exp(rng.normal(0, 0.5, size=shape[:-1] + (1,)))
        x = x * ch_scale * tok_scale
    else:
        raise ValueError(
            f"unknown synthetic dataset {name!r}; known: {', '.join(SYNTHETIC_DATASETS)}"
        )
    return x.astype(np.float32)

"""Activation statistics of captured vectors (`semdialect stats`): what separates trained
from random-weight activations, per layer.

Per Linear input (all steps and branches pooled unless said otherwise):

- `kurtosis`: excess kurtosis of the elements (Gaussian 0; heavy tails > 0);
- `channel_max_over_median`: max over channels of the per-channel max |x|, over the
  median of the same (outlier channels make it large);
- `massive_ratio`: max |x| over median |x| (massive activations: 10^2-10^4 in LLMs/DiTs);
- `top1_token_energy`: share of the energy sum x^2 held by the top 1 % of tokens (at
  least one token) per tensor, averaged (uniform tokens: ~0.01);
- `amax_by_step`: max |x| at each denoising step, and `amax_step_ratio` = largest over
  smallest (timestep-dependent ranges);

per attention module (q/k captured): `attn_entropy` = mean over heads and query rows of
the entropy of softmax(q k^T / sqrt(d)), divided by log(keys) (1: uniform rows, 0: one
key takes all) and `attn_top1_mass` = mean largest probability per row.

Pure NumPy.
"""

from __future__ import annotations

import json
import math
import re
from collections import defaultdict
from pathlib import Path

import numpy as np

__all__ = ["layer_stats", "attention_stats", "dataset_stats", "stats_markdown", "plot_stats",
           "SUMMARY_KEYS", "run_stats"]

_NAME = re.compile(r"^s(\d+)/([^/]+)/(.+)/(in|q|k)(?:@\d+)?$")
SUMMARY_KEYS = ("kurtosis", "channel_max_over_median", "massive_ratio", "top1_token_energy",
                "amax_step_ratio", "attn_entropy", "attn_top1_mass")


def _kurtosis(x: np.ndarray) -> float:
    x = x.astype(np.float64).ravel()
    m = x.mean()
    v = ((x - m) ** 2).mean()
    if v == 0:
        return 0.0
    return float(((x - m) ** 4).mean() / v ** 2 - 3.0)


def _top_token_share(x2d: np.ndarray, frac: float = 0.01) -> float:
    e = (x2d.astype(np.float64) ** 2).sum(-1)
    tot = e.sum()
    if tot == 0:
        return 0.0
    k = max(1, int(round(frac * e.size)))
    return float(np.sort(e)[-k:].sum() / tot)


def layer_stats(arrays_by_step: dict[int, list[np.ndarray]]) -> dict:
    """Statistics of one Linear input from its tensors per step (any leading dims; the
    last axis is channels, the one before it tokens)."""
    xs = [np.asarray(a, np.float32) for step in sorted(arrays_by_step)
          for a in arrays_by_step[step]]
    flat = np.concatenate([a.reshape(-1, a.shape[-1]) for a in xs])
    ab = np.abs(flat)
    ch = ab.max(0)
    med_ch = float(np.median(ch))
    med = float(np.median(ab))
    amax = {int(s): float(max(np.abs(np.asarray(a, np.float32)).max()
                              for a in arrays_by_step[s])) for s in sorted(arrays_by_step)}
    vals = [v for v in amax.values() if v > 0]
    shares = [_top_token_share(a.reshape(-1, a.shape[-2], a.shape[-1])[i])
              for a in xs for i in range(int(np.prod(a.shape[:-2], dtype=int)) or 1)
              if a.ndim >= 2 and a.shape[-2] >= 2]  # one-token inputs: trivially 1
    return {
        "kurtosis": _kurtosis(flat),
        "channel_max_over_median": float(ch.max() / med_ch) if med_ch > 0 else math.inf,
        "massive_ratio": float(ab.max() / med) if med > 0 else math.inf,
        "top1_token_energy": float(np.mean(shares)) if shares else None,
        "amax_by_step": amax,
        "amax_step_ratio": float(max(vals) / min(vals)) if vals else None,
        "channels": int(flat.shape[-1]),
        "tokens": int(xs[0].shape[-2]) if xs[0].ndim >= 2 else 1,
    }


def _softmax_rows(q: np.ndarray, k: np.ndarray) -> np.ndarray:
    s = q @ np.swapaxes(k, -1, -2) / math.sqrt(q.shape[-1])
    s = s - s.max(-1, keepdims=True)
    p = np.exp(s)
    return p / p.sum(-1, keepdims=True)


def attention_stats(pairs: list[tuple[np.ndarray, np.ndarray]]) -> dict:
    """Entropy (normalized by log keys) and top-1 mass of the attention rows of
    (q, k) pairs in (batch, heads, tokens, head_dim) layout."""
    ents, tops = [], []
    for q, k in pairs:
        q = np.asarray(q, np.float64)
        k = np.asarray(k, np.float64)
        p = _softmax_rows(q, k)
        n = p.shape[-1]
        h = -(p * np.log(np.clip(p, 1e-300, None))).sum(-1)
        ents.append(float(h.mean() / math.log(n)) if n > 1 else 0.0)
        tops.append(float(p.max(-1).mean()))
    return {"attn_entropy": float(np.mean(ents)), "attn_top1_mass": float(np.mean(tops)),
            "keys": int(pairs[0][1].shape[-2])}


def dataset_stats(tensors: dict, manifest: dict) -> dict:
    """{"layers": {name: stats}, "attention": {name: stats}, "summary": medians}."""
    lin: dict[str, dict[int, list]] = defaultdict(lambda: defaultdict(list))
    qk: dict[str, dict[tuple, dict]] = defaultdict(dict)
    for name, arr in tensors.items():
        m = _NAME.match(name)
        if not m:
            continue
        role = manifest["tensors"].get(name, {}).get("role")
        step, branch, module, kind = int(m[1]), m[2], m[3], m[4]
        if role in ("linear_input", "synthetic"):
            lin[module][step].append(arr)
        elif role in ("attn_q", "attn_k"):
            qk[module].setdefault((step, branch, name.rsplit("@", 1)[-1] if "@" in name
                                   else ""), {})[kind] = arr
    layers = {mod: layer_stats(by_step) for mod, by_step in lin.items()}
    attn = {}
    for mod, d in qk.items():
        pairs = [(v["q"], v["k"]) for v in d.values() if "q" in v and "k" in v]
        if pairs:
            attn[mod] = attention_stats(pairs)
    summary = {}
    for key in SUMMARY_KEYS:
        src = attn if key.startswith("attn") else layers
        vals = [v[key] for v in src.values() if v.get(key) is not None
                and math.isfinite(v[key])]
        summary[key] = {"median": float(np.median(vals)) if vals else None,
                        "max": float(np.max(vals)) if vals else None}
    return {"label": manifest.get("source", {}).get("label", ""),
            "weights": manifest.get("source", {}).get("weights"),
            "layers": layers, "attention": attn, "summary": summary}


_DESC = {
    "kurtosis": "excess kurtosis",
    "channel_max_over_median": "channel max / median",
    "massive_ratio": "max / median of abs(x)",
    "top1_token_energy": "top-1 % token energy share",
    "amax_step_ratio": "max abs(x): largest / smallest step",
    "attn_entropy": "attention row entropy (/ log keys)",
    "attn_top1_mass": "attention top-1 mass",
}


def stats_markdown(results: dict) -> str:
    names = list(results)
    lines = ["| statistic (median over layers / max) | " + " | ".join(names) + " |",
             "|---|" + "---:|" * len(names)]
    for key in SUMMARY_KEYS:
        cells = []
        for n in names:
            s = results[n]["summary"][key]
            cells.append("-" if s["median"] is None else f"{s['median']:.3g} / {s['max']:.3g}")
        lines.append(f"| {_DESC[key]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_stats(results: dict, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = list(SUMMARY_KEYS)
    fig, axes = plt.subplots(2, 4, figsize=(16, 7))
    names = list(results)
    for ax, key in zip(axes.flat, keys):
        data, labels = [], []
        for n in names:
            src = results[n]["attention" if key.startswith("attn") else "layers"]
            v = [s[key] for s in src.values() if s.get(key) is not None
                 and math.isfinite(s[key])]
            if v:
                data.append(v)
                labels.append(n)
        if data:
            ax.boxplot(data, showfliers=True)
            ax.set_xticks(range(1, len(labels) + 1), labels, rotation=25, fontsize=7,
                          ha="right")
        if key in ("channel_max_over_median", "massive_ratio", "amax_step_ratio"):
            ax.set_yscale("log")
        ax.set_title(_DESC[key], fontsize=9)
        ax.grid(alpha=0.3)
    ax = axes.flat[-1]
    for n in names:
        steps = defaultdict(list)
        for s in results[n]["layers"].values():
            base = max(s["amax_by_step"].values()) or 1.0
            for st, v in s["amax_by_step"].items():
                steps[int(st)].append(v / base)
        if steps:
            xs = sorted(steps)
            ax.plot(xs, [np.median(steps[x]) for x in xs], "o-", label=n, ms=3)
    ax.set_xlabel("denoising step")
    ax.set_title("max|x| per step / layer max (median over layers)", fontsize=9)
    ax.legend(fontsize=6)
    ax.grid(alpha=0.3)
    fig.suptitle("Activation statistics per layer: trained vs random-weight tiny VDiTs",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def run_stats(paths: list[str], out: str | None = None, names: list[str] | None = None,
              plot: bool = True) -> dict:
    from .vectors import load_vectors

    results = {}
    for i, p in enumerate(paths):
        tensors, manifest = load_vectors(p)
        name = (names[i] if names and i < len(names) else
                manifest.get("source", {}).get("name") or Path(p).stem)
        results[name] = dataset_stats(tensors, manifest)
    if out:
        o = Path(out)
        o.mkdir(parents=True, exist_ok=True)
        (o / "stats.json").write_text(json.dumps(results, indent=1))
        md = "# Activation statistics\n\n" + "\n".join(
            f"- `{n}`: {r['label']}" for n, r in results.items()) + "\n\n" + \
            stats_markdown(results) + "\n"
        if plot:
            plot_stats(results, o / "stats.png")
            md += "\n![stats](stats.png)\n"
        (o / "stats.md").write_text(md)
    return results


def cmd_stats(args) -> int:
    res = run_stats(args.vectors, args.output, plot=not args.no_plot)
    print(stats_markdown(res))
    return 0


def register(subparsers) -> None:
    import argparse

    p = subparsers.add_parser(
        "stats",
        help="activation statistics of vector files (kurtosis, outlier channels, massive "
             "activations, token energy, timestep ranges, attention entropy)",
        description=__doc__.split("\n\n")[0] + " See docs/results.md.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--vectors", nargs="+", required=True, help="vector files to compare")
    p.add_argument("-o", "--output", help="write stats.json, stats.md, stats.png here")
    p.add_argument("--no-plot", action="store_true")
    p.set_defaults(func=cmd_stats)

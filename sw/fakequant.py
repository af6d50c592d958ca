"""Quantize-dequantize (fake-quant) wrappers for nn.Linear inputs and weights, per-layer
SQNR, and the end-to-end error of a denoising run per format.

    with FakeQuant(model, "semdialect", weights=True) as fq:
        out = model(...)
    fq.sqnr()   # {layer: {"act_sqnr_db": ..., "weight_sqnr_db": ...}}

Quantization uses `semdialect.sw.quant` (bit-identical to the golden model); blocks run
along the last axis of the Linear input and along in_features of the weight (the
dot-product axis). Widths that are not a multiple of the block size are zero-padded for
quantization (numerics §1) and cut back.
"""

from __future__ import annotations

import math
import re
import time

import numpy as np
import torch

from .quant import fake_quantize

__all__ = ["FakeQuant", "sqnr_db", "e2e_table", "format_table"]


def sqnr_db(signal_pow: float, noise_pow: float) -> float:
    if noise_pow == 0:
        return math.inf
    if signal_pow == 0:
        return -math.inf
    return 10.0 * math.log10(signal_pow / noise_pow)



def accumulate_sqnr(stats: dict, name: str, x: torch.Tensor, xq: torch.Tensor) -> None:
    """Add one call's signal and noise energy (finite elements, float64) to stats[name] =
    [signal, noise, calls]; SQNR = 10 log10(signal / noise)."""
    xf, qf = x.double(), xq.double()
    ok = torch.isfinite(xf) & torch.isfinite(qf)
    s = stats.setdefault(name, [0.0, 0.0, 0])
    s[0] += float(torch.where(ok, xf * xf, 0).sum())
    s[1] += float(torch.where(ok, (xf - qf) ** 2, 0).sum())
    s[2] += 1


class FakeQuant:
    """Fake-quantize the inputs (and, with weights=True, the weights) of every nn.Linear
    of `module` whose qualified name matches `layers` (regex; None: all)."""

    def __init__(self, module: torch.nn.Module, fmt: str, layers: str | None = None,
                 weights: bool = True, activations: bool = True, **options):
        self.module, self.fmt, self.options = module, fmt, options
        self.weights, self.activations = weights, activations
        try:
            rx = re.compile(layers) if layers else None
        except re.error as e:
            raise ValueError(f"bad --layers regex {layers!r}: {e}") from None
        self.linears = [(n, m) for n, m in module.named_modules()
                        if isinstance(m, torch.nn.Linear) and (rx is None or rx.search(n))]
        if not self.linears:
            raise ValueError(f"no nn.Linear matches {layers!r}")
        self.stats: dict[str, list[float]] = {}
        self.wstats: dict[str, float] = {}
        self._saved: dict[str, torch.Tensor] = {}
        self._handles = []

    def _hook(self, name):
        def pre(_m, args):
            x = args[0]
            xq = fake_quantize(x, self.fmt, **self.options)
            accumulate_sqnr(self.stats, name, x, xq)
            return (xq,) + tuple(args[1:])
        return pre

    def __enter__(self):
        with torch.no_grad():
            for name, m in self.linears:
                if self.weights:
                    w = m.weight.data
                    wq = fake_quantize(w, self.fmt, **self.options)
                    self._saved[name] = w
                    self.wstats[name] = sqnr_db(float((w.double() ** 2).sum()),
                                                float(((w.double() - wq.double()) ** 2).sum()))
                    m.weight.data = wq
                if self.activations:
                    self._handles.append(m.register_forward_pre_hook(self._hook(name)))
        return self

    def __exit__(self, *exc):
        for h in self._handles:
            h.remove()
        self._handles = []
        mods = dict(self.linears)
        for name, w in self._saved.items():
            mods[name].weight.data = w
        self._saved = {}
        return False

    def sqnr(self) -> dict[str, dict]:
        out = {}
        for name, _ in self.linears:
            row = {}
            if name in self.stats:
                sig, noise, calls = self.stats[name]
                row.update(act_sqnr_db=sqnr_db(sig, noise), calls=calls)
            if name in self.wstats:
                row["weight_sqnr_db"] = self.wstats[name]
            if row:
                out[name] = row
        return out


def _finite_stats(vals):
    v = [x for x in vals if math.isfinite(x)]
    if not v:
        return None, None
    return sum(v) / len(v), min(v)


def e2e_table(model: str, formats: list[str], checkpoint: str | None = None, steps: int = 4,
              seed: int = 0, layers: str | None = None, weights: bool = True,
              guidance: float = 5.0, device: str = "cpu", progress: bool = False,
              dtype: str = "float32", latents: dict | None = None,
              from_clip: float | None = None) -> dict:
    """Final-latent error of the denoising loop with every matching Linear fake-quantized,
    per format, against the unquantized run (same seed, same weights). `latents`, if
    given, receives the final latents ("reference" and one per format). `from_clip`
    (trained models): start at sigma = from_clip from a noised validation clip of the
    task (clip index = seed) with its caption, instead of from pure noise."""
    from semdialect import golden
    from semdialect.golden.quality import METHODS

    from .capture import denoise, parse_dtype
    from .models import build_model
    from .quant import FORMATS

    for f in formats:
        if f not in FORMATS and f not in METHODS:
            raise ValueError(f"unknown format {f!r}; known: {', '.join((*FORMATS, *METHODS))}")
    tdt = parse_dtype(dtype)
    lm = build_model(model, checkpoint=checkpoint, seed=seed, dtype=tdt, device=device)
    t0 = time.time()
    init = {}
    if from_clip is not None:
        from .trained import clip_latent

        init = clip_latent(lm, seed, from_clip)
    ref = denoise(lm, steps=steps, seed=seed, guidance=guidance, dtype=tdt, **init).double()
    ref_time = time.time() - t0
    peak = float(ref.max() - ref.min())
    if latents is not None:
        if init:
            latents["source clip"] = init["init"].float().numpy()
        latents["reference"] = ref.float().numpy()
    rows, per_layer = [], {}
    it = formats
    if progress:
        from tqdm import tqdm

        it = tqdm(formats, desc=f"{model} e2e", unit="format")
    for fmt in it:
        if fmt in METHODS:  # SemanticDialect methods: attention-guided (sw/methods.py)
            from .methods import MethodFakeQuant

            fq = MethodFakeQuant(lm.module, fmt, layers=layers, weights=weights)
        else:
            fq = FakeQuant(lm.module, fmt, layers=layers, weights=weights)
        with fq:
            t0 = time.time()
            out = denoise(lm, steps=steps, seed=seed, guidance=guidance, dtype=tdt,
                          capture=fq if fmt in METHODS else None, **init).double()
            dt = time.time() - t0
        if latents is not None:
            latents[fmt] = out.float().numpy()
        mse = float(((out - ref) ** 2).mean())
        sq = fq.sqnr()
        act_mean, act_min = _finite_stats([r["act_sqnr_db"] for r in sq.values()
                                           if "act_sqnr_db" in r])
        w_mean, w_min = _finite_stats([r["weight_sqnr_db"] for r in sq.values()
                                       if "weight_sqnr_db" in r])
        # nvfp4: 4.5 plus 32 bits of tensor scale per tensor (negligible)
        # methods: activation bits averaged over every quantized input element
        bpe = fq.bits_per_element if fmt in METHODS else 4.5 if fmt == "nvfp4" else \
            golden.quantize(np.zeros((1, 32), np.float32), fmt).bits_per_element
        rows.append({
            "format": fmt, "bits_per_element": bpe,
            "latent_mse": mse,
            "latent_psnr_db": sqnr_db(peak * peak, mse),
            "latent_rel_err": math.sqrt(mse / float((ref ** 2).mean())),
            "act_sqnr_mean_db": act_mean, "act_sqnr_min_db": act_min,
            "weight_sqnr_mean_db": w_mean, "weight_sqnr_min_db": w_min,
            "layers": len(sq), "seconds": round(dt, 2),
        })
        per_layer[fmt] = sq
    random = lm.weights == "random-init"
    return {
        "model": model,
        "weights": lm.weights,
        "label": (f"{model}: RANDOM-WEIGHT tiny {lm.spec.family} model (seed {seed}); "
                  "not a trained model's numbers") if random
        else lm.label or f"{model}: checkpoint {lm.checkpoint}",
        "steps": steps, "seed": seed, "guidance": guidance, "dtype": dtype,
        "caption": getattr(lm.conditioner, "last_caption", None),
        "from_clip": from_clip,
        "quantized": "Linear inputs + weights" if weights else "Linear inputs",
        "layers_regex": layers,
        "psnr_definition": "10 log10((max(ref) - min(ref))^2 / MSE) over the final latent",
        "reference_seconds": round(ref_time, 2),
        "rows": rows,
        "per_layer": per_layer,
    }


def format_table(res: dict) -> str:
    lines = [f"# {res['label']}",
             f"# {res['steps']} Euler steps, CFG {res['guidance']}, {res['dtype']}, "
             f"quantized: {res['quantized']}; error of the final latent vs the unquantized run",
             "| format | bits/elem | latent MSE | latent PSNR dB | rel. err | act SQNR mean/min dB "
             "| weight SQNR mean/min dB |",
             "|---|---|---|---|---|---|---|"]

    def f(x, p=2):
        return "-" if x is None else f"{x:.{p}f}"

    for r in res["rows"]:
        lines.append(
            f"| {r['format']} | {r['bits_per_element']:.3f} | {r['latent_mse']:.3e} | "
            f"{f(r['latent_psnr_db'])} | {r['latent_rel_err']:.4f} | "
            f"{f(r['act_sqnr_mean_db'])} / {f(r['act_sqnr_min_db'])} | "
            f"{f(r['weight_sqnr_mean_db'])} / {f(r['weight_sqnr_min_db'])} |")
    return "\n".join(lines)

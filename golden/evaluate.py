"""Quality evaluation: SQNR and bits per element of every format on named datasets."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass

import numpy as np

__all__ = [
    "FORMAT_VARIANTS", "resolve_format", "sqnr_db", "EvalRow", "evaluate",
    "lut_resolution_sweep",
]

# Extra names for format+option combinations researchers compare routinely.
FORMAT_VARIANTS: dict[str, tuple[str, dict]] = {
    "dialectfp4-mse": ("dialectfp4", {"selector": "mse"}),
    "dialectfp4-lut": ("dialectfp4", {"selector": "lut"}),
    "semdialect-mse": ("semdialect", {"selector": "mse"}),
}

DEFAULT_EVAL_FORMATS = ("mxfp4", "nvfp4", "int4", "dialectfp4", "semdialect", "mxfp6_e2m3",
                        "mxfp8_e4m3")


def resolve_format(name: str) -> tuple[str, dict]:
    from . import FORMATS

    if name in FORMAT_VARIANTS:
        return FORMAT_VARIANTS[name]
    if name in FORMATS:
        return name, {}
    raise ValueError(
        f"unknown format {name!r}; known: {', '.join((*FORMATS, *FORMAT_VARIANTS))}"
    )


def sqnr_db(x: np.ndarray, xq: np.ndarray) -> float:
    """10 log10(sum x^2 / sum (x - xq)^2) over finite elements of x, in float64."""
    x = np.asarray(x, dtype=np.float64)
    xq = np.asarray(xq, dtype=np.float64)
    ok = np.isfinite(x)
    sig = float(np.sum(x[ok] ** 2))
    noise = float(np.sum((x[ok] - xq[ok]) ** 2))
    if noise == 0:
        return float("inf")
    if sig == 0:
        return float("-inf")
    return 10 * np.log10(sig / noise)


@dataclass
class EvalRow:
    format: str
    dataset: str
    sqnr_db: float
    bits_per_element: float

    def to_json(self) -> dict:
        d = asdict(self)
        d["sqnr_db"] = round(d["sqnr_db"], 4) if np.isfinite(d["sqnr_db"]) else None
        d["bits_per_element"] = round(d["bits_per_element"], 5)
        return d


def evaluate(datasets, formats: Iterable[str], progress=None,
             per_layer: bool = False) -> list[EvalRow]:
    """Quantize-dequantize each dataset in each format.

    A dataset is (name, array) or (name, {tensor_name: array}); for a dict the overall
    SQNR pools signal and noise over all its tensors, and with per_layer=True each
    tensor also gets a row named "dataset/tensor". Tensors whose last axis is not a
    multiple of a format's block are skipped for that format (said through progress).
    """
    from . import quantize

    rows = []
    formats = list(formats)
    for ds_name, data in datasets:
        tensors = data if isinstance(data, dict) else {ds_name: data}
        for fname in formats:
            fmt, opts = resolve_format(fname)
            sig = noise = bits = 0.0
            n = 0
            for t_name, x in tensors.items():
                try:
                    qt = quantize(x, fmt, **opts)
                except ValueError as e:
                    if progress:
                        progress(f"skip {fname} on {ds_name}/{t_name}: {e}")
                    continue
                x64 = np.asarray(x, dtype=np.float64)
                ok = np.isfinite(x64)
                d = qt.dequantize().astype(np.float64)
                s_t = float(np.sum(x64[ok] ** 2))
                n_t = float(np.sum((x64[ok] - d[ok]) ** 2))
                sig, noise, n = sig + s_t, noise + n_t, n + x64.size
                bits += qt.bits_per_element * x64.size
                if per_layer and isinstance(data, dict):
                    rows.append(EvalRow(fname, f"{ds_name}/{t_name}", _db(s_t, n_t),
                                        qt.bits_per_element))
            if n == 0:
                continue
            rows.append(EvalRow(fname, ds_name, _db(sig, noise), bits / n))
            if progress:
                progress(f"{ds_name:>28} {fname:>16} {rows[-1].sqnr_db:7.2f} dB")
    return rows


def _db(sig: float, noise: float) -> float:
    if noise == 0:
        return float("inf")
    if sig == 0:
        return float("-inf")
    return float(10 * np.log10(sig / noise))


LUT_SWEEP_POINTS = ((1, 8), (2, 8), (3, 8), (4, 8), (4, 10))


def lut_resolution_sweep(datasets, book="semdialect-32", points=LUT_SWEEP_POINTS):
    """SQNR lost by LUT-estimated selection against exact-MSE selection, per (F, W) (§8)."""
    from . import quantize

    out = []
    for ds_name, x in datasets:
        exact = sqnr_db(x, quantize(x, "semdialect", formatbook=book,
                                    selector="mse").dequantize())
        for f, err_bits in points:
            s = sqnr_db(x, quantize(x, "semdialect", formatbook=book, frac_bits=f,
                                    err_bits=err_bits).dequantize())
            out.append({"dataset": ds_name, "frac_bits": f, "err_bits": err_bits,
                        "sqnr_lut_db": round(s, 4), "sqnr_mse_db": round(exact, 4),
                        "loss_db": round(exact - s, 4)})
    return out


def format_table(rows: list[EvalRow]) -> str:
    """Markdown table: one row per format, one SQNR column per dataset, plus bits."""
    datasets = list(dict.fromkeys(r.dataset for r in rows))
    formats = list(dict.fromkeys(r.format for r in rows))
    cell = {(r.format, r.dataset): r for r in rows}
    head = "| format | bits/elem | " + " | ".join(f"{d} SQNR (dB)" for d in datasets) + " |"
    sep = "|---|---:|" + "---:|" * len(datasets)
    lines = [head, sep]
    for f in formats:
        bits = next(cell[f, d].bits_per_element for d in datasets if (f, d) in cell)
        vals = [f"{cell[f, d].sqnr_db:.2f}" if (f, d) in cell else "-" for d in datasets]
        lines.append(f"| {f} | {bits:.3f} | " + " | ".join(vals) + " |")
    return "\n".join(lines)


def plot_rows(rows: list[EvalRow], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = list(dict.fromkeys(r.dataset for r in rows))
    formats = list(dict.fromkeys(r.format for r in rows))
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(datasets) + 2), 4))
    w = 0.8 / len(formats)
    for i, f in enumerate(formats):
        ys = [next((r.sqnr_db for r in rows if r.format == f and r.dataset == d), np.nan)
              for d in datasets]
        bits = next(r.bits_per_element for r in rows if r.format == f)
        ax.bar(np.arange(len(datasets)) + i * w, ys, w, label=f"{f} ({bits:.3g} b/e)")
    ax.set_xticks(np.arange(len(datasets)) + w * (len(formats) - 1) / 2)
    ax.set_xticklabels(datasets, rotation=15, ha="right")
    ax.set_ylabel("SQNR (dB, higher is better)")
    ax.set_title("Quantize-dequantize SQNR per format (semdialect golden model)")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)

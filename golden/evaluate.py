"""Quality evaluation: SQNR and bits per element of every format on named datasets."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

__all__ = [
    "FORMAT_VARIANTS", "resolve_format", "sqnr_db", "as_sequences", "evaluate",
    "lut_resolution_sweep", "format_table", "plot_rows",
]

# Extra names for format+option combinations researchers compare routinely.
FORMAT_VARIANTS: dict[str, tuple[str, dict]] = {
    "dialectfp4-mse": ("dialectfp4", {"selector": "mse"}),
    "dialectfp4-lut": ("dialectfp4", {"selector": "lut"}),
    "semdialect-mse": ("semdialect", {"selector": "mse"}),
    # the exhaustive LUT engine on semdialect-32, for comparison with the two-level default
    "semdialect-lut": ("semdialect", {"formatbook": "semdialect-32", "selector": "lut"}),
}

DEFAULT_EVAL_FORMATS = ("mxfp4", "nvfp4", "int4", "dialectfp4", "semdialect", "semdialect-lut",
                        "mxfp6_e2m3", "mxfp8_e4m3")


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


def as_sequences(name: str, data):
    """A dataset as quality sequences: an array is one step of one layer (rows = tokens);
    (tensors, manifest) from `semdialect.sw.vectors.load_vectors` is grouped by layer and
    branch over denoising steps (semdialect.golden.quality.sequences_from_vectors)."""
    from .quality import Sequence, sequences_from_vectors

    if isinstance(data, tuple):
        return sequences_from_vectors(*data)
    x = np.asarray(data)
    return [Sequence(name, [0], [x.reshape(-1, x.shape[-1])], [None])]


def evaluate(datasets, formats: Iterable[str], progress=None, per_layer: bool = False):
    """Rows {format, dataset, sqnr_db, bits_per_element, consistency} for every format on
    every dataset ((name, array) or (name, (tensors, manifest))). SQNR pools signal and
    noise over a dataset's tensors; consistency is the fraction of codes unchanged between
    consecutive denoising steps (None for single-step data). per_layer adds a row per
    sequence, named "dataset/layer/branch"."""
    from .quality import quality_table

    rows = []
    for ds_name, data in datasets:
        seqs = as_sequences(ds_name, data)
        rows += quality_table([(ds_name, seqs)], formats, progress=progress)
        if per_layer and isinstance(data, tuple):
            for s in seqs:
                rows += quality_table([(f"{ds_name}/{s.name}", [s])], formats)
    return rows


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


def format_table(rows: list[dict]) -> str:
    """Markdown table: one row per format, one SQNR column per dataset, plus bits."""
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    formats = list(dict.fromkeys(r["format"] for r in rows))
    cell = {(r["format"], r["dataset"]): r for r in rows}
    head = "| format | bits/elem | " + " | ".join(f"{d} SQNR (dB)" for d in datasets) + " |"
    sep = "|---|---:|" + "---:|" * len(datasets)
    lines = [head, sep]
    for f in formats:
        bits = next(cell[f, d]["bits_per_element"] for d in datasets if (f, d) in cell)
        vals = [f"{cell[f, d]['sqnr_db']:.2f}" if (f, d) in cell else "-" for d in datasets]
        lines.append(f"| {f} | {bits:.3f} | " + " | ".join(vals) + " |")
    return "\n".join(lines)


def plot_rows(rows: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    formats = list(dict.fromkeys(r["format"] for r in rows))
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(datasets) + 2), 4))
    w = 0.8 / len(formats)
    for i, f in enumerate(formats):
        ys = [next((r["sqnr_db"] for r in rows if r["format"] == f and r["dataset"] == d),
                   np.nan) for d in datasets]
        bits = next(r["bits_per_element"] for r in rows if r["format"] == f)
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

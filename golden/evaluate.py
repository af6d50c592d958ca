"""Quality evaluation: SQNR and bits per element of every format on named datasets."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from semdialect.errors import InputFileError, UsageError

__all__ = [
    "FORMAT_VARIANTS", "resolve_format", "sqnr_db", "finite_block_mask", "check_evaluable",
    "check_method",
    "as_sequences", "evaluate",
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


#: SQNR counts the elements of the aligned blocks of this many elements along the last axis
#: whose inputs are all finite (docs/numerics.md §11): the same elements for every format.
SQNR_BLOCK = 32


def finite_block_mask(x: np.ndarray, block_size: int = SQNR_BLOCK) -> np.ndarray:
    """Bool mask of the elements of x whose block (block_size along the last axis) holds
    only finite inputs; elementwise isfinite when the last axis is not a block multiple."""
    ok = np.isfinite(x)
    if x.ndim and x.shape[-1] and x.shape[-1] % block_size == 0:
        blk = ok.reshape(*x.shape[:-1], -1, block_size).all(axis=-1)
        ok = np.repeat(blk, block_size, axis=-1).reshape(x.shape)
    return ok


def check_method(name: str) -> str:
    """A format, format variant or method name (quality.METHODS) that evaluate runs."""
    from .quality import METHODS

    if name not in METHODS:
        try:
            resolve_format(name)
        except ValueError:
            raise UsageError(f"unknown format {name!r}; known formats and methods: "
                             f"{', '.join((*_format_names(), *METHODS))}") from None
    return name


def _format_names():
    from . import FORMATS

    return (*FORMATS, *FORMAT_VARIANTS)


def sqnr_db(x: np.ndarray, xq: np.ndarray, block_size: int = SQNR_BLOCK) -> float:
    """10 log10(sum x^2 / sum (x - xq)^2) in float64 over the elements of the blocks of x
    holding only finite values (finite_block_mask). +inf when the error is zero; NaN when
    there is no such element or they are all zero (SQNR undefined)."""
    x = np.asarray(x, dtype=np.float64)
    xq = np.asarray(xq, dtype=np.float64)
    ok = finite_block_mask(x, block_size)
    sig = float(np.sum(x[ok] ** 2))
    with np.errstate(invalid="ignore", over="ignore"):
        noise = float(np.sum((x[ok] - xq[ok]) ** 2))
    if sig == 0:
        return float("nan")
    if noise == 0:
        return float("inf")
    return float(10 * np.log10(sig / noise))


def check_evaluable(name: str, arrays, block_size: int = SQNR_BLOCK) -> None:
    """SQNR over `arrays` is defined: some block holds only finite values, not all zero."""
    size = finite = nonzero = 0
    for x in arrays:
        x = np.asarray(x, np.float64)
        ok = finite_block_mask(x, block_size)
        size, finite = size + x.size, finite + int(ok.sum())
        nonzero += int(np.count_nonzero(x[ok]))
    if size == 0:
        raise InputFileError(f"{name}: holds no elements")
    if finite == 0:
        raise InputFileError(f"{name}: no block of {block_size} elements is free of NaN/Inf: "
                             "SQNR is undefined")
    if nonzero == 0:
        raise InputFileError(f"{name}: every finite block is all zeros: SQNR is undefined")


def as_sequences(name: str, data, skipped: list | None = None):
    """A dataset as quality sequences: an array is one step of one layer (rows = tokens);
    (tensors, manifest) from `semdialect.sw.vectors.load_vectors` is grouped by layer and
    branch over denoising steps (semdialect.golden.quality.sequences_from_vectors), the
    tensors it cannot use appended to `skipped` as (name, reason)."""
    from .quality import Sequence, sequences_from_vectors

    if isinstance(data, tuple):
        return sequences_from_vectors(*data, skipped=skipped)
    x = np.asarray(data)
    if x.ndim == 0 or x.size == 0:
        raise InputFileError(f"{name}: an array of shape {x.shape} holds no blocks to quantize")
    return [Sequence(name, [0], [x.reshape(-1, x.shape[-1])], [None])]


def evaluate(datasets, formats: Iterable[str], progress=None, per_layer: bool = False,
             notes=None, bar: bool = False):
    """Rows {format, dataset, sqnr_db, bits_per_element, consistency, ...} for every format
    on every dataset ((name, array) or (name, (tensors, manifest))). SQNR pools signal and
    noise over a dataset's tensors, over the blocks holding only finite inputs (the rows
    count the others: nonfinite_elements, nonfinite_blocks); consistency is the fraction of
    codes unchanged between consecutive denoising steps (None for single-step data).
    per_layer adds a row per sequence, named "dataset/layer/branch". A dataset without a
    usable tensor, or on which SQNR is undefined (all NaN/Inf or all zero), raises
    InputFileError; `notes` (a callable) is told which tensors were skipped and why.
    Plain formats compute no attention (their anchor_* consistencies are None; `semdialect
    quality` reports them); the methods' salient tokens and anchors are computed in row
    blocks (golden.token_attention). bar: a tqdm progress bar on stderr."""
    from .quality import quality_table

    formats = list(formats)
    for f in formats:
        check_method(f)  # every name checked before the first format runs
    prepared = []
    for ds_name, data in datasets:
        skipped: list = []
        seqs = as_sequences(ds_name, data, skipped)
        if skipped and notes:
            why = "; ".join(f"{n} ({r})" for n, r in skipped[:5])
            more = f" and {len(skipped) - 5} more" if len(skipped) > 5 else ""
            notes(f"{ds_name}: skipped {len(skipped)} tensor(s): {why}{more}")
        if not seqs:
            raise InputFileError(f"{ds_name}: no usable tensor (needs >= 2 tokens and a "
                                 f"channel count that is a multiple of {SQNR_BLOCK}; "
                                 f"{len(skipped)} skipped)")
        check_evaluable(ds_name, (x for s in seqs for x in s.x))
        prepared.append((ds_name, data, seqs))
    rows = []
    for ds_name, data, seqs in prepared:
        rows += quality_table([(ds_name, seqs)], formats, progress=progress,
                              anchor_metrics=False, bar=bar)
        bad = rows[-1] if rows else {}
        if bad.get("nonfinite_blocks") and notes:
            notes(f"{ds_name}: {bad['nonfinite_elements']} non-finite element(s) in "
                  f"{bad['nonfinite_blocks']} block(s) of {SQNR_BLOCK}; SQNR counts the "
                  "other blocks")
        if per_layer and isinstance(data, tuple):
            for s in seqs:
                rows += quality_table([(f"{ds_name}/{s.name}", [s])], formats,
                                      anchor_metrics=False)
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


def _sqnr_cell(row: dict) -> str:
    v = row["sqnr_db"]
    return f"{v:.2f}" if v is not None else row.get("sqnr_note", "n/a").split(":")[0]


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
        vals = [_sqnr_cell(cell[f, d]) if (f, d) in cell else "-" for d in datasets]
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

"""Block sources for the testbench: random distributions, edge-case classes, vector files.

Every source returns blocks (N, B) in the DUT's input dtype (bfloat16 / float16). The
expected results always come from the golden model run on exactly these values
(`semdialect.sim.configs.golden_quantize`); float32 vector files are rounded (RNE, as
`ml_dtypes` / NumPy casts do, overflow to +-Inf) to the input dtype first.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = [
    "RANDOM_KINDS",
    "EDGE_KINDS",
    "random_blocks",
    "edge_blocks",
    "mixed_stream",
    "load_vector_blocks",
    "random_masks",
    "to_bits",
    "from_bits",
]

RANDOM_KINDS = ("gaussian", "laplace", "student-t", "channel-outliers", "log-uniform",
                "raw-bits")
EDGE_KINDS = ("zeros", "nonfinite", "subnormals", "exponent-extremes", "rounding-boundaries",
              "single-outlier", "all-equal")


def to_bits(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x).view(np.uint16)


def from_bits(bits: np.ndarray, dtype: np.dtype) -> np.ndarray:
    return np.ascontiguousarray(bits, dtype=np.uint16).view(dtype)


def _finfo(dtype: np.dtype):
    import ml_dtypes

    return ml_dtypes.finfo(dtype)


def _cast(x: np.ndarray, dtype) -> np.ndarray:
    """float64 -> the 16-bit dtype, finite values clipped to the largest finite one (so a
    random scale never turns a finite class into an Inf block)."""
    m = float(_finfo(dtype).max)
    return np.clip(x, -m, m).astype(dtype)


def _block_scales(rng, n: int, dtype, spread: float = 12.0) -> np.ndarray:
    """Per-block power-of-two scales: blocks land in many binades of the input format."""
    fi = _finfo(dtype)
    lo, hi = int(np.log2(float(fi.smallest_normal))) + 4, int(np.log2(float(fi.max))) - 4
    centre = rng.integers(-int(spread), int(spread) + 1, size=n)
    wide = rng.integers(lo, hi + 1, size=n)
    e = np.where(rng.random(n) < 0.2, wide, centre)
    return np.ldexp(1.0, e)[:, None]


def random_blocks(kind: str, n: int, b: int, dtype, rng: np.random.Generator) -> np.ndarray:
    """n random blocks of one distribution, each block at a random binade."""
    dtype = np.dtype(dtype)
    if kind == "raw-bits":  # every 16-bit pattern, NaN/Inf included
        return from_bits(rng.integers(0, 1 << 16, size=(n, b), dtype=np.uint16), dtype)
    if kind == "gaussian":
        x = rng.standard_normal((n, b))
    elif kind == "laplace":
        x = rng.laplace(size=(n, b))
    elif kind == "student-t":
        x = rng.standard_t(3, size=(n, b))
    elif kind == "channel-outliers":
        x = rng.standard_normal((n, b))
        ch = rng.choice(b, size=max(1, b // 16), replace=False)  # fixed outlier channels
        x[:, ch] *= rng.uniform(20, 200, size=len(ch))
    elif kind == "log-uniform":  # magnitudes spread over many binades inside a block
        x = np.ldexp(rng.uniform(1, 2, (n, b)), rng.integers(-14, 2, (n, b)))
        x *= rng.choice([-1.0, 1.0], size=(n, b))
    else:
        raise ValueError(f"unknown random kind {kind!r}; known: {', '.join(RANDOM_KINDS)}")
    return _cast(x * _block_scales(rng, n, dtype), dtype)


def _boundary_values(dtype) -> np.ndarray:
    """Normalized magnitudes in [0, 8) on every 1/16 grid point (every rounding boundary of
    any dialect on the 0.5 grid, of E2M1 and of the error-LUT address up to F = 4) and the
    neighbouring representable values on both sides (at scale 2^0)."""
    pts = np.arange(0, 8 * 16) / 16.0
    v = pts.astype(dtype)
    # the neighbouring representable values of the 16-bit format, via its bits
    up = from_bits(to_bits(v) + 1, dtype)
    down = from_bits(np.where(to_bits(v) > 0, to_bits(v) - 1, 0).astype(np.uint16), dtype)
    return np.concatenate([v, up, down])


def edge_blocks(kind: str, n: int, b: int, dtype, rng: np.random.Generator) -> np.ndarray:
    """n blocks of one edge-case class (numerics §2-§8)."""
    dtype = np.dtype(dtype)
    fi = _finfo(dtype)
    sign = rng.choice([-1.0, 1.0], size=(n, b))
    if kind == "zeros":
        x = np.zeros((n, b)) * sign  # +0 and -0
        return x.astype(dtype)
    if kind == "nonfinite":
        x = random_blocks("gaussian", n, b, dtype, rng).astype(np.float64)
        special = np.array([np.nan, np.inf, -np.inf])
        lanes = rng.integers(0, b, size=n)
        x[np.arange(n), lanes] = special[rng.integers(0, 3, size=n)]
        allnan = rng.random(n) < 0.1
        x[allnan] = np.nan
        out = x.astype(dtype)
        # NaN payloads / signs: random quiet and signalling patterns
        bits = to_bits(out).copy()
        nanmask = np.isnan(out.astype(np.float32))
        mbits = fi.nmant
        payload = rng.integers(1, 1 << mbits, size=bits.shape).astype(np.uint16)
        signs = (rng.integers(0, 2, size=bits.shape) << 15).astype(np.uint16)
        expfield = np.uint16(((1 << (15 - mbits)) - 1) << mbits)
        bits[nanmask] = (signs | expfield | payload)[nanmask]
        return from_bits(bits, dtype)
    if kind == "subnormals":
        mbits = fi.nmant
        man = rng.integers(0, 1 << mbits, size=(n, b)).astype(np.uint16)
        bits = man | (rng.integers(0, 2, size=(n, b)) << 15).astype(np.uint16)
        x = from_bits(bits, dtype).astype(np.float64)
        # a third of the blocks also hold a small normal value (mixed binades)
        mixed = rng.random(n) < 0.33
        x[mixed, 0] = float(fi.smallest_normal) * rng.uniform(1, 64, size=mixed.sum())
        return x.astype(dtype)
    if kind == "exponent-extremes":
        maxf = float(fi.max)
        x = rng.uniform(0.5, 1.0, size=(n, b)) * sign
        top = rng.random(n) < 0.5
        x[top] *= maxf  # around the largest finite value (and the largest scale)
        x[top, 0] = maxf * sign[top, 0]
        x[~top] *= float(fi.smallest_normal)  # around the smallest normal
        return x.astype(dtype)
    if kind == "rounding-boundaries":
        vals = _boundary_values(dtype).astype(np.float64)
        x = vals[rng.integers(0, len(vals), size=(n, b))]
        # lane 0 pins the block max into [4, 8) so the scale is 2^0 relative to the
        # values: every other lane sits on (or next to) a boundary after normalization
        anchor = np.array([4.0, 4.5, 5.0, 6.0, 7.0, 7.5, 7.75, 7.9375])
        x[:, 0] = anchor[rng.integers(0, len(anchor), size=n)]
        x = x * sign
        e = rng.integers(-20, 20, size=n)
        return _cast(np.ldexp(x, e[:, None]), dtype)
    if kind == "single-outlier":
        x = rng.standard_normal((n, b)) * 1e-3
        lanes = rng.integers(0, b, size=n)
        x[np.arange(n), lanes] = rng.uniform(1, 2, size=n) * 2.0 ** rng.integers(4, 14, size=n)
        return _cast(x * sign * _block_scales(rng, n, dtype, 4), dtype)
    if kind == "all-equal":
        v = np.concatenate([_boundary_values(dtype).astype(np.float64),
                            rng.standard_normal(64)])
        x = np.repeat(v[rng.integers(0, len(v), size=n)][:, None], b, axis=1)
        x = x * rng.choice([-1.0, 1.0], size=(n, 1))
        return _cast(x * _block_scales(rng, n, dtype, 8), dtype)
    raise ValueError(f"unknown edge kind {kind!r}; known: {', '.join(EDGE_KINDS)}")


def mixed_stream(n: int, b: int, dtype, seed: int, edge_fraction: float = 0.2):
    """A shuffled stream of n blocks: every random distribution and every edge class.
    Returns (blocks (n, b), kind labels (n,) as an index into RANDOM_KINDS + EDGE_KINDS)."""
    rng = np.random.default_rng(seed)
    kinds = RANDOM_KINDS + EDGE_KINDS
    n_edge = int(n * edge_fraction)
    counts = [(n - n_edge) // len(RANDOM_KINDS)] * len(RANDOM_KINDS)
    counts += [n_edge // len(EDGE_KINDS)] * len(EDGE_KINDS)
    counts[0] += n - sum(counts)
    parts, labels = [], []
    for i, (k, c) in enumerate(zip(kinds, counts)):
        if c == 0:
            continue
        gen = random_blocks if k in RANDOM_KINDS else edge_blocks
        parts.append(gen(k, c, b, dtype, rng))
        labels.append(np.full(c, i, dtype=np.int16))
    x = np.concatenate(parts)
    lab = np.concatenate(labels)
    perm = rng.permutation(n)
    return np.ascontiguousarray(x[perm]), lab[perm]


def random_masks(n: int, d: int, rng: np.random.Generator, full_fraction: float = 0.5):
    """Allowed-dialect masks (n, d) bool, never empty: half all-ones, the rest random
    subsets (some with a single dialect)."""
    m = rng.random((n, d)) < rng.uniform(0.1, 0.9, size=(n, 1))
    single = rng.random(n) < 0.1
    m[single] = False
    m[single, rng.integers(0, d, size=single.sum())] = True
    m[rng.random(n) < full_fraction] = True
    empty = ~m.any(axis=1)
    m[empty, rng.integers(0, d, size=empty.sum())] = True
    return m


def _to_blocks(a: np.ndarray, b: int, dtype: np.dtype) -> np.ndarray:
    """2-D rows -> (M, b) blocks of the unit's input dtype: the last axis zero-padded to
    a multiple of b, other float formats rounded to dtype (RNE, overflow to +-Inf)."""
    pad = (-a.shape[-1]) % b
    if pad:
        a = np.concatenate([a, np.zeros((a.shape[0], pad), a.dtype)], axis=1)
    if a.dtype != dtype:
        with np.errstate(over="ignore"):
            a = a.astype(np.float32).astype(dtype)
    return a.reshape(-1, b)


def _input_arrays(tensors: dict, manifest: dict, p: Path) -> list[tuple[str, np.ndarray]]:
    """The floating-point input tensors of a vector export (not the expected outputs),
    in manifest order."""
    import ml_dtypes

    floats = (np.dtype(np.float32), np.dtype(np.float16), np.dtype(ml_dtypes.bfloat16))
    entries = manifest.get("tensors", {})
    arrays = [(name, arr) for name, arr in tensors.items()
              if entries.get(name, {}).get("role") != "expected" and arr.dtype in floats]
    if not arrays:
        raise ValueError(f"{p}: no floating-point input tensors")
    return arrays


def vector_block_rows(path: str | Path, b: int, dtype, start: int, stop: int) -> np.ndarray:
    """Blocks start:stop of `load_vector_blocks(path, b, dtype)`, the same values, read
    through a memory map: of a C-order `.npy` file or a single-file `.safetensors`
    export only the rows that hold those blocks are read, so a shard of a large
    captured file costs its own slice, not the file (the export's whole-file checksum
    is not taken; the caller checks the slice). Other files: the whole file."""
    p = Path(path)
    dtype = np.dtype(dtype)
    arrays = None
    if p.suffix == ".npy":
        from semdialect.npyfile import load_float_npy

        a = load_float_npy(p, mmap=True)
        if a.shape[-1] % b:
            raise ValueError(f"{p}: last axis {a.shape[-1]} is not a multiple of the block "
                             f"size {b}")
        if a.flags.c_contiguous:
            arrays = [(p.name, a)]
    elif p.suffix == ".safetensors" and p.is_file():
        from semdialect.sw.vectors import map_vectors

        arrays = _input_arrays(*map_vectors(p), p)
    if arrays is None:
        return load_vector_blocks(p, b, dtype)[0][start:stop]
    out, base = [], 0
    for _name, a in arrays:
        if base >= stop:
            break
        a = a.reshape(-1, a.shape[-1]) if a.ndim > 1 else a.reshape(1, -1)
        per_row = -(-a.shape[-1] // b)
        n = a.shape[0] * per_row
        lo, hi = max(start - base, 0), min(stop - base, n)
        if n and lo < hi:
            r0, r1 = lo // per_row, -(-hi // per_row)
            out.append(_to_blocks(a[r0:r1], b, dtype)[lo - r0 * per_row:hi - r0 * per_row])
        base += n
    if not out:
        return np.zeros((0, b), dtype)
    return np.concatenate(out).view(np.ndarray)  # in memory, not a view of the map


def load_vector_blocks(path: str | Path, b: int, dtype) -> tuple[np.ndarray, str]:
    """Blocks (N, b) in the DUT's input dtype from a vector file.

    * `.npy`: an array (N, b) (or anything whose last axis is a multiple of b) of float32,
      float16 or bfloat16 (NumPy saves ml_dtypes.bfloat16 as 2-byte void '|V2'; such a
      file is read as bfloat16).
    * `.safetensors`: a frontend export (`semdialect.sw.vectors.load_vectors`); every
      floating-point input tensor (not the stored expected outputs) is used, its last
      axis zero-padded to a multiple of b (zeros never change a block's scale).

    float32 (and a float16 file fed to a bf16 unit, or vice versa) is rounded to the
    input dtype (RNE, overflow to +-Inf) before the golden model sees it. Returns
    (blocks, description)."""
    p = Path(path)
    dtype = np.dtype(dtype)
    arrays: list[tuple[str, np.ndarray]] = []
    if p.suffix == ".npy":
        from semdialect.npyfile import load_float_npy

        a = load_float_npy(p)  # bf16 ('|V2') read as bfloat16; dtype, shape, size checked
        if a.shape[-1] % b:
            raise ValueError(f"{p}: last axis {a.shape[-1]} is not a multiple of the block "
                             f"size {b}")
        arrays.append((p.name, a))
    elif p.suffix == ".safetensors" or p.is_dir():  # one file or a sharded directory
        from semdialect.sw.vectors import load_vectors

        arrays = _input_arrays(*load_vectors(p), p)
    else:
        raise ValueError(f"{p}: unsupported vector file type {p.suffix!r} (.npy, .safetensors)")
    blocks = []
    src = set()
    for _name, a in arrays:
        src.add(str(a.dtype))
        a = a.reshape(-1, a.shape[-1]) if a.ndim > 1 else a.reshape(1, -1)
        blocks.append(_to_blocks(a, b, dtype))
    out = np.ascontiguousarray(np.concatenate(blocks))
    return out, f"{p.name}: {len(arrays)} tensor(s), {out.shape[0]} blocks, " \
                f"source dtype {'/'.join(sorted(src))} -> {dtype}"

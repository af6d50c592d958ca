"""The one reader of `.npy` activation files (eval, formatbook build, sim run).

Checks what np.load does not say clearly: the path is a file, the header is readable,
its shape fits the file size (a corrupt header claiming a huge shape never allocates),
the array is at least 1-D and not empty, and the dtype is float32 / float16 / bfloat16
(NumPy stores ml_dtypes.bfloat16 as 2-byte void '|V2'; such a file is read as bfloat16).
"""

from __future__ import annotations

from pathlib import Path

import ml_dtypes
import numpy as np

from .errors import InputFileError

__all__ = ["load_float_npy", "FLOAT_DTYPES"]

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float16), np.dtype(ml_dtypes.bfloat16))


def load_float_npy(path, *, mmap: bool = False) -> np.ndarray:
    """A float32/float16/bfloat16 array of at least one element and dimension.
    mmap: a read-only memory map of the file (nothing is read until sliced)."""
    p = Path(path)
    if not p.exists():
        raise InputFileError(f"no such vector file: {p}")
    if not p.is_file():
        raise InputFileError(f"{p}: is a folder, not a .npy file")
    size = p.stat().st_size
    try:
        with open(p, "rb") as f:
            version = np.lib.format.read_magic(f)
            read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                    else np.lib.format.read_array_header_2_0)
            shape, fortran, dtype = read(f, max_header_size=1 << 16)
            data_start = f.tell()
    except (ValueError, OSError, SyntaxError, EOFError) as e:
        raise InputFileError(f"{p}: not a readable .npy array ({e})") from None
    if dtype.hasobject:
        raise InputFileError(f"{p}: holds Python objects (dtype {dtype}), not numbers")
    if dtype == np.dtype("V2"):
        dtype = np.dtype(ml_dtypes.bfloat16)
    if dtype not in FLOAT_DTYPES:
        raise InputFileError(f"{p}: unsupported input dtype {dtype}: needs float32, float16 "
                             "or bfloat16")
    if len(shape) == 0:
        raise InputFileError(f"{p}: a 0-d array (a scalar); needs at least 1-D (blocks run "
                             "along the last axis)")
    count = int(np.prod(shape, dtype=object))
    if count == 0:
        raise InputFileError(f"{p}: an empty array of shape {tuple(shape)}")
    need = count * dtype.itemsize
    if data_start + need > size:
        raise InputFileError(f"{p}: header claims shape {tuple(shape)} ({need} bytes) but the "
                             f"file holds {size - data_start} data bytes: truncated or corrupt")
    if mmap:
        return np.memmap(p, dtype=dtype, mode="r", offset=data_start, shape=tuple(shape),
                         order="F" if fortran else "C")
    with open(p, "rb") as f:
        f.seek(data_start)
        a = np.fromfile(f, dtype=dtype, count=count)
    return a.reshape(shape, order="F" if fortran else "C")

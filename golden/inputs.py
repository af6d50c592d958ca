"""Input validation and block views (numerics §1)."""

from __future__ import annotations

import ml_dtypes
import numpy as np

from semdialect.errors import InputTypeError, UsageError

__all__ = ["INPUT_DTYPES", "as_float32", "to_blocks", "input_dtype_name"]

INPUT_DTYPES = {
    np.dtype(np.float32): "float32",
    np.dtype(np.float16): "float16",
    np.dtype(ml_dtypes.bfloat16): "bfloat16",
}


def input_dtype_name(x: np.ndarray) -> str:
    try:
        return INPUT_DTYPES[np.asarray(x).dtype]
    except KeyError:
        raise InputTypeError(
            f"unsupported input dtype {np.asarray(x).dtype}: semdialect.golden accepts "
            "float32, float16 and bfloat16 (ml_dtypes.bfloat16) arrays"
        ) from None


def as_float32(x) -> np.ndarray:
    """Validate the dtype and widen to float32 (exact for all three input dtypes)."""
    if not isinstance(x, np.ndarray):
        raise InputTypeError(f"expected a numpy.ndarray, got {type(x).__name__}")
    input_dtype_name(x)
    if x.ndim == 0:
        raise UsageError("expected at least a 1-D array (blocks run along the last axis)")
    return np.ascontiguousarray(x, dtype=np.float32)


def to_blocks(x: np.ndarray, block_size: int) -> np.ndarray:
    """View (..., n) as (..., n // k, k). The last axis must be a multiple of k."""
    if not isinstance(block_size, (int, np.integer)) or block_size <= 0:
        raise UsageError(f"block_size must be a positive integer, got {block_size!r}")
    n = x.shape[-1]
    if n % block_size:
        raise UsageError(
            f"last axis of shape {tuple(x.shape)} is {n}, not a multiple of the block size "
            f"{block_size}; pad it (zeros never change a block's scale)"
        )
    return x.reshape(*x.shape[:-1], n // block_size, block_size)

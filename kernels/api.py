"""Host side of the Triton kernels: tables from the golden model, launch, result type.

    from semdialect.kernels import quantize
    q = quantize(x, "semdialect")        # x: float32 / float16 / bfloat16 torch tensor
    q.packed, q.scales, q.dialects, q.dequantize()

The outputs are exactly the golden layout (numerics §10): `packed` = golden
`qt.pack()` (two codes per byte, element 0 in the low nibble), `scales` = golden
`qt.scales` (E8M0 / UE4M3 bits), `dialects` = golden `qt.dialects`.

On CPU tensors the kernels run in Triton's interpreter, which must be switched on with
TRITON_INTERPRET=1 *before* this module is imported (tests/kernels/conftest.py does).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import torch
import triton

from semdialect import golden
from semdialect.errors import InputTypeError, UsageError
from semdialect.golden.bitaddress import element_address_bits, element_code_table
from semdialect.golden.dialects import address_luts, allowed_mask, default_selector
from semdialect.golden.formatbook import load_formatbook
from semdialect.golden.lut import DEFAULT_ERR_BITS, DEFAULT_FRAC_BITS
from semdialect.golden.scalar_formats import (
    E4M3_MAX,
    E4M3_MIN_NORMAL,
    F4_MAX,
    nvfp4_tensor_scale,
)
from semdialect.golden.two_level import build_two_level

from . import triton_kernels as tk

__all__ = ["quantize", "dequantize", "KernelQuantized", "FORMATS", "interpreted"]

FORMATS = ("semdialect", "mxfp4", "nvfp4")
_IN_KIND = {torch.float32: 0, torch.bfloat16: 1, torch.float16: 2}
_RAW = {torch.float32: torch.int32, torch.bfloat16: torch.int16, torch.float16: torch.int16}
# Blocks per program. The interpreter pays ~37 ms per program, so it gets many.
_BLOCKS_INTERPRETED = 1024
_BLOCKS_DEVICE = 64


def _f32_bits(v) -> int:
    return int(np.float32(v).view(np.int32))


# NVFP4 constants as float32 bits and the UE4M3 field layout, from the golden model
_NVFP4_CONSTANTS = {"F4_MAX_BITS": _f32_bits(F4_MAX), "SB_MIN_BITS": _f32_bits(E4M3_MIN_NORMAL),
                    "SB_MAX_BITS": _f32_bits(E4M3_MAX)}
_UE4M3_LAYOUT = {"SB_SHIFT": 23 - golden.UE4M3.mbits,
                 "SB_REBIAS": (127 - golden.UE4M3.bias) << golden.UE4M3.mbits}


def interpreted() -> bool:
    """True when the kernels were compiled for Triton's CPU interpreter."""
    from triton.runtime.interpreter import InterpretedFunction

    return isinstance(tk.shared_exponent_quant_kernel, InterpretedFunction)


@dataclass
class KernelQuantized:
    """A quantized tensor as the kernels write it (golden layout, device tensors)."""

    format: str
    block_size: int
    shape: tuple[int, ...]
    packed: torch.Tensor  # uint8 (..., n // 2)
    scales: torch.Tensor  # uint8 (..., n // block_size)
    dialects: torch.Tensor | None = None  # uint8 (..., n // block_size)
    tensor_scale: np.float32 | None = None  # nvfp4
    options: dict = field(default_factory=dict)

    def dequantize(self) -> torch.Tensor:
        return dequantize(self)


def _check(x, k: int) -> None:
    if not isinstance(x, torch.Tensor):
        raise InputTypeError(f"expected a torch.Tensor, got {type(x).__name__}")
    if x.dtype not in _IN_KIND:
        raise InputTypeError(f"unsupported input dtype {x.dtype}: the kernels take float32, "
                        "float16 and bfloat16 tensors")
    if x.ndim == 0:
        raise UsageError("expected at least a 1-D tensor (blocks run along the last axis)")
    if k < 2 or k & (k - 1):
        raise UsageError(f"the kernels need a power-of-two block size >= 2, got {k}")
    if x.shape[-1] % k:
        raise UsageError(f"last axis of shape {tuple(x.shape)} is {x.shape[-1]}, not a "
                         f"multiple of the block size {k}")
    if x.device.type == "cpu" and not interpreted():
        raise RuntimeError("CPU tensors need Triton's interpreter: set TRITON_INTERPRET=1 "
                           "before importing semdialect.kernels")


def _rows(x: torch.Tensor):
    """(raw int view (rows, n) with its strides, in-kind). 2-D inputs keep their strides
    (any layout); higher ranks are flattened (a copy only where torch needs one)."""
    x2 = x if x.ndim == 2 else x.reshape(-1, x.shape[-1])
    raw = x2.view(_RAW[x.dtype])
    return raw, raw.stride(0), raw.stride(1)


def _grid(n_blocks: int, g: int):
    return (triton.cdiv(n_blocks, g),)


def _per_program(g: int | None) -> int:
    if g is None:
        return _BLOCKS_INTERPRETED if interpreted() else _BLOCKS_DEVICE
    if g < 1 or g & (g - 1):
        raise UsageError(f"blocks_per_program must be a power of two, got {g}")
    return g


@lru_cache(maxsize=32)
def _dialect_tables(book, frac_bits: int, err_bits: int, device: str):
    luts = golden.build_luts(book, frac_bits, err_bits)
    fine = max(luts.frac_bits, luts.idx_frac_bits)
    err, idx = address_luts(luts, fine)
    return (torch.as_tensor(np.ascontiguousarray(err, dtype=np.int32), device=device),
            torch.as_tensor(np.ascontiguousarray(idx), device=device), fine, int(err.max()))


@lru_cache(maxsize=8)
def _e2m1_table(device: str):
    return torch.as_tensor(np.array(element_code_table(golden.E2M1)), device=device)


def _candidates_and_mask(allowed, candidates, n_blocks: int, n_dialects: int, device):
    """Candidate ids (ascending int32) and an optional (n_blocks, D) uint8 mask."""
    if candidates is not None:
        ids = np.unique(np.asarray(candidates, dtype=np.int64))
        if ids.size == 0 or ids[0] < 0 or ids[-1] >= n_dialects:
            raise UsageError(f"candidate dialect ids must be in 0..{n_dialects - 1}")
    else:
        ids = np.arange(n_dialects)
    mask = None
    if allowed is not None:
        if isinstance(allowed, torch.Tensor):
            allowed = allowed.cpu().numpy()
        m = allowed_mask(allowed, n_blocks, n_dialects)
        if m.ndim == 1:
            ids = ids[m[ids]]
            if ids.size == 0:
                raise UsageError("allowed mask and candidates leave no dialect")
        else:
            if not m[:, ids].any(axis=-1).all():
                raise UsageError("allowed mask leaves a block with no candidate dialect")
            mask = torch.as_tensor(np.ascontiguousarray(m, dtype=np.uint8), device=device)
    return torch.as_tensor(ids.astype(np.int32), device=device), mask


def quantize(x: torch.Tensor, fmt: str, *, block_size: int | None = None, formatbook=None,
             frac_bits: int = DEFAULT_FRAC_BITS, err_bits: int = DEFAULT_ERR_BITS,
             selector: str | None = None, allowed=None, candidates=None, tensor_amax=None,
             blocks_per_program: int | None = None) -> KernelQuantized:
    """Quantize x in blocks along its last axis, bit-exact with `golden.quantize`.

    semdialect: ``formatbook`` (default: golden's), ``selector`` ('lut' exhaustive |
    'two-level'; default by book, as golden), ``frac_bits``, ``err_bits``, ``allowed``
    (dialect ids, a (D,) or (n_blocks, D) bool mask: SeDA) as golden, and
    ``candidates``: the dialect ids the exhaustive selector searches (default all).
    nvfp4: ``tensor_amax``.
    """
    if fmt not in FORMATS:
        raise UsageError(f"unknown kernel format {fmt!r}; kernels exist for {', '.join(FORMATS)}")
    k = block_size or (16 if fmt == "nvfp4" else 32)
    if fmt == "nvfp4" and k != 16:
        raise UsageError(f"nvfp4 uses blocks of 16 elements, got block_size={k}")
    _check(x, k)
    g = _per_program(blocks_per_program)
    dev = x.device
    raw, sr, sc = _rows(x)
    rows, n = raw.shape
    bpr = n // k
    n_blocks = rows * bpr
    lead = tuple(x.shape[:-1])
    packed = torch.empty((rows, n // 2), dtype=torch.uint8, device=dev)
    scales = torch.empty(n_blocks, dtype=torch.uint8, device=dev)
    kind = _IN_KIND[x.dtype]
    out = KernelQuantized(fmt, k, tuple(x.shape), packed, scales)
    if fmt == "nvfp4":
        if tensor_amax is None:
            a = x.abs()
            fin = torch.where(torch.isfinite(a), a, torch.zeros((), dtype=a.dtype, device=dev))
            tensor_amax = fin.max().float().cpu().numpy() if fin.numel() else np.float32(0)
        st = nvfp4_tensor_scale(tensor_amax)
        inv = np.float32(1) / st  # the golden model's own float32 division
        if n_blocks:
            tk.nvfp4_quant_kernel[_grid(n_blocks, g)](
                raw, sr, sc, n_blocks, bpr, int(st.view(np.int32)), int(inv.view(np.int32)),
                _e2m1_table(str(dev)), packed, n // 2, scales, IN_KIND=kind, G=g,
                **_NVFP4_CONSTANTS, **_UE4M3_LAYOUT)
        out.tensor_scale = st
    elif fmt == "mxfp4":
        tab = _e2m1_table(str(dev))
        if n_blocks:
            tk.shared_exponent_quant_kernel[_grid(n_blocks, g)](
                raw, sr, sc, n_blocks, bpr, tab, tab, tab, 0, tab, 1,
                packed, n // 2, scales, scales,
                IN_KIND=kind, K=k, G=g, EMAX=golden.E2M1.emax,
                FINE=element_address_bits(golden.E2M1), N_ADDR=tab.numel(), SELECT=0,
                HAS_MASK=False)
    else:
        book = load_formatbook(formatbook or golden.DEFAULT_SEMDIALECT_BOOK)
        selector = selector or default_selector(book)
        if selector not in ("lut", "two-level"):
            raise UsageError(f"the kernels implement selector 'lut' and 'two-level', got "
                             f"{selector!r}")
        err, idx, fine, err_max = _dialect_tables(book, int(frac_bits), int(err_bits),
                                                  str(dev))
        if k * err_max >= 1 << 31:
            raise UsageError(f"block size {k} x error LUT entries {err_max} overflow int32")
        if selector == "two-level" and candidates is not None:
            raise UsageError("candidates are the exhaustive selector's; two-level searches "
                             "the block's class")
        cand, mask = _candidates_and_mask(allowed, candidates, n_blocks, book.num_dialects,
                                          dev)
        classes = {}
        if selector == "two-level":
            tables = build_two_level(book, frac_bits, err_bits)
            cand = torch.as_tensor(np.ascontiguousarray(tables.class_ids, dtype=np.int32),
                                   device=dev)
            if mask is None and allowed is not None:  # (D,) mask / ids: same for all blocks
                m = allowed_mask(np.asarray(allowed), n_blocks, book.num_dialects)
                mask = torch.as_tensor(np.ascontiguousarray(
                    np.broadcast_to(m, (n_blocks, m.shape[-1])), dtype=np.uint8), device=dev)
            classes = dict(N_CLASSES=tables.num_classes, CLASS_SIZE=tables.k,
                           CLASS_BITS=book.class_bits,
                           CLASS_DROP=fine - (book.class_bits - book.emax))
        dialects = torch.empty(n_blocks, dtype=torch.uint8, device=dev)
        if n_blocks:
            tk.shared_exponent_quant_kernel[_grid(n_blocks, g)](
                raw, sr, sc, n_blocks, bpr, err, idx, cand, cand.numel(),
                mask if mask is not None else cand, book.num_dialects,
                packed, n // 2, scales, dialects,
                IN_KIND=kind, K=k, G=g, EMAX=book.emax, FINE=fine, N_ADDR=err.shape[1],
                SELECT=1 if selector == "lut" else 2, HAS_MASK=mask is not None, **classes)
        out.dialects = dialects.reshape(*lead, bpr)
        out.options = {"formatbook": book, "selector": selector, "frac_bits": frac_bits,
                       "err_bits": err_bits}
    out.packed = packed.reshape(*lead, n // 2)
    out.scales = scales.reshape(*lead, bpr)
    return out


@lru_cache(maxsize=16)
def _magnitudes(book, device: str):
    return torch.as_tensor(book.magnitudes.astype(np.int32), device=device)


@lru_cache(maxsize=8)
def _e2m1_halves(device: str):
    halves = np.ldexp(golden.E2M1.magnitudes, 1).astype(np.int32)  # exact: 0 .. 12
    return torch.as_tensor(halves.reshape(1, 8), device=device)


def dequantize(q: KernelQuantized, blocks_per_program: int | None = None) -> torch.Tensor:
    """float32 values of a KernelQuantized (NaN for NaN/Inf blocks), bit-exact with the
    golden `dequantize`."""
    g = _per_program(blocks_per_program)
    dev = q.packed.device
    n = q.shape[-1]
    packed = q.packed.reshape(-1, n // 2).contiguous()
    rows = packed.shape[0]
    bpr = n // q.block_size
    n_blocks = rows * bpr
    out = torch.empty((rows, n), dtype=torch.float32, device=dev)
    scales = q.scales.reshape(-1).contiguous()
    if n_blocks == 0:
        return out.reshape(q.shape)
    if q.format == "nvfp4":
        tk.nvfp4_dequant_kernel[_grid(n_blocks, g)](
            packed, n // 2, scales, int(np.float32(q.tensor_scale).view(np.int32)),
            _e2m1_halves(str(dev)), out, n, n_blocks, bpr, G=g, **_UE4M3_LAYOUT)
    elif q.format == "mxfp4":
        tk.shared_exponent_dequant_kernel[_grid(n_blocks, g)](
            packed, n // 2, scales, scales, _e2m1_halves(str(dev)), out, n, n_blocks, bpr,
            K=q.block_size, G=g, GRID_BITS=1, HAS_DIALECTS=False)
    else:
        book = q.options["formatbook"]
        tk.shared_exponent_dequant_kernel[_grid(n_blocks, g)](
            packed, n // 2, scales, q.dialects.reshape(-1).contiguous(),
            _magnitudes(book, str(dev)), out, n, n_blocks, bpr,
            K=q.block_size, G=g, GRID_BITS=book.grid_frac_bits, HAS_DIALECTS=True)
    return out.reshape(q.shape)

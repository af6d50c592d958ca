"""semdialect.golden: the bit-accurate NumPy golden model of every format.

The single numeric truth of the project (docs/numerics.md). Public API::

    qt = semdialect.golden.quantize(x, "semdialect")   # -> QuantizedTensor
    qt.codes, qt.scales, qt.dialects, qt.dequantize(), qt.pack()
    semdialect.golden.FORMATS                           # every format name
"""

from __future__ import annotations

from semdialect.errors import InputTypeError, UsageError

from .dialects import DialectFormat
from .elements import E2M1, E2M3, E3M2, E4M3, E5M2, INT8_MX, UE4M3, decode_e8m0, encode_e8m0
from .formatbook import BUILTIN_BOOKS, Formatbook, FormatbookError, load_formatbook
from .inputs import as_float32
from .lut import DEFAULT_ERR_BITS, DEFAULT_FRAC_BITS, LutSet, build_luts
from .quantized import QuantizedTensor, pack_codes, unpack_codes
from .scalar_formats import MX_FORMATS, Int4Format, NVFP4Format
from .two_level import TwoLevelTables, build_two_level

__all__ = [
    "quantize",
    "dequantize",
    "FORMATS",
    "QuantizedTensor",
    "Formatbook",
    "FormatbookError",
    "load_formatbook",
    "BUILTIN_BOOKS",
    "build_luts",
    "LutSet",
    "build_two_level",
    "TwoLevelTables",
    "pack_codes",
    "unpack_codes",
    "encode_e8m0",
    "decode_e8m0",
    "E2M1", "E2M3", "E3M2", "E4M3", "E5M2", "UE4M3", "INT8_MX",
    "DEFAULT_FRAC_BITS",
    "DEFAULT_ERR_BITS",
]

#: The book format `semdialect` uses by default (numerics §15.7); kernels follow it.
DEFAULT_SEMDIALECT_BOOK = "semdialect-32c8x8"

_IMPLS = {
    **MX_FORMATS,
    "nvfp4": NVFP4Format(),
    "int4": Int4Format(),
    "dialectfp4": DialectFormat("dialectfp4", "dialectfp4", selector="two-stage"),
    # default: two-level selection on the class-structured book (numerics §15.7); the
    # selector defaults by book: 'two-level' for class books, 'lut' otherwise
    "semdialect": DialectFormat("semdialect", DEFAULT_SEMDIALECT_BOOK, selector=None),
}

#: Every format name `quantize` accepts.
FORMATS: tuple[str, ...] = tuple(_IMPLS)


def quantize(x, fmt: str, **options) -> QuantizedTensor:
    """Quantize `x` (float32 / float16 / bfloat16 ndarray) in blocks along its last axis.

    Options (all keyword): ``block_size`` (every format); ``tensor_amax`` (nvfp4);
    ``formatbook`` (name or path), ``selector`` ('lut' | 'mse' | 'two-stage' | 'two-level'),
    ``frac_bits``, ``err_bits``, ``allowed`` (dialect ids or a bool mask per block)
    for the dialect formats. See docs/numerics.md.
    """
    try:
        impl = _IMPLS[fmt]
    except (KeyError, TypeError):
        raise UsageError(f"unknown format {fmt!r}; known formats: {', '.join(FORMATS)}") from None
    x32 = as_float32(x)
    import inspect

    params = inspect.signature(impl.quantize).parameters
    unknown = [k for k in options if k not in params]
    if unknown:
        raise InputTypeError(
            f"format {fmt!r} does not take option(s) {', '.join(unknown)}; "
            f"it takes: {', '.join(p for p in params if p != 'x32')}"
        )
    return impl.quantize(x32, **options)


def dequantize(qt: QuantizedTensor):
    return qt.dequantize()

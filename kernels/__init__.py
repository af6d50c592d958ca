"""semdialect.kernels: Triton kernels bit-exact with the golden model (numerics §16).

Fused quantize / dequantize for `semdialect` (exhaustive LUT-engine selector over a
candidate set, optional SeDA mask), `mxfp4` and `nvfp4`, from float32 / float16 /
bfloat16 tensors, writing the golden layout. Needs the `kernels` extra (triton). On CPU
tensors the kernels run in Triton's interpreter (TRITON_INTERPRET=1 set before import).
"""

from __future__ import annotations

from .api import FORMATS, KernelQuantized, dequantize, interpreted, quantize

__all__ = ["quantize", "dequantize", "KernelQuantized", "FORMATS", "interpreted"]

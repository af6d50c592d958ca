"""semdialect.rtl: Amaranth generators of the streaming block quantizers.

Units (`semdialect.rtl.units`): `SemDialectQuantizer` (SemanticDialect LUT engine,
numerics §8), `SemDialectTwoLevel` (two-level selector on a class-structured book, §15),
`DialectFP4TwoStage` (BlockDialect selector, §9), `MXFP4Quantizer` (§4).
Stages (`semdialect.rtl.stages`) are separately testable components. Verilog and the
JSON manifest: `semdialect.rtl.generate` / `semdialect rtl generate`. See
docs/architecture.md.
"""

from .stages import INPUT_FORMATS, InputFormat
from .units import (
    BLOCK_SIZES,
    DialectFP4TwoStage,
    MXFP4Quantizer,
    SemDialectQuantizer,
    SemDialectTwoLevel,
)

__all__ = [
    "SemDialectQuantizer",
    "SemDialectTwoLevel",
    "DialectFP4TwoStage",
    "MXFP4Quantizer",
    "INPUT_FORMATS",
    "InputFormat",
    "BLOCK_SIZES",
]

"""semdialect: block-wise mixed-format 4-bit quantization (SemanticDialect) co-design kit.

Rooms: `semdialect.golden` (NumPy golden model), `semdialect.rtl` (Amaranth datapath),
`semdialect.sim` (simulation / synthesis flows), `semdialect.sw` (PyTorch frontend).
"""

__version__ = "0.1.0"

"""semdialect.sw: the PyTorch frontend (issue #5).

- `semdialect.sw.vectors`: test-vector files (safetensors + manifest), pure NumPy:
  ``load_vectors(path) -> (tensors, manifest)``.
- `semdialect.sw.models`: tiny random-weight video DiTs and local-checkpoint loading.
- `semdialect.sw.capture`: hooks on nn.Linear inputs and attention q/k, the denoising loop.
- `semdialect.sw.quant`: torch reference quantizers, bit-identical to `semdialect.golden`.
- `semdialect.sw.fakequant`: quantize-dequantize wrappers, per-layer SQNR, end-to-end error.
- `semdialect.sw.synthetic`: synthetic activation profiles (labelled as such).

Importing this package does not import torch; only the sub-modules that need it do.
"""

from .vectors import load_vectors, save_vectors

__all__ = ["load_vectors", "save_vectors"]

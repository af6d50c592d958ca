"""semdialect.sw: the PyTorch frontend (issue #5).

- `semdialect.sw.vectors`: test-vector files (safetensors + manifest), pure NumPy:
  ``load_vectors(path) -> (tensors, manifest)``.
- `semdialect.sw.models`: tiny random-weight video DiTs and local-checkpoint loading.
- `semdialect.sw.capture`: hooks on nn.Linear inputs and attention q/k, the denoising loop.
- `semdialect.sw.quant`: torch reference quantizers, bit-identical to `semdialect.golden`.
- `semdialect.sw.fakequant`: quantize-dequantize wrappers, per-layer SQNR, end-to-end error.
- `semdialect.sw.synthetic`: synthetic activation profiles (labelled as such).
- `semdialect.sw.video_task`: the seeded procedural text-to-video (sprite) task.
- `semdialect.sw.trained` / `train`: the trained tiny models (shipped weights in
  `weights/`) and their rectified-flow training (`semdialect train`).
- `semdialect.sw.stats`: activation statistics (`semdialect stats`).
- `semdialect.sw.video_e2e`: video PSNR, temporal consistency, sample grid and GIF.

Importing this package does not import torch; only the sub-modules that need it do.
"""

from .vectors import load_vectors, save_vectors

__all__ = ["load_vectors", "save_vectors"]

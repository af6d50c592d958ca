"""The trained tiny models: how each one sees the sprite task, and loading the shipped
weights.

`trained-wan-tiny` (WanTransformer3DModel, self + cross attention) and
`trained-mmdit-tiny` (FluxTransformer2DModel, joint attention: Open-Sora 2.0's
structure) are the registry configs of sw/models.py trained by sw/train.py on
sw/video_task.py. One safetensors file per model holds the transformer
(`transformer.*`) and the caption encoder (`text.*`); a JSON manifest next to it says how
it was made (command, seed, steps, losses, versions, sha256).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch

from . import video_task as vt

__all__ = ["TASKS", "TaskView", "WEIGHTS_DIR", "weights_path", "manifest_path",
           "load_trained", "CaptionConditioner", "sha256_file", "clip_latent", "VAL_SEED"]

VAL_SEED = 2  # validation clips: video_task.sample(VAL_SEED, i) (= TrainConfig.val_seed)

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


@dataclass(frozen=True)
class TaskView:
    """How one model family sees a clip: space-to-depth factor and latent layout."""

    family: str  # "wan" (n, C, f, h, w) | "mmdit" (n, f*h*w, C)
    factor: int  # space-to-depth factor r: latent channels = 4 r^2
    text_dim: int
    geometry: vt.VideoGeometry = vt.VideoGeometry()

    def to_latent(self, video: torch.Tensor) -> torch.Tensor:
        lat = vt.space_to_depth(video, self.factor)  # n, C, f, h, w
        if self.family == "mmdit":
            n, c = lat.shape[:2]
            lat = lat.permute(0, 2, 3, 4, 1).reshape(n, -1, c)  # tokens in (t, h, w) order
        return lat

    def to_video(self, latent: torch.Tensor) -> torch.Tensor:
        g, r = self.geometry, self.factor
        if self.family == "mmdit":
            n, _, c = latent.shape
            latent = latent.reshape(n, g.frames, g.height // r, g.width // r, c)
            latent = latent.permute(0, 4, 1, 2, 3)
        return vt.depth_to_space(latent, r)

    def text_inputs(self, h: torch.Tensor, pooled: torch.Tensor) -> dict:
        if self.family == "mmdit":
            return {"encoder_hidden_states": h, "pooled_projections": pooled}
        return {"encoder_hidden_states": h}


TASKS = {
    "trained-wan-tiny": TaskView("wan", 2, 64),
    "trained-mmdit-tiny": TaskView("mmdit", 4, 64),
}


def weights_path(name: str) -> Path:
    return WEIGHTS_DIR / f"{name}.safetensors"


def manifest_path(weights: Path) -> Path:
    return Path(str(weights) + ".manifest.json")


def sha256_file(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class CaptionConditioner:
    """Text inputs of a trained model: a caption (given, or drawn from the task with the
    sampling generator) for the cond branch and the empty caption for uncond."""

    def __init__(self, encoder: vt.TextEncoder, view: TaskView, prompt: str | None = None,
                 prompt_seed: int = 7):
        self.encoder, self.view, self.prompt, self.prompt_seed = encoder, view, prompt, \
            prompt_seed
        self.last_caption: str | None = None

    def encode(self, captions: list[str], dtype=torch.float32) -> dict:
        ids = torch.tensor([vt.tokenize(c) for c in captions], dtype=torch.long)
        dev = next(self.encoder.parameters()).device
        with torch.no_grad():
            h, pooled = self.encoder(ids.to(dev))
        return self.view.text_inputs(h.to(dtype), pooled.to(dtype))

    def pair(self, g: torch.Generator, dtype) -> tuple[dict, dict]:
        cap = self.prompt
        if cap is None:  # a caption of the task, picked by the sampling seed
            idx = int(torch.randint(0, 1 << 30, (1,), generator=g))
            _, cap = vt.sample(self.prompt_seed, idx, self.view.geometry)
        self.last_caption = cap
        return self.encode([cap], dtype), self.encode([""], dtype)


def build_untrained(spec, view: TaskView, seed: int):
    """Fresh (random-init) transformer + caption encoder of a trained model's config."""
    import diffusers

    cls = getattr(diffusers, spec.cls_name)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        module = cls(**spec.tiny_config)
        enc = vt.TextEncoder(view.text_dim)
    return module, enc


def split_state(sd: dict) -> tuple[dict, dict]:
    tr = {k[len("transformer."):]: v for k, v in sd.items() if k.startswith("transformer.")}
    tx = {k[len("text."):]: v for k, v in sd.items() if k.startswith("text.")}
    return tr, tx


def load_trained(spec, checkpoint: str | None = None, dtype=torch.float32, device="cpu",
                 video: dict | None = None, seed: int = 0, prompt: str | None = None):
    """A trained model: the shipped weights (or `checkpoint`, a file written by
    `semdialect train`), strictly loaded; raises ValueError/FileNotFoundError clearly."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from .models import LoadedModel

    view = TASKS[spec.name]
    if video and any(video.get(k) not in (None, spec.video[k]) for k in spec.video):
        raise ValueError(f"{spec.name} was trained on {spec.video} latent frames/height/width; "
                         "it cannot change the video size")
    path = Path(checkpoint) if checkpoint else weights_path(spec.name)
    if not path.exists():
        raise FileNotFoundError(f"trained weights {path} do not exist (run `semdialect train "
                                f"--model {spec.name} -o {path}`)")
    try:
        sd = load_file(str(path))
    except (SafetensorError, OSError) as e:
        raise ValueError(f"{path} is not a readable safetensors file: {e}") from None
    module, enc = build_untrained(spec, view, seed)
    tr, tx = split_state(sd)
    for part, sub, where in ((module, tr, "transformer"), (enc, tx, "text encoder")):
        try:
            part.load_state_dict(sub, strict=True)
        except RuntimeError as e:
            raise ValueError(f"incompatible trained weights {path} ({where}) for {spec.name}: "
                             f"{str(e).splitlines()[0][:300]}") from None
    module = module.to(device=device, dtype=dtype).eval()
    enc = enc.to(device=device).eval()
    man = {}
    if manifest_path(path).exists():
        man = json.loads(manifest_path(path).read_text())
    sha = sha256_file(path)
    steps = man.get("steps", "?")
    label = (f"{spec.name}: TRAINED tiny {spec.family} ({spec.cls_name}), rectified flow "
             f"on the procedural sprite task, {steps} steps on CPU; weights {path.name} "
             f"(sha256 {sha[:12]})")
    return LoadedModel(spec, module, "checkpoint", str(path), seed, dict(spec.video),
                       conditioner=CaptionConditioner(enc, view, prompt), label=label)


def clip_latent(lm, index: int, start: float) -> dict:
    """denoise() arguments that start from validation clip `index` at sigma `start`; the
    conditioner's prompt becomes that clip's caption."""
    if lm.conditioner is None:
        raise ValueError(f"{lm.spec.name}: starting from a clip needs a trained-* model")
    if not 0 < start <= 1:
        raise ValueError(f"the start sigma must be in (0, 1], got {start}")
    view = lm.conditioner.view
    video, cap = vt.sample(VAL_SEED, index, view.geometry)
    lm.conditioner.prompt = cap
    return {"init": view.to_latent(torch.from_numpy(video)[None]), "start": float(start)}

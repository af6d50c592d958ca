"""A seeded procedural text-to-video task that tiny video DiTs can learn on a CPU.

Each sample is a short clip of 1-2 sprites (a shape with a colour and a size) that move,
bounce, rotate or change colour over a textured background, and a caption that says so:

    "a small red circle moves left and a large blue square rotates on a striped background"

Frames are rendered directly as float tensors in [-1, 1] with 4 channels per pixel: RGB
plus the sprites' coverage (alpha). There is no VAE: a model's "latent" is the clip
itself, rearranged from space to depth (`space_to_depth`): an r x r pixel patch becomes
4 r^2 channels, so r = 2 gives Wan 2.1's 16 latent channels and r = 4 gives Open-Sora
2.0's 64 packed channels (docs/frontend.md, "Trained tiny models").

Captions are tokenized word by word with a fixed vocabulary read off the caption grammar
(`VOCAB`); `TextEncoder` (token + position embedding and one LayerNorm, trained with the
model) turns token ids into encoder hidden states. The empty caption (all padding) is the
unconditional branch of classifier-free guidance.

Everything is a pure function of (seed, index): `sample(seed, i)` never depends on what
was drawn before, so training batches, validation sets and sampling prompts are
reproducible one by one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["COLOURS", "SHAPES", "SIZES", "MOTIONS", "BACKGROUNDS", "VOCAB", "MAX_TOKENS",
           "VideoGeometry", "Sprite", "Scene", "random_scene", "caption", "render",
           "tokenize", "detokenize", "sample", "batch", "space_to_depth", "depth_to_space",
           "TextEncoder"]

COLOURS = {"red": (0.9, 0.15, 0.1), "green": (0.15, 0.8, 0.2), "blue": (0.15, 0.3, 0.95),
           "yellow": (0.95, 0.85, 0.1), "cyan": (0.1, 0.85, 0.9), "magenta": (0.85, 0.15, 0.8),
           "white": (0.95, 0.95, 0.95), "orange": (0.95, 0.5, 0.05)}
SHAPES = ("circle", "square", "triangle")
SIZES = {"small": 3.5, "large": 6.0}  # circumradius in pixels at 32 x 32
MOTIONS = ("moves left", "moves right", "moves up", "moves down", "bounces", "rotates",
           "turns")  # "turns" is followed by the target colour: "turns green"
BACKGROUNDS = ("plain", "striped", "checkered", "cloudy")
_WORDS = ["<pad>", "a", "and", "on", "background"] + list(SIZES) + list(COLOURS) + \
    list(SHAPES) + ["moves", "left", "right", "up", "down", "bounces", "rotates", "turns"] + \
    list(BACKGROUNDS)
VOCAB = {w: i for i, w in enumerate(dict.fromkeys(_WORDS))}
# "a S C shape turns C2" (6) + "and" + 6 + "on a B background" (4)
MAX_TOKENS = 17
PAD = 0


@dataclass(frozen=True)
class VideoGeometry:
    frames: int = 4
    height: int = 32
    width: int = 32


@dataclass(frozen=True)
class Sprite:
    shape: str
    colour: str
    size: str
    motion: str
    target: str | None  # colour at the last frame for "turns"
    x: float  # centre at frame 0, pixels
    y: float
    angle: float  # radians at frame 0


@dataclass(frozen=True)
class Scene:
    sprites: tuple
    background: str
    bg_colour: tuple
    bg_phase: float
    bg_freq: float
    bg_angle: float


def random_scene(rng: np.random.Generator, geo: VideoGeometry = VideoGeometry()) -> Scene:
    n = 1 + int(rng.random() < 0.5)
    colours = list(COLOURS)
    sprites = []
    for _ in range(n):
        shape = SHAPES[rng.integers(len(SHAPES))]
        motions = [m for m in MOTIONS if not (shape == "circle" and m == "rotates")]
        motion = motions[rng.integers(len(motions))]
        colour = colours[rng.integers(len(colours))]
        target = None
        if motion == "turns":
            others = [c for c in colours if c != colour]
            target = others[rng.integers(len(others))]
        size = list(SIZES)[rng.integers(len(SIZES))]
        r = SIZES[size] * geo.width / 32
        margin = r + 1 + _speed(geo) * (geo.frames - 1) / 2  # stays inside the frame
        x = float(rng.uniform(margin, geo.width - margin))
        y = float(rng.uniform(margin, geo.height - margin))
        sprites.append(Sprite(shape, colour, size, motion, target, x, y,
                              float(rng.uniform(0, math.pi))))
    bg = BACKGROUNDS[rng.integers(len(BACKGROUNDS))]
    base = tuple(float(v) for v in rng.uniform(0.05, 0.35, 3))
    return Scene(tuple(sprites), bg, base, float(rng.uniform(0, 2 * math.pi)),
                 float(rng.uniform(0.25, 0.6)), float(rng.uniform(0, math.pi)))


def _speed(geo: VideoGeometry) -> float:
    """Pixels per frame of a moving sprite (whole clip spans ~1/3 of the frame)."""
    return geo.width / 3 / max(geo.frames - 1, 1)


def caption(scene: Scene) -> str:
    parts = []
    for s in scene.sprites:
        motion = f"turns {s.target}" if s.motion == "turns" else s.motion
        parts.append(f"a {s.size} {s.colour} {s.shape} {motion}")
    return " and ".join(parts) + f" on a {scene.background} background"


def tokenize(text: str, length: int = MAX_TOKENS) -> list[int]:
    """Word-level ids, padded with <pad> (0) to `length`; unknown words are an error."""
    words = text.split()
    if len(words) > length:
        raise ValueError(f"caption has {len(words)} words, more than {length}: {text!r}")
    try:
        ids = [VOCAB[w] for w in words]
    except KeyError as e:
        raise ValueError(f"word {e.args[0]!r} is not in the caption vocabulary "
                         f"({', '.join(VOCAB)})") from None
    return ids + [PAD] * (length - len(ids))


def detokenize(ids) -> str:
    inv = {i: w for w, i in VOCAB.items()}
    return " ".join(inv[int(i)] for i in ids if int(i) != PAD)


def _background(scene: Scene, geo: VideoGeometry) -> np.ndarray:
    yy, xx = np.meshgrid(np.arange(geo.height), np.arange(geo.width), indexing="ij")
    base = np.array(scene.bg_colour, np.float32)[:, None, None]
    if scene.background == "plain":
        pat = np.zeros_like(xx, dtype=np.float32)
    elif scene.background == "striped":
        u = xx * math.cos(scene.bg_angle) + yy * math.sin(scene.bg_angle)
        pat = 0.5 * np.sin(scene.bg_freq * 2.5 * u + scene.bg_phase)
    elif scene.background == "checkered":
        c = 4 + int(scene.bg_freq * 6)
        pat = (((xx // c) + (yy // c)) % 2 - 0.5).astype(np.float32)
    else:  # cloudy: a few seeded low-frequency waves
        pat = np.zeros_like(xx, dtype=np.float32)
        for k in range(3):
            a = scene.bg_angle + k * 2.1
            u = xx * math.cos(a) + yy * math.sin(a)
            pat += 0.3 * np.sin((0.2 + 0.15 * k) * u + scene.bg_phase * (k + 1))
    return np.clip(base + 0.25 * pat[None], 0.0, 1.0).astype(np.float32)


def _mask(shape: str, cx, cy, r, angle, geo: VideoGeometry) -> np.ndarray:
    """Anti-aliased coverage in [0, 1] from a signed distance (about 1 pixel soft edge)."""
    yy, xx = np.meshgrid(np.arange(geo.height) + 0.5, np.arange(geo.width) + 0.5,
                         indexing="ij")
    dx, dy = xx - cx, yy - cy
    if shape == "circle":
        d = np.sqrt(dx * dx + dy * dy) - r
    else:
        c, s = math.cos(angle), math.sin(angle)
        u, v = c * dx + s * dy, -s * dx + c * dy
        if shape == "square":
            h = r / math.sqrt(2)
            d = np.maximum(np.abs(u), np.abs(v)) - h
        else:  # equilateral triangle, circumradius r: max over the 3 edge normals
            d = np.full_like(u, -np.inf)
            for k in range(3):
                a = k * 2 * math.pi / 3 + math.pi / 2
                d = np.maximum(d, u * math.cos(a) + v * math.sin(a) - r / 2)
    return np.clip(0.5 - d, 0.0, 1.0).astype(np.float32)


def render(scene: Scene, geo: VideoGeometry = VideoGeometry()) -> np.ndarray:
    """(frames, 4, height, width) float32 in [-1, 1]: RGB and sprite coverage."""
    bg = _background(scene, geo)
    out = np.empty((geo.frames, 4, geo.height, geo.width), np.float32)
    sp = _speed(geo)
    for f in range(geo.frames):
        rgb = bg.copy()
        cover = np.zeros((geo.height, geo.width), np.float32)
        tf = f / max(geo.frames - 1, 1)
        for s in scene.sprites:
            x, y, ang = s.x, s.y, s.angle
            col = np.array(COLOURS[s.colour], np.float32)
            off = sp * (f - (geo.frames - 1) / 2)
            if s.motion == "moves left":
                x -= off
            elif s.motion == "moves right":
                x += off
            elif s.motion == "moves up":
                y -= off
            elif s.motion == "moves down":
                y += off
            elif s.motion == "bounces":  # up and back down, |sin| over the clip
                y -= 1.5 * sp * abs(math.sin(math.pi * tf * 1.5))
            elif s.motion == "rotates":
                ang += f * math.pi / 6
            elif s.motion == "turns":
                col = (1 - tf) * col + tf * np.array(COLOURS[s.target], np.float32)
            r = SIZES[s.size] * geo.width / 32
            m = _mask(s.shape, x, y, r, ang, geo)
            rgb = rgb * (1 - m[None]) + col[:, None, None] * m[None]
            cover = np.maximum(cover, m)
        out[f, :3] = rgb
        out[f, 3] = cover
    return out * 2.0 - 1.0


def _rng(seed: int, index: int) -> np.random.Generator:
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, int(index) & 0xFFFFFFFF, 0x5D1A])


def sample(seed: int, index: int, geo: VideoGeometry = VideoGeometry()):
    """(video (frames, 4, H, W), caption) for one (seed, index)."""
    sc = random_scene(_rng(seed, index), geo)
    return render(sc, geo), caption(sc)


def batch(seed: int, start: int, n: int, geo: VideoGeometry = VideoGeometry()):
    """Videos (n, frames, 4, H, W) as a torch tensor, token ids (n, MAX_TOKENS), captions."""
    vids, caps = zip(*(sample(seed, start + i, geo) for i in range(n)))
    ids = torch.tensor([tokenize(c) for c in caps], dtype=torch.long)
    return torch.from_numpy(np.stack(vids)), ids, list(caps)


def space_to_depth(video: torch.Tensor, r: int) -> torch.Tensor:
    """(n, frames, C, H, W) -> (n, C r^2, frames, H/r, W/r); channel index
    c * r^2 + dy * r + dx (pixel (r*i + dy, r*j + dx) of channel c)."""
    n, f, c, h, w = video.shape
    if h % r or w % r:
        raise ValueError(f"frame {h}x{w} is not a multiple of the space-to-depth factor {r}")
    x = video.reshape(n, f, c, h // r, r, w // r, r)
    x = x.permute(0, 2, 4, 6, 1, 3, 5)  # n, c, dy, dx, f, h', w'
    return x.reshape(n, c * r * r, f, h // r, w // r)


def depth_to_space(latent: torch.Tensor, r: int, channels: int = 4) -> torch.Tensor:
    """Inverse of `space_to_depth`: (n, C r^2, frames, h, w) -> (n, frames, C, h r, w r)."""
    n, _, f, h, w = latent.shape
    x = latent.reshape(n, channels, r, r, f, h, w).permute(0, 4, 1, 5, 2, 6, 3)
    return x.reshape(n, f, channels, h * r, w * r)


class TextEncoder(torch.nn.Module):
    """Token + learned position embedding, LayerNorm: (n, L) ids -> (n, L, dim).
    `pooled` (for MMDiT's pooled projection) is the mean over non-pad tokens, or a learned
    null vector for the empty caption."""

    def __init__(self, dim: int, vocab: int = len(VOCAB), length: int = MAX_TOKENS):
        super().__init__()
        self.tok = torch.nn.Embedding(vocab, dim)
        self.pos = torch.nn.Parameter(torch.zeros(length, dim))
        self.norm = torch.nn.LayerNorm(dim)
        self.null = torch.nn.Parameter(torch.zeros(dim))
        torch.nn.init.normal_(self.tok.weight, std=1.0)
        torch.nn.init.normal_(self.pos, std=0.1)

    def forward(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.norm(self.tok(ids) + self.pos[: ids.shape[1]])
        keep = (ids != PAD).to(h.dtype)[..., None]
        cnt = keep.sum(1)
        pooled = (h * keep).sum(1) / cnt.clamp(min=1)
        pooled = torch.where(cnt > 0, pooled, self.null.to(h.dtype).expand_as(pooled))
        return h, pooled

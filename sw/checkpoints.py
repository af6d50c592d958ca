"""Local checkpoints: everything checked from config.json and the safetensors headers
*before* any weight is read (docs/frontend.md, "Real checkpoints").

`inspect_checkpoint(path, spec)` finds the config, reads only the headers of the weight
files (names, dtypes, shapes), recognises the original (non-diffusers) Wan key layout,
and compares the keys and shapes with the model the config builds (on no memory:
accelerate's empty weights). `check_latent` rejects latent sizes the patch embedding
or the RoPE tables cannot take. Every problem is one ValueError / FileNotFoundError line.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path

from semdialect.errors import InputFileError, UsageError

__all__ = ["ARCHITECTURES", "CheckpointInfo", "inspect_checkpoint", "check_latent",
           "resolve_model", "read_safetensors_header", "ORIGINAL_WAN_HINT"]

# architecture name (used with --checkpoint) -> the registry entry that drives it
ARCHITECTURES = {
    "wan": "wan-tiny", "mmdit": "mmdit-tiny", "flux": "mmdit-tiny", "opensora2": "mmdit-tiny",
    "cogvideox": "cogvideox-tiny", "ltx": "ltx-tiny", "hunyuan": "hunyuan-tiny",
    "mochi": "mochi-tiny", "allegro": "allegro-tiny", "latte": "latte-tiny",
}

# safetensors dtype tag -> (torch dtype name, bytes per element); the float tags are the
# ones a checkpoint's own dtype can be (float8 has no torch dtype the loader builds)
_ST_TYPES = {"BF16": ("bfloat16", 2), "F16": ("float16", 2), "F32": ("float32", 4),
             "F64": ("float64", 8), "I64": ("int64", 8), "I32": ("int32", 4),
             "I16": ("int16", 2), "I8": ("int8", 1), "U8": ("uint8", 1), "BOOL": ("bool", 1),
             "F8_E4M3": (None, 1), "F8_E5M2": (None, 1)}
_FLOAT_TAGS = ("BF16", "F16", "F32", "F64")

# keys only the original Wan code (github.com/Wan-Video/Wan2.1) uses
_WAN_ORIGINAL = (".self_attn.", ".cross_attn.", "head.head.", "text_embedding.",
                 "time_embedding.", "model.diffusion_model.")
ORIGINAL_WAN_HINT = (
    "convert it once with diffusers: WanTransformer3DModel.from_single_file(FILE, "
    "config=DIFFUSERS_WAN_FOLDER, subfolder='transformer', torch_dtype=torch.bfloat16)"
    ".save_pretrained(OUT) (diffusers' convert_wan_transformer_to_diffusers renames the "
    "keys), then pass --checkpoint OUT")


def resolve_model(name: str, checkpoint: str | None) -> str:
    """Registry name for --model: a registry name itself, or an architecture name
    (`wan`, `mmdit`, ...) which needs --checkpoint (it has no weights of its own)."""
    from .models import MODELS

    if name in MODELS:
        return name
    if name in ARCHITECTURES:
        if not checkpoint:
            raise UsageError(f"--model {name} is an architecture: give --checkpoint, or use "
                             f"{ARCHITECTURES[name]} for the random-weight tiny model")
        return ARCHITECTURES[name]
    raise UsageError(f"unknown model {name!r}; known models: {', '.join(MODELS)}; "
                     f"architectures (with --checkpoint): {', '.join(ARCHITECTURES)} "
                     "(or a synthetic profile, see --help)")


def _raw_header(f, path) -> tuple[dict, int]:
    """The parsed header of an open safetensors file and the offset its data starts at."""
    try:
        raw = f.read(8)
        if len(raw) < 8:
            raise InputFileError("truncated")
        (n,) = struct.unpack("<Q", raw)
        if n <= 0 or n > 256 << 20:
            raise InputFileError(f"corrupt header length {n}")
        header = json.loads(f.read(n).decode("utf-8"))
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise InputFileError(f"checkpoint {path}: not a readable safetensors file ({e})"
                             ) from None
    header.pop("__metadata__", None)
    return header, 8 + n


def read_safetensors_header(path: Path) -> dict:
    """{tensor name: (dtype tag, shape)} from a safetensors header, no data read."""
    try:
        with open(path, "rb") as f:
            header, _ = _raw_header(f, path)
    except OSError as e:
        raise InputFileError(f"checkpoint {path}: not a readable safetensors file ({e})"
                             ) from None
    try:
        return {k: (v["dtype"], tuple(int(s) for s in v["shape"])) for k, v in header.items()}
    except (KeyError, TypeError, ValueError):
        raise InputFileError(f"checkpoint {path}: corrupt safetensors header") from None


def read_tensors_aligned(path: Path) -> dict:
    """The tensors of one safetensors file, each read into its own fresh allocation.

    safetensors' load_file hands out views into the mmapped file at any byte offset;
    oneDNN/BLAS take another code path for unaligned weights, 1 ulp away, so a capture
    from a saved checkpoint differed from the same weights built in memory (seen on an
    AMD EPYC). Reading each tensor into torch's (64-byte aligned) allocation keeps the
    captures bit-identical, and the peak at one copy of the model (the file pages are
    page cache, not mapped). safe_open validates the file first."""
    import torch
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt"):
            pass
    except (SafetensorError, OSError) as e:
        raise InputFileError(f"checkpoint {path}: not a readable safetensors file ({e})"
                             ) from None
    sd = {}
    with open(path, "rb") as fp:
        header, base = _raw_header(fp, path)
        for k, h in header.items():
            name = _ST_TYPES.get(h["dtype"], (None, 0))[0]
            if name is None:
                raise InputFileError(f"checkpoint {path}: tensor {k!r} has dtype "
                                     f"{h['dtype']}, which the loader does not read")
            t = torch.empty(h["shape"], dtype=getattr(torch, name))
            b, e = h["data_offsets"]
            if t.numel():
                view = t.view(-1).view(torch.uint8).numpy()
                fp.seek(base + b)
                if view.nbytes != e - b or fp.readinto(memoryview(view)) != e - b:
                    raise InputFileError(f"checkpoint {path}: tensor {k!r} does not match "
                                         "its header (truncated or corrupt file)")
            sd[k] = t
    return sd


@dataclass
class CheckpointInfo:
    path: Path  # as given
    folder: Path  # the model folder (config.json lives here)
    files: list[Path]  # weight files
    config: dict  # config.json
    name: str  # the checkpoint's own name (folder or file name)
    dtype: str  # dominant floating dtype of the weights: bfloat16 / float16 / float32
    keys: dict = field(repr=False, default_factory=dict)  # name -> (dtype tag, shape)
    is_folder: bool = True

    @property
    def weight_bytes(self) -> int:
        n = 0
        for tag, shape in self.keys.values():
            c = 1
            for s in shape:
                c *= s
            n += c * _ST_TYPES.get(tag, (None, 4))[1]
        return n


def _dominant_dtype(keys: dict) -> str:
    by: dict[str, int] = {}
    for tag, shape in keys.values():
        if tag in _FLOAT_TAGS:
            c = 1
            for s in shape:
                c *= s
            by[tag] = by.get(tag, 0) + c
    if not by:
        raise InputFileError("no floating-point weights")
    return _ST_TYPES[max(by, key=by.get)][0]


def _read_config(cfg_file: Path) -> dict:
    try:
        cfg = json.loads(cfg_file.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise InputFileError(f"checkpoint {cfg_file}: not valid JSON ({e})") from None
    if not isinstance(cfg, dict):
        raise InputFileError(f"checkpoint {cfg_file}: not a JSON object")
    return cfg


def _locate(p: Path):
    """(folder, config file, weight files, own name, is_folder)."""
    if not p.exists():
        raise FileNotFoundError(f"checkpoint {p} does not exist")
    if p.is_dir():
        folder = p
        if not (p / "config.json").exists() and (p / "transformer" / "config.json").exists():
            folder = p / "transformer"  # a pipeline folder
        cfg_file = folder / "config.json"
        if not cfg_file.exists():
            raise FileNotFoundError(f"checkpoint folder {p} has no config.json "
                                    "(nor transformer/config.json)")
        files = sorted(folder.glob("*.safetensors"))
        if not files:
            raise FileNotFoundError(f"checkpoint folder {folder} has no *.safetensors weights "
                                    "(pickled .bin weights are not read)")
        return folder, cfg_file, files, p.resolve().name, True
    if p.suffix != ".safetensors":
        raise InputFileError(f"checkpoint {p}: expected a diffusers folder or a .safetensors file")
    return p.parent, p.with_name("config.json"), [p], p.stem, False


def _expected_shapes(spec, cfg: dict):
    """{param/buffer name: shape} of the model the config builds, allocating nothing."""
    from .models import _cls

    cls = _cls(spec.cls_name)
    kw = {k: v for k, v in cfg.items() if not k.startswith("_")}
    try:
        from accelerate import init_empty_weights
    except ImportError:  # no accelerate: skip the key check, strict loading still checks
        return None
    try:
        with init_empty_weights():
            model = cls(**kw)
    except TypeError as e:
        raise InputFileError(f"checkpoint config does not fit {spec.cls_name}: {e}") from None
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def inspect_checkpoint(path, spec) -> CheckpointInfo:
    """All checks that need no weights: config present and of the right class, original
    Wan layout, keys and shapes against the model the config builds."""
    p = Path(path)
    folder, cfg_file, files, name, is_folder = _locate(p)
    keys: dict = {}
    for f in files:
        keys.update(read_safetensors_header(f))
    if not cfg_file.exists():
        raise FileNotFoundError(
            f"checkpoint {p}: no config.json next to it; a .safetensors state dict needs the "
            "diffusers config.json of its model in the same folder (a wrong config would "
            "silently build another model)")
    cfg = _read_config(cfg_file)
    wan = spec.cls_name == "WanTransformer3DModel"
    orig = [k for k in keys if any(s in k for s in _WAN_ORIGINAL)] if wan else []
    if orig or cfg.get("_class_name") == "WanModel":
        raise InputFileError(f"checkpoint {p} has the original (non-diffusers) Wan key layout "
                         f"(e.g. {(orig or list(keys))[0]!r}); {ORIGINAL_WAN_HINT}")
    cls_name = cfg.get("_class_name")
    if cls_name not in (None, spec.cls_name):
        raise InputFileError(f"incompatible checkpoint {p}: it holds a {cls_name}, model "
                         f"{spec.name} needs a {spec.cls_name}")
    try:
        dtype = _dominant_dtype(keys)
    except ValueError:
        raise InputFileError(f"checkpoint {p}: no floating-point weights in {files[0].name}"
                         ) from None
    want = _expected_shapes(spec, cfg)
    if want is not None:
        missing = sorted(set(want) - set(keys))
        extra = sorted(set(keys) - set(want))
        bad = [(k, keys[k][1], want[k]) for k in sorted(set(keys) & set(want))
               if keys[k][1] != want[k]]
        if missing or extra or bad:
            what = []
            if missing:
                what.append(f"{len(missing)} missing keys (e.g. {missing[0]!r})")
            if extra:
                what.append(f"{len(extra)} unexpected keys (e.g. {extra[0]!r})")
            if bad:
                k, got, exp = bad[0]
                what.append(f"{len(bad)} shape mismatches (e.g. {k!r}: {list(got)} in the "
                            f"file, {list(exp)} in the config's model)")
            raise InputFileError(f"incompatible checkpoint {p} for {spec.cls_name} with "
                             f"{cfg_file.name}: " + "; ".join(what))
    return CheckpointInfo(p, folder, files, cfg, name, dtype, keys, is_folder)


def _pair(v, n):
    if v is None:
        return (1,) * n
    if isinstance(v, (list, tuple)):
        return tuple(int(s) for s in v)
    return (int(v),) * n


def check_latent(cls_name: str, cfg: dict, video: dict) -> None:
    """Latent (frames, height, width), in latent units, against the patch embedding and
    RoPE tables of the config: a clear error instead of a shape traceback mid-run."""
    f, h, w = (int(video[k]) for k in ("frames", "height", "width"))
    for k, v in (("frames", f), ("height", h), ("width", w)):
        if v <= 0:
            raise UsageError(f"latent --{k} must be positive, got {v}")
    if cls_name == "WanTransformer3DModel":
        pt, ph, pw = _pair(cfg.get("patch_size", (1, 2, 2)), 3)
    elif cls_name in ("FluxTransformer2DModel", "LTXVideoTransformer3DModel"):
        pt = ph = pw = 1  # packed latents: one token per latent position
    else:
        ph, pw = _pair(cfg.get("patch_size", 1), 2)[:2]
        pt = int(cfg.get("patch_size_t") or 1)
    for k, v, patch in (("frames", f, pt), ("height", h, ph), ("width", w, pw)):
        if v % patch:
            raise UsageError(
                f"latent --{k} {v} is not a multiple of the patch size {patch} of "
                f"{cls_name} (config patch_size {cfg.get('patch_size')}); latent sizes are "
                "pixel sizes / the VAE factor (Wan: 8 spatial, 4 temporal: "
                "frames = (pixel frames - 1) / 4 + 1)")
    rope = cfg.get("rope_max_seq_len")
    if rope is not None:
        for k, v, patch in (("frames", f, pt), ("height", h, ph), ("width", w, pw)):
            if v // patch > rope:
                raise UsageError(f"latent --{k} {v} gives {v // patch} positions, above the "
                                 f"RoPE table of {rope} (config rope_max_seq_len)")
    if cls_name == "LatteTransformer3DModel" and cfg.get("video_length") not in (None, f):
        raise UsageError(f"latent --frames {f}: Latte's temporal embedding takes exactly "
                         f"video_length = {cfg.get('video_length')} frames")

"""Generated videos of a trained tiny model at full precision and under each 4-bit format:
video PSNR and temporal consistency against the full-precision video, and a sample grid
(PNG) plus an animated GIF (`semdialect e2e --model trained-... --video-dir DIR`).

Videos are the final latents of `fakequant.e2e_table` mapped back to pixels
(`TaskView.to_video`, the inverse space-to-depth), RGB clipped to [-1, 1].

- `video_psnr_db`: 10 log10(2^2 / MSE) over RGB pixels of all frames (peak-to-peak 2);
- `temporal_consistency`: mean cosine similarity of consecutive RGB frames (a pixel-space
  analogue of CLIP-Temp), and `temporal_diff_psnr_db`: PSNR of the frame differences
  x[t+1] - x[t] against the full-precision video's (does the motion survive).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

__all__ = ["video_metrics", "write_grid", "write_gif", "video_report"]


def _rgb(v: np.ndarray) -> np.ndarray:
    return np.clip(np.asarray(v, np.float64)[:, :3], -1.0, 1.0)


def _psnr(a, b, peak=2.0) -> float:
    mse = float(((a - b) ** 2).mean())
    return math.inf if mse == 0 else 10 * math.log10(peak * peak / mse)


def temporal_consistency(v: np.ndarray) -> float:
    x = _rgb(v).reshape(v.shape[0], -1)
    x = x - x.mean(1, keepdims=True)
    num = (x[1:] * x[:-1]).sum(1)
    den = np.linalg.norm(x[1:], axis=1) * np.linalg.norm(x[:-1], axis=1)
    return float(np.mean(num / np.maximum(den, 1e-12)))


def video_metrics(ref: np.ndarray, v: np.ndarray) -> dict:
    r, x = _rgb(ref), _rgb(v)
    return {"video_psnr_db": _psnr(r, x),
            "temporal_consistency": temporal_consistency(v),
            "temporal_diff_psnr_db": _psnr(np.diff(r, axis=0), np.diff(x, axis=0))}


def _to_uint8(frame: np.ndarray, scale: int) -> np.ndarray:
    img = ((np.clip(frame[:3], -1, 1) + 1) * 127.5).round().astype(np.uint8)
    img = img.transpose(1, 2, 0)
    return img.repeat(scale, 0).repeat(scale, 1)


def write_grid(videos: dict, path, caption: str = "", scale: int = 3) -> None:
    """PNG: one row per format (label on the left), one column per frame."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(videos)
    frames = next(iter(videos.values())).shape[0]
    fig, axes = plt.subplots(len(names), frames, figsize=(1.3 * frames + 1.2,
                                                          1.3 * len(names) + 0.5),
                             squeeze=False)
    for i, n in enumerate(names):
        for f in range(frames):
            ax = axes[i, f]
            ax.imshow(_to_uint8(videos[n][f], scale), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if f == 0:
                ax.set_ylabel(n, fontsize=7, rotation=0, ha="right", va="center")
            if i == 0:
                ax.set_title(f"frame {f}", fontsize=7)
    fig.suptitle(caption, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_gif(videos: dict, path, scale: int = 4, ms: int = 400) -> None:
    """Animated GIF: the formats side by side (order of `videos`), one GIF frame per
    video frame, looping."""
    from PIL import Image

    names = list(videos)
    frames = next(iter(videos.values())).shape[0]
    pad = 2
    imgs = []
    for f in range(frames):
        tiles = [_to_uint8(videos[n][f], scale) for n in names]
        h, w = tiles[0].shape[:2]
        canvas = np.full((h, len(tiles) * (w + pad) - pad, 3), 255, np.uint8)
        for i, t in enumerate(tiles):
            canvas[:, i * (w + pad): i * (w + pad) + w] = t
        imgs.append(Image.fromarray(canvas))
    imgs[0].save(path, save_all=True, append_images=imgs[1:], duration=ms, loop=0)


def video_report(latents: dict, model: str, out_dir, caption: str) -> dict:
    """latents: {"reference": latent, format: latent, ...} (torch or numpy). Writes
    DIR/{model}_grid.png, DIR/{model}.gif and DIR/{model}_video.json; returns the rows."""
    import torch

    from .trained import TASKS

    view = TASKS[model]
    vids = {}
    for k, lat in latents.items():
        t = torch.as_tensor(np.asarray(lat, np.float32))
        vids["full precision" if k == "reference" else k] = view.to_video(t)[0].numpy()
    ref = vids["full precision"]
    rows = [{"format": k, **video_metrics(ref, v)} for k, v in vids.items()]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_grid(vids, out / f"{model}_grid.png", caption=f"{model}: \"{caption}\"")
    write_gif(vids, out / f"{model}.gif")
    (out / f"{model}_video.json").write_text(json.dumps(
        {"model": model, "caption": caption, "order": list(vids), "rows": rows}, indent=1))
    return {"caption": caption, "rows": rows,
            "files": [f"{model}_grid.png", f"{model}.gif", f"{model}_video.json"]}


def format_video_table(rep: dict) -> str:
    lines = [f"# caption: \"{rep['caption']}\"; video vs full precision (RGB pixels)",
             "| format | video PSNR dB | temporal consistency | motion (frame-diff) PSNR dB |",
             "|---|---:|---:|---:|"]
    for r in rep["rows"]:
        p = "inf" if math.isinf(r["video_psnr_db"]) else f"{r['video_psnr_db']:.2f}"
        d = "inf" if math.isinf(r["temporal_diff_psnr_db"]) else \
            f"{r['temporal_diff_psnr_db']:.2f}"
        lines.append(f"| {r['format']} | {p} | {r['temporal_consistency']:.4f} | {d} |")
    return "\n".join(lines)

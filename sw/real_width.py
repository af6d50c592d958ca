"""Measure capture + eval at the real Wan2.1-T2V-1.3B width (nox -s real-width; not CI).

1. Saves a RANDOM-WEIGHT WanTransformer3DModel with the exact Wan2.1-T2V-1.3B diffusers
   config (1536 channels, 12 heads x 128, 30 blocks, ffn 8960, text_dim 4096) with
   `save_pretrained` in bfloat16 (about 2.6 GiB), once, under build/.
2. Writes precomputed text embeddings (seeded random, 512 umT5 tokens, as Wan's pipeline
   pads to) for `--text-embeds`.
3. Runs `semdialect capture --checkpoint` (dry run, then the capture) and `semdialect
   eval` on the result, each in its own process, and reports each one's peak RSS
   (getrusage of the child) and wall time.

The weights are random: the numbers say what the machinery costs, not what a trained
Wan2.1 activation looks like.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

# Wan-AI/Wan2.1-T2V-1.3B-Diffusers transformer/config.json
WAN21_1_3B = {
    "_class_name": "WanTransformer3DModel",
    "added_kv_proj_dim": None,
    "attention_head_dim": 128,
    "cross_attn_norm": True,
    "eps": 1e-06,
    "ffn_dim": 8960,
    "freq_dim": 256,
    "image_dim": None,
    "in_channels": 16,
    "num_attention_heads": 12,
    "num_layers": 30,
    "out_channels": 16,
    "patch_size": [1, 2, 2],
    "qk_norm": "rms_norm_across_heads",
    "rope_max_seq_len": 1024,
    "text_dim": 4096,
}


def save_random_wan(folder: Path, seed: int = 0) -> Path:
    """The random-weight bf16 checkpoint (kept if already there)."""
    import torch
    from diffusers import WanTransformer3DModel

    if (folder / "config.json").exists() and list(folder.glob("*.safetensors")):
        return folder
    cfg = {k: v for k, v in WAN21_1_3B.items() if not k.startswith("_")}
    torch.manual_seed(seed)
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)  # never a float32 copy of 1.3B weights
    try:
        model = WanTransformer3DModel(**cfg)
    finally:
        torch.set_default_dtype(old)
    model.save_pretrained(folder, safe_serialization=True, max_shard_size="10GB")
    return folder


def save_text_embeds(path: Path, tokens: int = 512, dim: int = 4096, seed: int = 0) -> Path:
    import torch
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(seed)
    save_file({f"{b}.encoder_hidden_states":
               torch.randn(1, tokens, dim, generator=g).to(torch.bfloat16)
               for b in ("cond", "uncond")}, str(path))
    return path


def _run(argv: list[str], log: Path) -> dict:
    """Run one semdialect command in a child; its own peak RSS (wait4) and wall time."""
    t0 = time.time()
    with open(log, "w") as f:
        p = subprocess.Popen([sys.executable, "-m", "semdialect.cli", *argv], stdout=f,
                             stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:2])} failed (rc {p.returncode}); see {log}")
    return {"command": "semdialect " + " ".join(argv), "wall_s": round(time.time() - t0, 1),
            "peak_rss_gib": round(usage.ru_maxrss / 2**20, 2)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="build/real-width")
    ap.add_argument("--frames", type=int, default=4)
    ap.add_argument("--height", type=int, default=32)
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--capture-steps", default="0,1")
    ap.add_argument("--max-layers", type=int, default=40, help="0: every Linear")
    ap.add_argument("--formats", default="mxfp4,nvfp4,semdialect,semdialect-full")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    ckpt = save_random_wan(out / "wan21-1.3b-random-bf16")
    made = round(time.time() - t0, 1)
    emb = save_text_embeds(out / "text-embeds-512.safetensors")
    vec = out / "wan21-1.3b.vectors"
    if vec.exists():
        import shutil

        shutil.rmtree(vec)
    cap = ["capture", "--model", "wan", "--checkpoint", str(ckpt), "--frames",
           str(args.frames), "--height", str(args.height), "--width", str(args.width),
           "--steps", str(args.steps), "--capture-steps", args.capture_steps,
           "--flow-shift", "3", "--text-embeds", str(emb), "--quiet", "-o", str(vec)]
    if args.max_layers:
        cap[-3:-3] = ["--max-layers", str(args.max_layers)]
    dry = _run([*cap, "--dry-run"], out / "dry-run.log")
    est = json.loads((out / "dry-run.log").read_text().strip().splitlines()[-1])
    capture = _run(cap, out / "capture.log")
    ev = _run(["eval", "--vectors", str(vec), "--formats", args.formats, "--json", "--quiet"],
              out / "eval.log")
    tokens = args.frames * (args.height // 2) * (args.width // 2)
    report = {"model": "Wan2.1-T2V-1.3B config, RANDOM weights, bf16", "tokens": tokens,
              "checkpoint_bytes": sum(f.stat().st_size for f in ckpt.glob("*.safetensors")),
              "checkpoint_made_s": made, "estimate": est, "dry_run": dry, "capture": capture,
              "eval": ev, "vectors_bytes": sum(f.stat().st_size for f in vec.iterdir())}
    (out / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())

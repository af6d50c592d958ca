"""Golden-model throughput vs torchao, side by side in one run (`semdialect bench`).

Melem/s on one float32 tensor (default 4096 x 4096), warm-up then best of N, for the
golden mxfp4, nvfp4, dialectfp4 and semdialect quantizers, the torch CPU reference
(`semdialect.sw.quant`, bit-identical) of mxfp4, nvfp4 and semdialect, and torchao's
CPU to_mx (fp4) and nvfp4_quantize (per-tensor scale). Ratios are against torchao
to_mx (fp4). Goals: golden mxfp4 >= 2x torchao to_mx; golden semdialect >= torchao
to_mx (stretch 2x).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time

import numpy as np

__all__ = ["main", "run"]

GOLDEN = ("mxfp4", "nvfp4", "dialectfp4", "semdialect")
TORCH_REFERENCE = ("mxfp4", "nvfp4", "semdialect")


def _best(fn, repeat: int, warmup: int) -> float:
    for _ in range(warmup):
        fn()
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def run(rows: int = 4096, cols: int = 4096, repeat: int = 5, warmup: int = 1,
        seed: int = 0, formats=GOLDEN, torchao: bool = True,
        torch_reference=TORCH_REFERENCE) -> dict:
    from . import quantize

    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, cols)).astype(np.float32)
    n = x.size
    res: dict[str, dict] = {}
    for fmt in formats:
        s = _best(lambda f=fmt: quantize(x, f), repeat, warmup)
        res[f"golden {fmt}"] = {"seconds": s, "melem_s": n / s / 1e6}
    if torch_reference:
        try:
            import torch

            from semdialect.sw.quant import quantize as tquantize
        except Exception as e:  # pragma: no cover - torch is an extra
            res["torch reference"] = {"error": f"torch reference unavailable: {e}"}
        else:
            t = torch.from_numpy(x)
            for fmt in torch_reference:
                s = _best(lambda f=fmt: tquantize(t, f), repeat, warmup)
                res[f"torch reference {fmt}"] = {"seconds": s, "melem_s": n / s / 1e6}
    if torchao:
        try:
            import torch
            from torchao.prototype.mx_formats.mx_tensor import to_mx
            from torchao.prototype.mx_formats.nvfp4_tensor import (
                nvfp4_quantize,
                per_tensor_amax_to_scale,
            )
        except Exception as e:  # pragma: no cover - torchao is a dev dependency
            res["torchao"] = {"error": f"torchao unavailable: {e}"}
        else:
            t = torch.from_numpy(x)
            s = _best(lambda: to_mx(t, torch.float4_e2m1fn_x2, 32), repeat, warmup)
            res["torchao to_mx fp4"] = {"seconds": s, "melem_s": n / s / 1e6}

            def nv():
                st = per_tensor_amax_to_scale(torch.amax(torch.abs(t)))
                return nvfp4_quantize(t, 16, per_tensor_scale=st)

            s = _best(nv, repeat, warmup)
            res["torchao nvfp4_quantize"] = {"seconds": s, "melem_s": n / s / 1e6}
    ref = res.get("torchao to_mx fp4", {}).get("melem_s")
    for r in res.values():
        if ref and "melem_s" in r:
            r["ratio_vs_torchao_mxfp4"] = r["melem_s"] / ref
    out = {
        "shape": [rows, cols],
        "repeat": repeat,
        "warmup": warmup,
        "results": res,
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "numpy": np.__version__,
    }
    try:
        import torch

        out["torch"] = torch.__version__
        out["torch_threads"] = torch.get_num_threads()
    except Exception:  # pragma: no cover
        pass
    if ref:
        g = res.get("golden mxfp4", {}).get("melem_s")
        sd = res.get("golden semdialect", {}).get("melem_s")
        out["goals"] = {
            "golden mxfp4 >= 2x torchao to_mx": None if g is None else g >= 2 * ref,
            "golden semdialect >= torchao to_mx": None if sd is None else sd >= ref,
            "golden semdialect >= 2x torchao to_mx (stretch)": None if sd is None
            else sd >= 2 * ref,
        }
    return out


def _table(out: dict) -> str:
    lines = [f"shape {out['shape'][0]}x{out['shape'][1]} float32, best of {out['repeat']} "
             f"after {out['warmup']} warm-up",
             f"{'quantizer':<28} {'ms':>9} {'Melem/s':>10} {'vs torchao mxfp4':>17}"]
    for name, r in out["results"].items():
        if "error" in r:
            lines.append(f"{name:<28} {r['error']}")
            continue
        ratio = r.get("ratio_vs_torchao_mxfp4")
        rs = f"{ratio:.2f}x" if ratio is not None else "-"
        lines.append(f"{name:<28} {r['seconds'] * 1e3:9.1f} {r['melem_s']:10.1f} {rs:>17}")
    for goal, ok in out.get("goals", {}).items():
        lines.append(f"goal: {goal}: {'met' if ok else 'NOT met'}")
    return "\n".join(lines)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The bench options (on `semdialect bench` and `python -m semdialect.golden.bench`)."""
    p.add_argument("--rows", type=int, default=4096)
    p.add_argument("--cols", type=int, default=4096)
    p.add_argument("--repeat", type=int, default=5, help="timed runs (best is reported)")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--formats", nargs="+", default=list(GOLDEN),
                   help=f"golden formats to time (default: {' '.join(GOLDEN)})")
    p.add_argument("--no-torchao", action="store_true", help="skip the torchao baselines")
    p.add_argument("--no-torch-reference", action="store_true",
                   help="skip the torch CPU reference (semdialect.sw.quant)")
    p.add_argument("--json", nargs="?", const="-", metavar="PATH",
                   help="write JSON results to PATH (or stdout with no PATH)")


def run_args(a, p: argparse.ArgumentParser) -> int:
    if a.rows <= 0 or a.cols <= 0 or a.cols % 32:
        p.error("--rows must be positive and --cols a positive multiple of 32")
    out = run(a.rows, a.cols, a.repeat, a.warmup, a.seed, tuple(a.formats), not a.no_torchao,
              () if a.no_torch_reference else TORCH_REFERENCE)
    if a.json == "-":
        print(json.dumps(out, indent=2))
    else:
        print(_table(out))
        if a.json:
            with open(a.json, "w") as f:
                json.dump(out, f, indent=2)
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="semdialect bench", description=__doc__.splitlines()[0])
    add_arguments(p)
    return run_args(p.parse_args(argv), p)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

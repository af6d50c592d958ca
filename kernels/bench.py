"""GPU throughput of the Triton kernels next to torchao's CUDA MX / NVFP4 quantization,
against the device memory-bandwidth roofline, measured side by side in one run
(`nox -s gpu`, after the bit-exactness suite on CUDA).

GB/s counts the bytes a kernel must move: the input, the packed codes, the scales and
(semdialect) the dialect ids. The roofline is a device-to-device copy measured in the
same run (what the memory system delivers), next to the theoretical peak where torch
reports the memory clock and bus width.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

__all__ = ["main", "run"]


def _bytes_moved(n: int, in_bytes: int, block: int, dialects: bool) -> int:
    return n * in_bytes + n // 2 + n // block + (n // block if dialects else 0)


def _peak_gbs(props) -> float | None:
    clock = getattr(props, "memory_clock_rate", None)  # kHz
    width = getattr(props, "memory_bus_width", None)  # bits
    if not clock or not width:
        return None
    return 2 * clock * 1e3 * width / 8 / 1e9  # double data rate


def _copy_gbs(n: int, dev) -> float:
    """Device-to-device copy bandwidth (read + write) of n float32."""
    import torch
    from triton.testing import do_bench

    src = torch.empty(n, dtype=torch.float32, device=dev)
    dst = torch.empty_like(src)
    return 2 * n * 4 / do_bench(lambda: dst.copy_(src)) / 1e6


def _cases(x, quantize, torchao):
    """(label, callable, block size, writes dialect ids) for one input tensor."""
    import torch

    cases = [
        ("kernels semdialect", lambda: quantize(x, "semdialect"), 32, True),
        ("kernels mxfp4", lambda: quantize(x, "mxfp4"), 32, False),
        ("kernels nvfp4", lambda: quantize(x, "nvfp4"), 16, False),
    ]
    if torchao is not None:
        to_mx, nvfp4_quantize, per_tensor_amax_to_scale = torchao

        def nv():
            st = per_tensor_amax_to_scale(torch.amax(torch.abs(x)))
            return nvfp4_quantize(x, 16, per_tensor_scale=st)

        cases.append(("torchao to_mx fp4", lambda: to_mx(x, torch.float4_e2m1fn_x2, 32),
                      32, False))
        cases.append(("torchao nvfp4_quantize", nv, 16, False))
    return cases


def run(rows: int = 8192, cols: int = 8192, dtypes=("bfloat16", "float32"),
        check_rows: int = 256) -> dict:
    import numpy as np
    import torch
    from triton.testing import do_bench

    from semdialect import golden
    from semdialect.kernels import quantize

    if not torch.cuda.is_available():
        raise RuntimeError("the kernel benchmark needs a CUDA device")
    dev = torch.device("cuda")
    props = torch.cuda.get_device_properties(dev)
    copy_gbs = _copy_gbs(rows * cols * 2, dev)
    out = {"device": props.name, "shape": [rows, cols], "copy_gbs": copy_gbs,
           "peak_gbs": _peak_gbs(props), "torch": torch.__version__, "results": []}
    try:
        from torchao.prototype.mx_formats.mx_tensor import to_mx
        from torchao.prototype.mx_formats.nvfp4_tensor import (
            nvfp4_quantize,
            per_tensor_amax_to_scale,
        )
    except Exception as e:  # torchao is a dev dependency
        to_mx = None
        out["torchao"] = f"unavailable: {e}"
    gen = torch.Generator(device=dev).manual_seed(0)
    for name in dtypes:
        dt = getattr(torch, name)
        x = torch.randn(rows, cols, generator=gen, device=dev, dtype=torch.float32).to(dt)
        n = x.numel()
        ib = x.element_size()
        # spot check on device data: the kernels' bits equal golden's
        xs = x[:check_rows].float().cpu().numpy()
        for fmt in ("semdialect", "mxfp4", "nvfp4"):
            q = quantize(x[:check_rows].float(), fmt)
            g = golden.quantize(xs, fmt)
            if not np.array_equal(q.packed.cpu().numpy(), g.pack()):
                raise RuntimeError(f"{fmt}: CUDA kernel codes differ from golden")
        cases = _cases(x, quantize, None if to_mx is None else
                       (to_mx, nvfp4_quantize, per_tensor_amax_to_scale))
        q = quantize(x, "semdialect")
        cases.append(("kernels semdialect dequantize", q.dequantize, 32, True))
        for label, fn, block, dial in cases:
            ms = do_bench(fn)
            moved = _bytes_moved(n, 4 if "dequantize" in label else ib, block, dial)
            gbs = moved / ms / 1e6
            out["results"].append({"dtype": name, "kernel": label, "ms": ms, "gbs": gbs,
                                   "of_copy": gbs / copy_gbs})
        ref = {r["kernel"]: r["ms"] for r in out["results"] if r["dtype"] == name}
        for r in out["results"]:
            if r["dtype"] == name:
                base = ref.get("torchao nvfp4_quantize" if "nvfp4" in r["kernel"]
                               else "torchao to_mx fp4")
                r["speedup_vs_torchao"] = base / r["ms"] if base else None
    return out


def table(out: dict) -> str:
    peak = out["peak_gbs"]
    lines = [f"{out['device']}, {out['shape'][0]}x{out['shape'][1]}, torch {out['torch']}",
             f"roofline: device copy {out['copy_gbs']:.0f} GB/s"
             + (f", theoretical peak {peak:.0f} GB/s" if peak else ""),
             f"{'dtype':<9} {'kernel':<32} {'ms':>8} {'GB/s':>8} {'of copy':>8} "
             f"{'vs torchao':>10}"]
    for r in out["results"]:
        sp = r.get("speedup_vs_torchao")
        lines.append(f"{r['dtype']:<9} {r['kernel']:<32} {r['ms']:8.3f} {r['gbs']:8.0f} "
                     f"{r['of_copy']:8.0%} {(f'{sp:.2f}x' if sp else '-'):>10}")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m semdialect.kernels.bench",
                                description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=8192)
    p.add_argument("--cols", type=int, default=8192)
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    a = p.parse_args(argv)
    try:
        out = run(a.rows, a.cols)
    except RuntimeError as e:
        print(f"kernels bench: {e}", file=sys.stderr)
        return 2
    print(table(out))
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        with open(a.json, "w") as f:
            json.dump(out, f, indent=2)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

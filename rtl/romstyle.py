"""How the constant tables appear in the generated Verilog.

Amaranth emits every ROM (`amaranth.lib.memory.Memory` with comb read ports) as a
Verilog array filled by an `initial` block. Simulators, Yosys and FPGA flows accept
that; ASIC synthesis tools generally ignore `initial`, and the tables would be lost.

* 'logic' (default): `rewrite_roms` turns each such array into a Verilog function with
  one `case` item per word, and every read `rom[addr]` into a call `rom(addr)`: plain
  combinational logic that every synthesis tool keeps. One function per table, shared
  by all its read ports, so the file does not grow with the number of lanes.
* 'memory': the array + `initial` form as Amaranth writes it.

Both are bit-identical by construction (the words are copied one for one) and both are
simulated bit-exact (tests/rtl/test_generate.py, the cocotb suites).
"""

from __future__ import annotations

import re

__all__ = ["ROM_STYLES", "DEFAULT_ROM_STYLE", "check_rom_style", "rewrite_roms"]

ROM_STYLES = ("logic", "memory")
DEFAULT_ROM_STYLE = "logic"

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


def _rewrite_module(mod: str) -> tuple[str, int]:
    n = 0
    while True:
        d = _DECL.search(mod)
        if not d:
            return mod, n
        indent, hi, name, last = d.group(1), int(d.group(2)), d.group(3), int(d.group(4))
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
        fname = name
        arg = f"{name.lstrip(chr(92))}_addr"  # a name the module does not use yet
        while re.search(r"\b" + re.escape(arg) + r"\b", mod):
            arg += "_"
        items = "".join(f"{indent}      {abits}'d{a}: {fname} = {width}'h{w:x};\n"
                        for a, w in sorted(words.items()))
        func = (f"{indent}function [{hi}:0] {fname};\n"
                f"{indent}  input [{abits - 1}:0] {arg};\n"
                f"{indent}  begin\n"
                f"{indent}    case ({arg})\n{items}"
                f"{indent}      default: {fname} = {width}'h0;\n"
                f"{indent}    endcase\n"
                f"{indent}  end\n"
                f"{indent}endfunction\n")
        # reads: `name[expr]` -> `name(expr)` (expr may contain brackets: match balanced)
        out, i = [], 0
        pat = re.compile(re.escape(name) + r"\s*\[")
        while True:
            mr = pat.search(body_after, i)
            if not mr:
                out.append(body_after[i:])
                break
            out.append(body_after[i:mr.start()])
            j, depth_b = mr.end(), 1
            while depth_b:
                c = body_after[j]
                depth_b += {"[": 1, "]": -1}.get(c, 0)
                j += 1
            out.append(f"{name}({body_after[mr.end():j - 1]})")
            i = j
        mod = mod[:d.start()] + func + "".join(out)
        n += 1


def rewrite_roms(text: str) -> str:
    """The Verilog with every initialized array (ROM) as a combinational case function."""
    out = []
    for mod in _split_modules(text):
        new, _ = _rewrite_module(mod)
        out.append(new)
    return "".join(out)

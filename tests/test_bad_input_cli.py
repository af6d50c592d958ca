"""Bad input on the command line (issue 15): every mistake gives one line
``semdialect <command>: error: ...`` naming the offending argument or file, exit code 2,
and nothing written; bugs give exit 1 with a traceback hint; Ctrl-C exits 130.

One test per class of the issue. In-process `main([...])` calls (fast); a subprocess
only where the process boundary is the point (Ctrl-C)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from semdialect.cli import main
from semdialect.errors import (
    InputFileError,
    LimitExceededError,
    OutputPathError,
    SemdialectError,
    UsageError,
)


def run(args, capsys):
    rc = main([str(a) for a in args])
    out = capsys.readouterr()
    return rc, out.out, out.err


def first_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert lines, "nothing on stderr"
    return lines[0]


def bad(args, capsys, *names, rc=2):
    """Run a bad command: exit code rc, a first error line naming every one of `names`."""
    got, out, err = run(args, capsys)
    errs = [ln for ln in err.splitlines() if ": error: " in ln]
    assert got == rc, (got, out, err)
    assert errs, err
    assert len(errs) == 1, err
    assert "Traceback" not in err
    for n in names:
        assert str(n) in errs[0], (n, errs[0])
    return errs[0]


def files_under(p: Path) -> list[str]:
    return sorted(str(q.relative_to(p)) for q in p.rglob("*")) if p.exists() else []


# ---------------------------------------------------------------- the error mechanism


def test_error_family_keeps_builtin_bases():
    from semdialect.golden.formatbook import FormatbookError
    from semdialect.sw.vectors import VectorFileError

    for cls in (FormatbookError, VectorFileError, UsageError, InputFileError,
                OutputPathError, LimitExceededError):
        assert issubclass(cls, SemdialectError) and issubclass(cls, ValueError)
    assert str(UsageError("must be finite", "--gap")) == "--gap: must be finite"


def test_bad_input_is_one_line_exit_2(capsys):
    line = bad(["formatbook", "show", "no-such-book"], capsys, "no-such-book")
    assert line.startswith("semdialect formatbook show: error: ")


def test_argparse_errors_are_one_line(capsys):
    rc, _, err = run(["formatbook", "build", "--synthetic", "--dialects", "x", "-o", "b.json"],
                     capsys)
    assert rc == 2
    assert err.count("\n") == 1 and "--dialects" in err and "usage" not in err


def test_unexpected_exception_exit_1_with_hint(capsys, monkeypatch):
    import semdialect.golden.formatbook as fb

    def boom(_book):
        raise RuntimeError("boom")

    monkeypatch.setattr(fb, "load_formatbook", boom)
    rc, _, err = run(["formatbook", "show", "semdialect-32"], capsys)
    assert rc == 1
    assert "internal error: RuntimeError: boom" in err and "--debug" in err
    assert "Traceback" not in err
    rc, _, err = run(["--debug", "formatbook", "show", "semdialect-32"], capsys)
    assert rc == 1 and "Traceback" in err and "boom" in err
    monkeypatch.setenv("SEMDIALECT_DEBUG", "1")
    rc, _, err = run(["formatbook", "show", "semdialect-32"], capsys)
    assert rc == 1 and "Traceback" in err


def test_multi_line_messages_stay_one_line(capsys, monkeypatch):
    import semdialect.golden.formatbook as fb

    def tool_failed(_book):
        raise RuntimeError("lint of x failed:\n%Warning-CMPCONST: x.v:3: constant\n" + "y" * 900)

    monkeypatch.setattr(fb, "load_formatbook", tool_failed)
    rc, _, err = run(["formatbook", "show", "semdialect-32"], capsys)
    assert rc == 1 and err.count("\n") == 1
    assert "lint of x failed: %Warning-CMPCONST: x.v:3: constant | yyy" in err
    assert "..." in err and len(err) < 900


def test_keyboard_interrupt_in_process_exit_130(capsys, monkeypatch):
    import semdialect.golden.formatbook as fb

    def interrupted(_book):
        raise KeyboardInterrupt

    monkeypatch.setattr(fb, "load_formatbook", interrupted)
    rc, _, err = run(["formatbook", "show", "semdialect-32"], capsys)
    assert rc == 130
    assert err.strip() == "semdialect formatbook show: interrupted"


# ------------------------------------------------------- silently wrong (fixed first)


def _npy(tmp_path, name, arr):
    p = tmp_path / name
    np.save(p, arr)
    return p


def test_eval_sqnr_over_finite_blocks_counts_the_rest(tmp_path, capsys):
    x = np.random.default_rng(0).standard_normal((8, 64)).astype(np.float32)
    clean = _npy(tmp_path, "clean.npy", x)
    y = x.copy()
    y[0, 3], y[2, 40] = np.nan, np.inf
    dirty = _npy(tmp_path, "dirty.npy", y)
    rc, out, err = run(["eval", "--vectors", dirty, "--formats", "mxfp4,nvfp4", "--json"],
                       capsys)
    assert rc == 0, err
    rows = {r["format"]: r for r in json.loads(out)}
    assert "2 non-finite element(s) in 2 block(s)" in err
    # the finite blocks' SQNR: the same as that of x without those two blocks
    keep = np.ones((8, 2), bool)
    keep[0, 0] = keep[2, 1] = False
    ref = x.reshape(8, 2, 32)[keep]
    from semdialect import golden as G

    for fmt, r in rows.items():
        assert r["nonfinite_elements"] == 2 and r["nonfinite_blocks"] == 2
        d = G.quantize(ref, fmt).dequantize().astype(np.float64)
        want = 10 * np.log10((ref.astype(np.float64) ** 2).sum() / ((ref - d) ** 2).sum())
        assert r["sqnr_db"] == pytest.approx(want, abs=1e-4)
    rc, out, _ = run(["eval", "--vectors", clean, "--formats", "mxfp4", "--json"], capsys)
    assert json.loads(out)[0]["nonfinite_blocks"] == 0
    # table output works with non-finite data (was: a NoneType format error)
    rc, out, _ = run(["eval", "--vectors", dirty, "--formats", "mxfp4"], capsys)
    assert rc == 0 and "| mxfp4 |" in out


@pytest.mark.parametrize("arr,msg", [
    (np.zeros((4, 64), np.float32), "all zeros"),
    (np.full((4, 64), np.nan, np.float32), "NaN/Inf"),
])
def test_eval_undefined_sqnr_is_an_error(tmp_path, capsys, arr, msg):
    p = _npy(tmp_path, "bad.npy", arr)
    line = bad(["eval", "--vectors", p, "--formats", "mxfp4", "--json"], capsys, "bad", msg)
    assert "SQNR is undefined" in line


def test_eval_exact_quantization_is_reported_as_exact(tmp_path, capsys):
    p = _npy(tmp_path, "ones.npy", np.ones((4, 64), np.float32))
    rc, out, _ = run(["eval", "--vectors", p, "--formats", "mxfp4", "--json"], capsys)
    row = json.loads(out)[0]
    assert rc == 0 and row["sqnr_db"] is None and row["sqnr_note"].startswith("exact")
    rc, out, _ = run(["eval", "--vectors", p, "--formats", "mxfp4"], capsys)
    assert "| exact |" in out


def test_allowed_mask_of_integer_dtype_is_refused_not_misread():
    from semdialect import golden as G

    x = np.random.default_rng(1).standard_normal((4, 64)).astype(np.float32)
    with pytest.raises(UsageError, match="ambiguous"):
        G.quantize(x, "semdialect", allowed=np.ones(32, np.uint8))
    for bad_allowed, msg in ((np.ones((2, 32), np.int64), "1-D"), ([1.0, 2.0], "dtype"),
                             ([3, 3], "distinct")):
        with pytest.raises(UsageError, match=msg):
            G.quantize(x, "semdialect", allowed=bad_allowed)
    # the two unambiguous spellings agree
    mask = np.zeros(32, bool)
    mask[[0, 5, 7]] = True
    a = G.quantize(x, "semdialect", allowed=mask)
    b = G.quantize(x, "semdialect", allowed=[0, 5, 7])
    assert np.array_equal(a.dialects, b.dialects) and set(np.unique(a.dialects)) <= {0, 5, 7}
    full = G.quantize(x, "semdialect", allowed=np.ones(32, bool))
    assert np.array_equal(full.codes, G.quantize(x, "semdialect").codes)


@pytest.mark.parametrize("amax", [np.inf, np.nan, -1.0, "1", True, 1 + 2j, [1.0], 1e39])
def test_nvfp4_tensor_amax_validated(amax):
    from semdialect import golden as G

    with pytest.raises(UsageError, match="tensor_amax"):
        G.quantize(np.ones((2, 32), np.float32), "nvfp4", tensor_amax=amax)


def _vectors(tmp_path, tokens=8, channels=64, one_token_layer=False):
    from semdialect.sw.synthetic import synthetic_vectors
    from semdialect.sw.vectors import save_vectors

    t, m = synthetic_vectors("synthetic-timestep-scale", steps=1, tokens=tokens,
                             channels=channels, layers=2)
    if one_token_layer:
        k = sorted(t)[0]
        t[k] = t[k][:1].copy()
    p = tmp_path / "v.safetensors"
    save_vectors(p, t, m)
    return p, sorted(t)


def test_eval_with_no_usable_tensor_is_an_error(tmp_path, capsys):
    p, _ = _vectors(tmp_path, tokens=1)
    line = bad(["eval", "--vectors", p, "--formats", "mxfp4"], capsys, "v", "no usable tensor")
    assert "2 skipped" in line


def test_eval_says_what_it_skipped(tmp_path, capsys):
    p, names = _vectors(tmp_path, one_token_layer=True)
    rc, out, err = run(["eval", "--vectors", p, "--formats", "mxfp4"], capsys)
    assert rc == 0 and "| mxfp4 |" in out
    assert f"skipped 1 tensor(s): {names[0]} (1 token)" in err


def test_manifest_never_holds_bare_nan(tmp_path):
    from semdialect.sw.synthetic import synthetic_vectors
    from semdialect.sw.vectors import save_vectors

    t, m = synthetic_vectors("synthetic-timestep-scale", steps=1, tokens=4, channels=32)
    m["run"]["guidance_scale"] = float("nan")
    with pytest.raises(UsageError, match="run.guidance_scale"):
        save_vectors(tmp_path / "n.safetensors", t, m)
    assert files_under(tmp_path) == []


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "x"])
def test_float_options_must_be_finite(tmp_path, capsys, value):
    bad(["capture", "--model", "wan-tiny", "--guidance", value, "-o",
         tmp_path / "x.safetensors"], capsys, "--guidance")
    bad(["e2e", "--model", "wan-tiny", "--guidance", value], capsys, "--guidance")
    assert files_under(tmp_path) == []


# ----------------------------------------------------------- hangs and runaway cost


@pytest.mark.parametrize("argv,name", [
    (["--gap", "1.0"], "--gap"), (["--gap", "2"], "--gap"), (["--gap", "-0.1"], "--gap"),
    (["--backpressure", "1.0"], "--backpressure"), (["--gap", "nan"], "--gap"),
    (["--elements", "0"], "--elements"),
])
def test_sim_run_ranges(capsys, argv, name):
    bad(["sim", "run", "mxfp4", *argv], capsys, name)


def test_stream_driver_cycle_budget_fails_loudly():
    """A DUT that never takes a block: the driver gives up at its budget (it used to spin
    forever); one that takes every block finishes within it."""
    import asyncio

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tb"))
    from stream import StreamDriver, cycle_budget

    class Now:
        def __await__(self):
            return iter(())

    class Clock:
        falling = readonly = Now()

        def now(self):
            return 0

    class Sig:
        def __init__(self, v=0):
            self.value = v

    stuck = StreamDriver(Clock(), Sig(), Sig(0), Sig(), gap=0.5)
    budget = cycle_budget(10, 0.5, 0.5, 0)
    with pytest.raises(RuntimeError, match=f"cycle budget exceeded: {budget} cycles.*0 of 10"):
        asyncio.run(stuck.run(list(range(10)), max_cycles=budget))
    ok = StreamDriver(Clock(), Sig(), Sig(1), Sig(), gap=0.5, seed=3)
    asyncio.run(ok.run(list(range(200)), max_cycles=cycle_budget(200, 0.5, 0.0, 4)))
    assert len(ok.accepted) == 200
    assert cycle_budget(100, 0.0, 0.0, 0) == 1400
    assert cycle_budget(100, 0.5, 0.5, 2) == 4 * 400 + 1000 + 8


def _big_book(tmp_path):
    rng = np.random.default_rng(0)
    ds = set()
    while len(ds) < 256:
        ds.add(tuple([0] + sorted(rng.choice(np.arange(1, 2 ** 17), 7, replace=False)
                                  .tolist())))
    p = tmp_path / "big.json"
    p.write_text(json.dumps({"name": "big", "version": 1, "grid": 2 ** -8,
                             "scale": {"type": "e8m0", "emax": 8},
                             "dialects": [list(d) for d in sorted(ds)]}))
    return p


def test_lut_size_is_estimated_and_refused_before_building(tmp_path, capsys):
    p = _big_book(tmp_path)
    line = bad(["formatbook", "show", p, "--frac-bits", "8"], capsys, "too large",
               "67108864", "134217728", "limit is 4194304")
    assert str(p) in line
    out = tmp_path / "rtl"
    bad(["rtl", "generate", "--formatbook", p, "--frac-bits", "8", "-o", out], capsys,
        "too large", str(p))
    assert files_under(out) == []
    # a book inside the LUT limits whose error-LUT stage is too wide for the generator
    rng = np.random.default_rng(1)
    ds = set()
    while len(ds) < 256:
        ds.add(tuple([0] + sorted(rng.choice(np.arange(1, 16), 7, replace=False).tolist())))
    wide = tmp_path / "wide.json"
    wide.write_text(json.dumps({"name": "wide", "version": 1, "grid": 0.5,
                                "scale": {"type": "e8m0", "emax": 2},
                                "dialects": [list(d) for d in sorted(ds)]}))
    # (W = 10 at F = 3 stores 8 bits per entry: 256 x 32 x 8; numerics §8.3)
    bad(["rtl", "generate", "--formatbook", wide, "--err-bits", "10", "-o", out], capsys,
        "65536-bit")
    assert files_under(out) == []
    from semdialect.golden import build_luts
    from semdialect.golden.lut import MAX_LUT_ENTRIES, lut_entries

    book = build_luts("semdialect-32").book
    assert lut_entries(book, 3) == (32 * 2 ** 7, 32 * 2 ** 6) and MAX_LUT_ENTRIES == 2 ** 22


# ------------------------------------------------ output paths: atomic, inside -o


@pytest.mark.parametrize("name", ["../x", "9lives", "my top", "a/b", "module", ""])
def test_rtl_name_must_be_a_verilog_identifier(tmp_path, capsys, name):
    out = tmp_path / "o"
    bad(["rtl", "generate", "--formatbook", "mxfp4", "--name", name, "-o", out], capsys,
        "--name")
    assert files_under(tmp_path) == []


def test_file_group_is_all_or_none(tmp_path, monkeypatch):
    from semdialect import paths

    out = tmp_path / "g"
    paths.write_file_group(out, {"u.v": "old v", "u.vlt": "old vlt", "u.json": "old man"})
    real = os.replace
    calls = []

    def fail_second(a, b):
        calls.append(b)
        if len(calls) == 2:
            raise OSError(28, "No space left on device", str(b))
        real(a, b)

    monkeypatch.setattr(paths.os, "replace", fail_second)
    with pytest.raises(OSError):
        paths.write_file_group(out, {"u.v": "new v", "u.vlt": "new vlt", "u.json": "new man"})
    # renames began: the old manifest is gone, so nothing pairs it with the new .v
    assert files_under(out) == ["u.v", "u.vlt"]
    assert (out / "u.v").read_text() == "new v"
    monkeypatch.setattr(paths.os, "replace", real)

    def fail_write(*a, **k):
        raise KeyboardInterrupt

    paths.write_file_group(out, {"u.v": "v2", "u.vlt": "vlt2", "u.json": "man2"})
    monkeypatch.setattr(paths.os, "fsync", fail_write)
    with pytest.raises(KeyboardInterrupt):  # interrupted while writing: old set untouched
        paths.write_file_group(out, {"u.v": "v3", "u.vlt": "vlt3", "u.json": "man3"})
    assert files_under(out) == ["u.json", "u.v", "u.vlt"]
    assert (out / "u.json").read_text() == "man2" and (out / "u.v").read_text() == "v2"


def test_vector_pair_never_pairs_old_data_with_new_manifest(tmp_path, monkeypatch):
    from semdialect import paths
    from semdialect.sw.synthetic import synthetic_vectors
    from semdialect.sw.vectors import load_vectors, save_vectors, sidecar_path

    p = tmp_path / "v.safetensors"
    t1, m1 = synthetic_vectors("synthetic-timestep-scale", steps=1, tokens=4, channels=32)
    save_vectors(p, t1, m1)
    t2, m2 = synthetic_vectors("synthetic-timestep-scale", steps=1, tokens=4, channels=32,
                               seed=1)
    real = os.replace

    def fail_on_sidecar(a, b):
        if str(b).endswith(".manifest.json"):
            raise OSError(28, "No space left on device", str(b))
        real(a, b)

    monkeypatch.setattr(paths.os, "replace", fail_on_sidecar)
    with pytest.raises(OSError):
        save_vectors(p, t2, m2)
    monkeypatch.setattr(paths.os, "replace", real)
    # the new data file, no stale sidecar: it loads, and it is the new data
    assert not sidecar_path(p).exists() and files_under(tmp_path) == ["v.safetensors"]
    t, m = load_vectors(p)
    assert m["run"]["seed"] == 1 and all(np.array_equal(t[k], t2[k]) for k in t2)


def test_capture_output_is_a_folder(tmp_path, capsys):
    d = tmp_path / "d.safetensors"
    d.mkdir()
    bad(["capture", "--model", "synthetic-timestep-scale", "-o", d], capsys, "-o", str(d),
        "folder")
    assert files_under(tmp_path) == ["d.safetensors"] and files_under(d) == []


def _writers(out):
    return {
        "rtl generate": ["rtl", "generate", "--formatbook", "mxfp4", "-o", out],
        "generate-defaults": ["rtl", "generate-defaults", "-o", out],
        "formatbook show": ["formatbook", "show", "dialectfp4", "--export", out],
        "formatbook build": ["formatbook", "build", "--synthetic", "--dialects", "4", "-o",
                             out / "b.json" if out.name == "ok" else out],
        "flow": ["flow", "--quick", "-o", out],
        "capture": ["capture", "--model", "synthetic-timestep-scale", "-o",
                    out / "x.safetensors" if out.name == "ok" else out],
    }


@pytest.mark.parametrize("cmd", ["rtl generate", "generate-defaults", "formatbook show",
                                 "formatbook build", "flow"])
@pytest.mark.parametrize("where", ["existing file", "under a file", "unwritable"])
def test_bad_output_paths_fail_first(tmp_path, capsys, monkeypatch, cmd, where):
    f = tmp_path / "afile"
    f.write_text("keep")
    if where == "existing file":
        out = f
        if cmd == "formatbook build":
            out = tmp_path / "dir"
            out.mkdir()  # a folder where the book file should go
    elif where == "under a file":
        out = f / "sub"
    else:
        from semdialect import paths

        ro = tmp_path / "ro"
        ro.mkdir(mode=0o555)
        out = ro / "sub"
        real_access = os.access  # root may write anywhere: say what a user would see
        monkeypatch.setattr(paths.os, "access", lambda p, m: real_access(p, m) and
                            not str(p).startswith(str(ro)))
    argv = _writers(out)[cmd]
    opt = "--export" if cmd == "formatbook show" else "-o"
    # nothing expensive may start: these would be the work
    import semdialect.golden.builder as builder
    import semdialect.rtl.generate as gen

    def must_not_run(*a, **k):
        raise AssertionError("work started before the output path was checked")

    monkeypatch.setattr(builder, "build_formatbook", must_not_run)
    monkeypatch.setattr(builder, "build_default_book", must_not_run)
    monkeypatch.setattr(gen, "build_unit", must_not_run)
    import semdialect.rtl.cli as rcli

    monkeypatch.setattr(rcli, "build_unit", must_not_run)
    bad(argv, capsys, opt, str(out))
    assert f.read_text() == "keep"
    assert sorted(p.name for p in tmp_path.iterdir()) in (["afile"], ["afile", "dir"],
                                                          ["afile", "ro"])


def test_arguments_checked_before_expensive_work(tmp_path, capsys, monkeypatch):
    import semdialect.golden.builder as builder
    import semdialect.golden.quality as quality
    import semdialect.sim.verilator as v

    def must_not_run(*a, **k):
        raise AssertionError("work started before the arguments were checked")

    monkeypatch.setattr(builder, "build_formatbook", must_not_run)
    bad(["formatbook", "build", "--synthetic", "--dialects", "300", "-o", tmp_path / "b.json"],
        capsys, "--dialects", "256")
    monkeypatch.setattr(quality, "quality_table", must_not_run)
    x = _npy(tmp_path, "x.npy", np.ones((2, 64), np.float32))
    bad(["eval", "--vectors", x, "--formats", "mxfp4,fp3"], capsys, "--formats", "fp3")
    (tmp_path / "afile").write_text("")
    bad(["eval", "--vectors", x, "--plot", tmp_path / "afile" / "q.png"], capsys, "--plot")
    monkeypatch.setattr(v, "generate", must_not_run)
    bad(["sim", "run", "mxfp4", "--vectors", tmp_path / "missing.npy"], capsys, "missing.npy")
    odd = _npy(tmp_path, "odd.npy", np.ones((2, 40), np.float32))
    bad(["sim", "run", "mxfp4", "--vectors", odd], capsys, "odd.npy", "multiple")
    bad(["capture", "--model", "synthetic-timestep-scale", "--steps", "1", "--capture-steps",
         "5", "-o", tmp_path / "c.safetensors"], capsys, "--capture-steps", "0..0")
    import semdialect.sim.reports as reports

    monkeypatch.setattr(reports, "generate", must_not_run)
    bad(["report", "-o", tmp_path / "rep", "--configs", "mxfp4", "--seeds", "1", "1"],
        capsys, "--seeds", "[1, 1]")
    bad(["report", "-o", tmp_path / "rep", "--configs", "mxfp4", "--seeds", "0"],
        capsys, "--seeds")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "odd.npy", "x.npy"]


# ------------------------------------------------------ tracebacks instead of messages


def test_eval_bad_npy_files(tmp_path, capsys):
    import ml_dtypes

    cases = {
        "empty.npy": (np.zeros((0,), np.float32), "empty"),
        "scalar.npy": (np.array(1.0, np.float32), "0-d"),
        "ints.npy": (np.arange(64).reshape(2, 32), "dtype int64"),
    }
    for name, (arr, msg) in cases.items():
        bad(["eval", "--vectors", _npy(tmp_path, name, arr)], capsys, name, msg)
    (tmp_path / "dir.npy").mkdir()
    bad(["eval", "--vectors", tmp_path / "dir.npy"], capsys, "dir.npy", "folder")
    huge = tmp_path / "huge.npy"
    with open(huge, "wb") as f:
        np.lib.format.write_array_header_1_0(
            f, {"descr": "<f4", "fortran_order": False, "shape": (10 ** 12, 32)})
        f.write(bytes(64))
    bad(["eval", "--vectors", huge], capsys, "huge.npy", "header claims")
    (tmp_path / "junk.npy").write_bytes(b"junk")
    bad(["eval", "--vectors", tmp_path / "junk.npy"], capsys, "junk.npy")
    # a bf16 .npy (stored as '|V2') is read as bfloat16, as `sim run` does
    x = np.random.default_rng(0).standard_normal((4, 64)).astype(ml_dtypes.bfloat16)
    rc, out, err = run(["eval", "--vectors", _npy(tmp_path, "bf.npy", x), "--formats",
                        "mxfp4", "--json"], capsys)
    assert rc == 0, err and json.loads(out)[0]["sqnr_db"] > 10


def test_formatbook_show_bad_files(tmp_path, capsys):
    bad(["formatbook", "show", tmp_path], capsys, str(tmp_path), "folder")
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100000 + "]" * 100000)
    bad(["formatbook", "show", deep], capsys, "deep.json", "nested")
    binf = tmp_path / "bin.json"
    binf.write_bytes(bytes(range(256)) * 4)
    bad(["formatbook", "show", binf], capsys, "bin.json", "not a text file")
    dup = tmp_path / "dup.json"
    dup.write_text(json.dumps({"name": "internal-name", "version": 1, "grid": 0.5,
                               "scale": {"type": "e8m0", "emax": 2},
                               "dialects": [[0, 1, 2, 3, 4, 5, 6, 8]] * 2}))
    line = bad(["formatbook", "show", dup], capsys, str(dup), "duplicate")
    assert "internal-name" not in line


@pytest.mark.parametrize("opt,value", [("--block-size", "0"), ("--dialects", "0"),
                                       ("--block-size", "-32"), ("--dialects", "many"),
                                       ("--block-size", "100000"), ("--holdout", "1")])
def test_formatbook_build_bad_numbers(tmp_path, capsys, opt, value):
    bad(["formatbook", "build", "--synthetic", opt, value, "-o", tmp_path / "b.json"],
        capsys, opt)
    assert files_under(tmp_path) == []


@pytest.mark.parametrize("opt,value", [("--frames", "0"), ("--height", "-1"),
                                       ("--width", "x"), ("--steps", "0"),
                                       ("--max-tokens", "0"), ("--max-layers", "0"),
                                       ("--seed", "-1")])
def test_capture_bad_numbers(tmp_path, capsys, opt, value):
    bad(["capture", "--model", "wan-tiny", opt, value, "-o", tmp_path / "x.safetensors"],
        capsys, opt)
    assert files_under(tmp_path) == []


def test_capture_device_this_torch_lacks(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    bad(["capture", "--model", "wan-tiny", "--device", "nosuch", "-o",
         tmp_path / "x.safetensors"], capsys, "--device")
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    bad(["capture", "--model", "wan-tiny", "--device", "cuda", "-o",
         tmp_path / "x.safetensors"], capsys, "--device", "CUDA")
    bad(["e2e", "--model", "wan-tiny", "--device", "cuda:0"], capsys, "--device")
    assert files_under(tmp_path) == []


def test_sim_failure_surfaces_the_real_error(tmp_path):
    from semdialect.sim.verilator import first_error

    log = tmp_path / "sim.log"
    log.write_text("\n".join(
        ["     0.00ns INFO     cocotb   Running on Verilator"] * 20
        + ["     0.00ns WARNING  cocotb   stream_test failed",
           "                                 Traceback (most recent call last):",
           '                                   File "quantizer_tb.py", line 140, in x',
           "                                 ValueError: gap must be in [0, 1), got 1.0"]
        + ["     0.00ns INFO     cocotb   ** TESTS=1 PASS=0 FAIL=1 SKIP=0 **"] * 10))
    assert first_error(log) == "ValueError: gap must be in [0, 1), got 1.0"
    assert first_error(tmp_path / "none.log") is None


def test_checkpoint_extra_and_missing_keys_are_errors(tmp_path, capsys):
    pytest.importorskip("diffusers")
    from safetensors.torch import load_file, save_file

    from semdialect.sw.models import build_model

    lm = build_model("wan-tiny", seed=5)
    for case in ("extra", "missing"):
        ck = tmp_path / case
        lm.module.save_pretrained(ck)
        w = next(ck.glob("*.safetensors"))
        sd = load_file(str(w))
        if case == "extra":
            sd["blocks.0.surprise.weight"] = sd[next(iter(sd))].clone()
        else:
            sd.pop(sorted(sd)[0])
        save_file(sd, str(w))
        capsys.readouterr()  # diffusers' own logging while saving is not ours to judge
        bad(["capture", "--model", "wan-tiny", "--checkpoint", ck, "--quiet", "-o",
             tmp_path / "x.safetensors"], capsys, "incompatible checkpoint",
            "1 unexpected key" if case == "extra" else "1 missing key")
    assert not (tmp_path / "x.safetensors").exists()


def test_ctrl_c_during_capture_exits_130_and_writes_nothing(tmp_path):
    pytest.importorskip("diffusers")
    out = tmp_path / "c.safetensors"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "semdialect.cli", "capture", "--model", "wan-tiny", "--steps",
         "100000", "--max-tokens", "4", "-o", str(out)],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, env=env,
        # pytest-xdist workers ignore SIGINT and a child inherits that (Python then installs
        # no KeyboardInterrupt handler): give it the default disposition a terminal gives
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    # drain stderr in a thread: a full pipe would block the child's progress output (and
    # its interrupt message) and turn a slow machine into a hang
    chunks: list[bytes] = []
    reader = threading.Thread(target=lambda: chunks.extend(iter(
        lambda: proc.stderr.read1(4096), b"")), daemon=True)
    reader.start()
    deadline = time.monotonic() + 240
    while (b"denoise" not in b"".join(chunks) and time.monotonic() < deadline
           and proc.poll() is None):
        time.sleep(0.2)
    assert b"denoise" in b"".join(chunks), b"".join(chunks)[-2000:]
    time.sleep(1.0)  # inside the denoising loop
    proc.send_signal(signal.SIGINT)
    proc.wait(180)
    reader.join(30)
    err = b"".join(chunks).decode(errors="replace")
    assert proc.returncode == 130, err[-2000:]
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert err.rstrip().splitlines()[-1].endswith("semdialect capture: interrupted")
    assert files_under(tmp_path) == []

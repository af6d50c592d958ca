"""The `semdialect` command: eval JSON schema, formatbook commands, flow, clear errors."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from semdialect.cli import main
from semdialect.golden import FORMATS, load_formatbook


def run(args, capsys):
    rc = main(args)
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_eval_json_schema(capsys):
    rc, out, _ = run(["eval", "--synthetic", "--quick", "--json", "--formats",
                      "mxfp4,nvfp4,semdialect"], capsys)
    assert rc == 0
    rows = json.loads(out)
    assert {r["format"] for r in rows} == {"mxfp4", "nvfp4", "semdialect"}
    assert {r["dataset"] for r in rows} == {
        "synthetic-gaussian", "synthetic-laplace", "synthetic-student_t3",
        "synthetic-channel_outlier"}
    for r in rows:
        assert set(r) == {"format", "dataset", "sqnr_db", "bits_per_element", "consistency",
                          "dialect_consistency", "anchor_dialect_consistency",
                          "anchor_code_consistency", "attention", "nonfinite_elements",
                          "nonfinite_blocks"}
        assert r["nonfinite_elements"] == r["nonfinite_blocks"] == 0
        assert r["consistency"] is None  # single-step data
        assert 10 < r["sqnr_db"] < 40
    bits = {r["format"]: r["bits_per_element"] for r in rows}
    assert bits["mxfp4"] == 4.25 and bits["semdialect"] == 4.40625
    # nvfp4 counts its fp32 tensor scale too
    assert 4.5 < bits["nvfp4"] < 4.501


def test_eval_npy_vectors_and_plot(tmp_path, capsys):
    x = np.random.default_rng(1).standard_normal((16, 64)).astype(np.float16)
    f = tmp_path / "acts.npy"
    np.save(f, x)
    png = tmp_path / "q.png"
    rc, out, _ = run(["eval", "--vectors", str(f), "--formats", "mxfp4,dialectfp4",
                      "--plot", str(png)], capsys)
    assert rc == 0
    assert "| mxfp4 |" in out and "acts SQNR" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    "args, msg",
    [
        (["eval", "--formats", "fp5"], "unknown format 'fp5'"),
        (["eval", "--vectors", "/nonexistent.npy"], "no such vector file"),
        (["formatbook", "show", "nope-book"], "unknown formatbook 'nope-book'"),
        (["formatbook", "build", "-o", "x.json"], "exactly one of --synthetic or --vectors"),
    ],
)
def test_bad_input_is_one_clear_line(args, msg, capsys):
    rc, _, err = run(args, capsys)
    assert rc == 2
    assert msg in err
    assert "Traceback" not in err


def test_eval_rejects_wrong_dtype_file(tmp_path, capsys):
    f = tmp_path / "ints.npy"
    np.save(f, np.arange(64).reshape(2, 32))
    rc, _, err = run(["eval", "--vectors", str(f), "--formats", "mxfp4"], capsys)
    assert rc == 2 and "unsupported input dtype int64" in err


def test_formatbook_show_and_export(tmp_path, capsys):
    rc, out, _ = run(["formatbook", "show", "dialectfp4", "--export", str(tmp_path)], capsys)
    assert rc == 0
    assert "16 dialects" in out and load_formatbook("dialectfp4").content_hash in out
    err = np.load(tmp_path / "err_lut.npy")
    idx = np.load(tmp_path / "idx_lut.npy")
    assert err.shape == (16, 2 ** (3 + 3 + 1)) and idx.shape == (16, 2 ** (3 + 2 + 1))
    assert err.max() <= 255 and idx.max() == 7


def test_formatbook_build_from_vectors_holds_out_blocks(tmp_path, capsys):
    x = np.random.default_rng(2).laplace(size=(64, 256)).astype(np.float32)
    np.save(tmp_path / "cal.npy", x)
    rc, out, _ = run(["formatbook", "build", "--vectors", str(tmp_path / "cal.npy"),
                      "--dialects", "4", "--holdout", "0.25", "-o",
                      str(tmp_path / "b4.json")], capsys)
    assert rc == 0
    report = json.loads(out)
    assert report["calibration_blocks"] == 384 and report["heldout_blocks"] == 128
    assert load_formatbook(tmp_path / "b4.json").num_dialects == 4


def test_formatbook_build_small_book(tmp_path, capsys):
    out_file = tmp_path / "b8.json"
    rc, out, _ = run(["formatbook", "build", "--synthetic", "--dialects", "8",
                      "-o", str(out_file)], capsys)
    assert rc == 0
    book = load_formatbook(out_file)
    assert book.num_dialects == 8
    report = json.loads(out)
    assert sum(report["usage"]) == report["calibration_blocks"]
    assert sum(report["heldout_usage"]) == report["heldout_blocks"] > 0
    held = report["heldout_sqnr_db"]
    assert set(held) == {"semdialect (synthetic-8)", "semdialect (semdialect-32)",
                         "dialectfp4", "mxfp4", "nvfp4"}
    # 8 dialects chosen for this data beat the single fixed E2M1 grid of mxfp4
    assert held["semdialect (synthetic-8)"] > held["mxfp4"]


@pytest.mark.slow  # `nox -s ci` runs `semdialect flow --quick` itself right after the tests
def test_flow_quick_writes_summary(tmp_path, capsys):
    rc, out, _ = run(["flow", "--quick", "-o", str(tmp_path)], capsys)
    assert rc == 0
    summary = (tmp_path / "summary.md").read_text()
    assert "Golden quality table" in summary and "| semdialect |" in summary
    assert "bit-exact against the golden model" in summary and "| mxfp4 | 32 |" in summary
    rows = json.loads((tmp_path / "quality.json").read_text())
    assert {r["format"] for r in rows} >= {"mxfp4", "nvfp4", "dialectfp4", "semdialect"}


def test_console_entry_point_runs():
    r = subprocess.run([sys.executable, "-m", "semdialect.cli", "--version"],
                       capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("semdialect ")


def test_formats_listed():
    assert set(FORMATS) == {"mxfp4", "mxfp6_e2m3", "mxfp6_e3m2", "mxfp8_e4m3", "mxfp8_e5m2",
                            "mxint8", "nvfp4", "int4", "dialectfp4", "semdialect"}

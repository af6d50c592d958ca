"""`semdialect bench` runs end to end on a tiny tensor and reports every row and goal."""

from __future__ import annotations

import pytest

from semdialect.golden import bench


def test_bench_tiny_run_reports_rows_ratios_and_goals(capsys):
    out = bench.run(rows=4, cols=64, repeat=1, warmup=0)
    res = out["results"]
    for name in ("golden mxfp4", "golden semdialect", "torch reference semdialect",
                 "torchao to_mx fp4"):
        assert res[name]["melem_s"] > 0
    assert res["torchao to_mx fp4"]["ratio_vs_torchao_mxfp4"] == 1.0
    assert set(out["goals"]) == {
        "golden mxfp4 >= 2x torchao to_mx",
        "golden semdialect >= torchao to_mx",
        "golden semdialect >= 2x torchao to_mx (stretch)",
    }
    assert bench.main(["--rows", "2", "--cols", "32", "--repeat", "1", "--warmup", "0",
                       "--no-torchao", "--no-torch-reference"]) == 0
    assert "golden semdialect" in capsys.readouterr().out


def test_semdialect_bench_cli_takes_its_options(capsys):
    """`semdialect bench --opt ...` (leading options reach the bench parser)."""
    from semdialect.cli import main

    assert main(["bench", "--rows", "2", "--cols", "32", "--repeat", "1", "--warmup", "0",
                 "--formats", "mxfp4", "--no-torchao", "--no-torch-reference"]) == 0
    assert "golden mxfp4" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        main(["bench", "--cols", "33"])
    assert e.value.code == 2

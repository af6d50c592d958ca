"""`semdialect quality` (sw/quality_cli.py): files, fields, provenance, goal check."""

from __future__ import annotations

import json

import pytest

from semdialect.sw import quality_cli as qc


def test_quality_command_writes_results(tmp_path, monkeypatch):
    # one tiny model, small synthetic data, a two-point sweep, no e2e: the plumbing
    monkeypatch.setattr(qc, "QUALITY_MODELS", ("mmdit-tiny",))
    monkeypatch.setattr(qc, "QUICK_GRID", {"top_frac": [0.0, 0.2]})
    msgs = []
    res = qc.run_quality(tmp_path, quick=True, steps=2, e2e=False, progress=msgs.append)
    for f in ("results.json", "results.md", "sqnr_vs_bits.png", "decomp_curve.png"):
        assert (tmp_path / f).stat().st_size > 0
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["table"] == json.loads(json.dumps(res["table"]))
    datasets = {r["dataset"] for r in res["table"]}
    assert datasets == {"mmdit-tiny", "synthetic-channel-outliers",
                        "synthetic-massive-activations", "synthetic-timestep-scale"}
    assert {r["format"] for r in res["table"]} == set(qc.QUALITY_FORMATS)
    for r in res["table"]:
        assert r["consistency"] is not None and 0 <= r["consistency"] <= 1
        assert (r["dialect_consistency"] is None) == (r["format"] in ("mxfp4", "nvfp4"))
    # mmdit-tiny: the double-stream Linears use the joint attention's slices
    src = res["attention_sources"]["mmdit-tiny"]
    assert src["transformer_blocks.0.attn.to_q/cond"] == \
        "joint[16:48]:transformer_blocks.0.attn"
    assert src["transformer_blocks.0.attn.add_q_proj/cond"] == \
        "joint[0:16]:transformer_blocks.0.attn"
    assert "RANDOM-WEIGHT" in res["labels"]["mmdit-tiny"]
    assert "SYNTHETIC" in res["labels"]["synthetic-timestep-scale"]
    # decomposition sweep: more salient tokens, more bits and no lower SQNR
    sw = sorted((r["value"], r["bits_per_element"], r["sqnr_db"]) for r in res["sweep"]
                if r["format"] == "semdialect-decomp")
    assert sw[1][1] > sw[0][1] and sw[1][2] >= sw[0][2]
    g = res["goal"]["mmdit-tiny"]
    assert g["met"] == (g["full_bits"] <= 4.5 and g["full_sqnr_db"] > g["nvfp4_sqnr_db"])
    md = (tmp_path / "results.md").read_text()
    assert "RANDOM WEIGHTS" in md and "| semdialect-full |" in md and "sqnr_vs_bits.png" in md
    assert any(m.startswith("[capture] mmdit-tiny") for m in msgs)


@pytest.mark.slow
def test_quality_quick_cli(tmp_path):
    from semdialect.cli import main

    assert main(["quality", "--quick", "-o", str(tmp_path)]) == 0
    res = json.loads((tmp_path / "results.json").read_text())
    assert {r["model"] for r in res["e2e"]} == {"trained-wan-tiny"}
    assert {r["format"] for r in res["e2e"]} == set(qc.QUALITY_FORMATS)


def _seq_sets(seed=0):
    import numpy as np

    from semdialect.golden.quality import Sequence

    rng = np.random.default_rng(seed)
    xs = [rng.standard_normal((16, 64)).astype(np.float32) for _ in range(2)]
    return [("d", [Sequence("l", [0, 1], xs, [None, None])])]


def test_sweep_saves_each_point_and_resumes(tmp_path):
    """Every computed (dataset, method, config) is in sweep.jsonl when its point ends; a
    re-run computes nothing and returns the same rows; other data is recomputed; a
    damaged line is ignored."""
    from semdialect.golden.quality import MethodConfig

    grid = {"top_frac": [0.0, 0.02], "k_sub": [4, 16]}  # 0.02 / 16: the base, twice
    path = tmp_path / "sweep.jsonl"
    msgs = []
    rows = qc._sweep(_seq_sets(), grid, MethodConfig(), msgs.append, path)
    assert [(r["param"], r["value"], r["format"]) for r in rows] == [
        (p, v, m) for p, vs in grid.items() for v in vs
        for m in (qc.SWEEP_METHOD[p], "semdialect-full")]
    recs = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(recs) == 7  # 8 rows, the base semdialect-full once
    assert len([m for m in msgs if m.startswith("[sweep ") and "(saved" not in m]) == 4
    path.write_text(path.read_text() + '{"data": "trunc')  # an interrupted write
    again = []
    assert qc._sweep(_seq_sets(), grid, MethodConfig(), again.append, path) == rows
    assert all("(saved" in m for m in again if m.startswith("[sweep "))
    other = qc._sweep(_seq_sets(seed=1), {"k_sub": [4]}, MethodConfig(), msgs.append, path)
    assert other != [r for r in rows if r["param"] == "k_sub" and r["value"] == 4]
    assert len(path.read_text().splitlines()) == 9  # two new records, the bad line gone


def test_choose_config_rule():
    from semdialect.golden.quality import MethodConfig

    def row(ds, param, value, sqnr, bits):
        return {"format": "semdialect-full", "dataset": ds, "param": param,
                "value": value, "sqnr_db": sqnr, "bits_per_element": bits}

    base = MethodConfig()
    rows = [row("a", "k_sub", 16, 21.0, 4.44), row("b", "k_sub", 16, 21.1, 4.44),
            row("a", "k_sub", 8, 21.2, 4.40), row("b", "k_sub", 8, 20.9, 4.40),  # worst 20.9
            row("a", "top_frac", 0.05, 22.0, 4.60), row("b", "top_frac", 0.05, 22.0, 4.49),
            row("a", "k_sub", 32, 23.0, 4.45), row("b", "k_sub", 32, 23.0, 4.45),  # no SeDA
            row("a", "n_anchors", 1, 21.004, 4.42), row("b", "n_anchors", 1, 21.1, 4.42)]
    cfg, picked = qc.choose_config(rows, base)
    assert cfg == replace_(base, n_anchors=1)  # ties 21.00 with the base, fewer bits
    assert picked["a"]["sqnr_db"] == 21.004
    rows += [row("a", "joint", {"n_anchors": 1, "refresh": 1}, 21.3, 4.42),
             row("b", "joint", {"n_anchors": 1, "refresh": 1}, 21.2, 4.42)]
    assert qc.choose_config(rows, base)[0] == replace_(base, n_anchors=1, refresh=1)
    assert qc.joint_points({"a": [1, 2], "b": [3]}) == [{"a": 1, "b": 3}, {"a": 2, "b": 3}]
    assert qc.choose_config(rows[4:6], base) is None  # over 4.5 b/e on one dataset


def replace_(cfg, **kw):
    from dataclasses import replace

    return replace(cfg, **kw)


def test_sweep_cli_on_saved_vectors(tmp_path, capsys):
    from semdialect.cli import main
    from semdialect.sw.synthetic import synthetic_vectors
    from semdialect.sw.vectors import save_vectors

    f = tmp_path / "v.safetensors"
    save_vectors(str(f), *synthetic_vectors("synthetic-massive-activations", steps=2,
                                            tokens=32, channels=64, layers=1))
    out = tmp_path / "o"
    assert main(["sweep", "--vectors", str(f), "-o", str(out), "--grid", "top_frac=0,0.1",
                 "--grid", "k_sub=4,16"]) == 0
    res = json.loads((out / "sweep.json").read_text())
    assert {r["param"] for r in res["sweep"]} == {"top_frac", "k_sub", "joint"}
    assert len([r for r in res["sweep"] if r["param"] == "joint"]) == len(
        qc.joint_points(qc.JOINT_GRID))
    # the chosen config is one of the measured ones and obeys the budget
    assert all(r["bits_per_element"] <= 4.5 for r in res["chosen"]["rows"].values())
    md = capsys.readouterr().out
    assert "**top_frac**" in md and "Chosen:" in md
    assert main(["sweep", "--vectors", str(f), "-o", str(out), "--grid", "k_sub=x"]) == 2

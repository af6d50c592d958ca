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

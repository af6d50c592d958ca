"""The report flow (semdialect.sim.synth / semdialect.sim.reports, docs/reports.md):
numbers parsed from real Yosys / nextpnr output on designs whose counts are known, the
report.json schema, cycle measurement and configuration selection."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from semdialect.golden import build_luts
from semdialect.sim import reports, synth

TINY = """
module tiny(input clk, input en, input [3:0] a, input [3:0] b, output [3:0] y,
            output reg [2:0] q);
  assign y = a & b;
  always @(posedge clk) if (en) q <= a[2:0] ^ b[2:0];
endmodule
"""

# two registers with one LUT between them: a register-to-register path for an Fmax
PIPE = """
module pipe(input clk, input [3:0] a, output reg [3:0] q);
  reg [3:0] r;
  always @(posedge clk) begin r <= a; q <= r ^ {r[2:0], r[3]}; end
endmodule
"""


# a synchronous ROM (named *_bram: left to the ECP5 block RAM mapping), then a data
# register with an enable; `extra` also drives the read data elsewhere. 1024 x 16 maps
# onto a DP16KD in true dual-port mode (one 18-bit read port); 512 x 36 onto its pseudo
# dual-port mode (PDPW16KD: one 36-bit read port, DOA0-17 + DOB0-17 on CLKB).
EBR = """
module ebr(input clk, input en, input [{ab}:0] a, output reg [{wb}:0] q{extra_port});
  reg [{wb}:0] tab_bram [{depth}:0];
  integer i;
  initial for (i = 0; i <= {depth}; i = i + 1) tab_bram[i] = i * 64'h9e3779b97f4a7c15;
  reg [{wb}:0] d;
  always @(posedge clk) if (en) d <= tab_bram[a];
  always @(posedge clk) if (en) q <= d;{extra}
endmodule
"""


@pytest.mark.parametrize("width,depth", [(16, 1024), (36, 512)])
@pytest.mark.parametrize("extra", [False, True])
def test_ecp5_block_ram_output_register(width, depth, extra, tmp_path):
    """The block RAM output register takes the data flip-flops only when they are the
    read data's only loads (same clock, one enable, no reset): all bits absorbed, 0
    fabric flip-flops left; with a second load, nothing moves. In pseudo dual-port mode
    both halves go (REGMODE_A = REGMODE_B = OUTREG, as nextpnr converts a PDPW16KD),
    with OCEB (the read port's enable) and OCEA on the register's enable; before this,
    only the DOB half was absorbed and the DOA half kept the EBR's 5.6 ns clock-to-out
    (2l-c8x8-f2, issue #10)."""
    v = EBR.format(ab=(depth - 1).bit_length() - 1, wb=width - 1, depth=depth - 1,
                   extra_port=f", output [{width - 1}:0] raw" if extra else "",
                   extra="\n  assign raw = d;" if extra else "")
    (tmp_path / "ebr.v").write_text(v)
    r = synth.ecp5_flow(tmp_path / "ebr.v", "ebr", workdir=tmp_path / "e", pnr=False)
    assert r["ebr_dp16kd"] == 1
    assert r["ebr_outreg_bits"] == (0 if extra else width)
    assert r["ff"] == (width if extra else 0)
    net = json.loads((tmp_path / "e" / "netlist.json").read_text())
    (ebr,) = [c for m in net["modules"].values() for c in m["cells"].values()
              if c["type"] == "DP16KD"]
    prm, con = ebr["parameters"], ebr["connections"]
    pdp = int(prm["DATA_WIDTH_A"], 2) == 36
    assert pdp == (width == 36)
    # the read port: B in PDP mode; A or B (Yosys picks) in true dual-port mode
    read = "B" if pdp else next(x for x in "AB" if any(
        isinstance(b, int) for i in range(18) for b in con.get(f"DO{x}{i}", [])))
    regmodes = ("A", "B") if pdp else (read,)
    for x in "AB":
        want = "OUTREG" if (x in regmodes and not extra) else "NOREG"
        assert prm[f"REGMODE_{x}"] == want, (x, prm[f"REGMODE_{x}"])
    if not extra:
        (en,) = net["modules"]["ebr"]["ports"]["en"]["bits"]
        for x in regmodes:
            assert con[f"OCE{x}"] == [en]
        outs = {b for pn, bits in con.items() if pn.startswith("DO") for b in bits}
        assert set(net["modules"]["ebr"]["ports"]["q"]["bits"]) <= outs


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    d = tmp_path_factory.mktemp("tiny")
    (d / "tiny.v").write_text(TINY)
    (d / "pipe.v").write_text(PIPE)
    return d


def test_generic_counts_of_a_known_design(tiny):
    """4 AND + 3 XOR + 3 enable flip-flops; transistors: AND 6, XOR 12, and each DFFE is
    lowered to DFF (16) + MUX (12) by dfflegalize."""
    r = synth.generic_synth(tiny / "tiny.v", "tiny", cache=tiny / "cache")
    assert r["cells_by_type"] == {"$_AND_": 4, "$_XOR_": 3, "$_DFFE_PP_": 3}
    assert r["cells"] == 10
    assert r["flip_flops"] == 3
    assert r["transistors"] == 4 * 6 + 3 * 12 + 3 * (16 + 12)
    assert r["nand2_eq"] == pytest.approx(4 * 1.33 + 3 * 2.0 + 3 * 8.0, abs=0.05)
    assert not r["cached"]
    again = synth.generic_synth(tiny / "tiny.v", "tiny", cache=tiny / "cache")
    assert again["cached"] and again["transistors"] == r["transistors"]


def test_ecp5_counts_and_fmax_of_a_known_design(tiny):
    r = synth.ecp5_flow(tiny / "pipe.v", "pipe", cache=tiny / "cache")
    assert r["ff"] == 8 and r["cells_by_type"]["TRELLIS_FF"] == 8
    assert 4 <= r["lut4"] <= 8  # 4 XOR2 LUTs (+ constant drivers nextpnr may add)
    assert r["fmax_mhz"] is not None and 100 < r["fmax_mhz"] < 2000
    assert r["device"] == synth.ECP5_DEVICE["name"]


def test_ecp5_fmax_over_placement_seeds(tiny, tmp_path, monkeypatch):
    """`semdialect report --seeds`: one nextpnr run per seed after ONE synthesis, each
    seed's result its own cache entry (the one `ecp5_flow(seed=s)` reads), and the
    row's Fmax is the lowest of them."""
    calls = []
    real_run = synth._run
    monkeypatch.setattr(synth, "_run", lambda cmd, *a, **k: (calls.append(Path(cmd[0]).name),
                                                              real_run(cmd, *a, **k))[1])
    cache = tmp_path / "cache"
    e = reports._ecp5_seeds(tiny / "pipe.v", "pipe", seeds=(1, 2, 3), cache=cache,
                            work=tmp_path, keep_hierarchy=())
    assert sum("yosys" in c for c in calls) == 1
    assert sum("nextpnr" in c for c in calls) == 3
    assert {p.name for p in (tmp_path / "ecp5").glob("nextpnr*.log")} == {
        "nextpnr.log", "nextpnr-seed2.log", "nextpnr-seed3.log"}
    assert not (tmp_path / "ecp5" / "netlist.json").exists()  # large: removed after
    assert not e["cached"]
    calls.clear()
    one = {s: synth.ecp5_flow(tiny / "pipe.v", "pipe", cache=cache, seed=s) for s in (1, 2, 3)}
    assert calls == [] and all(r["cached"] for r in one.values())
    by = {str(s): r["fmax_mhz"] for s, r in one.items()}
    assert e["fmax_mhz_by_seed"] == by
    assert e["fmax_mhz"] == min(by.values())
    assert e["fmax_mhz_median"] == pytest.approx(sorted(by.values())[1], abs=0.01)
    assert e["lut4"] == one[1]["lut4"] and e["ff"] == one[1]["ff"]
    # a new seed next to cached ones: only that seed is synthesized and placed
    more = synth.ecp5_flow_seeds(tiny / "pipe.v", "pipe", (1, 4), cache=cache,
                                 workdir=tmp_path / "more")
    assert more[1]["cached"] and not more[4]["cached"]
    assert sum("nextpnr" in c for c in calls) == 1 and sum("yosys" in c for c in calls) == 1
    for bad in ([], [0], [1, 1], [1.5]):
        with pytest.raises(ValueError, match="--seeds"):
            reports.run_report(tmp_path / "bad", names=["mxfp4"], seeds=bad)
    assert not (tmp_path / "bad" / "report.json").exists()


def test_ecp5_design_that_does_not_fit(tiny, tmp_path):
    """More LUT4 than the device has: a clear DoesNotFitError (a LimitExceededError, one
    line in the CLI) before place-and-route, not a nextpnr failure reported as a bug."""
    small = dict(synth.ECP5_DEVICE, name="a 2-LUT4 device", lut4=2)
    with pytest.raises(synth.DoesNotFitError, match=r"does not fit a 2-LUT4 device: LUT4 \d+/2"
                       ) as ei:
        synth.ecp5_flow(tiny / "pipe.v", "pipe", workdir=tmp_path / "e", device=small)
    assert ei.value.overused["LUT4"][1] == 2 and ei.value.overused["LUT4"][0] > 2
    assert not (tmp_path / "e" / "nextpnr.log").exists()  # failed before nextpnr ran


def test_overused_resources_from_a_nextpnr_log():
    log = ("Info: Device utilisation:\n"
           "Info:          TRELLIS_COMB: 41262/ 83640    49%\n"
           "Info:                DP16KD:   256/  208   123%\n"
           "Info:             MULT18X18D:     0/  156     0%\n")
    assert synth.overused_resources(log) == {"DP16KD": (256, 208)}
    assert synth.overused_resources("Info: DP16KD: 208/ 208 100%") == {}


@pytest.mark.parametrize("groups,cmp_cut", [(1, False), (4, False), (4, True)])
def test_thr_replicas_survive_synthesis(groups, cmp_cut, tmp_path):
    """The per-group threshold registers of the index stage are not merged back into one
    by Yosys (`opt_merge` merges flip-flops with equal inputs and initial values; the
    replicas differ in reset / initial value): flip-flops = sign + address per lane +
    groups x (varying threshold bits + bad), in the generic and in the ECP5 flow; with
    the `cmp` cut (bad folded into the 'never' word) + 7 thermometer bits + sign per
    lane. With the `cmp` cut the replicas reach the comparators' carry chains directly:
    no LUT4 in front of a chain (an inverter there was the ECP5 critical path, issue
    #10)."""
    from amaranth.back import verilog

    from semdialect import golden
    from semdialect.rtl.stages import IndexLut

    luts = golden.build_luts("semdialect-32", 3, 8)
    B = 8
    ilut = IndexLut(luts.idx, B, "compare", thr_cut=True, thr_groups=groups, cmp_cut=cmp_cut)
    (tmp_path / "ilut.v").write_text(verilog.convert(ilut, name="ilut"))
    # the varying threshold bits + bad per replica (`thr_columns`: constant bits need none)
    n_cols = len(ilut.thr_columns()[0])
    want = B * (1 + ilut.addr_bits) + ilut.thr_register_bits() + 8 * B * cmp_cut
    assert ilut.thr_register_bits() == groups * (n_cols + (not cmp_cut))
    g = synth.generic_synth(tmp_path / "ilut.v", "ilut", workdir=tmp_path / "g")
    e = synth.ecp5_flow(tmp_path / "ilut.v", "ilut", workdir=tmp_path / "e", pnr=False)
    assert g["flip_flops"] == want
    assert e["ff"] == want
    if cmp_cut:  # the replicas feed the comparators' carry chains with no LUT between
        assert _luts_in_front_of_chains(e, tmp_path / "e" / "netlist.json", "ilut",
                                        "thr_word") == 0


def _luts_in_front_of_chains(res, netlist, top, ff_name) -> int:
    """LUT4s of an ECP5 netlist that read a flip-flop named *ff_name* and drive a CCU2C
    carry cell (an inverter or XOR in front of a chain: a LUT level on its path)."""
    mod = json.loads(netlist.read_text())["modules"][top]
    names: dict = {}
    for n, v in mod["netnames"].items():
        for b in v["bits"]:
            names.setdefault(b, []).append(n)
    cells = mod["cells"].values()

    def outs(c):
        return {b for p, bits in c["connections"].items()
                if c["port_directions"].get(p) == "output" for b in bits}

    def ins(c):
        return {b for p, bits in c["connections"].items()
                if c["port_directions"].get(p) == "input" for b in bits}

    q = {b for c in cells if c["type"] == "TRELLIS_FF" for b in outs(c)
         if any(ff_name in n for n in names.get(b, ()))}
    assert q and res["cells_by_type"].get("CCU2C"), "no replica flip-flops or chains"
    chain_in = set().union(*(ins(c) for c in cells if c["type"] == "CCU2C"))
    return sum(1 for c in cells if c["type"] == "LUT4" and ins(c) & q and outs(c) & chain_in)


def test_parsers_reject_incomplete_numbers():
    stat = {"design": {"num_cells": 3, "num_cells_by_type": {"$_AND_": 2, "$foo": 1},
                       "estimated_num_transistors": "12+"}}
    with pytest.raises(ValueError, match="incomplete"):
        synth.parse_stat_json(json.dumps(stat))
    assert synth.parse_transistors("Estimated number of transistors:   144\n") == 144
    with pytest.raises(ValueError):
        synth.parse_transistors("Estimated number of transistors: 60+")
    with pytest.raises(ValueError, match="NAND2"):
        synth.nand2_equivalents({"$_FOO_": 1})
    rep = {"fmax": {"clk": {"achieved": 197.66, "constraint": 100}},
           "utilization": {"TRELLIS_COMB": {"available": 10, "used": 5},
                           "DP16KD": {"available": 4, "used": 0}}}
    p = synth.parse_nextpnr_report(json.dumps(rep))
    assert p["fmax_mhz"] == {"clk": 197.66} and p["used"] == {"TRELLIS_COMB": 5}


def test_measure_cycles_amaranth():
    from semdialect.rtl import MXFP4Quantizer

    for depth in (0, 2, 3):
        c = reports.measure_cycles(MXFP4Quantizer(16, "bf16", pipeline=depth), n_blocks=12)
        assert c["latency_cycles"] == depth
        assert c["throughput_blocks_per_cycle"] == 1.0
        assert c["elements_per_cycle"] == 16.0
        assert c["throughput_blocks_per_cycle_backpressure50"] == pytest.approx(0.5, abs=0.05)


def test_select_configs():
    names = [c.name for c in reports.select_configs(["dialects"])]
    assert names[0] == "mxfp4" and "synthetic-d8" in names and "semdialect-32-irom" in names
    assert [c.name for c in reports.select_configs(quick=True)] == list(reports.QUICK)
    with pytest.raises(ValueError):
        reports.select_configs(["nope"])


def test_report_json_schema_mxfp4(tmp_path):
    """A real (small) report: the baseline alone, generic synthesis only."""
    rep = reports.run_report(tmp_path, names=["mxfp4"], ecp5=False, run_cocotb=False,
                             plots=False)
    reports.validate_report(rep)
    on_disk = json.loads((tmp_path / "report.json").read_text())
    (row,) = on_disk["configs"]
    for k in reports.REQUIRED_FIELDS:
        assert k in row
    assert row["config"] == "mxfp4" and row["area_ratio_vs_mxfp4"] == 1.0
    assert row["latency_cycles"] == 2 and row["elements_per_cycle"] == 32
    assert row["ecp5_lut4"] is None and row["fmax_mhz"] is None
    assert row["cells"] == sum(row["cells_by_type"].values())
    assert "Yosys" in row["generic_source"]
    md = (tmp_path / "report.md").read_text()
    assert "| mxfp4 | 32 |" in md and "foundry" in md
    bad = dict(on_disk, configs=[{k: v for k, v in row.items() if k != "fmax_mhz"}])
    with pytest.raises(AssertionError, match="fmax_mhz"):
        reports.validate_report(bad)


@pytest.mark.slow
def test_quick_report_with_plots(tmp_path):
    rep = reports.run_report(tmp_path, quick=True)
    assert [r["config"] for r in rep["configs"]] == list(reports.QUICK)
    sd = rep["configs"][1]
    # the golden tables the generator was given (semdialect-32, default F and W): the
    # error ROM stores ERR >> L (numerics §8.3), as narrow as its largest entry needs
    luts = build_luts("semdialect-32")
    assert luts.err_rom_bits == luts.err_rom.size * int(luts.err_rom.max()).bit_length()
    assert sd["area_ratio_vs_mxfp4"] > 1
    assert sd["lut_rom_bits"] == luts.err_rom_bits + luts.idx_rom_bits


def test_design_space_plot_has_the_fpga_panel(tmp_path):
    """The design-space plot: SQNR loss against the generic area ratio and, when points
    were placed and routed, against ECP5 LUT4 per element/second (the issue's "ECP5 LUT4
    at Fmax"); one panel without any ECP5 number. Row values are only plot inputs."""
    from PIL import Image

    def row(name, loss, area, lut_ratio, lut4, fmax):
        return {"config": name, "groups": ["twolevel"], "selector": "two-level",
                "sqnr_loss_db": loss, "area_ratio_vs_mxfp4": area,
                "ecp5_lut4_ratio_vs_mxfp4_at_fmax": lut_ratio, "ecp5_lut4": lut4,
                "fmax_mhz": fmax}
    rep = {"ecp5_device": "LFE5U-85F", "ecp5_seeds": [1, 2],
           "configs": [{"config": "mxfp4", "groups": ["baseline"], "transistors": 1},
                       row("a", 0.02, 10.9, 2.4, 13255, 156.4),
                       row("b", 0.56, 6.0, 1.8, 9840, 182.7)]}
    assert "two_level_design_space.png" in reports.make_plots(rep, tmp_path)
    w2, h2 = Image.open(tmp_path / "two_level_design_space.png").size
    for r in rep["configs"][1:]:
        r["ecp5_lut4_ratio_vs_mxfp4_at_fmax"] = None
    (tmp_path / "one").mkdir()
    assert "two_level_design_space.png" in reports.make_plots(rep, tmp_path / "one")
    w1, h1 = Image.open(tmp_path / "one" / "two_level_design_space.png").size
    assert w2 > 1.6 * w1 and h1 == h2


def test_design_space_labels_do_not_overprint():
    """Nine points inside 0.03 dB and 1.0x of each other, as in the measured design
    space: every label is placed, inside the axes, on no other label and on no point."""
    import itertools

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.text import Text

    fig, ax = plt.subplots(figsize=(6.5, 5.0))
    pts = [(9.3 + 0.12 * i, 0.02 + 0.004 * (i % 3), f"2l-c8x8-point-{i}") for i in range(9)]
    pts += [(5.7, 0.56, "2l-c8x2"), (7.7, 0.20, "2l-c8x4\n10,891 LUT4 @ 167 MHz")]
    for x, y, _ in pts:
        ax.plot(x, y, "o")
    ax.legend(["points"], fontsize=7)
    ax.margins(y=0.25)
    fig.tight_layout()
    anns = reports.place_labels(ax, pts)
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    boxes = [Text.get_window_extent(a, r) for a in anns]
    frame = ax.get_window_extent(r)
    assert [a.get_text() for a in anns] == [t for _, _, t in pts]
    assert not [(i, j) for (i, a), (j, b) in itertools.combinations(enumerate(boxes), 2)
                if a.overlaps(b)]
    assert all(frame.contains(b.x0, b.y0) and frame.contains(b.x1, b.y1) for b in boxes)
    centres = [ax.transData.transform((x, y)) for x, y, _ in pts]
    assert not [(i, j) for i, b in enumerate(boxes) for j, (cx, cy) in enumerate(centres)
                if b.contains(cx, cy)]
    plt.close(fig)


@pytest.mark.slow
def test_design_points_as_dask_tasks(tmp_path):
    """jobs > 1: every design point is a task on a two-worker LocalCluster; the rows are
    those of the serial run (synthesis is deterministic and cached by Verilog hash)."""
    pytest.importorskip("distributed")
    par = reports.run_report(tmp_path / "par", names=["mxfp4", "dialectfp4"], ecp5=False,
                             run_cocotb=False, plots=False, jobs=2)
    ser = reports.run_report(tmp_path / "ser", names=["mxfp4", "dialectfp4"], ecp5=False,
                             run_cocotb=False, plots=False, jobs=1)
    for a, b in zip(par["configs"], ser["configs"]):
        assert a["config"] == b["config"]
        for k in ("cells", "transistors", "flip_flops", "latency_cycles", "lut_rom_bits"):
            assert a[k] == b[k], (a["config"], k)
    with pytest.raises(ValueError, match="--jobs"):
        reports.run_report(tmp_path / "bad", names=["mxfp4"], jobs=0)

"""Activation statistics (sw/stats.py) and the video metrics / grid (sw/video_e2e.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from semdialect.sw import stats as S
from semdialect.sw import video_e2e as VE


def _vectors(arrs, role="linear_input"):
    tensors, man = {}, {"source": {"label": "test", "weights": "none"}, "tensors": {}}
    for step, a in enumerate(arrs):
        k = f"s{step:03d}/cond/blocks.0.ff/in"
        tensors[k] = a
        man["tensors"][k] = {"role": role}
    return tensors, man


def test_layer_stats_see_outliers_and_timestep_ranges():
    rng = np.random.default_rng(0)
    g = rng.standard_normal((3, 1, 200, 64)).astype(np.float32)
    out = g.copy()
    out[:, :, 5, 7] = 300.0  # one massive (token, channel) entry
    out[1] *= 4  # step 1 four times larger
    sg = S.dataset_stats(*_vectors(list(g)))["layers"]["blocks.0.ff"]
    so = S.dataset_stats(*_vectors(list(out)))["layers"]["blocks.0.ff"]
    assert abs(sg["kurtosis"]) < 0.3 and so["kurtosis"] > 100
    assert sg["massive_ratio"] < 10 and so["massive_ratio"] > 300
    assert sg["channel_max_over_median"] < 2 and so["channel_max_over_median"] > 50
    assert 0.01 < sg["top1_token_energy"] < 0.05 and so["top1_token_energy"] > 0.5
    assert sg["amax_step_ratio"] < 1.5 and so["amax_step_ratio"] == pytest.approx(4, rel=1e-6)
    assert sorted(so["amax_by_step"]) == [0, 1, 2]


def test_attention_entropy_bounds():
    k = np.random.default_rng(1).standard_normal((1, 2, 50, 16))
    uni = S.attention_stats([(np.zeros((1, 2, 10, 16)), k)])
    assert uni["attn_entropy"] == pytest.approx(1.0) and uni["attn_top1_mass"] == \
        pytest.approx(1 / 50)
    sharp = S.attention_stats([(100 * k[:, :, :10], k)])  # each query matches one key
    assert sharp["attn_entropy"] < 0.1 and sharp["attn_top1_mass"] > 0.9


def test_stats_markdown_and_files(tmp_path):
    from semdialect.sw.vectors import new_manifest, save_vectors

    rng = np.random.default_rng(2)
    t, _ = _vectors([rng.standard_normal((1, 40, 32)).astype(np.float32) for _ in range(2)])
    man = new_manifest({"kind": "synthetic", "name": "synthetic-toy", "weights": "none",
                        "label": "toy SYNTHETIC"})
    man["tensors"] = {k: {"role": "synthetic", "shape": list(v.shape), "dtype": "float32"}
                      for k, v in t.items()}
    save_vectors(tmp_path / "toy.safetensors", t, man)
    res = S.run_stats([str(tmp_path / "toy.safetensors")], str(tmp_path / "o"))
    assert "synthetic-toy" in res
    md = (tmp_path / "o" / "stats.md").read_text()
    assert "| excess kurtosis |" in md and (tmp_path / "o" / "stats.png").stat().st_size > 0
    # every table row has the same number of cells (no stray '|')
    rows = [ln for ln in md.splitlines() if ln.startswith("|")]
    assert len({ln.count("|") for ln in rows}) == 1


def test_video_metrics():
    rng = np.random.default_rng(3)
    v = np.clip(rng.standard_normal((4, 4, 8, 8)) * 0.3, -1, 1)
    same = VE.video_metrics(v, v)
    assert math.isinf(same["video_psnr_db"]) and math.isinf(same["temporal_diff_psnr_db"])
    noisy = VE.video_metrics(v, v + 0.01 * rng.standard_normal(v.shape))
    assert 35 < noisy["video_psnr_db"] < 50
    still = np.repeat(v[:1], 4, 0)
    assert VE.temporal_consistency(still) == pytest.approx(1.0)
    assert VE.temporal_consistency(v) < 0.5


def test_grid_and_gif(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(4)
    vids = {"full precision": rng.uniform(-1, 1, (3, 4, 8, 8)),
            "nvfp4": rng.uniform(-1, 1, (3, 4, 8, 8))}
    VE.write_grid(vids, tmp_path / "g.png", "a caption")
    VE.write_gif(vids, tmp_path / "g.gif", scale=2)
    im = Image.open(tmp_path / "g.gif")
    assert im.n_frames == 3 and im.size == (2 * 16 + 2, 16)
    assert Image.open(tmp_path / "g.png").size[0] > 100

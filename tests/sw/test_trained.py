"""The procedural sprite task, rectified-flow training, and the shipped trained models."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from semdialect.sw import video_task as vt
from semdialect.sw.models import build_model, get_spec
from semdialect.sw.train import TrainConfig, train
from semdialect.sw.trained import TASKS, manifest_path, sha256_file, weights_path


def test_sample_is_a_function_of_seed_and_index():
    a, ca = vt.sample(3, 17)
    b, cb = vt.sample(3, 17)
    c, cc = vt.sample(3, 18)
    assert ca == cb and np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.shape == (4, 4, 32, 32) and a.dtype == np.float32
    assert a.min() >= -1 and a.max() <= 1


def test_captions_fit_the_vocabulary_and_length():
    seen = set()
    for i in range(300):
        _, cap = vt.sample(0, i)
        ids = vt.tokenize(cap)
        assert len(ids) == vt.MAX_TOKENS and vt.detokenize(ids) == cap
        seen.update(cap.split())
    # every grammar word shows up in a few hundred captions
    assert seen == set(vt.VOCAB) - {"<pad>"}
    longest = "a small magenta triangle turns orange and a large white square turns " \
              "yellow on a checkered background"
    assert len(longest.split()) == vt.MAX_TOKENS
    with pytest.raises(ValueError, match="vocabulary"):
        vt.tokenize("a purple circle")
    with pytest.raises(ValueError, match="more than"):
        vt.tokenize(longest + " and")


def _centre_x(cover):
    w = (cover + 1) / 2
    xs = np.arange(w.shape[-1]) + 0.5
    return float((w.sum(0) * xs).sum() / w.sum())


@pytest.mark.parametrize("motion,axis,sign", [("moves left", 1, -1), ("moves right", 1, 1),
                                              ("moves up", 0, -1), ("moves down", 0, 1)])
def test_motions_move_the_sprite(motion, axis, sign):
    s = vt.Sprite("square", "red", "large", motion, None, 16.0, 16.0, 0.0)
    sc = vt.Scene((s,), "plain", (0.1, 0.1, 0.1), 0.0, 0.3, 0.0)
    v = vt.render(sc)
    cov = v[:, 3]
    first, last = (cov[0], cov[-1]) if axis == 1 else (cov[0].T, cov[-1].T)
    assert sign * (_centre_x(last) - _centre_x(first)) > 8
    assert "moves" in vt.caption(sc)


def test_turns_changes_colour_and_rotates_changes_pixels():
    s = vt.Sprite("circle", "red", "large", "turns", "blue", 16.0, 16.0, 0.0)
    v = vt.render(vt.Scene((s,), "plain", (0.1, 0.1, 0.1), 0.0, 0.3, 0.0))
    assert v[0, 0, 16, 16] > 0.5 and v[-1, 2, 16, 16] > 0.5  # red -> blue at the centre
    r = vt.Sprite("square", "red", "large", "rotates", None, 16.0, 16.0, 0.0)
    w = vt.render(vt.Scene((r,), "plain", (0.1, 0.1, 0.1), 0.0, 0.3, 0.0))
    assert np.abs(w[0, 3] - w[1, 3]).sum() > 5 and np.allclose(w[0, 3].sum(), w[1, 3].sum(),
                                                               rtol=0.05)


@pytest.mark.parametrize("name", list(TASKS))
def test_space_to_depth_round_trip_and_channels(name):
    view = TASKS[name]
    vids, _, _ = vt.batch(0, 0, 2)
    lat = view.to_latent(vids)
    spec = get_spec(name)
    cin = spec.tiny_config["in_channels"]
    assert lat.shape[1 if view.family == "wan" else 2] == cin == 4 * view.factor ** 2
    assert tuple(lat.shape[1:]) == spec.latent_shape(type("C", (), spec.tiny_config),
                                                     spec.video)[1:]
    assert torch.equal(view.to_video(lat), vids)
    # channel c * r^2 + dy * r + dx holds pixel (r i + dy, r j + dx) of channel c
    r = view.factor
    lat5 = vt.space_to_depth(vids, r)
    assert lat5[1, 3 * r * r + 1 * r + 0, 2, 3, 4] == vids[1, 2, 3, 3 * r + 1, 4 * r + 0]


@pytest.mark.parametrize("name", list(TASKS))
def test_a_few_training_steps_lower_the_loss_deterministically(name, tmp_path):
    cfg = TrainConfig(steps=6, batch=4, lr=2e-3, warmup=2, val_size=8)
    a = train(name, cfg, str(tmp_path / "a.safetensors"))
    b = train(name, cfg, str(tmp_path / "b.safetensors"))
    assert a["sha256"] == b["sha256"]  # same seed, same bytes
    assert a["val_loss"] < a["val_loss_random_init"]
    assert a["curve"][-1]["step"] == 6 and a["steps"] == 6
    assert torch.get_num_threads() >= 1  # restored


def test_snapshot_equals_the_shorter_run(tmp_path):
    from dataclasses import replace

    name = "trained-mmdit-tiny"
    cfg = TrainConfig(steps=2, batch=2, val_size=4)
    short = train(name, cfg, str(tmp_path / "s.safetensors"))
    msgs = []
    long = train(name, replace(cfg, steps=3), str(tmp_path / "l.safetensors"),
                 snapshot_every=2, progress=msgs.append)
    snap = [m for m in msgs if "at step 2" in m]
    assert len(snap) == 1 and f"sha256 {short['sha256'][:16]}" in snap[0]
    assert long["sha256"] != short["sha256"] and long["steps"] == 3


@pytest.mark.parametrize("name", list(TASKS))
def test_shipped_checkpoint_loads_and_learned(name):
    path = weights_path(name)
    man = json.loads(manifest_path(path).read_text())
    assert man["sha256"] == sha256_file(path)
    assert man["model"] == name and man["steps"] > 0
    assert man["command"].startswith(f"semdialect train --model {name}")
    assert man["versions"]["torch"] and "seed" in man["train_config"]
    assert man["val_loss"] < 0.8 * man["val_loss_random_init"]
    # the caption matters: the true caption predicts better than the empty one
    assert man["val_loss"] < man["val_loss_empty_caption"]
    assert path.stat().st_size < 10 * 2 ** 20
    lm = build_model(name)
    assert lm.weights == "checkpoint" and "TRAINED" in lm.label
    g = torch.Generator().manual_seed(0)
    cond, uncond = lm.text_pair(g, torch.float32)
    x = torch.randn(lm.latent_shape(), generator=g)
    with torch.no_grad():
        out = lm.predict(x, 0.5, cond)
    assert out.shape == x.shape and torch.isfinite(out).all()
    assert not torch.equal(cond["encoder_hidden_states"], uncond["encoder_hidden_states"])


def test_trained_model_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="semdialect train"):
        build_model("trained-wan-tiny", checkpoint=str(tmp_path / "none.safetensors"))
    with pytest.raises(ValueError, match="cannot change the video size"):
        build_model("trained-wan-tiny", video={"frames": 8})
    from safetensors.torch import save_file

    save_file({"transformer.x": torch.zeros(2)}, str(tmp_path / "bad.safetensors"))
    with pytest.raises(ValueError, match="incompatible trained weights"):
        build_model("trained-wan-tiny", checkpoint=str(tmp_path / "bad.safetensors"))
    from semdialect.cli import main

    assert main(["train", "--model", "wan-tiny", "-o", str(tmp_path / "x.safetensors")]) == 2


def test_e2e_video_report_from_a_clip(tmp_path):
    from semdialect.sw.fakequant import e2e_table
    from semdialect.sw.video_e2e import video_report

    lat = {}
    res = e2e_table("trained-mmdit-tiny", ["nvfp4"], steps=2, seed=3, latents=lat,
                    from_clip=0.5, guidance=2.0)
    _, cap = vt.sample(2, 3)
    assert res["caption"] == cap and res["from_clip"] == 0.5 and "TRAINED" in res["label"]
    assert list(lat) == ["source clip", "reference", "nvfp4"]
    rep = video_report(lat, "trained-mmdit-tiny", tmp_path, res["caption"])
    rows = {r["format"]: r for r in rep["rows"]}
    assert rows["full precision"]["video_psnr_db"] == float("inf")
    assert 5 < rows["nvfp4"]["video_psnr_db"] < 60
    for f in rep["files"]:
        assert (tmp_path / f).stat().st_size > 0
    with pytest.raises(ValueError, match="start sigma"):
        e2e_table("trained-mmdit-tiny", ["nvfp4"], steps=1, from_clip=1.5)


def test_train_cli_rejects_bad_numbers(tmp_path, capsys):
    from semdialect.cli import main

    out = str(tmp_path / "x.safetensors")
    for opt, val in (("--steps", "0"), ("--batch", "-1"), ("--seed", "-2")):
        assert main(["train", "--model", "trained-wan-tiny", opt, val, "-o", out]) == 2
    assert not (tmp_path / "x.safetensors").exists()

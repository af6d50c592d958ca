"""`semdialect capture` / `semdialect e2e`: outputs, checkpoints, bad input."""

import json
from collections import namedtuple

import pytest
import torch

from semdialect.cli import main
from semdialect.sw import vectors as V
from semdialect.sw.capture import capture_model
from semdialect.sw.models import build_model


def run(capsys, *argv):
    rc = main(list(argv))
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_capture_writes_vectors_with_expected(tmp_path, capsys):
    out = tmp_path / "w.safetensors"
    rc, _, err = run(capsys, "capture", "--model", "wan-tiny", "--steps", "1", "--max-tokens",
                     "8", "--layers", r"blocks\.0\.", "--expected", "mxfp4,nvfp4", "--quiet",
                     "-o", str(out))
    assert rc == 0, err
    t, m = V.load_vectors(out)
    assert m["source"]["weights"] == "random-init" and "RANDOM-WEIGHT" in err
    assert [e["format"] for e in m["expected"]] == ["mxfp4", "nvfp4"]
    names = V.input_names(m)
    assert names and all(m["tensors"][n]["layer"].startswith("blocks.0.") for n in names)
    assert V.expected_key(names[0], "nvfp4", "tensor_scale") in t


def test_capture_synthetic(tmp_path, capsys):
    out = tmp_path / "s.safetensors"
    rc, _, err = run(capsys, "capture", "--model", "synthetic-timestep-scale", "--steps", "3",
                     "--dtype", "bfloat16", "-o", str(out))
    assert rc == 0, err
    t, m = V.load_vectors(out)
    assert m["source"]["kind"] == "synthetic" and "SYNTHETIC" in m["source"]["label"]
    # the scale really depends on the timestep: step 0 (t=1000) is the largest
    s = [float(abs(t[f"s{i:03d}/cond/synthetic.layer0/in"].astype("float32")).mean())
         for i in range(3)]
    assert s[0] > s[1] > s[2]


@pytest.mark.parametrize("profile", ["synthetic-channel-outliers",
                                     "synthetic-massive-activations"])
def test_synthetic_profiles_have_their_feature(profile):
    from semdialect.sw.synthetic import synthetic_vectors

    t, m = synthetic_vectors(profile, steps=1)
    x = abs(next(iter(t.values())).astype("float64"))
    prof = next(iter(m["tensors"].values()))["profile"]
    if profile == "synthetic-channel-outliers":
        hot = prof["outlier_channels"]
        assert x[:, hot].mean() > 5 * x.mean()
    else:
        assert x.max() > 500 * x.mean()


def test_dry_run_writes_nothing(tmp_path, capsys):
    out = tmp_path / "d.safetensors"
    rc, so, _ = run(capsys, "capture", "--model", "mmdit-tiny", "--steps", "1", "--dry-run",
                    "--quiet", "-o", str(out))
    assert rc == 0 and json.loads(so)["bytes"] > 0 and not out.exists()


@pytest.mark.parametrize("argv,msg", [
    (["--model", "sora-99"], "unknown model"),
    (["--model", "wan-tiny", "--checkpoint", "/no/such/ckpt"], "does not exist"),
    (["--model", "wan-tiny", "--layers", "("], "regex"),
    (["--model", "wan-tiny", "--steps", "0"], "steps"),
    (["--model", "wan-tiny", "--dtype", "int8"], "dtype"),
    (["--model", "mmdit-tiny", "--max-bytes", "10kB"], "limit"),
    (["--model", "mmdit-tiny", "--expected", "fp3"], "unknown format"),
])
def test_capture_bad_input(tmp_path, capsys, argv, msg):
    out = tmp_path / "x.safetensors"
    rc, _, err = run(capsys, "capture", *argv, "--quiet", "-o", str(out))
    assert rc == 2 and msg in err and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def test_capture_bad_output_name(tmp_path, capsys):
    rc, _, err = run(capsys, "capture", "--model", "wan-tiny", "-o", str(tmp_path / "x.npz"))
    assert rc == 2 and ".safetensors" in err


def test_not_enough_disk(tmp_path, capsys, monkeypatch):
    du = namedtuple("du", "total used free")
    monkeypatch.setattr(V.shutil, "disk_usage", lambda p: du(10**9, 10**9, 4096))
    rc, _, err = run(capsys, "capture", "--model", "mmdit-tiny", "--steps", "1", "--quiet",
                     "-o", str(tmp_path / "x.safetensors"))
    assert rc == 2 and "not enough disk space" in err
    assert list(tmp_path.iterdir()) == []


def test_checkpoint_folder_roundtrip(tmp_path, capsys):
    lm = build_model("wan-tiny", seed=5)
    lm.module.save_pretrained(tmp_path / "ckpt")
    a, ma = capture_model("wan-tiny", checkpoint=str(tmp_path / "ckpt"), steps=1, seed=5,
                          max_tokens=8)
    b, _ = capture_model("wan-tiny", steps=1, seed=5, max_tokens=8)
    assert ma["source"]["weights"] == "checkpoint" and "RANDOM" not in ma["source"]["label"]
    assert set(a) == set(b) and all(a[k].tobytes() == b[k].tobytes() for k in a)
    # a pipeline folder with transformer/ works too
    lm.module.save_pretrained(tmp_path / "pipe" / "transformer")
    c, _ = capture_model("wan-tiny", checkpoint=str(tmp_path / "pipe"), steps=1, seed=5,
                         max_tokens=8)
    assert all(a[k].tobytes() == c[k].tobytes() for k in a)


def test_incompatible_checkpoints(tmp_path, capsys):
    lm = build_model("wan-tiny", seed=5)
    lm.module.save_pretrained(tmp_path / "wan")
    rc, _, err = run(capsys, "capture", "--model", "mmdit-tiny", "--checkpoint",
                     str(tmp_path / "wan"), "--quiet", "-o", str(tmp_path / "x.safetensors"))
    assert rc == 2 and "incompatible checkpoint" in err and "WanTransformer3DModel" in err
    # single safetensors file: state dict of the wrong model
    from safetensors.torch import save_file

    mm = build_model("mmdit-tiny").module
    for sub, cfg in (("w", tmp_path / "wan" / "config.json"), ("m", None)):
        (tmp_path / sub).mkdir()
        save_file({k: v.contiguous() for k, v in mm.state_dict().items()},
                  str(tmp_path / sub / "mm.safetensors"))
        if cfg:  # with the config of another model
            (tmp_path / sub / "config.json").write_text(cfg.read_text())
        else:
            mm.save_config(tmp_path / sub)
    rc, _, err = run(capsys, "capture", "--model", "wan-tiny", "--checkpoint",
                     str(tmp_path / "w" / "mm.safetensors"), "--quiet", "-o",
                     str(tmp_path / "y.safetensors"))
    assert rc == 2 and "incompatible checkpoint" in err
    # ... and the right one loads
    rc, _, err = run(capsys, "capture", "--model", "mmdit-tiny", "--checkpoint",
                     str(tmp_path / "m" / "mm.safetensors"), "--steps", "1", "--quiet", "-o",
                     str(tmp_path / "z.safetensors"))
    assert rc == 0, err
    # corrupt weights file and an empty folder
    (tmp_path / "bad.safetensors").write_bytes(b"garbage")
    rc, _, err = run(capsys, "capture", "--model", "mmdit-tiny", "--checkpoint",
                     str(tmp_path / "bad.safetensors"), "--quiet", "-o",
                     str(tmp_path / "q.safetensors"))
    assert rc == 2 and "not a readable safetensors" in err
    (tmp_path / "empty").mkdir()
    rc, _, err = run(capsys, "capture", "--model", "mmdit-tiny", "--checkpoint",
                     str(tmp_path / "empty"), "--quiet", "-o", str(tmp_path / "q.safetensors"))
    assert rc == 2 and "config.json" in err
    assert not (tmp_path / "x.safetensors").exists() and not (tmp_path / "q.safetensors").exists()


def test_truncated_checkpoint_weights(tmp_path, capsys):
    lm = build_model("mmdit-tiny")
    lm.module.save_pretrained(tmp_path / "ck")
    w = next((tmp_path / "ck").glob("*.safetensors"))
    w.write_bytes(w.read_bytes()[:1000])
    rc, _, err = run(capsys, "capture", "--model", "mmdit-tiny", "--checkpoint",
                     str(tmp_path / "ck"), "--quiet", "-o", str(tmp_path / "x.safetensors"))
    assert rc == 2 and "checkpoint" in err


def test_e2e_cli_json(capsys):
    rc, so, err = run(capsys, "e2e", "--model", "mmdit-tiny", "--formats", "mxfp4,nvfp4",
                      "--steps", "1", "--json", "--quiet")
    assert rc == 0, err
    res = json.loads(so)
    assert [r["format"] for r in res["rows"]] == ["mxfp4", "nvfp4"]
    assert "RANDOM-WEIGHT" in res["label"]
    rc, _, err = run(capsys, "e2e", "--model", "nope", "--quiet")
    assert rc == 2 and "unknown model" in err
    rc, _, err = run(capsys, "e2e", "--model", "mmdit-tiny", "--formats", "fp3", "--quiet")
    assert rc == 2 and "unknown format" in err


def test_cli_loaded_module_untouched():
    # capture never leaves the SDPA patch behind
    assert torch.nn.functional.scaled_dot_product_attention.__module__.startswith("torch")

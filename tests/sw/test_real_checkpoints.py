"""Real-checkpoint path (issue 12) on small configs: checks before loading, checkpoint
dtype, streaming shards with an exact estimate, aliases, filters, resume, conditioning."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from semdialect.cli import main
from semdialect.sw import capture as C
from semdialect.sw import models as M
from semdialect.sw import vectors as V
from semdialect.sw.capture import Capture, capture_model, plan_capture
from semdialect.sw.models import build_model


def run(capsys, *argv):
    rc = main(list(argv))
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.fixture(scope="module")
def bf16_ckpt(tmp_path_factory):
    """A wan-tiny checkpoint saved in bfloat16 (as real Wan checkpoints are)."""
    d = tmp_path_factory.mktemp("ck") / "Wan-tiny-bf16"
    build_model("wan-tiny", seed=5).module.to(torch.bfloat16).save_pretrained(d)
    return d


def _no_loading(monkeypatch):
    def boom(*a, **k):
        raise AssertionError("weights were loaded")

    monkeypatch.setattr(M, "_load_checkpoint", boom)
    monkeypatch.setattr(M, "_state_dict_from", boom)


# ------------------------------------------------------------------ checks before loading
def test_safetensors_without_config(tmp_path, capsys, bf16_ckpt, monkeypatch):
    _no_loading(monkeypatch)
    f = tmp_path / "w.safetensors"
    f.write_bytes(next(bf16_ckpt.glob("*.safetensors")).read_bytes())
    rc, _, err = run(capsys, "capture", "--model", "wan", "--checkpoint", str(f), "--quiet",
                     "-o", str(tmp_path / "o.safetensors"))
    assert rc == 2 and "no config.json next to it" in err and err.count("\n") == 1


def test_original_wan_layout(tmp_path, capsys, monkeypatch):
    _no_loading(monkeypatch)
    sd = {"blocks.0.self_attn.q.weight": torch.zeros(4, 4), "head.head.weight": torch.zeros(4)}
    save_file(sd, str(tmp_path / "wan.safetensors"))
    cfg = {k: v for k, v in build_model("wan-tiny").module.config.items()}
    (tmp_path / "config.json").write_text(json.dumps(dict(cfg, patch_size=list(
        cfg["patch_size"]))))
    rc, _, err = run(capsys, "capture", "--model", "wan", "--checkpoint",
                     str(tmp_path / "wan.safetensors"), "--quiet", "-o",
                     str(tmp_path / "o.safetensors"))
    assert rc == 2 and "original (non-diffusers) Wan key layout" in err
    assert "from_single_file" in err and err.count("\n") == 1


def test_wrong_shapes_before_loading(tmp_path, capsys, bf16_ckpt, monkeypatch):
    _no_loading(monkeypatch)
    d = tmp_path / "ck"
    d.mkdir()
    cfg = json.loads((bf16_ckpt / "config.json").read_text())
    (d / "config.json").write_text(json.dumps(dict(cfg, ffn_dim=96)))
    for f in bf16_ckpt.glob("*.safetensors"):
        (d / f.name).write_bytes(f.read_bytes())
    rc, _, err = run(capsys, "capture", "--model", "wan", "--checkpoint", str(d), "--quiet",
                     "-o", str(tmp_path / "o.safetensors"))
    assert rc == 2 and "shape mismatches" in err and "ffn" in err


@pytest.mark.parametrize("argv,msg", [
    (["--height", "15"], "not a multiple of the patch size 2"),
    (["--width", "4096"], "RoPE table"),
])
def test_odd_latent_before_loading(tmp_path, capsys, bf16_ckpt, monkeypatch, argv, msg):
    _no_loading(monkeypatch)
    rc, _, err = run(capsys, "capture", "--model", "wan", "--checkpoint", str(bf16_ckpt),
                     *argv, "--quiet", "-o", str(tmp_path / "o.safetensors"))
    assert rc == 2 and msg in err and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def test_check_latent_direct():
    from semdialect.errors import UsageError
    from semdialect.sw.checkpoints import check_latent

    cfg = {"patch_size": [1, 2, 2], "rope_max_seq_len": 1024}
    check_latent("WanTransformer3DModel", cfg, {"frames": 21, "height": 60, "width": 104})
    with pytest.raises(UsageError, match="must be positive"):
        check_latent("WanTransformer3DModel", cfg, {"frames": 0, "height": 60, "width": 104})
    with pytest.raises(UsageError, match="patch size 2"):
        check_latent("MochiTransformer3DModel", {"patch_size": 2},
                     {"frames": 2, "height": 7, "width": 8})


def test_architecture_name_needs_checkpoint(tmp_path, capsys):
    rc, _, err = run(capsys, "capture", "--model", "wan", "-o", str(tmp_path / "o.safetensors"))
    assert rc == 2 and "give --checkpoint" in err and "wan-tiny" in err


def test_capture_steps_checked(tmp_path, capsys):
    rc, _, err = run(capsys, "capture", "--model", "wan-tiny", "--steps", "3",
                     "--capture-steps", "0,10,20", "-o", str(tmp_path / "o.safetensors"))
    assert rc == 2 and "--capture-steps" in err and "[10, 20] are not in 0..2" in err


# --------------------------------------------------------------------- dtype and naming
def test_checkpoint_dtype_kept_and_named(tmp_path, capsys, bf16_ckpt):
    lm = build_model("wan-tiny", checkpoint=str(bf16_ckpt))
    dts = {n: p.dtype for n, p in lm.module.named_parameters()}
    keep = M._cls("WanTransformer3DModel")._keep_in_fp32_modules
    assert lm.dtype == torch.bfloat16
    for n, dt in dts.items():
        want = torch.float32 if any(k in n.split(".") for k in keep) else torch.bfloat16
        assert dt == want, n
    assert any(dt == torch.float32 for dt in dts.values())
    out = tmp_path / "o.safetensors"
    rc, _, err = run(capsys, "capture", "--model", "wan", "--checkpoint", str(bf16_ckpt),
                     "--steps", "1", "--max-tokens", "8", "-o", str(out))
    assert rc == 0, err
    assert "Wan-tiny-bf16 denoise" in err  # progress says the checkpoint's name
    t, m = V.load_vectors(out)
    assert m["source"]["name"] == "Wan-tiny-bf16" and m["source"]["architecture"] == "wan-tiny"
    assert m["run"]["dtype"] == "bfloat16" and m["source"]["checkpoint_dtype"] == "bfloat16"
    blk = [k for k in t if "blocks.0.attn1.to_q/in" in k]
    assert blk and t[blk[0]].dtype == V._NAME_TO_NP["bfloat16"]
    assert all(v["model"] == "Wan-tiny-bf16" for v in m["tensors"].values()
               if v["role"] != "expected")


def test_file_checkpoint_matches_folder(tmp_path, bf16_ckpt):
    f = tmp_path / "Wan-file.safetensors"
    f.write_bytes(next(bf16_ckpt.glob("*.safetensors")).read_bytes())
    (tmp_path / "config.json").write_text((bf16_ckpt / "config.json").read_text())
    a = build_model("wan-tiny", checkpoint=str(f)).module.state_dict()
    b = build_model("wan-tiny", checkpoint=str(bf16_ckpt)).module.state_dict()
    assert a.keys() == b.keys()
    assert all(a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]) for k in a)
    # the same weights and dtypes as diffusers' own from_pretrained(torch_dtype=bf16)
    ref = M._cls("WanTransformer3DModel").from_pretrained(
        str(bf16_ckpt), torch_dtype=torch.bfloat16).state_dict()
    assert ref.keys() == a.keys()
    assert all(a[k].dtype == ref[k].dtype and torch.equal(a[k], ref[k]) for k in a)


# ------------------------------------------------------------- streaming and estimates
def test_streamed_shards_equal_in_memory_and_estimate_exact(tmp_path):
    kw = dict(steps=2, seed=2, max_tokens=24)
    t_mem, m_mem = capture_model("wan-tiny", **kw)
    plan = plan_capture("wan-tiny", steps=2, max_tokens=24, expected=["mxfp4", "nvfp4"],
                        seed=2)
    out = tmp_path / "vec"
    m = capture_model("wan-tiny", **kw, output=out, expected=["mxfp4", "nvfp4"],
                      shard_bytes=20_000)
    assert m["complete"] and len(m["shards"]) > 3
    assert plan.exact and plan.total_bytes == m["data_bytes"]
    assert plan.tensors == sum(1 for v in m_mem["tensors"].values() if "alias_of" not in v)
    t, m2 = V.load_vectors(out)
    for k, a in t_mem.items():
        assert t[k].dtype == a.dtype and t[k].tobytes() == a.tobytes(), k
    assert any(k.endswith("#nvfp4/tensor_scale") for k in t)
    # merged into one file: same tensors, one file, directory gone
    stored = V.merge_shards(out, tmp_path / "one.safetensors")
    t1, m1 = V.load_vectors(tmp_path / "one.safetensors")
    assert not out.exists() and stored["data_bytes"] == m["data_bytes"]
    assert list(t1) == list(t) and all(t1[k].tobytes() == t[k].tobytes() for k in t)


def test_aliases_are_bit_identical_inputs():
    t, m = capture_model("mmdit-tiny", steps=1, seed=1)
    lm = build_model("mmdit-tiny", seed=1)
    cap = Capture(lm.module, dedup=False)
    with cap:
        C.denoise(lm, steps=1, seed=1, capture=cap)
    aliases = {k: v["alias_of"] for k, v in m["tensors"].items() if "alias_of" in v}
    assert any(k.endswith("attn.to_k/in") for k in aliases)
    assert any(k.endswith("attn.add_v_proj/in") for k in aliases)
    for k, tgt in aliases.items():
        assert t[k] is t[tgt] and cap.tensors[k].tobytes() == cap.tensors[tgt].tobytes()
    # a file stores each once and gives every name back
    assert set(cap.tensors) == set(t)


def test_max_layers_limits_qk():
    plan = plan_capture("wan-tiny", steps=1, max_layers=3, layers=r"^(blocks\.0\.|proj_out)")
    t, m = capture_model("wan-tiny", steps=1, max_layers=3, layers=r"^(blocks\.0\.|proj_out)")
    lin = {v["layer"] for v in m["tensors"].values() if v["role"] == "linear_input"}
    qk = {v["layer"] for v in m["tensors"].values() if v["role"] in ("attn_q", "attn_k")}
    assert len(lin) == 3 and "proj_out" in lin
    assert qk == {"blocks.0.attn1", "blocks.0.attn2"}
    # without the limit every matching attention is recorded
    _, m2 = capture_model("wan-tiny", steps=1, layers=r"^(blocks\.|proj_out)")
    assert len({v["layer"] for v in m2["tensors"].values() if v["role"] == "attn_q"}) == 4
    assert plan.total_bytes == sum(a.nbytes for k, a in t.items()
                                   if "alias_of" not in m["tensors"][k])


def test_dry_run_loads_nothing(tmp_path, capsys, bf16_ckpt, monkeypatch):
    _no_loading(monkeypatch)
    rc, so, err = run(capsys, "capture", "--model", "wan", "--checkpoint", str(bf16_ckpt),
                      "--steps", "3", "--dry-run", "-o", str(tmp_path / "o"))
    est = json.loads(so)
    assert rc == 0 and est["bytes"] > 0 and est["aliases"] > 0 and est["dtype"] == "bfloat16"
    assert list(tmp_path.iterdir()) == []


def test_resume_after_interruption(tmp_path, monkeypatch):
    kw = dict(steps=3, seed=4, max_tokens=16)
    full, _ = capture_model("wan-tiny", **kw)
    orig = V.ShardWriter.mark_step_done

    def crash_after_first(self, step, latent):
        orig(self, step, latent)
        if step == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(V.ShardWriter, "mark_step_done", crash_after_first)
    out = tmp_path / "vec"
    with pytest.raises(KeyboardInterrupt):
        capture_model("wan-tiny", **kw, output=out)
    monkeypatch.setattr(V.ShardWriter, "mark_step_done", orig)
    with pytest.raises(V.VectorFileError, match="unfinished"):
        V.load_vectors(out)
    assert V.read_sharded_manifest(out)["steps_done"] == 2
    with pytest.raises(ValueError, match="not empty"):
        capture_model("wan-tiny", **kw, output=out)
    with pytest.raises(ValueError, match="other settings"):
        capture_model("wan-tiny", **{**kw, "seed": 5}, output=out, resume=True)
    m = capture_model("wan-tiny", **kw, output=out, resume=True)
    t, _ = V.load_vectors(out)
    assert m["complete"] and list(t) == list(full)
    assert all(t[k].tobytes() == full[k].tobytes() for k in full)


def test_corrupt_shard_detected(tmp_path):
    out = tmp_path / "vec"
    capture_model("mmdit-tiny", steps=1, output=out, shard_bytes=10_000)
    f = out / "shard-00001.safetensors"
    b = bytearray(f.read_bytes())
    b[-3] ^= 0xFF
    f.write_bytes(bytes(b))
    with pytest.raises(V.VectorFileError, match="checksum"):
        V.load_vectors(out)


# ------------------------------------------------------------------------ conditioning
def test_text_embeds_and_flow_shift(tmp_path):
    g = torch.Generator().manual_seed(0)
    cond = torch.randn(1, 7, 32, generator=g)
    save_file({"cond.encoder_hidden_states": cond,
               "uncond.encoder_hidden_states": torch.zeros(1, 7, 32)},
              str(tmp_path / "emb.safetensors"))
    t, m = capture_model("wan-tiny", steps=2, shift=3.0,
                         text_embeds=str(tmp_path / "emb.safetensors"))
    x = t["s000/cond/condition_embedder.text_embedder.linear_1/in"]
    assert np.array_equal(x.reshape(7, 32), cond.numpy().reshape(7, 32))
    assert not t["s000/uncond/condition_embedder.text_embedder.linear_1/in"].any()
    s = np.linspace(1, 0, 3)
    assert np.allclose(m["run"]["sigmas"], 3 * s / (1 + 2 * s)) and m["run"]["flow_shift"] == 3
    plan = plan_capture("wan-tiny", steps=2, text_embeds=str(tmp_path / "emb.safetensors"))
    assert plan.total_bytes == sum(a.nbytes for k, a in t.items()
                                   if "alias_of" not in m["tensors"][k])
    save_file({"cond.encoder_hidden_states": cond}, str(tmp_path / "bad.safetensors"))
    with pytest.raises(ValueError, match="uncond.encoder_hidden_states"):
        capture_model("wan-tiny", steps=1, text_embeds=str(tmp_path / "bad.safetensors"))


def test_resume_needs_a_directory(tmp_path, capsys):
    rc, _, err = run(capsys, "capture", "--model", "wan-tiny", "--steps", "1", "--resume",
                     "--quiet", "-o", str(tmp_path / "x.safetensors"))
    assert rc == 2 and "--resume" in err and "directory" in err
    assert list(tmp_path.iterdir()) == []

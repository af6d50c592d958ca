"""Vector files: safetensors + manifest round trip, validation, atomic writes."""

import json
from collections import namedtuple

import ml_dtypes
import numpy as np
import pytest

from semdialect import golden
from semdialect.sw import vectors as V
from semdialect.sw.vectors import VectorFileError, add_expected, load_vectors, save_vectors


def _linear_meta(shape, dtype):
    return {"role": "linear_input", "layer": "blocks.0.ff", "module_type": "Linear",
            "model": "unit", "step": 0, "timestep": 1000.0, "branch": "cond",
            "shape": list(shape), "dtype": dtype}


def _make(dtypes=("float32", "float16", "bfloat16")):
    rng = np.random.default_rng(0)
    npdt = {"float32": np.float32, "float16": np.float16, "bfloat16": ml_dtypes.bfloat16}
    m = V.new_manifest({"kind": "module", "name": "unit", "weights": "user-module",
                        "label": "unit test"})
    t = {}
    for i, d in enumerate(dtypes):
        x = (rng.standard_t(3, size=(3, 64)) * 10.0 ** rng.integers(-3, 3)).astype(npdt[d])
        t[f"s000/cond/l{i}/in"] = x
        m["tensors"][f"s000/cond/l{i}/in"] = _linear_meta(x.shape, d)
    return t, m


def test_roundtrip_preserves_dtype_and_bits(tmp_path):
    t, m = _make()
    p = tmp_path / "v.safetensors"
    save_vectors(p, t, m)
    t2, m2 = load_vectors(p)
    assert list(t2) == list(t)
    for k in t:
        assert t2[k].dtype == t[k].dtype and t2[k].shape == t[k].shape
        assert t2[k].tobytes() == t[k].tobytes()
    assert t2["s000/cond/l2/in"].dtype == ml_dtypes.bfloat16
    assert m2["version"] == V.SCHEMA_VERSION and m2["schema"] == V.SCHEMA
    assert json.loads((tmp_path / "v.safetensors.manifest.json").read_text()) == m2
    t2["s000/cond/l0/in"][0, 0] = 1.0  # writable arrays


def test_file_readable_by_safetensors_library(tmp_path):
    torch = pytest.importorskip("torch")
    from safetensors.torch import load_file

    t, m = _make()
    p = tmp_path / "v.safetensors"
    save_vectors(p, t, m)
    d = load_file(str(p))
    assert d["s000/cond/l2/in"].dtype == torch.bfloat16
    np.testing.assert_array_equal(d["s000/cond/l0/in"].numpy(), t["s000/cond/l0/in"])
    np.testing.assert_array_equal(d["s000/cond/l2/in"].float().numpy(),
                                  t["s000/cond/l2/in"].astype(np.float32))


@pytest.mark.parametrize("fmt", ["mxfp4", "nvfp4", "dialectfp4", "semdialect", "int4"])
def test_expected_outputs_match_golden(tmp_path, fmt):
    t, m = _make()
    add_expected(t, m, fmt)
    p = tmp_path / "v.safetensors"
    save_vectors(p, t, m)
    t2, m2 = load_vectors(p)
    assert m2["expected"][0]["format"] == fmt
    for name in V.input_names(m2):
        qt = golden.quantize(t2[name], fmt)
        np.testing.assert_array_equal(t2[V.expected_key(name, fmt, "codes")], qt.codes)
        np.testing.assert_array_equal(t2[V.expected_key(name, fmt, "scales")], qt.scales)
        if qt.dialects is not None:
            np.testing.assert_array_equal(t2[V.expected_key(name, fmt, "dialects")], qt.dialects)
        else:
            assert V.expected_key(name, fmt, "dialects") not in t2


def test_expected_pads_odd_widths(tmp_path):
    m = V.new_manifest({"kind": "module", "name": "u", "weights": "user-module", "label": "u"})
    x = np.linspace(-3, 3, 2 * 24, dtype=np.float32).reshape(2, 24)
    t = {"a": x}
    m["tensors"]["a"] = _linear_meta(x.shape, "float32")
    add_expected(t, m, "mxfp4")
    assert t["a#mxfp4/codes"].shape == (2, 32)
    assert m["tensors"]["a#mxfp4/codes"]["padded_to"] == 32
    xp = np.concatenate([x, np.zeros((2, 8), np.float32)], 1)
    np.testing.assert_array_equal(t["a#mxfp4/codes"], golden.quantize(xp, "mxfp4").codes)


def _corrupt(tmp_path, fn):
    t, m = _make()
    p = tmp_path / "v.safetensors"
    save_vectors(p, t, m)
    fn(p)
    return p


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_vectors(tmp_path / "nope.safetensors")


def test_truncated_file(tmp_path):
    p = _corrupt(tmp_path, lambda p: p.write_bytes(p.read_bytes()[:-10]))
    with pytest.raises(VectorFileError, match="truncated|beyond"):
        load_vectors(p)


def test_garbage_file(tmp_path):
    p = tmp_path / "g.safetensors"
    p.write_bytes(b"\x00" * 3)
    with pytest.raises(VectorFileError):
        load_vectors(p)
    p.write_bytes(b"\xff" * 64)
    with pytest.raises(VectorFileError, match="header"):
        load_vectors(p)


def test_flipped_data_byte_fails_checksum(tmp_path):
    def flip(p):
        b = bytearray(p.read_bytes())
        b[-5] ^= 0x40
        p.write_bytes(bytes(b))

    p = _corrupt(tmp_path, flip)
    with pytest.raises(VectorFileError, match="checksum"):
        load_vectors(p)


def test_mismatched_sidecar(tmp_path):
    def edit(p):
        s = p.with_name(p.name + ".manifest.json")
        d = json.loads(s.read_text())
        d["source"]["name"] = "other"
        s.write_text(json.dumps(d))

    p = _corrupt(tmp_path, edit)
    with pytest.raises(VectorFileError, match="does not match"):
        load_vectors(p)


def test_foreign_safetensors_file(tmp_path):
    torch = pytest.importorskip("torch")
    from safetensors.torch import save_file

    p = tmp_path / "f.safetensors"
    save_file({"a": torch.zeros(4)}, str(p))
    with pytest.raises(VectorFileError, match="without a semdialect manifest"):
        load_vectors(p)


def test_bad_manifest_version_and_schema():
    t, m = _make()
    m = V._sync_manifest(t, m)
    V.validate_manifest(m)
    for key, val, msg in [("version", 3, "version 3"), ("schema", "x", "not a semdialect"),
                          ("source", {"kind": "model"}, "missing 'name'")]:
        bad = json.loads(json.dumps(m))
        bad[key] = val
        with pytest.raises(VectorFileError, match=msg):
            V.validate_manifest(bad)
    bad = json.loads(json.dumps(m))
    bad["source"] = {"kind": "synthetic", "name": "outliers", "weights": "none"}
    with pytest.raises(VectorFileError, match="synthetic"):
        V.validate_manifest(bad)
    bad = json.loads(json.dumps(m))
    del bad["tensors"]["s000/cond/l0/in"]["step"]
    with pytest.raises(VectorFileError, match="step"):
        V.validate_manifest(bad)


def test_manifest_tensor_disagreement_refused(tmp_path):
    t, m = _make()
    del m["tensors"]["s000/cond/l1/in"]
    with pytest.raises(ValueError, match="disagree"):
        save_vectors(tmp_path / "v.safetensors", t, m)
    assert list(tmp_path.iterdir()) == []


def test_not_enough_disk_leaves_nothing(tmp_path, monkeypatch):
    t, m = _make()
    du = namedtuple("du", "total used free")
    monkeypatch.setattr(V.shutil, "disk_usage", lambda p: du(10**9, 10**9, 1000))
    with pytest.raises(ValueError, match="not enough disk space"):
        save_vectors(tmp_path / "v.safetensors", t, m)
    assert list(tmp_path.iterdir()) == []


def test_max_bytes_limit(tmp_path):
    t, m = _make()
    with pytest.raises(ValueError, match="above the limit"):
        save_vectors(tmp_path / "v.safetensors", t, m, max_bytes=100)
    assert list(tmp_path.iterdir()) == []


def test_write_failure_midway_leaves_no_file(tmp_path, monkeypatch):
    t, m = _make()
    p = tmp_path / "v.safetensors"
    save_vectors(p, t, m)
    before = p.read_bytes()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(V.os, "fsync", boom)
    t["s000/cond/l0/in"] = t["s000/cond/l0/in"] * 2
    with pytest.raises(OSError):
        save_vectors(p, t, m)
    assert p.read_bytes() == before  # old file intact, no temp left behind
    assert sorted(x.name for x in tmp_path.iterdir()) == ["v.safetensors",
                                                          "v.safetensors.manifest.json"]


def test_unsupported_dtype_rejected(tmp_path):
    t, m = _make(("float32",))
    t["s000/cond/l0/in"] = t["s000/cond/l0/in"].astype(np.complex64)
    with pytest.raises(TypeError):
        save_vectors(tmp_path / "v.safetensors", t, m)


def test_version_1_files_still_load(tmp_path, monkeypatch):
    t, m = _make()
    monkeypatch.setattr(V, "SCHEMA_VERSION", 1)
    m = V.new_manifest(m["source"], m["run"]) | {"tensors": m["tensors"]}
    assert m["version"] == 1
    monkeypatch.undo()
    p = tmp_path / "v1.safetensors"
    V.save_vectors(p, t, m)
    t2, m2 = load_vectors(p)
    assert m2["version"] == 1 and all(t2[k].tobytes() == t[k].tobytes() for k in t)

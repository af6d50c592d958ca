"""Test-vector files: safetensors + a versioned JSON manifest (schema: docs/vectors.md).

Pure NumPy (no torch): the `eval` command and the cocotb testbench import this module in
environments that may not have torch. The safetensors container is read and written
here directly (it is a little-endian u64 header length, a JSON header, then raw bytes),
so bfloat16 round-trips as ``ml_dtypes.bfloat16``.

Public API::

    tensors, manifest = load_vectors("vectors.safetensors")
    save_vectors("vectors.safetensors", tensors, manifest)
    add_expected(tensors, manifest, "mxfp4")   # golden codes/scales/dialects per input
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import shutil
import struct
import tempfile
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np

from semdialect.errors import InputFileError, LimitExceededError, OutputPathError, UsageError
from semdialect.paths import check_output_file, replace_group

__all__ = [
    "SCHEMA",
    "SCHEMA_VERSION",
    "MANIFEST_KEY",
    "VectorFileError",
    "CaptureLimitError",
    "ShardWriter",
    "merge_shards",
    "is_vector_path",
    "load_vectors",
    "save_vectors",
    "validate_manifest",
    "new_manifest",
    "add_expected",
    "expected_key",
    "estimate_bytes",
    "format_bytes",
    "input_names",
]

SCHEMA = "semdialect.vectors"
SCHEMA_VERSION = 2  # 2: aliases (`alias_of`) and sharded directories; 1 is still read
READABLE_VERSIONS = (1, 2)
MANIFEST_KEY = "semdialect.manifest"
SIDECAR_SUFFIX = ".manifest.json"
SHARDED_MANIFEST = "manifest.json"  # of a sharded vector directory
STATE_FILE = "resume-state.safetensors"  # latent after the last finished step
EXPECTED_SEP = "#"  # expected outputs live under "<input name>#<format>/<field>"

# numpy dtype <-> safetensors dtype tag <-> manifest dtype name
_DTYPES = [
    (np.dtype(np.float32), "F32", "float32"),
    (np.dtype(np.float16), "F16", "float16"),
    (np.dtype(ml_dtypes.bfloat16), "BF16", "bfloat16"),
    (np.dtype(np.float64), "F64", "float64"),
    (np.dtype(np.uint8), "U8", "uint8"),
    (np.dtype(np.int8), "I8", "int8"),
    (np.dtype(np.uint16), "U16", "uint16"),
    (np.dtype(np.int16), "I16", "int16"),
    (np.dtype(np.int32), "I32", "int32"),
    (np.dtype(np.uint32), "U32", "uint32"),
    (np.dtype(np.int64), "I64", "int64"),
    (np.dtype(np.bool_), "BOOL", "bool"),
]
_NP_TO_TAG = {d: t for d, t, _ in _DTYPES}
_TAG_TO_NP = {t: d for d, t, _ in _DTYPES}
_NP_TO_NAME = {d: n for d, _, n in _DTYPES}
_NAME_TO_NP = {n: d for d, _, n in _DTYPES}

ROLES = ("linear_input", "linear_weight", "attn_q", "attn_k", "attn_probs", "synthetic",
         "tensor", "expected")
EXPECTED_FIELDS = ("codes", "scales", "dialects", "tensor_scale")
HEADER_LIMIT = 100 * 1024 * 1024  # a sane bound on a header, against corrupt lengths


class VectorFileError(InputFileError):
    """A vector file is missing, corrupt, or does not match its manifest."""


def dtype_name(dt) -> str:
    try:
        return _NP_TO_NAME[np.dtype(dt)]
    except (KeyError, TypeError):
        raise TypeError(f"unsupported tensor dtype {dt} for a vector file") from None


def format_bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def expected_key(name: str, fmt: str, fld: str) -> str:
    return f"{name}{EXPECTED_SEP}{fmt}/{fld}"


def input_names(manifest: dict) -> list[str]:
    """Names of the captured (non-expected) tensors, in file order."""
    return [k for k, v in manifest["tensors"].items() if v["role"] != "expected"]


# --------------------------------------------------------------------------- manifest


def new_manifest(source: dict, run: dict | None = None) -> dict:
    """An empty manifest. `source` must say what produced the data (see docs/vectors.md):
    kind ('model' | 'synthetic' | 'module'), name, weights, label."""
    from semdialect import __version__
    from semdialect.versions import resolved_versions

    m = {
        "schema": SCHEMA,
        "version": SCHEMA_VERSION,
        "producer": f"semdialect {__version__}",
        "versions": resolved_versions(),
        "source": dict(source),
        "run": dict(run or {}),
        "expected": [],
        "tensors": {},
    }
    return m


def _req(obj: dict, key: str, typ, where: str):
    if not isinstance(obj, dict) or key not in obj:
        raise VectorFileError(f"{where}: manifest is missing '{key}'")
    val = obj[key]
    if not isinstance(val, typ) or (typ is int and isinstance(val, bool)):
        names = typ.__name__ if isinstance(typ, type) else "/".join(t.__name__ for t in typ)
        raise VectorFileError(f"{where}: manifest field '{key}' must be {names}, "
                              f"got {type(val).__name__}")
    return val


def validate_manifest(manifest: Any, where: str = "manifest") -> dict:
    """Check a manifest against schema version 1 (docs/vectors.md). Returns it."""
    if not isinstance(manifest, dict):
        raise VectorFileError(f"{where}: manifest must be a JSON object")
    schema = _req(manifest, "schema", str, where)
    if schema != SCHEMA:
        raise VectorFileError(f"{where}: not a semdialect vector manifest (schema {schema!r})")
    version = _req(manifest, "version", int, where)
    if version not in READABLE_VERSIONS:
        raise VectorFileError(
            f"{where}: manifest version {version} is not supported (this reader: "
            f"{', '.join(map(str, READABLE_VERSIONS))})")
    source = _req(manifest, "source", dict, where)
    kind = _req(source, "kind", str, where + ": source")
    if kind not in ("model", "synthetic", "module"):
        raise VectorFileError(f"{where}: source.kind must be model/synthetic/module, got {kind!r}")
    _req(source, "name", str, where + ": source")
    weights = _req(source, "weights", str, where + ": source")
    if kind == "synthetic" and "synthetic" not in source["name"]:
        raise VectorFileError(f"{where}: synthetic source name must contain 'synthetic'")
    if weights not in ("random-init", "checkpoint", "none", "user-module"):
        raise VectorFileError(f"{where}: source.weights must be random-init/checkpoint/none/"
                              f"user-module, got {weights!r}")
    _req(manifest, "run", dict, where)
    expected = _req(manifest, "expected", list, where)
    for e in expected:
        _req(e, "format", str, where + ": expected[]")
        _req(e, "options", dict, where + ": expected[]")
    tensors = _req(manifest, "tensors", dict, where)
    for name, t in tensors.items():
        w = f"{where}: tensor '{name}'"
        role = _req(t, "role", str, w)
        if role not in ROLES:
            raise VectorFileError(f"{w}: unknown role {role!r}")
        dt = _req(t, "dtype", str, w)
        if dt not in _NAME_TO_NP:
            raise VectorFileError(f"{w}: unknown dtype {dt!r}")
        shape = _req(t, "shape", list, w)
        if not all(isinstance(s, int) and s >= 0 for s in shape):
            raise VectorFileError(f"{w}: bad shape {shape!r}")
        if "alias_of" in t:
            tgt = tensors.get(t["alias_of"]) if isinstance(t["alias_of"], str) else None
            if tgt is None or "alias_of" in tgt or tgt.get("dtype") != dt or \
                    tgt.get("shape") != shape:
                raise VectorFileError(f"{w}: alias_of {t['alias_of']!r} is not a stored tensor "
                                      "of the same dtype and shape")
        if role == "expected":
            src = _req(t, "input", str, w)
            if src not in tensors or tensors[src]["role"] == "expected":
                raise VectorFileError(f"{w}: expected output of unknown input {src!r}")
            _req(t, "format", str, w)
            fld = _req(t, "field", str, w)
            if fld not in EXPECTED_FIELDS:
                raise VectorFileError(f"{w}: unknown expected field {fld!r}")
        elif role in ("linear_input", "attn_q", "attn_k", "attn_probs", "linear_weight"):
            for key, typ in (("layer", str), ("module_type", str), ("model", str)):
                _req(t, key, typ, w)
            if role != "linear_weight":
                _req(t, "step", int, w)
                _req(t, "timestep", (int, float), w)
                _req(t, "branch", str, w)
    return manifest


# ---------------------------------------------------------------------------- writing


def _header_and_layout(tensors: dict[str, np.ndarray], manifest: dict):
    header: dict[str, Any] = {}
    off = 0
    for name, arr in tensors.items():
        tag = _NP_TO_TAG.get(arr.dtype)
        if tag is None:
            raise TypeError(f"tensor {name!r}: dtype {arr.dtype} cannot be stored")
        n = arr.nbytes
        header[name] = {"dtype": tag, "shape": list(arr.shape), "data_offsets": [off, off + n]}
        off += n
    header["__metadata__"] = {MANIFEST_KEY: strict_json(manifest, "manifest")}
    hb = json.dumps(header, separators=(",", ":")).encode()
    hb += b" " * (-len(hb) % 8)  # align the data section to 8 bytes, as safetensors does
    return hb, off


def _stored(tensors: dict, manifest: dict) -> dict:
    """The tensors that take data: all but the manifest's aliases."""
    ents = manifest.get("tensors", {})
    return {k: v for k, v in tensors.items() if "alias_of" not in ents.get(k, {})}


def _sync_manifest(tensors: dict[str, np.ndarray], manifest: dict) -> dict:
    aliases = {k: v for k, v in manifest["tensors"].items() if "alias_of" in v}
    manifest = {**manifest, "tensors": {k: v for k, v in manifest["tensors"].items()
                                        if k not in aliases}}
    m = copy.deepcopy(manifest)
    m["tensors"] = {k: m["tensors"][k] for k in tensors if k in m["tensors"]} | {
        k: v for k, v in m["tensors"].items() if k not in tensors}
    missing = [k for k in tensors if k not in m["tensors"]]
    extra = [k for k in m["tensors"] if k not in tensors]
    if missing or extra:
        raise ValueError(f"manifest and tensors disagree: without metadata {missing[:5]}, "
                         f"metadata without tensor {extra[:5]}")
    for k, a in tensors.items():
        m["tensors"][k]["shape"] = [int(s) for s in a.shape]
        m["tensors"][k]["dtype"] = dtype_name(a.dtype)
    for k, v in aliases.items():  # an alias repeats its target's shape and dtype
        m["tensors"][k] = {**copy.deepcopy(v), "shape": m["tensors"][v["alias_of"]]["shape"],
                           "dtype": m["tensors"][v["alias_of"]]["dtype"]}
    return m


def estimate_bytes(tensors: dict[str, np.ndarray]) -> int:
    """Bytes the data section will take (the header adds a little)."""
    return int(sum(a.nbytes for a in tensors.values()))


def save_vectors(path, tensors: dict[str, np.ndarray], manifest: dict, *,
                 max_bytes: int | None = None, sidecar: bool = True) -> dict:
    """Write `tensors` (numpy arrays, dtype preserved) and the manifest atomically.

    The file is written to a temporary name in the target directory and renamed, so a
    failure (bad input, full disk) never leaves a half-written file. Raises ValueError
    when the data exceed `max_bytes` or the free disk space, before writing anything.
    Returns the manifest as stored (with data_sha256 and data_bytes filled in).
    Tensors whose manifest entry has `alias_of` (bit-identical to another tensor) are
    not stored again; `load_vectors` returns the target's array under their name.
    """
    path = Path(path)
    arrays = {k: np.ascontiguousarray(v) for k, v in _stored(tensors, manifest).items()}
    for k, a in arrays.items():
        if not isinstance(k, str) or not k or k == "__metadata__":
            raise ValueError(f"bad tensor name {k!r}")
        dtype_name(a.dtype)
    m = _sync_manifest(arrays, manifest)
    order = [k for k in tensors if k in m["tensors"]]  # aliases keep their place
    m["tensors"] = {k: m["tensors"][k] for k in order} | m["tensors"]
    h = hashlib.sha256()
    for a in arrays.values():
        h.update(memoryview(a.reshape(-1).view(np.uint8)))
    m["data_sha256"] = h.hexdigest()
    m["data_bytes"] = estimate_bytes(arrays)
    validate_manifest(m, str(path))
    hb, nbytes = _header_and_layout(arrays, m)
    json_text = strict_json(m, str(path), indent=1)
    total = 8 + len(hb) + nbytes
    if max_bytes is not None and total > max_bytes:
        raise ValueError(f"{path}: the vectors take {format_bytes(total)}, above the limit "
                         f"of {format_bytes(max_bytes)}; sample fewer tokens/layers/steps")
    parent = path.parent if str(path.parent) else Path(".")
    check_output_file(path, "output")
    check_output_file(sidecar_path(path), "output manifest")
    if not parent.is_dir():
        raise OutputPathError(f"output folder {parent} does not exist")
    free = shutil.disk_usage(parent).free
    need = total + (len(json_text) if sidecar else 0) + (1 << 20)
    if need > free:
        raise ValueError(f"not enough disk space in {parent}: need {format_bytes(need)}, "
                         f"{format_bytes(free)} free")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=parent)
    tmp_side = None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(struct.pack("<Q", len(hb)))
            f.write(hb)
            for a in arrays.values():
                f.write(memoryview(a.reshape(-1).view(np.uint8)))
            f.flush()
            os.fsync(f.fileno())
        if sidecar:
            fd2, tmp_side = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".json.tmp",
                                             dir=parent)
            with os.fdopen(fd2, "w") as f:
                f.write(json_text)
                f.write("\n")
        # the pair rule (semdialect.paths): old sidecar out, data in, new sidecar in last,
        # so an old data file is never paired with a new manifest or the reverse
        temps = [(Path(tmp), path)] + ([(Path(tmp_side), sidecar_path(path))] if sidecar else [])
        tmp = tmp_side = None
        if not sidecar and sidecar_path(path).exists():
            sidecar_path(path).unlink()  # a stale sidecar would not describe the new data
        replace_group(temps)
    finally:
        for t in (tmp, tmp_side):
            if t is not None and os.path.exists(t):
                os.unlink(t)
    return m


def strict_json(obj, where: str, **kw) -> str:
    """json.dumps that refuses NaN/Inf (bare NaN is not JSON), naming the field."""
    try:
        return json.dumps(obj, allow_nan=False, **kw)
    except ValueError:
        raise UsageError(f"{where}: manifest field {_nonfinite_field(obj)} is not a finite "
                         "number (JSON has no NaN/Inf)") from None


def _nonfinite_field(obj, at: str = "") -> str | None:
    if isinstance(obj, float) and not math.isfinite(obj):
        return at or "(top level)"
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) \
        if isinstance(obj, (list, tuple)) else ()
    for k, v in items:
        hit = _nonfinite_field(v, f"{at}.{k}" if at else str(k))
        if hit:
            return hit
    return None


def sidecar_path(path) -> Path:
    path = Path(path)
    return path.with_name(path.name + SIDECAR_SUFFIX)


# ---------------------------------------------------------------------------- reading


def _read_header(f, path: Path, size: int):
    raw = f.read(8)
    if len(raw) < 8:
        raise VectorFileError(f"{path}: truncated (no safetensors header)")
    (n,) = struct.unpack("<Q", raw)
    if n == 0 or n > HEADER_LIMIT or 8 + n > size:
        raise VectorFileError(f"{path}: corrupt safetensors header length {n}")
    try:
        header = json.loads(f.read(n).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise VectorFileError(f"{path}: corrupt safetensors header ({e})") from None
    if not isinstance(header, dict):
        raise VectorFileError(f"{path}: corrupt safetensors header")
    return header, 8 + n


def _read_tensors(path: Path, want_manifest: bool, lazy: bool = False):
    """(tensors in file order, __metadata__, sha256 hex of the data section) of one
    safetensors file, with every layout check. lazy: the tensors are read-only views of
    a memory map of the file (nothing is read until used) and no checksum is taken
    (None)."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        header, data_start = _read_header(f, path, size)
        meta = header.pop("__metadata__", None) or {}
        if want_manifest and MANIFEST_KEY not in meta:
            raise VectorFileError(f"{path}: a safetensors file without a semdialect manifest "
                                  "(not written by semdialect capture?)")
        if lazy:
            data = (np.memmap(path, dtype=np.uint8, mode="r", offset=data_start,
                              shape=(size - data_start,)) if size > data_start
                    else np.zeros(0, np.uint8))
            got = len(data)
        else:
            data = bytearray(size - data_start)  # writable arrays, one copy
            got = f.readinto(data)
    if got != size - data_start:
        raise VectorFileError(f"{path}: short read")
    tensors: dict[str, np.ndarray] = {}
    entries = sorted(header.items(), key=lambda kv: kv[1].get("data_offsets", [0])[0]
                     if isinstance(kv[1], dict) else 0)
    end_prev = 0
    for name, ent in entries:
        try:
            tag, shape, (b, e) = ent["dtype"], ent["shape"], ent["data_offsets"]
            dt = _TAG_TO_NP[tag]
            count = int(np.prod(shape, dtype=np.int64))
        except (KeyError, TypeError, ValueError):
            raise VectorFileError(f"{path}: corrupt header entry for {name!r}") from None
        if b != end_prev or e - b != count * dt.itemsize or e > len(data):
            raise VectorFileError(
                f"{path}: tensor {name!r} data [{b}, {e}) is out of place or beyond the end of "
                f"the file ({len(data)} data bytes): truncated or corrupt")
        end_prev = e
        tensors[name] = np.frombuffer(data, dtype=dt, count=count, offset=b).reshape(shape)
    if end_prev != len(data):
        raise VectorFileError(f"{path}: {len(data) - end_prev} trailing bytes after the tensors")
    return tensors, meta, None if lazy else hashlib.sha256(memoryview(data)).hexdigest()


def _check_against_manifest(where, tensors: dict, manifest: dict) -> dict:
    """Tensors vs manifest entries (names, dtypes, shapes); aliases resolved. Returns the
    tensors in manifest order."""
    mt = manifest["tensors"]
    stored = {k for k, v in mt.items() if "alias_of" not in v}
    if stored != set(tensors):
        only_m = sorted(stored - set(tensors))[:5]
        only_f = sorted(set(tensors) - stored)[:5]
        raise VectorFileError(f"{where}: manifest does not match the file: in manifest only "
                              f"{only_m}, in file only {only_f}")
    for name, arr in tensors.items():
        want_dt, want_shape = mt[name]["dtype"], mt[name]["shape"]
        if dtype_name(arr.dtype) != want_dt or list(arr.shape) != want_shape:
            raise VectorFileError(
                f"{where}: tensor {name!r} is {dtype_name(arr.dtype)}{list(arr.shape)} but the "
                f"manifest says {want_dt}{want_shape}")
    return {k: tensors[v.get("alias_of", k)] for k, v in mt.items()}


def is_vector_path(path) -> bool:
    """A single vector file (*.safetensors) or a sharded vector directory."""
    p = Path(path)
    return p.suffix == ".safetensors" or (p / SHARDED_MANIFEST).is_file()


def load_vectors(path) -> tuple[dict[str, np.ndarray], dict]:
    """Read a vector file or a sharded vector directory: (tensors, manifest).

    tensors: name -> numpy array in its stored dtype (float32, float16, bfloat16 as
    ``ml_dtypes.bfloat16``; expected outputs as uint8/uint16/float32), in manifest order;
    an alias (`alias_of`) is the very array of its target. The manifest is validated
    against the schema (docs/vectors.md), against the file's tensors (names, shapes,
    dtypes) and against its data checksum; any mismatch raises VectorFileError (a
    ValueError) naming the file. A missing file raises FileNotFoundError.
    """
    path = Path(path)
    if path.is_dir():
        return _load_sharded(path)
    if not path.is_file():
        raise FileNotFoundError(f"vector file {path} does not exist")
    tensors, meta, _ = _read_tensors(path, want_manifest=True)
    try:
        manifest = json.loads(meta[MANIFEST_KEY])
    except json.JSONDecodeError as e:
        raise VectorFileError(f"{path}: manifest is not valid JSON ({e})") from None
    validate_manifest(manifest, str(path))
    h = hashlib.sha256()
    for a in tensors.values():  # file (= write) order
        h.update(memoryview(np.ascontiguousarray(a).reshape(-1).view(np.uint8)))
    out = _check_against_manifest(path, tensors, manifest)
    if manifest.get("data_sha256") not in (None, h.hexdigest()):
        raise VectorFileError(f"{path}: data checksum mismatch (corrupt file)")
    side = sidecar_path(path)
    if side.exists():
        try:
            side_m = json.loads(side.read_text())
        except json.JSONDecodeError as e:
            raise VectorFileError(f"{side}: not valid JSON ({e})") from None
        if side_m != manifest:
            raise VectorFileError(f"{side} does not match the manifest inside {path} "
                                  "(mismatched files: regenerate or delete the .json)")
    return out, manifest


def map_vectors(path) -> tuple[dict[str, np.ndarray], dict]:
    """Like `load_vectors` for one file, lazily: the tensors are read-only views of a
    memory map (only what is used gets read), with the layout and manifest checks but
    without the whole-file data checksum (a reader of a slice checks what it reads,
    e.g. the regression's per-shard block hashes). A sharded directory: `load_vectors`."""
    path = Path(path)
    if path.is_dir():
        return load_vectors(path)
    if not path.is_file():
        raise FileNotFoundError(f"vector file {path} does not exist")
    tensors, meta, _ = _read_tensors(path, want_manifest=True, lazy=True)
    try:
        manifest = json.loads(meta[MANIFEST_KEY])
    except json.JSONDecodeError as e:
        raise VectorFileError(f"{path}: manifest is not valid JSON ({e})") from None
    validate_manifest(manifest, str(path))
    return _check_against_manifest(path, tensors, manifest), manifest


def read_sharded_manifest(folder) -> dict:
    """The manifest of a sharded vector directory (complete or not), validated."""
    folder = Path(folder)
    mp = folder / SHARDED_MANIFEST
    if not mp.is_file():
        raise FileNotFoundError(f"vector directory {folder} has no {SHARDED_MANIFEST}")
    try:
        manifest = json.loads(mp.read_text())
    except json.JSONDecodeError as e:
        raise VectorFileError(f"{mp}: not valid JSON ({e})") from None
    validate_manifest(manifest, str(mp))
    if not isinstance(manifest.get("shards"), list):
        raise VectorFileError(f"{mp}: a sharded manifest needs a 'shards' list")
    return manifest


def _load_sharded(folder: Path):
    manifest = read_sharded_manifest(folder)
    if not manifest.get("complete"):
        raise VectorFileError(f"{folder}: an unfinished capture (manifest 'complete' is "
                              "false): finish it with `semdialect capture ... --resume`")
    tensors: dict[str, np.ndarray] = {}
    for sh in manifest["shards"]:
        f = folder / sh["file"]
        if not f.is_file():
            raise VectorFileError(f"{folder}: shard {sh['file']} is missing")
        part, _, digest = _read_tensors(f, want_manifest=False)
        if digest != sh.get("sha256"):
            raise VectorFileError(f"{f}: data checksum mismatch (corrupt shard)")
        dup = set(part) & set(tensors)
        if dup:
            raise VectorFileError(f"{f}: tensor {sorted(dup)[0]!r} is in two shards")
        tensors.update(part)
    return _check_against_manifest(folder, tensors, manifest), manifest


def _atomic_write(path: Path, write) -> None:
    """write(f) into a temporary file next to `path`, fsync, rename onto `path`."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
        tmp = None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


def _write_safetensors(f, arrays: dict[str, np.ndarray], metadata: dict) -> None:
    header: dict[str, Any] = {}
    off = 0
    for name, a in arrays.items():
        header[name] = {"dtype": _NP_TO_TAG[a.dtype], "shape": list(a.shape),
                        "data_offsets": [off, off + a.nbytes]}
        off += a.nbytes
    header["__metadata__"] = metadata
    hb = json.dumps(header, separators=(",", ":")).encode()
    hb += b" " * (-len(hb) % 8)
    f.write(struct.pack("<Q", len(hb)))
    f.write(hb)
    for a in arrays.values():
        f.write(memoryview(a.reshape(-1).view(np.uint8)))


class ShardWriter:
    """Streams captured tensors into a sharded vector directory (docs/vectors.md):
    tensors are buffered up to `shard_bytes` and written as one safetensors shard, and
    the manifest (`complete: false` until `close`) is rewritten atomically after every
    shard, so an interrupted capture keeps every finished shard and can be resumed
    (`mark_step_done`, `resume_state`). Memory: one shard plus the largest tensor.

    expected: formats whose golden outputs are added to each shard before it is written.
    max_bytes: VectorFileError as soon as the stored data would exceed it.
    """

    def __init__(self, folder, manifest: dict, shard_bytes: int = 256 << 20,
                 expected=(), max_bytes: int | None = None, resume: bool = False):
        self.folder = Path(folder)
        self.shard_bytes = int(shard_bytes)
        self.expected = [f for f in expected if f]
        self.max_bytes = max_bytes
        self.buf: dict[str, np.ndarray] = {}
        self.buf_entries: dict[str, dict] = {}
        self.buf_bytes = 0
        self.buf_step: int | None = None
        if resume:
            self.m = self._resume(manifest)
        else:
            if self.folder.exists() and any(self.folder.iterdir()):
                raise OutputPathError(f"output directory {self.folder} exists and is not empty "
                                 "(delete it, or continue it with --resume)")
            self.folder.mkdir(parents=True, exist_ok=True)
            self.m = copy.deepcopy(manifest)
            self.m.update(version=SCHEMA_VERSION, layout="sharded", complete=False,
                          shards=[], steps_done=0, data_bytes=0)
            self.m["tensors"] = {}
            self.m["expected"] = []
            self._write_manifest()

    # ------------------------------------------------------------------ resume
    def _resume(self, manifest: dict) -> dict:
        m = read_sharded_manifest(self.folder)
        if m.get("complete"):
            raise UsageError(f"{self.folder}: the capture is already complete")
        same = {k: manifest.get(k) for k in ("source", "run")}
        have = {k: m.get(k) for k in ("source", "run")}
        if json.dumps(same, sort_keys=True, default=str) != json.dumps(have, sort_keys=True,
                                                                        default=str):
            raise UsageError(f"{self.folder}: --resume with other settings than the "
                             "interrupted capture (compare its manifest.json 'run'/'source')")
        done = int(m.get("steps_done", 0))
        keep = [sh for sh in m["shards"] if sh["step"] < done]
        files = {sh["file"] for sh in keep}
        m["shards"] = keep
        m["tensors"] = {k: v for k, v in m["tensors"].items()
                        if v.get("shard") in files or ("alias_of" in v and
                                                       m["tensors"].get(v["alias_of"], {})
                                                       .get("shard") in files)}
        m["data_bytes"] = int(sum(sh["bytes"] for sh in keep))
        for f in self.folder.glob("shard-*.safetensors"):
            if f.name not in files:
                f.unlink()  # a shard of the unfinished step
        self.m = m
        self._write_manifest()
        return m

    def resume_state(self) -> tuple[int, np.ndarray | None]:
        """(steps done, the latent after the last done step or None)."""
        done = int(self.m.get("steps_done", 0))
        if not done:
            return 0, None
        t, _, _ = _read_tensors(self.folder / STATE_FILE, want_manifest=False)
        return done, t["latent"]

    # ------------------------------------------------------------------ writing
    def _write_manifest(self) -> None:
        data = (strict_json(self.m, str(self.folder), indent=1) + "\n").encode()
        _atomic_write(self.folder / SHARDED_MANIFEST, lambda f: f.write(data))

    def add(self, name: str, arr: np.ndarray, entry: dict) -> None:
        step = int(entry.get("step", 0))
        if self.buf and step != self.buf_step:
            self.flush()
        a = np.ascontiguousarray(arr)
        dtype_name(a.dtype)
        if name in self.m["tensors"] or name in self.buf:
            raise RuntimeError(f"tensor {name!r} recorded twice")
        stored = self.m["data_bytes"] + self.buf_bytes + a.nbytes
        if self.max_bytes is not None and stored > self.max_bytes:
            raise CaptureLimitError(
                f"captured data exceed the limit of {format_bytes(self.max_bytes)} (at "
                f"{name}); use fewer --steps, a narrower --layers regex, --max-tokens or "
                "--max-layers")
        self.buf[name] = a
        self.buf_entries[name] = {**entry, "shape": list(a.shape), "dtype": dtype_name(a.dtype)}
        self.buf_bytes += a.nbytes
        self.buf_step = step
        if self.buf_bytes >= self.shard_bytes:
            self.flush()

    def alias(self, name: str, target: str, entry: dict) -> None:
        """`name` is bit-identical to the already recorded `target`: no data stored."""
        tgt = self.buf_entries.get(target) or self.m["tensors"].get(target)
        if tgt is None or "alias_of" in tgt:
            raise RuntimeError(f"alias {name!r} of unknown tensor {target!r}")
        ent = {**entry, "shape": tgt["shape"], "dtype": tgt["dtype"], "alias_of": target}
        (self.buf_entries if target in self.buf_entries else self.m["tensors"])[name] = ent

    def flush(self) -> None:
        if not self.buf:
            return
        arrays = dict(self.buf)
        entries = dict(self.buf_entries)
        if self.expected:
            part = {"tensors": {k: v for k, v in entries.items() if "alias_of" not in v},
                    "expected": []}
            for fmt in self.expected:
                add_expected(arrays, part, fmt)
            if not self.m["expected"]:
                self.m["expected"] = part["expected"]
            entries = {**entries, **{k: v for k, v in part["tensors"].items()
                                     if v["role"] == "expected"}}
        fname = f"shard-{len(self.m['shards']):05d}.safetensors"
        h = hashlib.sha256()
        for a in arrays.values():
            h.update(memoryview(a.reshape(-1).view(np.uint8)))
        nbytes = int(sum(a.nbytes for a in arrays.values()))
        free = shutil.disk_usage(self.folder).free
        if nbytes + (1 << 20) > free:
            raise LimitExceededError(f"not enough disk space in {self.folder}: the next shard "
                                     f"needs {format_bytes(nbytes)}, {format_bytes(free)} free")
        _atomic_write(self.folder / fname,
                      lambda f: _write_safetensors(f, arrays, {"semdialect.shard": fname}))
        for k, v in entries.items():
            self.m["tensors"][k] = {**v, "shard": fname} if "alias_of" not in v else v
        self.m["shards"].append({"file": fname, "bytes": nbytes, "sha256": h.hexdigest(),
                                 "step": self.buf_step if self.buf_step is not None else 0})
        self.m["data_bytes"] += nbytes
        self.buf, self.buf_entries, self.buf_bytes, self.buf_step = {}, {}, 0, None
        self._write_manifest()

    def mark_step_done(self, step: int, latent: np.ndarray) -> None:
        """Everything of denoising step `step` is on disk; keep the latent for --resume."""
        self.flush()
        if self.buf_entries:  # aliases whose target was already written
            self.m["tensors"].update(self.buf_entries)
            self.buf_entries = {}
        lat = np.ascontiguousarray(latent)
        _atomic_write(self.folder / STATE_FILE,
                      lambda f: _write_safetensors(f, {"latent": lat}, {"step": str(step)}))
        self.m["steps_done"] = step + 1
        self._write_manifest()

    def close(self, run_update: dict | None = None) -> dict:
        """Finish: expected-output aliases, final manifest with complete = true."""
        self.flush()
        self.m["tensors"].update(self.buf_entries)
        self.buf_entries = {}
        mt = self.m["tensors"]
        for name, ent in list(mt.items()):  # an aliased input's golden outputs alias too
            if "alias_of" in ent and ent.get("role") != "expected":
                for k, v in list(mt.items()):
                    if v.get("role") == "expected" and v.get("input") == ent["alias_of"]:
                        key = expected_key(name, v["format"], v["field"])
                        mt[key] = {kk: vv for kk, vv in v.items() if kk != "shard"} | {
                            "input": name, "alias_of": k}
        if run_update:
            self.m["run"].update(run_update)
        self.m["complete"] = True
        validate_manifest(self.m, str(self.folder / SHARDED_MANIFEST))
        self._write_manifest()
        state = self.folder / STATE_FILE
        if state.exists():
            state.unlink()
        return self.m


class CaptureLimitError(LimitExceededError):
    """Captured data exceed --max-bytes (a ValueError, semdialect.errors family)."""


def merge_shards(folder, path, sidecar: bool = True) -> dict:
    """Write a complete sharded directory as one vector file (streaming: one shard in
    memory at a time), then remove the directory. Returns the stored manifest."""
    folder, path = Path(folder), Path(path)
    m = read_sharded_manifest(folder)
    if not m.get("complete"):
        raise VectorFileError(f"{folder}: an unfinished capture cannot be merged")
    out = copy.deepcopy(m)
    for k in ("layout", "complete", "shards", "steps_done"):
        out.pop(k, None)
    for v in out["tensors"].values():
        v.pop("shard", None)
    # every stored tensor in shard order = file order; the header needs every entry
    order = []
    for sh in m["shards"]:
        hdr = _header_of(folder / sh["file"])
        order += [(sh, k, hdr[k]) for k in sorted(hdr, key=lambda k: hdr[k]["data_offsets"][0])]
    header: dict[str, Any] = {}
    off = 0
    for _, k, ent in order:
        n = ent["data_offsets"][1] - ent["data_offsets"][0]
        header[k] = {"dtype": ent["dtype"], "shape": ent["shape"], "data_offsets": [off, off + n]}
        off += n
    h = hashlib.sha256()
    for sh in m["shards"]:  # the digest of the concatenated data sections
        for chunk in _data_chunks(folder / sh["file"]):
            h.update(chunk)
    out["data_sha256"] = h.hexdigest()
    out["data_bytes"] = off
    header["__metadata__"] = {MANIFEST_KEY: strict_json(out, str(path))}
    hb = json.dumps(header, separators=(",", ":")).encode()
    hb += b" " * (-len(hb) % 8)

    def write(f):
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        for sh in m["shards"]:
            for chunk in _data_chunks(folder / sh["file"]):
                f.write(chunk)

    _atomic_write(path, write)
    if sidecar:
        data = (strict_json(out, str(path), indent=1) + "\n").encode()
        _atomic_write(sidecar_path(path), lambda f: f.write(data))
    shutil.rmtree(folder)
    return out


def _header_of(path: Path) -> dict:
    with open(path, "rb") as f:
        header, _ = _read_header(f, path, path.stat().st_size)
    header.pop("__metadata__", None)
    return header


def _data_chunks(path: Path, chunk: int = 64 << 20):
    with open(path, "rb") as f:
        _, start = _read_header(f, path, path.stat().st_size)
        f.seek(start)
        while True:
            b = f.read(chunk)
            if not b:
                return
            yield b


# --------------------------------------------------------------- expected golden outputs


def add_expected(tensors: dict[str, np.ndarray], manifest: dict, fmt: str,
                 names: list[str] | None = None, **options) -> None:
    """Quantize every input tensor with the golden model and store its codes, scales,
    dialect ids and tensor scale next to it (in place). A last axis that is not a
    multiple of the block size is padded with zeros first (which never changes a block's
    scale, numerics §1); the entry then records ``padded_to``."""
    from semdialect import golden

    if fmt not in golden.FORMATS:
        raise ValueError(f"unknown format {fmt!r}; known: {', '.join(golden.FORMATS)}")
    probe = golden.quantize(np.zeros((64,), np.float32), fmt, **options)
    k = probe.block_size
    stored_opts = {kk: vv for kk, vv in probe.options.items() if not kk.startswith("_")}
    stored_opts.update({kk: vv for kk, vv in options.items() if kk != "allowed"})
    stored_opts["block_size"] = k
    manifest["expected"].append({"format": fmt, "options": _jsonable(stored_opts)})
    for name in list(names if names is not None else input_names(manifest)):
        x = tensors[name]
        if x.dtype not in (np.float32, np.float16, ml_dtypes.bfloat16):
            continue
        pad = -x.shape[-1] % k
        xp = np.concatenate([x, np.zeros(x.shape[:-1] + (pad,), x.dtype)], -1) if pad else x
        qt = golden.quantize(xp, fmt, **options)
        fields = {"codes": qt.codes, "scales": qt.scales}
        if qt.dialects is not None:
            fields["dialects"] = qt.dialects
        if qt.tensor_scale is not None:
            fields["tensor_scale"] = np.asarray([qt.tensor_scale], dtype=np.float32)
        for fld, arr in fields.items():
            key = expected_key(name, fmt, fld)
            tensors[key] = np.ascontiguousarray(arr)
            ent = {"role": "expected", "input": name, "format": fmt, "field": fld,
                   "shape": list(arr.shape), "dtype": dtype_name(arr.dtype)}
            if pad:
                ent["padded_to"] = int(xp.shape[-1])
            manifest["tensors"][key] = ent


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return str(obj)

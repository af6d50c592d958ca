"""Sharded RTL regressions on Dask (docs/verification.md, "Regressions at scale").

    semdialect regress [--vectors FILE] [--configs NAME ...] [--seeds N] [--workers N |
                       --scheduler ADDRESS] [-o build/regress]

The work is split into shards: vector slices x configurations x seeds. Each shard is
one Dask task that runs the compiled bulk path (`sim.bulk`) on its slice and compares
every output with the golden model. A shard's result is stored under
`<out>/shards/<key>.json`, where the key is a content address: the hash of the
generated Verilog, of the generator/golden sources, of the shard's input blocks and the
seed (and flow-control probabilities). A re-run, after a crash or Ctrl-C, runs only the
shards whose result is missing; the merged summary says which shards ran and which
were reused, and checks that the shards tile every configuration's input exactly.

The default cluster is an embedded `dask.distributed.LocalCluster` with one
single-threaded worker process per core; `scheduler` connects to an existing one
(dask-jobqueue, Kubernetes: docs/verification.md). Workers generate and build the unit
themselves (cached on their disk by content hash, `sim.bulk.build_bulk`); a worker whose
generated Verilog differs from the client's refuses the shard.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from semdialect.errors import SimulationError, UsageError

__all__ = ["ShardSpec", "plan_shards", "run_shard", "run_regress", "open_client",
           "measure_scaling",
           "render_markdown", "validate_args"]

#: bump when the meaning of a stored shard result changes
RESULT_VERSION = "bulk-shard-v1"


@dataclass(frozen=True)
class ShardSpec:
    """One shard: blocks [start, stop) of a configuration's input stream, one seed."""

    key: str  # content address of the result
    config: str
    source: str  # 'file:<path>' or 'mixed:<seed>' (synthetic random/edge stream)
    start: int
    stop: int
    seed: int
    gap: float
    backpressure: float
    verilog_sha: str
    blocks_sha: str

    @property
    def blocks(self) -> int:
        return self.stop - self.start

    def to_json(self) -> dict:
        return asdict(self)


def _sha(*parts) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p if isinstance(p, bytes) else str(p).encode())
        h.update(b"\0")
    return h.hexdigest()


def validate_args(*, configs, vectors, elements, shard_elements, seeds, gap, backpressure,
                  workers, scheduler) -> None:
    """Every argument of a regression checked up front (ValueError, one clear line)."""
    from .configs import CONFIGS

    if not configs:
        raise UsageError("no configuration given")
    for c in configs:
        if c not in CONFIGS:
            raise UsageError(f"unknown configuration {c!r}; known: {', '.join(CONFIGS)}")
    if vectors is not None:
        p = Path(vectors)
        if not p.is_file():
            raise UsageError(f"vector file {vectors} does not exist")
        if p.suffix not in (".npy", ".safetensors"):
            raise UsageError(f"vector file {vectors}: expected .npy or .safetensors")
    if elements is not None and (not isinstance(elements, int) or elements <= 0):
        raise UsageError(f"--elements must be a positive integer, got {elements!r}")
    if vectors is None and elements is None:
        raise UsageError("give --vectors FILE or --elements N (synthetic stream)")
    if not isinstance(shard_elements, int) or shard_elements <= 0:
        raise UsageError(f"--shard-elements must be a positive integer, got {shard_elements!r}")
    if not isinstance(seeds, int) or seeds <= 0:
        raise UsageError(f"--seeds must be a positive integer, got {seeds!r}")
    for name, v in (("--gap", gap), ("--backpressure", backpressure)):
        if not 0.0 <= v < 1.0:
            raise UsageError(f"{name} must be a probability in [0, 1), got {v}")
    if workers is not None and (not isinstance(workers, int) or workers <= 0):
        raise UsageError(f"--workers must be a positive integer, got {workers!r}")
    if workers is not None and scheduler:
        raise UsageError("--workers sizes the embedded LocalCluster; it cannot be combined "
                         "with --scheduler")
    if scheduler is not None and ("://" not in scheduler and ":" not in scheduler):
        raise UsageError(f"--scheduler must be an address like tcp://HOST:8786, got "
                         f"{scheduler!r}")


# --------------------------------------------------------------------------------------
# input blocks (the same function on the client, which hashes them, and the workers)
# --------------------------------------------------------------------------------------

_BLOCKS: dict[tuple, np.ndarray] = {}  # per process: loaded vector files


def source_blocks(cfg, source: str, n_blocks: int | None,
                  rows: tuple[int, int] | None = None) -> np.ndarray:
    """The configuration's input stream: a vector file's blocks (first n_blocks; or the
    rows (start, stop) of a shard: of a .npy file or a single .safetensors export only
    those are read, `vector_block_rows`), or the seeded
    synthetic random/edge stream ('mixed:<seed>') of n_blocks blocks."""
    from .stimulus import load_vector_blocks, mixed_stream, vector_block_rows

    kind, _, arg = source.partition(":")
    if (kind == "file" and rows is not None and Path(arg).is_file()
            and Path(arg).suffix in (".npy", ".safetensors")):
        return vector_block_rows(arg, cfg.block_size, cfg.dtype, *rows)
    if kind == "file":
        p = Path(arg)
        k = (str(p.resolve()), p.stat().st_mtime_ns, cfg.block_size, cfg.input)
        if k not in _BLOCKS:
            _BLOCKS.clear()  # one file at a time per process
            _BLOCKS[k], _ = load_vector_blocks(p, cfg.block_size, cfg.dtype)
        x = _BLOCKS[k]
        if rows is not None:
            return x[rows[0]:rows[1]]
        return x if n_blocks is None else x[:n_blocks]
    if kind == "mixed":
        return mixed_stream(int(n_blocks), cfg.block_size, cfg.dtype, int(arg))[0]
    raise ValueError(f"unknown block source {source!r}")


def _side_inputs(cfg, n_dialects: int | None, blocks_sha: str, seed: int, n: int):
    """Allowed-dialect masks and last flags of a shard: a function of its content and
    seed only (so equal keys mean equal stimulus)."""
    from .stimulus import random_masks

    rng = np.random.default_rng([seed, int(blocks_sha[:15], 16)])
    masks = random_masks(n, int(n_dialects), rng) if cfg.has_mask else None
    last = rng.integers(0, 2, size=n).astype(np.uint8)
    return masks, last


def plan_shards(configs, *, vectors=None, elements=None, shard_elements=1 << 20, seeds=1,
                gap=0.1, backpressure=0.2, base_seed=1):
    """Shards of every configuration: returns (specs, info per configuration).
    Generates each configuration's Verilog (cached) for its hash."""
    from . import verilator as v
    from .bulk import verilog_hash
    from .configs import get_config

    specs: list[ShardSpec] = []
    info: dict[str, dict] = {}
    digest = v._source_digest()
    for name in configs:
        cfg = get_config(name)
        gen = v.generate(cfg)
        vsha = verilog_hash(gen)
        b = cfg.block_size
        n_blocks = None if elements is None else math.ceil(elements / b)
        source = f"file:{Path(vectors).resolve()}" if vectors else "mixed:0"
        x = source_blocks(cfg, source, n_blocks) if vectors else None
        total = len(x) if x is not None else n_blocks
        per = max(1, shard_elements // b)
        starts = list(range(0, total, per))
        info[name] = {"blocks": total, "elements": total * b, "block_size": b,
                      "source": source, "verilog_sha256": vsha, "seeds": seeds,
                      "shards": len(starts) * seeds, "toplevel": gen.toplevel}
        for start in starts:
            stop = min(start + per, total)
            if x is not None:
                src, bsha = source, _sha(np.ascontiguousarray(x[start:stop]).tobytes(),
                                         cfg.input, b)
            else:  # a synthetic slice is its recipe (and the hash of sim/stimulus.py)
                src = f"mixed:{int(_sha(base_seed, start)[:8], 16)}"
                bsha = _sha("mixed", src, stop - start, b, cfg.input, _stimulus_digest())
            for k in range(seeds):
                seed = base_seed + k
                key = _sha(RESULT_VERSION, vsha, digest, cfg.key(), bsha, seed, gap,
                           backpressure)[:32]
                specs.append(ShardSpec(key, name, src, start, stop, seed, gap, backpressure,
                                       vsha, bsha))
    return specs, info


def _stimulus_digest() -> str:
    return _sha((Path(__file__).parent / "stimulus.py").read_text())


_UNITS: dict[tuple[str, str], object] = {}  # per worker process: (config, Verilog sha) -> build


def run_shard(spec: dict, waves: bool = False, wave_dir: str | None = None) -> dict:
    """One shard on a worker: generate + build (cached), stream, compare."""
    from . import verilator as v
    from .bulk import build_bulk, run_bulk, verilog_hash
    from .configs import get_config

    s = ShardSpec(**spec)
    t0 = time.perf_counter()
    cpu0 = _cpu_s()
    cfg = get_config(s.config)
    bb = _UNITS.get((s.config, s.verilog_sha))
    if bb is None:  # first shard of this unit in this worker process
        gen = v.generate(cfg)
        if verilog_hash(gen) != s.verilog_sha:
            raise SimulationError(
                f"{s.config}: this worker generates different Verilog than the client (sha "
                f"{verilog_hash(gen)[:12]} != {s.verilog_sha[:12]}): same checkout and tool "
                "versions on every worker")
        bb = _UNITS[(s.config, s.verilog_sha)] = build_bulk(gen)
    t_build = time.perf_counter() - t0
    if s.source.startswith("file:"):
        x = source_blocks(cfg, s.source, None, rows=(s.start, s.stop))
        got = _sha(np.ascontiguousarray(x).tobytes(), cfg.input, cfg.block_size)
        if got != s.blocks_sha:
            raise SimulationError(f"{s.config}: blocks {s.start}-{s.stop} of {s.source} differ "
                               "from the client's (the vector file changed?)")
    else:
        x = source_blocks(cfg, s.source, s.blocks)
    masks, last = _side_inputs(cfg, bb.itf.num_dialects, s.blocks_sha, s.seed, len(x))
    wd = Path(wave_dir) / s.key if (waves and wave_dir) else None
    res = run_bulk(bb, x, masks, last, seed=s.seed, gap=s.gap, backpressure=s.backpressure,
                   offset=s.start, waves=waves, wave_dir=wd)
    out = res.to_json()
    out.pop("waves", None)
    return {"spec": s.to_json(), "result_version": RESULT_VERSION, "ok": res.report.ok,
            "elements_checked": res.report.elements_checked,
            "blocks_checked": res.report.blocks_checked, "bulk": out,
            "waves": str(res.waves) if res.waves else None,
            "build_s": t_build, "build_cached": bb.cached, "build_seconds": bb.seconds,
            "shard_wall_s": time.perf_counter() - t0, "shard_cpu_s": _cpu_s() - cpu0,
            "worker": _worker_name()}


def _cpu_s() -> float:
    """CPU seconds of this process (all threads) and of its finished children (the
    harness): what a shard costs on a core of its own, whatever the machine's load."""
    import resource

    ch = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + ch.ru_utime + ch.ru_stime


def _worker_name() -> str:
    try:
        from distributed import get_worker

        w = get_worker()
        return f"{w.name}@{w.address}"
    except (ImportError, ValueError):
        return f"local@{os.uname().nodename}:{os.getpid()}"


# --------------------------------------------------------------------------------------
# the driver
# --------------------------------------------------------------------------------------


def open_client(scheduler: str | None = None, workers: int | None = None):
    """A Dask client: of an existing scheduler, or of an embedded LocalCluster with one
    single-threaded worker process per core (`workers` overrides)."""
    from distributed import Client, LocalCluster

    if scheduler:
        return Client(scheduler, timeout="30s")
    n = workers or os.cpu_count() or 1
    cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                           dashboard_address=":0", silence_logs=40)
    return Client(cluster)


def _say(msg: str) -> None:
    print(f"[regress] {msg}", file=sys.stderr, flush=True)


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def run_regress(out_dir="build/regress", *, configs=("semdialect-32",), vectors=None,
                elements=None, shard_elements=1 << 20, seeds=1, gap=0.1, backpressure=0.2,
                workers=None, scheduler=None, client=None, waves=False, progress=True,
                compare_cocotb: dict | None = None, on_result=None, plots=True) -> dict:
    """Plan, run the missing shards on Dask, merge, write summary.md / summary.json.

    client: an existing distributed.Client (else one from `scheduler` / `workers`).
    on_result(result, client): called after each finished shard (tests use it to kill a
    worker or interrupt the run). compare_cocotb: {'config', 'cocotb_elements',
    'bulk_elements'}: also measure the compiled path against cocotb side by side
    (`sim.bulk.side_by_side`) and put the ratio in the summary."""
    configs = list(configs)
    if configs == ["all"]:
        from .configs import CONFIGS

        configs = list(CONFIGS)
    if compare_cocotb:
        for k in ("cocotb_elements", "bulk_elements", "repeats"):
            v = compare_cocotb.get(k, 1)
            if not isinstance(v, int) or v <= 0:
                raise UsageError(f"must be a positive integer, got {v!r}",
                                 f"--{k.replace('_', '-')}")
    validate_args(configs=configs, vectors=vectors, elements=elements,
                  shard_elements=shard_elements, seeds=seeds, gap=gap,
                  backpressure=backpressure, workers=workers, scheduler=scheduler)
    out = Path(out_dir)
    sdir = out / "shards"
    sdir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    specs, info = plan_shards(configs, vectors=vectors, elements=elements,
                              shard_elements=shard_elements, seeds=seeds, gap=gap,
                              backpressure=backpressure)
    unique = {s.key: s for s in specs}
    results: dict[str, dict] = {}
    for key in unique:
        p = sdir / f"{key}.json"
        if p.exists():
            try:
                r = json.loads(p.read_text())
            except ValueError:
                continue  # a torn write: run it again
            if r.get("result_version") == RESULT_VERSION and r["spec"]["key"] == key:
                r["status"] = "reused"
                results[key] = r
    todo = [s for k, s in unique.items() if k not in results]
    _say(f"{len(specs)} shards ({len(unique)} distinct), {len(unique) - len(todo)} "
         f"already done in {sdir}, {len(todo)} to run")
    own = client is None and bool(todo)
    cluster_info: dict = {}
    timing: dict = {}
    if todo:
        if own:
            client = open_client(scheduler, workers)
        cluster_info = {"scheduler": client.scheduler.address,
                        "workers_at_start": len(client.scheduler_info()["workers"]),
                        "kind": "external scheduler" if scheduler else
                        ("LocalCluster" if own else "given client")}
        try:
            _run_todo(client, todo, results, sdir, waves=waves, out=out,
                      progress=progress, on_result=on_result, timing=timing)
        except KeyboardInterrupt:
            done = sum(1 for r in results.values() if r["status"] == "ran")
            _say(f"interrupted: {done} of {len(todo)} shards finished and stored in {sdir}; "
                 "run the same command again to run only the missing ones")
            raise
        finally:
            if own:
                cl = getattr(client, "cluster", None)
                client.close()
                if cl is not None:
                    cl.close()
    summary = merge(specs, info, results)
    summary.update({"wall_s": round(time.perf_counter() - t0, 2), "cluster": cluster_info,
                    "out_dir": str(out), "vectors": str(vectors) if vectors else None,
                    "shard_elements": shard_elements, "gap": gap,
                    "backpressure": backpressure})
    ran = [r for r in results.values() if r["status"] == "ran"]
    if ran:
        el = sum(r["elements_checked"] for r in ran)
        summary["run_elements_per_s"] = el / max(summary["wall_s"], 1e-9)
        summary["shard_phase_s"] = round(timing.get("shard_phase_s", 0.0), 3)
        summary["shard_phase_elements_per_s"] = el / max(timing.get("shard_phase_s", 0), 1e-9)
        # where a shard's time goes (summed over the shards run now)
        summary["time_breakdown_s"] = {
            k: round(sum(r["bulk"][k] for r in ran), 3)
            for k in ("sim_wall_s", "golden_s", "pack_s", "compare_s", "wall_s")}
        summary["time_breakdown_s"]["shard_wall_s"] = round(
            sum(r["shard_wall_s"] for r in ran), 3)
        cpu = sum(r.get("shard_cpu_s", 0.0) for r in ran)
        summary["time_breakdown_s"]["shard_cpu_s"] = round(cpu, 3)
        summary["elements_per_cpu_s"] = el / max(cpu, 1e-9)
    if compare_cocotb:
        from .bulk import side_by_side

        summary["speed_vs_cocotb"] = side_by_side(**compare_cocotb)
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    if plots:
        summary["plot"] = make_plot(summary, out)
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    (out / "summary.md").write_text(render_markdown(summary))
    _say(f"{'OK' if summary['ok'] else 'FAILED'}: {summary['elements_checked']} elements in "
         f"{len(specs)} shards ({len(ran)} ran, {len(specs) - len(ran)} reused); "
         f"{out / 'summary.md'}")
    return summary


def _run_todo(client, todo, results, sdir, *, waves, out, progress, on_result,
              timing: dict) -> None:
    from distributed import as_completed

    total_el = sum(s.blocks * _block_size(s.config) for s in todo)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(todo), unit="shard", desc="regress", file=sys.stderr,
                   dynamic_ncols=True)
    t_submit = time.perf_counter()
    # The Dask key carries a per-run nonce: a cancel from an interrupted run reaches
    # the scheduler asynchronously and would also cancel a re-submitted future of the
    # same key (seen in CI as FutureCancelledError on the resume). The content address
    # s.key still names the stored result.
    run_nonce = uuid.uuid4().hex[:8]
    futs = [client.submit(run_shard, s.to_json(), waves, str(out / "waves"),
                          key=f"shard-{s.key}-{run_nonce}", pure=False) for s in todo]
    done_el = 0
    try:
        for fut in as_completed(futs):
            r = fut.result()  # a shard that raised (budget, build, wrong Verilog) stops here
            r["status"] = "ran"
            key = r["spec"]["key"]
            _atomic_write(sdir / f"{key}.json", json.dumps(r, indent=1))
            results[key] = r
            done_el += r["elements_checked"]
            if bar is not None:
                bar.update(1)
                bar.set_postfix_str(f"{done_el / 1e6:.1f}/{total_el / 1e6:.1f} M elements"
                                    + ("" if r["ok"] else "  MISMATCH"))
            if on_result is not None:
                on_result(r, client)
        timing["shard_phase_s"] = time.perf_counter() - t_submit
    finally:
        if bar is not None:
            bar.close()
        for f in futs:
            if not f.done():
                f.cancel()


def _block_size(config: str) -> int:
    from .configs import get_config

    return get_config(config).block_size


def merge(specs: list[ShardSpec], info: dict, results: dict) -> dict:
    """The merged report: per configuration the shards, element counts (which must add
    up to the input), mismatches; per worker the elements/s."""
    per_cfg: dict[str, dict] = {}
    problems: list[str] = []
    shards = []
    for s in specs:
        r = results.get(s.key)
        row = {"key": s.key, "config": s.config, "start": s.start, "stop": s.stop,
               "seed": s.seed, "status": r["status"] if r else "missing"}
        if r:
            rep = r["bulk"]["report"]
            row.update({"ok": r["ok"], "elements_checked": r["elements_checked"],
                        "mismatching_blocks": rep["mismatching_blocks"],
                        "worker": r["worker"], "shard_wall_s": round(r["shard_wall_s"], 3),
                        "build_s": round(r["build_s"], 3),
                        "sim_elements_per_s": round(r["bulk"]["elements_per_s"]),
                        "cycles": r["bulk"]["cycles"]})
        shards.append(row)
    for name, inf in info.items():
        rows = [x for x in shards if x["config"] == name]
        got = [x for x in rows if x["status"] != "missing"]
        checked = sum(x["elements_checked"] for x in got)
        expected = inf["elements"] * inf["seeds"]
        counts: dict[str, int] = {}
        first: list[str] = []
        for x in got:
            rep = results[x["key"]]["bulk"]["report"]
            for k, v in rep["counts"].items():
                counts[k] = counts.get(k, 0) + v
            if not x["ok"] and len(first) < 20:
                first.append(f"seed {x['seed']} blocks {x['start']}-{x['stop']}: "
                             + results[x["key"]]["bulk"]["report_text"].splitlines()[0])
                first += ["  " + ln for ln in
                          results[x["key"]]["bulk"]["report_text"].splitlines()[1:6]]
        # the shards of each seed must tile [0, blocks) exactly
        tiles = True
        for seed in sorted({x["seed"] for x in rows}):
            iv = sorted((x["start"], x["stop"]) for x in rows if x["seed"] == seed)
            tiles &= bool(iv) and iv[0][0] == 0 and iv[-1][1] == inf["blocks"] and all(
                a[1] == b[0] for a, b in zip(iv, iv[1:]))
        c = {**inf, "shards_ran": sum(x["status"] == "ran" for x in rows),
             "shards_reused": sum(x["status"] == "reused" for x in rows),
             "shards_missing": sum(x["status"] == "missing" for x in rows),
             "elements_expected": expected, "elements_checked": checked,
             "mismatching_blocks": sum(x["mismatching_blocks"] for x in got),
             "mismatch_counts": counts, "first_mismatches": first,
             "counts_add_up": checked == expected and tiles}
        c["ok"] = c["counts_add_up"] and all(x["ok"] for x in got) and not c["shards_missing"]
        if not c["counts_add_up"]:
            problems.append(f"{name}: {checked} elements checked of {expected} expected"
                            + ("" if tiles else " (shards do not tile the input)"))
        per_cfg[name] = c
    workers: dict[str, dict] = {}
    for x in shards:
        if x["status"] != "ran":
            continue
        w = workers.setdefault(x["worker"], {"shards": 0, "elements": 0, "busy_s": 0.0,
                                             "build_s": 0.0})
        w["shards"] += 1
        w["elements"] += x["elements_checked"]
        w["busy_s"] += x["shard_wall_s"]
        w["build_s"] += x["build_s"]
    for w in workers.values():
        # checking rate: busy time less the worker's one-off generate + build
        w["elements_per_s"] = round(w["elements"] / max(w["busy_s"] - w["build_s"], 1e-9))
        w["busy_s"] = round(w["busy_s"], 2)
        w["build_s"] = round(w["build_s"], 2)
    return {"ok": all(c["ok"] for c in per_cfg.values()) and not problems,
            "problems": problems, "configs": per_cfg,
            "elements_checked": sum(c["elements_checked"] for c in per_cfg.values()),
            "shards_total": len(specs),
            "shards_ran": [x["key"] for x in shards if x["status"] == "ran"],
            "shards_reused": [x["key"] for x in shards if x["status"] == "reused"],
            "workers": workers, "shards": shards}


def measure_scaling(out_dir="build/regress-scaling", *, config="semdialect-32",
                    vectors=None, elements=None, shard_elements=1 << 18,
                    workers=2) -> dict:
    """Elements/s of the same regression at 1 and `workers` workers (LocalCluster, warm
    workers and builds, shard phase only), and the overhead per shard: the same elements
    in 8x more, smaller shards on 1 worker, (T_small - T_big) / (extra shards)."""
    import shutil

    elements = elements or (8 << 20 if vectors is None else None)
    out = Path(out_dir)
    rows = {}

    def one(tag, n_workers, shard_el):
        d = out / tag
        shutil.rmtree(d, ignore_errors=True)
        client = open_client(workers=n_workers)
        try:
            # warm-up: every worker imports, generates and loads the build once
            run_regress(out / "warmup", configs=[config], vectors=vectors,
                        elements=min(elements or 1 << 16, 1 << 16), shard_elements=1 << 13,
                        client=client, progress=False, plots=False)
            shutil.rmtree(out / "warmup", ignore_errors=True)
            s = run_regress(d, configs=[config], vectors=vectors, elements=elements,
                            shard_elements=shard_el, client=client, progress=False,
                            plots=False)
        finally:
            cl = client.cluster
            client.close()
            cl.close()
        rows[tag] = {"workers": n_workers, "shard_elements": shard_el,
                     "shards": len(s["shards_ran"]), "elements": s["elements_checked"],
                     "shard_phase_s": s["shard_phase_s"],
                     "elements_per_s": s["shard_phase_elements_per_s"],
                     "elements_per_cpu_s": s["elements_per_cpu_s"],
                     "cpu_share": s["time_breakdown_s"]["shard_cpu_s"] / s["shard_phase_s"],
                     "time_breakdown_s": s["time_breakdown_s"], "ok": s["ok"]}
        _say(f"scaling {tag}: {rows[tag]['elements_per_s']:,.0f} elements/s")

    one("w1", 1, shard_elements)
    one(f"w{workers}", workers, shard_elements)
    one("w1-small", 1, max(shard_elements // 8, 1024))
    big, small = rows["w1"], rows["w1-small"]
    extra = small["shards"] - big["shards"]
    rep = {"config": config, "vectors": str(vectors) if vectors else None, "runs": rows,
           "speedup_workers": rows[f"w{workers}"]["elements_per_s"] / big["elements_per_s"],
           "overhead_per_shard_s": (small["shard_phase_s"] - big["shard_phase_s"]) /
           max(extra, 1),
           # per core of its own: the same regression's cost in worker CPU seconds
           "speedup_workers_cpu_normalized":
               rows[f"w{workers}"]["elements_per_cpu_s"] / big["elements_per_cpu_s"],
           "overhead_per_shard_cpu_s": (small["time_breakdown_s"]["shard_cpu_s"] -
                                        big["time_breakdown_s"]["shard_cpu_s"]) / max(extra, 1),
           "note": "wall-clock rates are those of this session's share of a shared machine "
                   "(Linux autogroup: every process of one session shares one CPU share); "
                   "elements_per_cpu_s is the rate per core of its own",
           "cores": os.cpu_count(), "load_average": os.getloadavg(),
           "ok": all(r["ok"] for r in rows.values())}
    out.mkdir(parents=True, exist_ok=True)
    (out / "scaling.json").write_text(json.dumps(rep, indent=1) + "\n")
    _say(f"1 -> {workers} workers: {rep['speedup_workers']:.2f}x wall, elements per worker "
         f"CPU second {rep['speedup_workers_cpu_normalized']:.2f}x; overhead per shard "
         f"{rep['overhead_per_shard_s'] * 1e3:.0f} ms wall, "
         f"{rep['overhead_per_shard_cpu_s'] * 1e3:.0f} ms CPU; {out / 'scaling.json'}")
    return rep


# --------------------------------------------------------------------------------------
# output
# --------------------------------------------------------------------------------------


def render_markdown(s: dict) -> str:
    L = ["# semdialect RTL regression", "",
         f"**{'PASS' if s['ok'] else 'FAIL'}**: {s['elements_checked']:,} elements checked "
         f"bit-exact against the golden model in {s['shards_total']} shards "
         f"({len(s['shards_ran'])} ran now, {len(s['shards_reused'])} reused from "
         f"`{s['out_dir']}/shards/`), {s['wall_s']} s wall.", ""]
    if s.get("cluster"):
        c = s["cluster"]
        L.append(f"Cluster: {c['kind']} at {c['scheduler']}, {c['workers_at_start']} workers "
                 "at the start.")
    if s.get("run_elements_per_s"):
        L.append(f"Shards run now: {s['run_elements_per_s']:,.0f} checked elements/s overall "
                 "(wall clock, including planning and builds).")
    L += ["", "| config | source | blocks | seeds | shards (ran / reused / missing) | "
          "elements expected | elements checked | counts add up | mismatching blocks | ok |",
          "|---|---|---|---|---|---|---|---|---|---|"]
    for name, c in s["configs"].items():
        L.append(f"| {name} | {c['source']} | {c['blocks']:,} | {c['seeds']} | "
                 f"{c['shards_ran']} / {c['shards_reused']} / {c['shards_missing']} | "
                 f"{c['elements_expected']:,} | {c['elements_checked']:,} | "
                 f"{'yes' if c['counts_add_up'] else 'NO'} | {c['mismatching_blocks']:,} | "
                 f"{'yes' if c['ok'] else 'NO'} |")
    for name, c in s["configs"].items():
        if c["first_mismatches"]:
            L += ["", f"## Mismatches: {name}", "", "```", *c["first_mismatches"], "```"]
    for p in s.get("problems", []):
        L.append(f"- **{p}**")
    if s["workers"]:
        L += ["", "## Workers (shards run now)", "",
              "| worker | shards | elements | busy s | of which generate + build s | "
              "checked elements/s (busy less build) |", "|---|---|---|---|---|---|"]
        for w, d in sorted(s["workers"].items()):
            L.append(f"| {w} | {d['shards']} | {d['elements']:,} | {d['busy_s']} | "
                     f"{d['build_s']} | {d['elements_per_s']:,} |")
    sv = s.get("speed_vs_cocotb")
    if sv:
        L += ["", "## Compiled path vs cocotb (side by side, one run)", "",
              "| path | elements | cycles | sim wall s | cycles/s | checked elements/s | "
              "end-to-end elements/s | build s |", "|---|---|---|---|---|---|---|---|"]
        for k in ("cocotb", "bulk"):
            d = sv[k]
            L.append(f"| {k} | {d['elements']:,} | {d['cycles']:,} | {d['sim_wall_s']:.2f} | "
                     f"{d['cycles_per_s']:,.0f} | {d['elements_per_s']:,.0f} | "
                     f"{d['end_to_end_elements_per_s']:,.0f} | {d['build_seconds']:.1f} |")
        L += ["", f"`speedup_vs_cocotb` = **{sv['speedup_vs_cocotb']:.1f}x** checked "
              f"elements/s of the simulation loop ({sv['config']}, medians of "
              f"{sv['repeats']} alternating runs; end to end, stimulus and golden model "
              f"included: {sv['end_to_end_speedup']:.1f}x; per CPU second of the "
              f"simulating process: {sv['speedup_vs_cocotb_cpu']:.1f}x; load average "
              f"{sv['load_average']:.1f}). Written to `{sv['cycles_json']}`."]
    if s.get("plot"):
        L += ["", f"![regression]({s['plot']})"]
    L += ["", "## Shards", "", "| key | config | blocks | seed | status | worker | "
          "elements | sim elements/s | ok |", "|---|---|---|---|---|---|---|---|---|"]
    for x in s["shards"]:
        L.append(f"| `{x['key'][:12]}` | {x['config']} | {x['start']}-{x['stop']} | "
                 f"{x['seed']} | {x['status']} | {x.get('worker', '-')} | "
                 f"{x.get('elements_checked', 0):,} | {x.get('sim_elements_per_s', 0):,} | "
                 f"{'yes' if x.get('ok') else 'NO'} |")
    return "\n".join(L) + "\n"


def make_plot(s: dict, out: Path) -> str | None:
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
    names = list(s["configs"])
    a.bar(names, [s["configs"][n]["mismatching_blocks"] for n in names], color="C3")
    a.set_title("mismatching blocks per configuration")
    a.tick_params(axis="x", labelrotation=30)
    ws = sorted(s["workers"])
    b.bar([w.split("@")[0] for w in ws], [s["workers"][w]["elements_per_s"] / 1e6 for w in ws])
    b.set_title("checked M elements/s per worker (busy less build)")
    fig.tight_layout()
    fig.savefig(out / "regress.png", dpi=100)
    plt.close(fig)
    return "regress.png"

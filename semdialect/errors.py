"""The one error family of semdialect (every room raises these for bad input).

    SemdialectError                 base: a mistake of the caller, never a bug
      UsageError (ValueError)       a bad argument / option value; `argument` names it
      InputTypeError (TypeError)    an argument of the wrong type or dtype
      InputFileError (ValueError)   an input file is missing, unreadable or malformed
        FormatbookError             a formatbook file or object is malformed
        VectorFileError             a vector file is corrupt or disagrees with its manifest
      OutputPathError (ValueError)  an output path cannot be written (checked up front)
      LimitExceededError (ValueError)  a documented size / cost limit would be exceeded
        CaptureLimitError           captured data exceed --max-bytes
      SimulationError (RuntimeError)   a simulation failed or ran past its cycle budget

Every class keeps the builtin it always was (ValueError, TypeError, RuntimeError) as a
second base, so `except ValueError` in existing callers still works. The command line
(semdialect/cli.py `main`) turns any SemdialectError into one line
``semdialect <command>: error: <message>`` and exit code 2.
"""

from __future__ import annotations

__all__ = [
    "SemdialectError",
    "UsageError",
    "InputTypeError",
    "InputFileError",
    "OutputPathError",
    "LimitExceededError",
    "SimulationError",
    "EXIT_USAGE",
    "EXIT_INTERNAL",
    "EXIT_INTERRUPTED",
]

EXIT_USAGE = 2  # bad input: SemdialectError (and argparse errors)
EXIT_INTERNAL = 1  # an unexpected exception: a bug, reported with a traceback hint
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT)


class SemdialectError(Exception):
    """Base of every bad-input error of semdialect: the message is for the user."""


class UsageError(SemdialectError, ValueError):
    """A bad argument or option value. `argument` is its name (e.g. '--gap') when known;
    the message then starts with it."""

    def __init__(self, message: str, argument: str | None = None):
        self.argument = argument
        super().__init__(f"{argument}: {message}" if argument else message)


class InputTypeError(SemdialectError, TypeError):
    """An argument of the wrong Python type or array dtype."""


class InputFileError(SemdialectError, ValueError):
    """An input file is missing, unreadable or malformed; the message names the file."""


class OutputPathError(SemdialectError, ValueError):
    """An output path cannot be written: an existing file where a folder is needed, a path
    under a file, an unwritable folder, or a path outside the output folder."""


class LimitExceededError(SemdialectError, ValueError):
    """A documented size or cost limit (docs/limits.md) would be exceeded; the message
    gives the size."""


class SimulationError(SemdialectError, RuntimeError):
    """A simulation failed to run or ran past its cycle budget."""

"""Argument validators shared by every room's command line and API (docs/limits.md).

The `*_arg` functions are argparse `type=` callables: a bad value becomes argparse's
one-line ``argument --x: ...`` error (exit 2) before any work starts. The `check_*`
functions are the same rules for the Python API (raising UsageError)."""

from __future__ import annotations

import argparse
import math
import re

from .errors import UsageError

__all__ = ["finite_float_arg", "probability_arg", "positive_int_arg", "nonneg_int_arg",
           "check_finite", "check_probability", "check_verilog_identifier",
           "VERILOG_KEYWORDS"]


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def finite_float_arg(text: str) -> float:
    v = _float(text)
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return v


def probability_arg(text: str) -> float:
    """A probability p in [0, 1): 1 would mean 'never', which never finishes."""
    v = _float(text)
    if not (0.0 <= v < 1.0):
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text!r}")
    return v


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None


def positive_int_arg(text: str) -> int:
    v = _int(text)
    if v <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return v


def nonneg_int_arg(text: str) -> int:
    v = _int(text)
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer, got {text!r}")
    return v


def check_finite(value, name: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise UsageError(f"must be a real number, got {value!r}", name) from None
    if isinstance(value, (bool, str, bytes)) or not math.isfinite(v):
        raise UsageError(f"must be a finite real number, got {value!r}", name)
    return v


def check_probability(value, name: str) -> float:
    v = check_finite(value, name)
    if not 0.0 <= v < 1.0:
        raise UsageError(f"must be in [0, 1), got {value!r}", name)
    return v


#: IEEE 1364-2005 / 1800 reserved words a module name may not be (the common ones).
VERILOG_KEYWORDS = frozenset("""
always and assign automatic begin buf bufif0 bufif1 case casex casez cell cmos config
deassign default defparam design disable edge else end endcase endconfig endfunction
endgenerate endmodule endprimitive endspecify endtable endtask event for force forever
fork function generate genvar highz0 highz1 if ifnone incdir include initial inout input
instance integer join large liblist library localparam macromodule medium module nand
negedge nmos nor noshowcancelled not notif0 notif1 or output parameter pmos posedge
primitive pull0 pull1 pulldown pullup pulsestyle_onevent pulsestyle_ondetect rcmos real
realtime reg release repeat rnmos rpmos rtran rtranif0 rtranif1 scalared showcancelled
signed small specify specparam strong0 strong1 supply0 supply1 table task time tran
tranif0 tranif1 tri tri0 tri1 triand trior trireg unsigned use uwire vectored wait wand
weak0 weak1 while wire wor xnor xor logic bit byte int shortint longint interface
package class typedef enum struct union
""".split())

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
MAX_IDENT = 128


def check_verilog_identifier(name: str, arg: str = "--name") -> str:
    """A plain Verilog identifier (letters, digits, '_', not starting with a digit, not a
    keyword, at most 128 characters): it is also the file name of the Verilog output."""
    if not isinstance(name, str) or not _IDENT.match(name) or len(name) > MAX_IDENT:
        raise UsageError(f"{name!r} is not a Verilog identifier (letters, digits and '_', "
                         f"not starting with a digit, at most {MAX_IDENT} characters)", arg)
    if name in VERILOG_KEYWORDS:
        raise UsageError(f"{name!r} is a Verilog keyword", arg)
    return name

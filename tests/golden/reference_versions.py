"""Which version of each independent reference a §12 test holds for (numerics §12).

The §12 differences are properties of a reference *version*, not of the golden model.
Each behaviour that has changed between releases is one flag here, derived from the
installed version, so a deliberate-difference test checks exactly the documented
behaviour of the version it runs against. CI runs against the pins in constraints.txt;
`nox -s latest` runs the same tests against the newest releases and reports which change.
"""

from __future__ import annotations

import re
from importlib.metadata import version


def version_tuple(v: str) -> tuple[int, ...]:
    """'0.7.0' / '0.18.0+cpu' / '2.13.0.dev1' -> (0, 7, 0) etc. (release part only)."""
    m = re.match(r"(\d+(?:\.\d+)*)", v)
    if not m:
        raise ValueError(f"unparseable version {v!r}")
    return tuple(int(p) for p in m.group(1).split("."))


ML_DTYPES = version_tuple(version("ml_dtypes"))
TORCHAO = version_tuple(version("torchao"))
GFLOAT = version_tuple(version("gfloat"))

# ml_dtypes < 0.7 rounded E8M0 casts in (2^-127, 1.5 * 2^-127) up to 2^-126 (0x01);
# 0.7.0 rounds them to the nearest, 0x00, as the golden model always has.
ML_DTYPES_ROUNDS_LOWEST_BINADE_UP = ML_DTYPES < (0, 7)

"""Formatbook files: a set of 4-bit dialects on an integer grid plus the scale rule
(numerics §7). The same file feeds the golden model and the RTL generator."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from semdialect.errors import InputFileError

__all__ = [
    "Formatbook",
    "FormatbookError",
    "load_formatbook",
    "BUILTIN_BOOKS",
    "BOOK_DIR",
    "LEVELS",
]

BOOK_DIR = Path(__file__).resolve().parent / "formatbooks"
BUILTIN_BOOKS = {
    "dialectfp4": BOOK_DIR / "dialectfp4.json",
    "semdialect-32": BOOK_DIR / "semdialect-32.json",
}
LEVELS = 8  # magnitudes per dialect: a 3-bit index, plus the sign bit = 4 bits
SCHEMA_VERSION = 1
MAX_DIALECTS = 256  # an 8-bit dialect id (docs/limits.md)
MAX_FILE_BYTES = 1 << 20  # 256 dialects of 8 integers plus provenance fit in far less


class FormatbookError(InputFileError):
    """A formatbook file or object is malformed; the message names the file (or the book)
    and the field. A ValueError (semdialect.errors family)."""


@dataclass(frozen=True)
class Formatbook:
    name: str
    grid_log2: int  # grid = 2^grid_log2 (-1 for the 0.5 grid)
    emax: int  # scale rule: e = floor(log2 amax) - emax
    dialects: tuple[tuple[int, ...], ...]  # magnitudes in grid units
    provenance: dict = field(default_factory=dict, compare=False)

    def __post_init__(self):
        _validate(self)

    # -- derived quantities -------------------------------------------------------------
    @property
    def grid(self) -> float:
        return 2.0**self.grid_log2

    @property
    def grid_frac_bits(self) -> int:
        """g: fractional bits of the grid (0.5 -> 1)."""
        return max(0, -self.grid_log2)

    @property
    def num_dialects(self) -> int:
        return len(self.dialects)

    @property
    def dialect_bits(self) -> int:
        return max(1, math.ceil(math.log2(self.num_dialects))) if self.num_dialects > 1 else 0

    @property
    def int_bits(self) -> int:
        """I: integer bits of a normalized magnitude (v < 2^(emax+1))."""
        return self.emax + 1

    @property
    def magnitudes(self) -> np.ndarray:
        """(D, 8) int64 magnitudes in grid units."""
        return np.array(self.dialects, dtype=np.int64)

    @property
    def values(self) -> np.ndarray:
        """(D, 8) float64 normalized values (magnitude * grid)."""
        return self.magnitudes * self.grid

    def bits_per_element(self, block_size: int) -> float:
        return 4 + (8 + self.dialect_bits) / block_size

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "version": SCHEMA_VERSION,
            "grid": self.grid,
            "scale": {"type": "e8m0", "emax": self.emax},
            "dialects": [list(d) for d in self.dialects],
            "provenance": self.provenance,
        }

    def dumps(self) -> str:
        head = {k: v for k, v in self.to_json().items() if k != "dialects"}
        lines = ",\n".join("    " + json.dumps(list(d)) for d in self.dialects)
        body = json.dumps(head, indent=2)[:-2]
        return body + ',\n  "dialects": [\n' + lines + "\n  ]\n}\n"

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.dumps())

    @property
    def content_hash(self) -> str:
        """sha256 of what defines the numerics (grid, scale rule, dialects), not the name."""
        key = json.dumps([self.grid_log2, self.emax, [list(d) for d in self.dialects]])
        return hashlib.sha256(key.encode()).hexdigest()

    @classmethod
    def from_json(cls, obj: dict, source: str = "<object>") -> Formatbook:
        def need(key, typ):
            if key not in obj:
                raise FormatbookError(f"{source}: missing field '{key}'")
            types = typ if isinstance(typ, tuple) else (typ,)
            if not isinstance(obj[key], types) or (
                isinstance(obj[key], bool) and bool not in types
            ):
                want = " or ".join(t.__name__ for t in types)
                raise FormatbookError(
                    f"{source}: field '{key}' must be {want}, got {type(obj[key]).__name__}"
                )
            return obj[key]

        if not isinstance(obj, dict):
            raise FormatbookError(f"{source}: top level must be a JSON object")
        version = need("version", int)
        if version != SCHEMA_VERSION:
            raise FormatbookError(
                f"{source}: unsupported version {version} (want {SCHEMA_VERSION})"
            )
        name = need("name", str)
        grid = need("grid", (int, float))
        if grid <= 0 or not float(math.log2(grid)).is_integer():
            raise FormatbookError(f"{source}: 'grid' must be a power of two, got {grid}")
        scale = need("scale", dict)
        if scale.get("type") != "e8m0":
            raise FormatbookError(f"{source}: scale.type must be 'e8m0', got {scale.get('type')!r}")
        emax = scale.get("emax")
        if not isinstance(emax, int) or isinstance(emax, bool) or not 0 <= emax <= 8:
            raise FormatbookError(f"{source}: scale.emax must be an integer in 0..8, got {emax!r}")
        dialects = need("dialects", list)
        for i, d in enumerate(dialects):
            if not isinstance(d, list) or not all(
                isinstance(m, int) and not isinstance(m, bool) for m in d
            ):
                raise FormatbookError(
                    f"{source}: dialect {i} must be a list of integers, got {d!r}"
                )
        try:
            return cls(
                name=name,
                grid_log2=int(math.log2(grid)),
                emax=emax,
                dialects=tuple(tuple(d) for d in dialects),
                provenance=obj.get("provenance", {}),
            )
        except FormatbookError as e:  # name the file, not the book's internal name
            msg, own = str(e), f"formatbook '{name}'"
            raise FormatbookError(source + msg[len(own):] if msg.startswith(own)
                                  else f"{source}: {msg}") from None


def _validate(book: Formatbook) -> None:
    src = f"formatbook '{book.name}'"
    if not 1 <= len(book.dialects) <= MAX_DIALECTS:
        raise FormatbookError(
            f"{src}: needs 1..{MAX_DIALECTS} dialects, has {len(book.dialects)}")
    limit = 2 ** (book.emax + 1) / book.grid  # magnitudes must stay below 2^(emax+1)
    if book.grid_log2 > 0:
        raise FormatbookError(f"{src}: grid must be <= 1, got {book.grid}")
    for i, d in enumerate(book.dialects):
        if len(d) != LEVELS:
            raise FormatbookError(f"{src}: dialect {i} has {len(d)} magnitudes, needs {LEVELS}")
        if d[0] != 0:
            raise FormatbookError(f"{src}: dialect {i} must start at magnitude 0, got {d[0]}")
        if any(b <= a for a, b in zip(d, d[1:])):
            raise FormatbookError(
                f"{src}: dialect {i} magnitudes must strictly increase: {list(d)}"
            )
        if d[-1] >= limit:
            raise FormatbookError(
                f"{src}: dialect {i} max magnitude {d[-1]} x {book.grid} is not below "
                f"2^(emax+1) = {2 ** (book.emax + 1)}"
            )
    if len(set(book.dialects)) != len(book.dialects):
        raise FormatbookError(f"{src}: duplicate dialects")


def load_formatbook(book: str | Path | Formatbook) -> Formatbook:
    """A built-in name ('semdialect-32', 'dialectfp4'), a path to a JSON file, or a book."""
    if isinstance(book, Formatbook):
        return book
    key = str(book)
    path = BUILTIN_BOOKS.get(key, Path(key))
    if not path.exists():
        raise FormatbookError(
            f"unknown formatbook {key!r}: not a built-in ({', '.join(BUILTIN_BOOKS)}) "
            "and no such file"
        )
    if not path.is_file():
        raise FormatbookError(f"{path}: is a folder, not a formatbook JSON file")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise FormatbookError(f"{path}: {path.stat().st_size} bytes, larger than any "
                              f"formatbook can be ({MAX_FILE_BYTES} bytes, docs/limits.md)")
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise FormatbookError(f"{path}: not a text file (not UTF-8): not a formatbook") from None
    except json.JSONDecodeError as e:
        raise FormatbookError(f"{path}: not valid JSON ({e})") from None
    except RecursionError:
        raise FormatbookError(f"{path}: JSON nested too deeply to be a formatbook") from None
    except OSError as e:
        raise FormatbookError(f"{path}: cannot be read ({e.strerror})") from None
    return Formatbook.from_json(obj, source=str(path))

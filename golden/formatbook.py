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
    "semdialect-32c8x4": BOOK_DIR / "semdialect-32c8x4.json",  # 8 disjoint classes x 4 (§15)
    "semdialect-32c8x8": BOOK_DIR / "semdialect-32c8x8.json",  # semdialect-32 in 8 classes x 8
}
LEVELS = 8  # magnitudes per dialect: a 3-bit index, plus the sign bit = 4 bits
SCHEMA_VERSION = 1
CLASS_RULE = "block-max"  # the one class rule (numerics §15.1)
MAX_CLASS_BITS = 6
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
    # two-level selection (numerics §15): 2^class_bits classes of K ascending dialect ids
    class_bits: int | None = None
    classes: tuple[tuple[int, ...], ...] | None = None

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

    @property
    def has_classes(self) -> bool:
        return self.classes is not None

    @property
    def num_classes(self) -> int:
        return len(self.classes) if self.classes is not None else 0

    @property
    def class_size(self) -> int:
        """K: candidates per class (every class has the same number)."""
        return len(self.classes[0]) if self.classes is not None else 0

    def _classes_json(self) -> dict:
        return {"rule": CLASS_RULE, "class_bits": self.class_bits,
                "members": [list(c) for c in self.classes]}

    def to_json(self) -> dict:
        out = {
            "name": self.name,
            "version": SCHEMA_VERSION,
            "grid": self.grid,
            "scale": {"type": "e8m0", "emax": self.emax},
            "dialects": [list(d) for d in self.dialects],
            "provenance": self.provenance,
        }
        if self.classes is not None:
            out["classes"] = self._classes_json()
        return out

    def dumps(self) -> str:
        head = {k: v for k, v in self.to_json().items() if k not in ("dialects", "classes")}
        lines = ",\n".join("    " + json.dumps(list(d)) for d in self.dialects)
        body = json.dumps(head, indent=2)[:-2]
        text = body + ',\n  "dialects": [\n' + lines + "\n  ]"
        if self.classes is not None:
            members = ",\n".join("      " + json.dumps(list(c)) for c in self.classes)
            text += (',\n  "classes": {\n    "rule": ' + json.dumps(CLASS_RULE)
                     + f',\n    "class_bits": {self.class_bits},\n    "members": [\n'
                     + members + "\n    ]\n  }")
        return text + "\n}\n"

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.dumps())

    @property
    def content_hash(self) -> str:
        """sha256 of what defines the numerics (grid, scale rule, dialects), not the name."""
        parts = [self.grid_log2, self.emax, [list(d) for d in self.dialects]]
        if self.classes is not None:  # books without classes keep their old hash
            parts.append(self._classes_json())
        key = json.dumps(parts)
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
        class_bits = classes = None
        if "classes" in obj:
            class_bits, classes = _parse_classes(obj["classes"], source)
        try:
            return cls(
                name=name,
                grid_log2=int(math.log2(grid)),
                emax=emax,
                dialects=tuple(tuple(d) for d in dialects),
                provenance=obj.get("provenance", {}),
                class_bits=class_bits,
                classes=classes,
            )
        except FormatbookError as e:  # name the file, not the book's internal name
            msg, own = str(e), f"formatbook '{name}'"
            raise FormatbookError(source + msg[len(own):] if msg.startswith(own)
                                  else f"{source}: {msg}") from None


def _parse_classes(c, source: str):
    """The JSON `classes` object -> (class_bits, members); structure checks only (the
    checks against the dialect list are in _validate_classes)."""
    where = f"{source}: field 'classes'"
    if not isinstance(c, dict):
        raise FormatbookError(f"{where} must be an object, got {type(c).__name__}")
    unknown = sorted(set(c) - {"rule", "class_bits", "members"})
    if unknown:
        raise FormatbookError(f"{where} has unknown key(s) {', '.join(unknown)}")
    if c.get("rule") != CLASS_RULE:
        raise FormatbookError(f"{where}: rule must be {CLASS_RULE!r}, got {c.get('rule')!r}")
    bits = c.get("class_bits")
    if not isinstance(bits, int) or isinstance(bits, bool):
        raise FormatbookError(f"{where}: class_bits must be an integer, got {bits!r}")
    members = c.get("members")
    if not isinstance(members, list) or not all(
        isinstance(m, list) and all(isinstance(i, int) and not isinstance(i, bool) for i in m)
        for m in members
    ):
        raise FormatbookError(f"{where}: members must be a list of lists of dialect ids")
    return bits, tuple(tuple(m) for m in members)


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
    if (book.classes is None) != (book.class_bits is None):
        raise FormatbookError(f"{src}: classes and class_bits go together")
    if book.classes is not None:
        _validate_classes(book, src)


def _validate_classes(book: Formatbook, src: str) -> None:
    """numerics §15.2: 2^class_bits classes, each K distinct ascending ids, every dialect
    in at least one class."""
    b, members = book.class_bits, book.classes
    if not 0 <= b <= MAX_CLASS_BITS:
        raise FormatbookError(f"{src}: classes.class_bits must be in 0..{MAX_CLASS_BITS}, got {b}")
    if len(members) != 1 << b:
        raise FormatbookError(
            f"{src}: classes.class_bits = {b} needs {1 << b} classes, got {len(members)}"
        )
    k = len(members[0])
    d = book.num_dialects
    for c, m in enumerate(members):
        if len(m) != k:
            raise FormatbookError(
                f"{src}: class {c} has {len(m)} dialects, class 0 has {k} (every class "
                "needs the same count K)"
            )
        if k == 0:
            raise FormatbookError(f"{src}: class {c} is empty")
        if any(i < 0 or i >= d for i in m):
            raise FormatbookError(f"{src}: class {c} has a dialect id outside 0..{d - 1}: "
                                  f"{list(m)}")
        if any(j <= i for i, j in zip(m, m[1:])):
            raise FormatbookError(
                f"{src}: class {c} dialect ids must strictly increase: {list(m)}"
            )
    missing = sorted(set(range(d)) - {i for m in members for i in m})
    if missing:
        raise FormatbookError(f"{src}: dialect(s) {missing} belong to no class")


def load_formatbook(book: str | Path | Formatbook) -> Formatbook:
    """A built-in name (BUILTIN_BOOKS), a path to a JSON file, or a book."""
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
    st = path.stat()
    if st.st_size > MAX_FILE_BYTES:
        raise FormatbookError(f"{path}: {st.st_size} bytes, larger than any "
                              f"formatbook can be ({MAX_FILE_BYTES} bytes, docs/limits.md)")
    # parsed and validated once per file version (a sweep quantizes thousands of
    # sequences: re-reading the JSON every call was 15 % of a SeDA sweep point)
    key = (str(path.resolve()), st.st_mtime_ns, st.st_size)
    if key not in _LOADED:
        if len(_LOADED) >= 64:
            _LOADED.clear()
        _LOADED[key] = _parse_file(path)
    return _LOADED[key]


_LOADED: dict[tuple[str, int, int], Formatbook] = {}


def _parse_file(path: Path) -> Formatbook:
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

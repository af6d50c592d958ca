"""Output paths: checked before any expensive work, written atomically (docs/limits.md).

    out = check_output_dir(args.output, "-o")       # a folder we may create and write
    f = check_output_file(args.output, "-o")        # a file we may create or replace
    p = path_inside(out, f"{name}.v", "--name")     # never outside the output folder
    write_file_group(out, {"x.v": text, "x.vlt": waivers, "x.json": manifest})

The write rule (one rule for every group of files that belong together, the last file
being the manifest that describes the others): every file is first written completely
to a temporary name in the target folder; only then is the old manifest removed, the
data files renamed into place, and the new manifest renamed in last. A failure or
Ctrl-C while writing leaves the old files untouched; one during the renames leaves data
files without a manifest, never a manifest next to files it does not describe.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .errors import OutputPathError

__all__ = ["check_output_dir", "check_output_file", "path_inside", "write_file_group",
           "replace_group"]


def _nearest_existing(p: Path) -> Path:
    q = p
    while not q.exists() and q != q.parent:
        q = q.parent
    return q


def _check_creatable(p: Path, arg: str, what: str) -> None:
    """p does not exist: its nearest existing ancestor must be a writable folder."""
    anc = _nearest_existing(p.parent if str(p.parent) else Path("."))
    if not anc.is_dir():
        raise OutputPathError(f"{arg} {p}: {anc} is a file, so no {what} can be made under it")
    if not os.access(anc, os.W_OK | os.X_OK):
        raise OutputPathError(f"{arg} {p}: folder {anc} is not writable")


def check_output_dir(path, arg: str = "-o") -> Path:
    """An output folder: an existing writable folder, or a path that can be created."""
    p = Path(path)
    if not str(path):
        raise OutputPathError(f"{arg}: empty output folder name")
    if p.exists():
        if not p.is_dir():
            raise OutputPathError(f"{arg} {p}: is an existing file, not a folder")
        if not os.access(p, os.W_OK | os.X_OK):
            raise OutputPathError(f"{arg} {p}: folder is not writable")
        return p
    _check_creatable(p, arg, "folder")
    return p


def check_output_file(path, arg: str = "-o") -> Path:
    """An output file: not a folder; its folder existing and writable or creatable."""
    p = Path(path)
    if not str(path) or str(path).endswith(os.sep):
        raise OutputPathError(f"{arg} {path!r}: not a file name")
    if p.is_dir():
        raise OutputPathError(f"{arg} {p}: is an existing folder, not a file")
    if p.exists():
        if not os.access(p.parent if str(p.parent) else Path("."), os.W_OK | os.X_OK):
            raise OutputPathError(f"{arg} {p}: folder {p.parent} is not writable")
        return p
    _check_creatable(p, arg, "file")
    return p


def path_inside(folder, name: str, arg: str) -> Path:
    """folder/name, refusing names that are absolute, contain a folder or leave `folder`."""
    if not name or Path(name).name != name or name in (".", ".."):
        raise OutputPathError(f"{arg} {name!r}: must be a plain file name, not a path")
    p = Path(folder) / name
    if Path(os.path.abspath(p)).parent != Path(os.path.abspath(folder)):
        raise OutputPathError(f"{arg} {name!r}: would write outside {folder}")
    return p


def _tmp_for(final: Path) -> Path:
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    os.close(fd)
    return Path(tmp)


def _file_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask  # mkstemp makes 0600; give the usual file mode


def replace_group(temps: list[tuple[Path, Path]]) -> None:
    """Rename fully written temporary files into place by the write rule (module doc):
    temps = [(tmp, final), ...], the manifest last. Removes leftover temps on failure."""
    try:
        manifest = temps[-1][1]
        if manifest.exists() and len(temps) > 1:
            manifest.unlink()  # never leave an old manifest next to new data files
        mode = _file_mode()
        for tmp, final in temps:
            os.chmod(tmp, mode)
            os.replace(tmp, final)
    finally:
        for tmp, _ in temps:
            if tmp.exists():
                tmp.unlink()


def write_file_group(folder, files: dict[str, str | bytes]) -> list[Path]:
    """Write {file name: content} into folder (created if missing) all or none, by the
    write rule (module doc); the last entry is the manifest. Returns the paths."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    temps: list[tuple[Path, Path]] = []
    try:
        for name, content in files.items():
            final = path_inside(out, name, "file")
            tmp = _tmp_for(final)
            temps.append((tmp, final))
            data = content.encode() if isinstance(content, str) else content
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
    except BaseException:
        for tmp, _ in temps:
            if tmp.exists():
                tmp.unlink()
        raise
    replace_group(temps)
    return [final for _, final in temps]

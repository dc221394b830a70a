"""Writing results safely: every output path is checked before any computation, and every file is
written atomically (to a temporary file beside it, then renamed), so that no command leaves a partial
file or loses its result to a path it could have refused at the start."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


class OutputError(ValueError):
    """An output path that cannot be written, with the reason."""


def check_writable(path: Path | str, what: str = "output") -> Path:
    """Refuse (OutputError) a path that is a directory, in a directory that does not exist, or where
    this process may not create files; return it as a Path."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"the {what} {path} is a directory; give a file name")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.exists():
        raise OutputError(f"the {what}'s directory {parent} does not exist")
    if not parent.is_dir():
        raise OutputError(f"the {what}'s directory {parent} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"no permission to write the {what} into {parent}")
    if path.exists() and not os.access(path, os.W_OK):
        raise OutputError(f"no permission to overwrite the {what} {path}")
    return path


def _umask() -> int:
    """The process's file-creation mask (read from /proc where it is, without changing it)."""
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1], 8) for line in f if line.startswith("Umask:"))
    except (OSError, StopIteration, ValueError):
        mask = os.umask(0o022)
        os.umask(mask)
        return mask


def atomic_write(path: Path | str, data: bytes | str) -> None:
    """Write `data` to `path` through a temporary file in the same directory and a rename.  The file gets
    the permissions a plain `open` would give it (those it had, when it is replaced; otherwise 0666 less
    the umask), not the temporary file's private 0600."""
    path = Path(path)
    raw = data.encode() if isinstance(data, str) else data
    mode = path.stat().st_mode & 0o777 if path.is_file() else 0o666 & ~_umask()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent if str(path.parent) else ".")
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)
            f.write(raw)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

"""Atomic file writes: readers see the old file or the new one, never a torn one."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def _umask() -> int:
    """The process's umask: read from /proc where it can be (setting it to
    read it, the portable way, races with other threads creating files)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomic(path: str | os.PathLike, write: bytes | Callable[[BinaryIO], None]) -> None:
    """Write `write` (bytes, or a function writing to a binary file) to a temporary
    file beside `path`, then rename it over `path`.

    An existing file keeps its permissions, a new one gets 0o666 less the
    umask (as open() would give it); on any failure the temporary file is
    removed and `path` is left as it was.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(21, "is a directory; give a file name inside it", str(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:  # name the user's path, not the temporary file's
        where = "its directory does not exist" if isinstance(exc, FileNotFoundError) \
            else f"cannot create a file in {path.parent}"
        raise OSError(exc.errno, f"{exc.strerror} ({where})", str(path)) from None
    try:
        with os.fdopen(fd, "wb") as handle:
            if isinstance(write, bytes):
                handle.write(write)
            else:
                write(handle)
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o7777)
        else:  # mkstemp makes 0600 files whatever the umask
            os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

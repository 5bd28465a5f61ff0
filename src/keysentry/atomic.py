"""Files keysentry rewrites: read exactly as they are, and replaced so that a crash leaves
either the old file or the new one, never half, with the old file's permissions.

- The temp file's name comes from `tempfile.mkstemp` in the target's own directory (a rename
  is atomic only within one file system), so threads and processes writing the same target
  never share a temp file.
- After the rename the directory is fsynced too: until then a power loss can forget the
  rename itself, leaving the old file (or none) after we said the new one was written.
- A symlink is written through: the file it points to is replaced and the link stays a link
  (`.env` -> `../shared/.env` keeps sharing).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

_umask_lock = threading.Lock()


def read_text_as_is(path: Path | str) -> str:
    """The file's UTF-8 text with its line endings untouched (`\\r\\n` stays `\\r\\n`)."""
    with open(path, encoding="utf-8", newline="") as handle:
        return handle.read()


def write_atomically(path: Path, data: bytes, new_file_mode: int | None = None) -> None:
    """Write `data` to a temp file beside the file `path` names (through symlinks), fsync it,
    rename it over that file and fsync the directory. The result keeps the mode of the file it
    replaces; a new file gets `new_file_mode` (else the umask's default). Raises OSError; the
    temp file never outlives a failure."""
    target = Path(os.path.realpath(path))
    try:
        mode = target.stat().st_mode & 0o7777
    except FileNotFoundError:
        mode = new_file_mode if new_file_mode is not None else 0o666 & ~_umask()
    import tempfile  # here: the scan path imports this module, and rarely writes a file

    handle, temp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with open(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fchmod(stream.fileno(), mode)  # mkstemp creates 0600
            os.fsync(stream.fileno())
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    _fsync_directory(target.parent)


def _fsync_directory(directory: Path) -> None:
    """Make the rename durable. Systems that cannot open a directory (Windows) skip it."""
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)
    try:
        handle = os.open(directory, flags)
    except (PermissionError, IsADirectoryError):
        return
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def _umask() -> int:
    """The process umask. Linux shows it in /proc; elsewhere it can only be read by setting
    it, so it is set to a stricter value for that instant (a file another thread creates
    meanwhile is then private, never more open)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    with _umask_lock:
        current = os.umask(0o077)
        os.umask(current)
    return current

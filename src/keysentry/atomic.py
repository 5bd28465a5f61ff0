"""Files keysentry rewrites: read exactly as they are, and replaced so that a crash leaves
either the old file or the new one, never half, with the old file's permissions."""

from __future__ import annotations

import os
from pathlib import Path


def read_text_as_is(path: Path | str) -> str:
    """The file's UTF-8 text with its line endings untouched (`\\r\\n` stays `\\r\\n`)."""
    with open(path, encoding="utf-8", newline="") as handle:
        return handle.read()


def write_atomically(path: Path, data: bytes, new_file_mode: int | None = None) -> None:
    """Write `data` to a temp file beside `path`, fsync it, and rename it over `path`. The
    result keeps the mode of the file it replaces; a new file gets `new_file_mode` (else the
    umask's default). Raises OSError; the temp file never outlives a failure."""
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    mode: int | None
    try:
        mode = path.stat().st_mode & 0o7777
    except FileNotFoundError:
        mode = new_file_mode
    try:
        with open(temp, "wb") as handle:
            handle.write(data)
            handle.flush()
            if mode is not None:
                os.fchmod(handle.fileno(), mode)
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except OSError:
        temp.unlink(missing_ok=True)
        raise

"""The pre-commit hook's shortcut: files seen to be clean before the scan is even set up.

The hook runs `keysentry scan --pre-commit --quiet FILES` on every commit, and nearly every
commit holds no key. The full scan (config, ignore file, sources, detector, report) costs a
start-up about 45 ms of imports, `typing`, `re` and `enum` alone 15 ms on Python 3.11: far more
than searching a commit's files. So the hook first asks `clean_files` whether the full scan
could only come out clean, and exits 0 at once when it could: then it prints nothing and
exits 0 too (`--quiet`). That holds when
- the scan has no configuration or ignore file of its own: they only ever suppress findings or
  pass files over, but a broken one must fail the hook, as the full scan fails;
- every file is a regular file the full scan would read as it is: not a symlink, not larger
  than it reads at most, neither an archive (opened member by member) nor text with a byte
  order mark (searched decoded);
- and in none of them does the detector's first search find anything (`needles`).
Anything else, and the full scan runs as if this module did not exist. The rules the two paths
share (the first bytes, where config is looked for, how a file is opened) live here, once,
and the full scan imports them; nothing here imports more than `os`, `stat` and the needles.
"""

from __future__ import annotations

import codecs
import os
import stat

# --- what a blob's first bytes say about how it is read -----------------------------------

# UTF-32 first: its little-endian BOM starts with UTF-16's. (findings.py decodes by these.)
BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
BOM_FIRST = tuple({bom[:1] for bom, _ in BOMS})  # one test rejects almost every blob

# The first two bytes of every format opened by magic at offset 0 (tar's is at 257); the
# formats themselves are told apart in sources/archives.py (`kind_of`).
ARCHIVE_FIRST = frozenset((b"PK", b"\x1f\x8b", b"BZ", b"\xfd7", b"(\xb5", b"7z"))


def is_archive(data: bytes) -> bool:
    """Whether `data` may be an archive: the first bytes only, so every other blob pays two
    slices and a set lookup."""
    return data[:2] in ARCHIVE_FIRST or data[257:262] == b"ustar"


def read_as_it_is(data: bytes) -> bool:
    """Whether a scan searches these bytes as they are, and only them: not an archive, no
    byte order mark."""
    return data[:1] not in BOM_FIRST and not is_archive(data)


# --- where a scan's own files are ----------------------------------------------------------

CONFIG_FILES = ("keysentry.toml", "pyproject.toml")
IGNORE_FILE = ".keysentryignore"  # the config's `ignore_file` when none says otherwise


def search_dirs(start: str) -> list[str]:
    """Where a scan of `start` looks for its files: its directory and each parent up to the
    repository root (the first holding `.git`); only its directory outside a repository."""
    directory = os.path.realpath(start if os.path.isdir(start) else os.path.dirname(start))
    chain = []
    here = directory
    while True:
        chain.append(here)
        if os.path.exists(os.path.join(here, ".git")):
            return chain
        parent = os.path.dirname(here)
        if parent == here:
            return [directory]
        here = parent


def mentions_keysentry(path: str) -> bool:
    """Whether a pyproject.toml may hold [tool.keysentry]: its bytes name keysentry (only a
    quoted key spelt with escapes could hide it). One that cannot be read is parsed, to say
    why."""
    try:
        with open(path, "rb") as file:
            return b"keysentry" in file.read()
    except OSError:
        return True


def _holds_own_files(directory: str) -> bool:
    """Whether a scan looking in `directory` would find a config or ignore file there."""
    config, pyproject = (os.path.join(directory, name) for name in CONFIG_FILES)
    return (
        os.path.isfile(config)
        or os.path.isfile(os.path.join(directory, IGNORE_FILE))
        or (os.path.isfile(pyproject) and mentions_keysentry(pyproject))
    )


# --- how a named file is read --------------------------------------------------------------

OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
# The largest file read here; a larger one goes to the full scan (it reads up to its size
# limit, 100 MiB by default, and would find the same).
LARGEST = 8 << 20


def _plain_file(path: str) -> bytes | None:
    """The content of a regular file of at most LARGEST bytes, read in one call; None for
    anything else (a symlink, a special file, a file that changes size, an error)."""
    try:
        fd = os.open(path, OPEN_FLAGS)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > LARGEST:
            return None
        data = os.read(fd, st.st_size + 1)
    except OSError:
        return None
    finally:
        os.close(fd)
    return data if len(data) == st.st_size else None


def clean_files(paths: list[str]) -> bool:
    """Whether `keysentry scan --pre-commit --quiet PATHS`, options aside, can only find these
    files clean: see the module's docstring. False means "run the full scan", never "a key"."""
    # Here, not at the top: the config imports this module's rules on every command, and only
    # the hook needs the needles' automaton.
    from keysentry.scanner.needles import nothing_to_find

    if not paths or "-" in paths:
        return False
    root = paths[0] if len(paths) == 1 else os.curdir  # as commands/scan.py looks for config
    if any(map(_holds_own_files, [*search_dirs(root), os.getcwd()])):
        return False
    for path in paths:
        data = _plain_file(path)
        if data is None or not read_as_it_is(data) or not nothing_to_find(data):
            return False
    return True

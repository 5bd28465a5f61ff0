"""The commit hooks' shortcut: changes seen to be clean before the scan is even set up.

The hooks run on every commit (`keysentry scan --pre-commit --quiet FILES` under pre-commit,
`keysentry scan --staged --quiet` as `install-hook` writes it), and nearly every commit holds
no key. The full scan (config, ignore file, sources, detector, report) costs a start-up about
45 ms of imports, `typing`, `re` and `enum` alone 15 ms on Python 3.11: far more than searching
a commit's files. So the hook first asks `clean_files` (or `clean_staged`) whether the full
scan could only come out clean, and exits 0 at once when it could: the full scan would then
print nothing and exit 0 too. That holds when
- the scan has no configuration or ignore file of its own: they only ever suppress findings or
  pass files over, but a broken one must fail the hook, as the full scan fails;
- every file (every staged blob) is one the full scan would read as it is: a regular file, not
  a symlink, not larger than LARGEST, neither an archive (opened member by member) nor text
  with a byte order mark (searched decoded);
- and in none of them does the detector's first search find anything (`needles`).
Anything else, and the full scan runs as if this module did not exist. The rules the two paths
share (the first bytes, where config is looked for, how a file is opened) live here, once,
and the full scan imports them; nothing here imports more than `os`, `stat`, `codecs` and,
when asked, the needles and `git/spawn.py` (git without `subprocess`).
"""

from __future__ import annotations

import codecs
import os
import stat

TYPE_CHECKING = False  # not `typing`'s: importing it costs the hook 15 ms on Python 3.11
if TYPE_CHECKING:
    from collections.abc import Iterator

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
# The config's defaults (config.ScanConfig) when there is none: what the shortcuts scan with.
IGNORE_FILE = ".keysentryignore"
DEFAULT_MAX_FILE_SIZE = 100 << 20


def ancestors(directory: str) -> Iterator[str]:
    """The physical `directory` and each of its parents, up to the root."""
    here = os.path.realpath(directory)
    while True:
        yield here
        parent = os.path.dirname(here)
        if parent == here:
            return
        here = parent


def search_dirs(start: str) -> list[str]:
    """Where a scan of `start` looks for its files: its directory and each parent up to the
    repository root (the first holding `.git`); only its directory outside a repository."""
    chain = []
    for here in ancestors(start if os.path.isdir(start) else os.path.dirname(start)):
        chain.append(here)
        if os.path.exists(os.path.join(here, ".git")):
            return chain
    return chain[:1]


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
    """Whether a scan looking in `directory` may find a config or ignore file there: anything
    by those names (an ignore file that is a directory or a FIFO fails or blocks the full
    scan, which this must not pass), or a pyproject.toml that names keysentry."""
    config, pyproject = (os.path.join(directory, name) for name in CONFIG_FILES)
    return (
        os.path.lexists(config)
        or os.path.lexists(os.path.join(directory, IGNORE_FILE))
        or (os.path.lexists(pyproject) and _may_configure(pyproject))
    )


def _may_configure(pyproject: str) -> bool:
    return not os.path.isfile(pyproject) or mentions_keysentry(pyproject)


def _holds_own_files_around(root: str) -> bool:
    """Whether a scan of `root` would find a config or ignore file: from `root` up to its
    repository's root, or here."""
    return any(map(_holds_own_files, [*search_dirs(root), os.getcwd()]))


# --- how a named file is read --------------------------------------------------------------

OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
# The largest file read here; a larger one goes to the full scan (it reads up to its size
# limit, 100 MiB by default, and would find the same). Staged blobs: at most this in all.
LARGEST = 8 << 20
_MOST_STAGED = 4 * LARGEST


def read_whole(fd: int, size: int) -> bytes:
    """The file open on `fd`, `size` bytes by fstat: one os.read of that size (half the cost of
    a buffered file object per small file), more if it grew or the read was short."""
    data = os.read(fd, size + 1)
    if len(data) == size:
        return data
    chunks = [data]
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


def _plain_file(path: str) -> bytes | None:
    """The content of a regular file of at most LARGEST bytes; None for anything else (a
    symlink, a special file, a file that changes size, an error)."""
    try:
        fd = os.open(path, OPEN_FLAGS)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > LARGEST:
            return None
        data = read_whole(fd, st.st_size)
    except OSError:
        return None
    finally:
        os.close(fd)
    return data if len(data) == st.st_size else None


def clean_files(paths: list[str]) -> bool:
    """Whether `keysentry scan --pre-commit --quiet PATHS`, options aside, can only find these
    files clean: see the module's docstring. False means "run the full scan", never "a key"."""
    if not paths or "-" in paths:
        return False
    root = paths[0] if len(paths) == 1 else os.curdir  # as commands/scan.py looks for config
    if _holds_own_files_around(root):
        return False
    for path in paths:
        data = _plain_file(path)
        if data is None or not _clean(data):
            return False
    return True


def _clean(data: bytes) -> bool:
    # Here, not at the top: the config imports this module's rules on every command, and only
    # the hook needs the needles' automaton.
    from keysentry.scanner.needles import nothing_to_find

    return read_as_it_is(data) and nothing_to_find(data)


def _all_clean_blobs(batch: bytes, count: int) -> bool:
    """Whether `git cat-file --batch` answered with `count` blobs of at most LARGEST bytes,
    each clean at a glance."""
    pos = 0
    for _ in range(count):
        end = batch.find(b"\n", pos)
        header = batch[pos:end].split(b" ")
        if end < 0 or len(header) != 3 or header[1] != b"blob" or not header[2].isdigit():
            return False  # missing, not a blob, or not an answer at all
        start, size = end + 1, int(header[2])
        if size > LARGEST or batch[start + size : start + size + 1] != b"\n":
            return False
        if not _clean(batch[start : start + size]):
            return False
        pos = start + size + 1
    return pos == len(batch)


def _plain_work_tree(path: str) -> str | None:
    """The git dir of the work tree at `path` when a shortcut may go on there: not bare (a
    bare repository has no top level), not shallow, and no config or ignore file where the
    full scan would look (from the top level up, or here). None otherwise."""
    from keysentry.scanner.git.spawn import output

    if not os.path.isdir(path):
        return None
    asked = ("--is-bare-repository", "--is-shallow-repository", "--git-common-dir")
    where = output(path, "rev-parse", *asked, "--show-toplevel", most=1 << 16)
    lines = os.fsdecode(where or b"").splitlines()
    if len(lines) != 4 or lines[:2] != ["false", "false"] or _holds_own_files_around(lines[3]):
        return None
    return os.path.join(path, lines[2])


def clean_staged(path: str) -> bool:
    """Whether `keysentry scan --staged --quiet PATH` can only find the staged changes clean:
    the same test as `clean_files`, on the index blobs a commit would add (`git diff-index`,
    then one `git cat-file --batch`), with git started without `subprocess` (`spawn`). A
    repository without commits, a shallow or bare one, a commit that adds nothing: the full
    scan, which says what it says of them."""
    from keysentry.scanner.git.listing import STAGED_DIFF, parse_raw
    from keysentry.scanner.git.spawn import NO_EXTERNAL, output

    if _plain_work_tree(path) is None:
        return False
    listed = output(path, *STAGED_DIFF, *NO_EXTERNAL, "HEAD", most=1 << 24)
    if listed is None:
        return False
    ids = sorted({new_id for _, new_id, _ in parse_raw(listed)})
    if not ids:
        return False
    asked = "".join(f"{blob_id}\n" for blob_id in ids).encode()
    answer = output(path, "cat-file", "--batch", stdin=asked, most=_MOST_STAGED)
    return answer is not None and _all_clean_blobs(answer, len(ids))


def clean_history(path: str) -> bool:
    """Whether `keysentry scan --history --quiet PATH` would reuse a clean last result: the
    refs, the detector and the options are those the result in the git dir was made with, and
    it holds no key. Then the full scan reads nothing and exits 0 having printed nothing (its
    notes are quiet). Without such a result (or a config, a shallow clone, no commits): the
    full scan."""
    from keysentry.scanner.git.cache import ResultCache
    from keysentry.scanner.git.listing import SHOW_REFS, parse_refs
    from keysentry.scanner.git.spawn import output

    git_dir = _plain_work_tree(path)
    if git_dir is None:
        return False
    refs = parse_refs(output(path, *SHOW_REFS, most=1 << 26) or b"")
    if not any(name == "HEAD" for name, _ in refs):
        return False
    key = {
        "refs": [list(ref) for ref in refs],
        "max_blob_size": DEFAULT_MAX_FILE_SIZE,
        "shallow": False,
        "branch": None,
    }
    last = ResultCache(git_dir).load(key)
    return last is not None and not last.get("hits") and not last.get("findings")

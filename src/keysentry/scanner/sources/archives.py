"""Archives as a source: the members of zip, tar and compressed files, as Blobs with a chain path.

Keys ship inside build artefacts (a wheel built from a tree with a `.env`, a tarball committed
to the repository), so every blob whose first bytes are an archive's magic is opened: the zip
family (`.zip .whl .jar .war .egg .apk .ipa .nupkg .docx .xlsx .pptx`), tar with no, gzip,
bzip2, xz or zstd compression, plain `.gz .bz2 .xz .zst` files, and 7z when py7zr is
installed. The format is told by content, never by name. Members are yielded as Blobs whose
path names the chain, `dist/app-1.0.whl!app/settings.py`, so line and column are inside the
member; nested archives are opened to `Limits.max_depth` (8, as gitleaks).

The chain separator is `!`. Each part of a chain (the outer path too) has `\\` written `\\\\`
and `!` written `\\!`, so a chain splits unambiguously at every `!` not escaped; the parts also
travel unescaped as a list under the finding's `archive.members` provenance.

Nothing is extracted: members are read into memory in bounded chunks (never more than
`max_member_size` bytes, one member per nesting level), so member names such as `../../x`,
`/etc/passwd` or a symlink are only names; links are not followed, their targets are scanned as
members of their own. The work is bounded whatever the input: total bytes decompressed (every
level counted), the ratio of each compressed stream past its first MiB, the number of members
and the depth. A bound reached, an encrypted member, a corrupt or unsupported archive, each is
an unreadable Skip naming the chain and the reason: the scan is then incomplete (exit 2), never
a silent pass. This module knows nothing of keys: `pipeline.detect_in` searches what it yields.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator, Mapping
from typing import IO, Any, NamedTuple, cast

from keysentry.scanner.findings import Blob, Finding
from keysentry.scanner.sources.files import Skip

SEPARATOR = "!"
_CHUNK = 1 << 20
_RATIO_GRACE = 1 << 20  # a stream's ratio is checked once it has produced this much
_ZIP = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")
_BZIP2_BLOCKS = (b"1AY&SY", b"\x17rE8P\x90")
_SUFFIXES: dict[str, tuple[str, ...]] = {
    "gzip": (".gz", ".tgz"),
    "bzip2": (".bz2", ".tbz2"),
    "xz": (".xz", ".txz"),
}
_SUFFIXES["zstd"] = (".zst", ".zstd", ".tzst")
_ZIP_METHODS = {0, 8, 12, 14}  # stored, deflate, bzip2, lzma: what zipfile reads


class Limits(NamedTuple):
    """How far one top-level blob's archives are opened (each configurable: README)."""

    max_depth: int = 8  # archives opened within archives, the outermost counting 1
    max_bytes: int = 4 << 30  # bytes decompressed out of one blob, every level counted
    max_ratio: int = 100  # decompressed : compressed, per stream, past its first MiB
    max_members: int = 1_000_000  # entries of one blob's archives, every level counted
    max_member_size: int = 100 << 20  # a member larger than this is skipped (--max-file-size)


_LIMITS = [Limits()]


def current() -> Limits:
    """The limits of the scan running in this process (every reader thread sees them)."""
    return _LIMITS[-1]


class limits_set:  # used as a function: `with limits_set(limits):`
    """Scan with `limits` inside the block (commands/scan sets the user's for each scan). A
    class, not contextlib: importing contextlib costs the pre-commit path 4 ms."""

    def __init__(self, limits: Limits) -> None:
        self._limits = limits

    def __enter__(self) -> None:
        _LIMITS.append(self._limits)

    def __exit__(self, *exc: object) -> None:
        _LIMITS.pop()


def kind_of(head: bytes) -> str | None:
    """The archive format whose magic `head` starts with, if any."""
    if head[:4] in _ZIP:
        return "zip"
    if head[:3] == b"\x1f\x8b\x08":
        return "gzip"
    if head[:3] == b"BZh" and head[4:10] in _BZIP2_BLOCKS:
        return "bzip2"
    if head[:6] == b"\xfd7zXZ\x00":
        return "xz"
    if head[:4] == b"(\xb5/\xfd":
        return "zstd"
    if head[:6] == b"7z\xbc\xaf\x27\x1c":
        return "7z"
    if head[257:262] == b"ustar":
        return "tar"
    return None


def escape(part: str) -> str:
    return part.replace("\\", "\\\\").replace(SEPARATOR, "\\" + SEPARATOR)


def chain_path(parts: list[str]) -> str:
    """The path a member is shown as: its chain of names, each escaped, joined by `!`."""
    return SEPARATOR.join(escape(p) for p in parts)


def rerooted(finding: Finding, path: str) -> str:
    """The path of `finding` when its outermost blob is shown as `path` (a git source names the
    blob after the search): the chain kept for a member, `path` for anything else."""
    archive = finding.provenance.get("archive")
    if archive is None:
        return path
    return chain_path([path, *archive["members"]])


class LimitReached(Exception):
    """A bound on the work one blob may cost; `stream` is the stream it concerns (None: the
    whole blob, whose scan then stops)."""

    def __init__(self, reason: str, stream: object = None) -> None:
        super().__init__(reason)
        self.reason, self.stream = reason, stream


def members(blob: Blob, limits: Limits | None = None) -> Iterator[Blob | Skip]:
    """The members of the archive `blob` (nested ones opened) as Blobs, and a Skip for each
    part that could not be scanned; a blob that is no archive is yielded as it is."""
    walk = Walk(blob, limits or current())
    kind = kind_of(blob.data)
    if kind is None:
        yield blob
        return
    yield from walk.root(io.BytesIO(blob.data), kind, blob.data)


class Walk:
    """One top-level blob's archives: the budget they share and the recursion through them."""

    def __init__(self, root: Blob, limits: Limits, size: int | None = None) -> None:
        self.limits, self.provenance = limits, root.provenance
        self.top = root.path
        self.size = len(root.data) if size is None else size  # as stored, for the ratio
        self.produced = 0
        self.entries = 0

    def root(self, stream: IO[bytes], kind: str, raw: bytes | None) -> Iterator[Blob | Skip]:
        try:
            yield from self.open(stream, kind, [self.top], 1, raw, {})
        except LimitReached as exc:
            yield Skip(self.top, f"not fully scanned: {exc.reason}", unreadable=True)

    # -- accounting ---------------------------------------------------------------------------

    def count_entry(self) -> None:
        self.entries += 1
        if self.entries > self.limits.max_members:
            raise LimitReached(
                f"more than {self.limits.max_members:,} archive members (see --max-archive-members)"
            )

    def count_bytes(self, n: int) -> None:
        """Decompressed bytes, every level counted: bounded in all, and in proportion to the
        blob as stored. A nested bomb's streams may each look modest; their sum does not. The
        blob is allowed twice the ratio: the streams cut off at their own ratio cost at most
        the ratio times their compressed size, so the honest members beside a bomb have the
        other half."""
        self.produced += n
        if self.produced > self.limits.max_bytes:
            raise LimitReached(
                f"more than {self.limits.max_bytes:,} bytes decompressed (see --max-archive-bytes)"
            )
        self.check_ratio(self.produced, 2 * self.size, None)

    def check_ratio(self, produced: int, consumed: int, stream: object) -> None:
        if produced > _RATIO_GRACE and produced > self.limits.max_ratio * max(consumed, 1):
            raise LimitReached(
                f"compression ratio over {self.limits.max_ratio}:1, a zip bomb? "
                "(see --max-archive-ratio)",
                stream,
            )

    # -- blobs --------------------------------------------------------------------------------

    def blob(self, parts: list[str], data: bytes, extra: Mapping[str, Any]) -> Blob:
        provenance = {**self.provenance, **extra, "archive": {"members": parts[1:]}}
        return Blob(chain_path(parts), data, provenance)

    def raw(self, parts: list[str], data: bytes, extra: Mapping[str, Any]) -> Blob:
        """An archive that could not be opened, as the bytes it is (plain keys still found):
        a member, or the top-level blob itself under its own path."""
        if len(parts) > 1:
            return self.blob(parts, data, extra)
        return Blob(self.top, data, self.provenance)

    def too_big(self, parts: list[str], size: int) -> Skip:
        limit = self.limits.max_member_size
        return Skip(
            chain_path(parts),
            f"{size:,} bytes, larger than the size limit ({limit:,} bytes; see --max-file-size)",
        )

    def member(
        self,
        parts: list[str],
        depth: int,
        read: Callable[[], IO[bytes]],
        size: int | None,
        window: IO[bytes] | None,
        extra: Mapping[str, Any],
    ) -> Iterator[Blob | Skip]:
        """One member: opened when it is an archive, else yielded as a Blob. `window` is a
        seekable view of it (a tar member of a seekable tar): a nested archive larger than
        the member size limit is then opened in place, never read whole."""
        if size is not None and size > self.limits.max_member_size:
            if window is not None:
                kind = kind_of(window.read(512))
                window.seek(0)
                if kind is not None and kind != "zip" and depth < self.limits.max_depth:
                    yield from self.open(window, kind, parts, depth + 1, None, extra)
                    return
            yield self.too_big(parts, size)
            return
        data = self.read_bounded(read())
        if data is None:
            yield self.too_big(parts, size or self.limits.max_member_size + 1)
            return
        kind = kind_of(data)
        if kind is None:
            yield self.blob(parts, data, extra)
        else:
            yield from self.open(io.BytesIO(data), kind, parts, depth + 1, data, extra)

    def read_bounded(self, stream: IO[bytes]) -> bytes | None:
        """A member's bytes in chunks; None when it is larger than the member size limit."""
        chunks = []
        left = self.limits.max_member_size + 1
        while left > 0:
            chunk = stream.read(min(_CHUNK, left))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        if left <= 0:
            return None
        return b"".join(chunks)

    # -- containers ---------------------------------------------------------------------------

    def open(
        self,
        stream: IO[bytes],
        kind: str,
        parts: list[str],
        depth: int,
        raw: bytes | None,
        extra: Mapping[str, Any],
    ) -> Iterator[Blob | Skip]:
        """The members of the archive `stream` (of `kind`) at `parts`; past the depth limit,
        or when it cannot be opened, its bytes as they are (if held) and an unreadable Skip."""
        where = chain_path(parts)
        if depth > self.limits.max_depth:
            yield Skip(
                where,
                f"{kind} archive not opened: nested deeper than {self.limits.max_depth} "
                "(see --max-archive-depth)",
                unreadable=True,
            )
            if raw is not None:
                yield self.raw(parts, raw, extra)
            return
        opener = _OPENERS[kind]
        try:
            yield from opener(self, stream, parts, depth, extra)
        except LimitReached as exc:
            if exc.stream is None:
                raise
            yield Skip(where, f"not fully scanned: {exc.reason}", unreadable=True)
        except _Unsupported as exc:
            yield Skip(where, f"{kind} archive not opened: {exc}", unreadable=True)
            if raw is not None:
                yield self.raw(parts, raw, extra)
        except (TypeError, AttributeError, NameError, AssertionError):
            raise  # a bug here, not a hostile archive
        except Exception as exc:
            # Hostile or damaged bytes: zipfile.BadZipFile, tarfile.TarError, zlib.error,
            # LZMAError, struct.error, EOFError... whatever the library says, it is not clean.
            yield Skip(where, f"corrupt {kind} archive: {_reason(exc)}", unreadable=True)


def _reason(exc: BaseException) -> str:
    from keysentry.safety import scrub

    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return scrub(text[:200])


class _Unsupported(Exception):
    """An archive this installation cannot open (a missing optional library)."""


# -- zip --------------------------------------------------------------------------------------


def _open_zip(
    walk: Walk, stream: IO[bytes], parts: list[str], depth: int, extra: Mapping[str, Any]
) -> Iterator[Blob | Skip]:
    import zipfile

    entries = _zip_entry_count(stream)
    if entries is not None and walk.entries + entries > walk.limits.max_members:
        walk.entries += entries
        walk.count_entry()  # raises: refused before its directory is parsed into memory
    with zipfile.ZipFile(stream) as archive:
        for info in archive.infolist():
            walk.count_entry()
            if info.is_dir():
                continue
            member = [*parts, info.filename]
            if info.flag_bits & 0x1:
                yield Skip(chain_path(member), "encrypted: not scanned", unreadable=True)
                continue
            if info.compress_type not in _ZIP_METHODS:
                reason = f"compression method {info.compress_type} is not supported: not scanned"
                yield Skip(chain_path(member), reason, unreadable=True)
                continue
            if info.file_size > walk.limits.max_member_size:
                yield walk.too_big(member, info.file_size)
                continue

            def read(info: zipfile.ZipInfo = info) -> IO[bytes]:
                return cast(IO[bytes], _Counted(walk, archive.open(info), info.compress_size))

            try:
                yield from walk.member(member, depth, read, info.file_size, None, extra)
            except LimitReached as exc:
                if not isinstance(exc.stream, _Counted):
                    raise
                yield Skip(chain_path(member), f"not scanned: {exc.reason}", unreadable=True)


def _zip_entry_count(stream: IO[bytes]) -> int | None:
    """The entry count of a zip's end-of-central-directory record (None if not found)."""
    stream.seek(0, os.SEEK_END)
    size = stream.tell()
    start = max(0, size - (1 << 16) - 22)
    stream.seek(start)
    tail = stream.read()
    stream.seek(0)
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) < at + 12:
        return None
    count = int.from_bytes(tail[at + 10 : at + 12], "little")
    locator = tail.rfind(b"PK\x06\x07", 0, at)
    if count == 0xFFFF and locator >= 0:
        return None  # zip64: zipfile reads its count; the member limit still applies per entry
    return count


class _Counted(io.RawIOBase):
    """A zip member's reader whose output counts against the blob's budget and its ratio."""

    def __init__(self, walk: Walk, inner: IO[bytes], compressed: int) -> None:
        super().__init__()
        self._walk, self._inner, self._compressed = walk, inner, compressed
        self.produced = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self._inner.read(size)
        self.produced += len(data)
        self._walk.check_ratio(self.produced, self._compressed, self)
        self._walk.count_bytes(len(data))
        return data


# -- tar --------------------------------------------------------------------------------------


def _open_tar(
    walk: Walk, stream: IO[bytes], parts: list[str], depth: int, extra: Mapping[str, Any]
) -> Iterator[Blob | Skip]:
    """A tar: random access when the stream seeks (an image is recognised then), else
    streamed. Only regular files have content; links, devices and directories are names."""
    import tarfile

    seekable = stream.seekable()
    with tarfile.open(fileobj=stream, mode="r:" if seekable else "r|") as archive:
        if seekable:
            infos = []
            while (info := archive.next()) is not None:
                walk.count_entry()
                infos.append(info)
            from keysentry.scanner.sources import image

            layout = image.layout_of(infos)
            if layout is not None:
                tree = _TarTree(archive, stream, infos)
                yield from image.walk_image(walk, tree, layout, parts, depth, extra)
                return
            for info in infos:
                yield from _tar_member(walk, archive, stream, info, parts, depth, extra)
            return
        while (info := archive.next()) is not None:
            walk.count_entry()
            # A streamed tar keeps no list of what it passed: memory stays flat.
            archive.members.clear()  # type: ignore[attr-defined]
            yield from _tar_member(walk, archive, None, info, parts, depth, extra)


def _tar_member(
    walk: Walk,
    archive: Any,
    stream: IO[bytes] | None,
    info: Any,
    parts: list[str],
    depth: int,
    extra: Mapping[str, Any],
) -> Iterator[Blob | Skip]:
    if not info.isreg():
        return  # a link is a name (its target is a member of its own), nothing to read
    window = None
    if stream is not None and not info.issparse():
        window = cast(IO[bytes], _Window(stream, info.offset_data, info.size))

    def read() -> IO[bytes]:
        handle = archive.extractfile(info)
        assert handle is not None  # a regular file always has one
        return handle  # type: ignore[no-any-return]

    yield from walk.member([*parts, info.name], depth, read, info.size, window, extra)


class _TarTree:
    """A seekable tar's members by name, for the image walk."""

    def __init__(self, archive: Any, stream: IO[bytes], infos: list[Any]) -> None:
        self.archive, self.stream = archive, stream
        self.infos = {_normal(i.name): i for i in infos}
        self.order = infos

    def names(self) -> list[str]:
        return list(self.infos)

    def read_small(self, name: str, limit: int) -> bytes | None:
        info = self.infos.get(_normal(name))
        if info is None or not info.isreg() or info.size > limit:
            return None
        handle = self.archive.extractfile(info)
        return handle.read() if handle is not None else None

    def members(
        self, walk: Walk, names: list[str], parts: list[str], depth: int, extra: Mapping[str, Any]
    ) -> Iterator[Blob | Skip]:
        for name in names:
            info = self.infos[_normal(name)]
            yield from _tar_member(walk, self.archive, self.stream, info, parts, depth, extra)


def _normal(name: str) -> str:
    return name.lstrip("/").removeprefix("./")


class _Window(io.RawIOBase):
    """A seekable view of `size` bytes at `base` of a seekable stream (a tar member in
    place): a nested archive is read where it lies, never copied."""

    def __init__(self, stream: IO[bytes], base: int, size: int) -> None:
        super().__init__()
        self._stream, self._base, self._size, self._at = stream, base, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._at

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        start = {os.SEEK_SET: 0, os.SEEK_CUR: self._at, os.SEEK_END: self._size}[whence]
        self._at = max(0, start + offset)
        return self._at

    def read(self, size: int = -1) -> bytes:
        left = self._size - self._at
        if left <= 0:
            return b""
        size = left if size is None or size < 0 else min(size, left)
        self._stream.seek(self._base + self._at)
        data = self._stream.read(size)
        self._at += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


# -- compressed streams -----------------------------------------------------------------------


def _open_compressed(
    walk: Walk, stream: IO[bytes], parts: list[str], depth: int, extra: Mapping[str, Any], kind: str
) -> Iterator[Blob | Skip]:
    """A compressed stream: a tar inside is opened in the same step (`app.tar.gz!src/x`),
    anything else is one member named after the file without its suffix."""
    inflate = _Inflate(walk, stream, kind)
    head = inflate.peek(512)
    if kind_of(head) == "tar":
        try:
            yield from _open_tar(walk, cast(IO[bytes], inflate), parts, depth, extra)
        except LimitReached as exc:
            if exc.stream is not inflate:
                raise
            yield Skip(chain_path(parts), f"not fully scanned: {exc.reason}", unreadable=True)
        return
    walk.count_entry()
    inner = [*parts, _inner_name(parts[-1], kind)]
    yield from walk.member(inner, depth, lambda: cast(IO[bytes], inflate), None, None, extra)


def _inner_name(outer: str, kind: str) -> str:
    """`config.json.gz` holds `config.json`; a name without the suffix, `<gzip content>`."""
    base = outer.replace("\\", "/").rsplit("/", 1)[-1]
    for suffix in _SUFFIXES[kind]:
        if base.lower().endswith(suffix) and len(base) > len(suffix):
            return base[: -len(suffix)]
    return f"<{kind} content>"


class _Inflate(io.RawIOBase):
    """A decompressing, forward-only reader whose output counts against the blob's budget and
    its own ratio. Concatenated streams (`cat a.gz b.gz`) are read through."""

    def __init__(self, walk: Walk, raw: IO[bytes], kind: str) -> None:
        super().__init__()
        self._walk, self._raw, self._kind = walk, raw, kind
        self._consumed = self.produced = 0
        self._buffer = b""
        self._offset = 0  # what of _buffer was read
        self._pending = b""
        self._done = False
        self._at = 0
        self._decoder: Any = None
        self._zstd: Any = None
        self._start()

    def _start(self) -> None:
        if self._kind == "zstd":
            try:
                import zstandard
            except ImportError:
                raise _Unsupported("install keysentry[archives] (zstandard) to open it") from None
            reader = cast(IO[bytes], _Tally(self._raw, self))
            self._zstd = zstandard.ZstdDecompressor().stream_reader(reader, read_across_frames=True)
        elif self._kind == "gzip":
            import zlib

            self._decoder = zlib.decompressobj(47)
        elif self._kind == "bzip2":
            import bz2

            self._decoder = bz2.BZ2Decompressor()
        else:
            import lzma

            self._decoder = lzma.LZMADecompressor()

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def tell(self) -> int:
        return self._at

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        """Forward only (tarfile skips a member's data this way): read and drop."""
        target = offset if whence == os.SEEK_SET else self._at + offset
        if target < self._at:
            raise OSError("a compressed stream cannot seek backwards")
        while self._at < target and self.read(min(_CHUNK, target - self._at)):
            pass
        return self._at

    def peek(self, size: int) -> bytes:
        while len(self._buffer) - self._offset < size and not self._done:
            self._buffer = self._buffer[self._offset :] + self._produce(size)
            self._offset = 0
        return self._buffer[self._offset : self._offset + size]

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            size = 1 << 62
        while self._offset >= len(self._buffer) and not self._done:
            self._buffer, self._offset = self._produce(_CHUNK), 0
        # An offset into the chunk, not a slice of what is left: tarfile reads 10 KiB at a
        # time, and re-slicing a 1 MiB chunk for each would copy it a hundred times.
        data = self._buffer[self._offset : self._offset + size]
        self._offset += len(data)
        self._at += len(data)
        return data

    def count_input(self, n: int) -> None:
        self._consumed += n

    def _produce(self, want: int) -> bytes:
        want = max(1, min(want, _CHUNK))
        out = self._zstd.read(want) if self._zstd is not None else self._decode(want)
        if not out:
            self._done = True
            return b""
        self.produced += len(out)
        self._walk.check_ratio(self.produced, self._consumed, self)
        self._walk.count_bytes(len(out))
        return bytes(out)

    def _decode(self, want: int) -> bytes:
        while True:
            if self._decoder.eof:
                rest = self._decoder.unused_data + self._pending
                self._pending = b""
                if not rest:
                    rest = self._raw.read(1 << 16)
                    self.count_input(len(rest))
                if not rest.strip(b"\0"):
                    return b""  # the end, or the zero padding a tape block leaves
                self._start()  # a concatenated stream: another member follows
                self._pending = rest
            data, self._pending = self._pending, b""
            if not data and self._needs_input(self._decoder):
                data = self._raw.read(1 << 16)
                self.count_input(len(data))
                if not data:
                    raise EOFError(f"truncated {self._kind} stream")
            out: bytes = self._decoder.decompress(data, want)
            if self._kind == "gzip" and not self._decoder.eof:
                self._pending = self._decoder.unconsumed_tail
            if out:
                return out

    @staticmethod
    def _needs_input(decoder: Any) -> bool:
        return bool(getattr(decoder, "needs_input", True))


class _Tally(io.RawIOBase):
    """Counts the compressed bytes a library reads, for the ratio."""

    def __init__(self, raw: IO[bytes], owner: _Inflate) -> None:
        super().__init__()
        self._raw, self._owner = raw, owner

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        self._owner.count_input(len(data))
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


# -- 7z ---------------------------------------------------------------------------------------


def _open_7z(
    walk: Walk, stream: IO[bytes], parts: list[str], depth: int, extra: Mapping[str, Any]
) -> Iterator[Blob | Skip]:
    """A 7z archive through py7zr, into memory (never to disk): py7zr decompresses a solid
    archive as a whole, so its total size is budgeted, and bounded by the member limit, first."""
    try:
        import py7zr
        from py7zr.io import BytesIOFactory
    except ImportError:
        raise _Unsupported("install keysentry[archives] (py7zr) to open it") from None
    with py7zr.SevenZipFile(stream) as archive:
        if archive.needs_password():
            yield Skip(chain_path(parts), "encrypted 7z archive: not scanned", unreadable=True)
            return
        files = [f for f in archive.list() if not f.is_directory]
        for _ in files:
            walk.count_entry()
        total = sum(f.uncompressed or 0 for f in files)
        walk.count_bytes(total)
        if total > walk.limits.max_member_size:
            yield walk.too_big(parts, total)
            return
        factory = BytesIOFactory(walk.limits.max_member_size)
        archive.extractall(factory=factory)
        for name, handle in sorted(factory.products.items()):
            handle.seek(0)
            read = opener_of(cast(IO[bytes], handle))
            yield from walk.member([*parts, name], depth, read, None, None, extra)


def opener_of(handle: IO[bytes]) -> Callable[[], IO[bytes]]:
    """A member's reader for a stream already open."""
    return lambda: handle


def _compressed(kind: str) -> Callable[..., Iterator[Blob | Skip]]:
    def opener(
        walk: Walk, stream: IO[bytes], parts: list[str], depth: int, extra: Mapping[str, Any]
    ) -> Iterator[Blob | Skip]:
        return _open_compressed(walk, stream, parts, depth, extra, kind)

    return opener


_OPENERS: dict[str, Callable[..., Iterator[Blob | Skip]]] = {
    "zip": _open_zip,
    "tar": _open_tar,
    "7z": _open_7z,
    **{kind: _compressed(kind) for kind in ("gzip", "bzip2", "xz", "zstd")},
}

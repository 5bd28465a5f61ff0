"""`dotenv://PATH#NAME`: a `NAME=value` binding of a .env file.

Read with python-dotenv's own parser and interpolation (`dotenv_values`), so a reference
reads exactly what python-dotenv, and the applications that use it, read: multi-line quoted
values, escapes, quoted names, `${VAR}` expansion. python-dotenv is imported when a .env file
is read, never on the scan path. A put rewrites only the binding it changes, atomically,
keeping the file's mode, line endings and every other byte; a file in a missing directory is
created with its directories (0700).
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from keysentry.atomic import read_text_as_is, write_atomically
from keysentry.errors import ConfigError, ProviderUnavailable, SecretConflict, SecretNotFound
from keysentry.providers.base import Fetched, Health, SecretRef, Stored
from keysentry.secret import Secret

SCHEME = "dotenv"
OPTIONS: frozenset[str] = frozenset()

_PLAIN = re.compile(r"[A-Za-z0-9_./:@+=-]*")


def parse(text: str) -> dict[str, str]:
    """The names and values of a .env file, as python-dotenv's `dotenv_values` reads them
    (names without a value left out)."""
    from dotenv.parser import parse_stream

    # Universal newlines, as python-dotenv's own open() of the file gives it.
    stream = io.StringIO(text.replace("\r\n", "\n").replace("\r", "\n"))
    # Every binding in order, repeats included, as `dotenv_values` takes them to expand.
    raw = ((b.key, b.value) for b in parse_stream(stream) if b.key is not None)
    return {k: v for k, v in interpolated(raw).items() if v is not None}


def interpolated(values: Iterable[tuple[str, str | None]]) -> dict[str, str | None]:
    """python-dotenv's `${NAME}` and `${NAME:-default}` expansion, exactly as `dotenv_values`
    does it (earlier names of the file first, then the process environment), in linear time.
    Its own is quadratic on a hostile file: its pattern rescans the rest of a value at every
    `${` that is never closed, and it copies the environment for every binding."""
    known: dict[str, str | None] = {}
    for name, value in values:
        known[name] = None if value is None else _expanded(value, known)
    return known


class _Next:
    """The first `char` at or after a position, by a pointer that only moves forward, so that
    the candidates of one value, taken left to right, scan it once."""

    def __init__(self, text: str, char: str) -> None:
        self._text, self._char, self._at, self._from = text, char, -1, -1

    def at_or_after(self, start: int) -> int:
        if not self._from <= start <= self._at:
            found = self._text.find(self._char, start)
            self._at, self._from = (len(self._text) if found < 0 else found), start
        return self._at


def _expanded(value: str, known: Mapping[str, str | None]) -> str:
    brace, colon = _Next(value, "}"), _Next(value, ":")
    parts: list[str] = []
    cursor = 0
    at = value.find("${")
    while at >= 0:
        # The pattern is `\$\{(?P<name>[^}:]*)(?::-(?P<default>[^}]*))?\}`: the name runs to
        # the first `}` or `:`; a `:` must open `:-default}`.
        stop = min(brace.at_or_after(at + 2), colon.at_or_after(at + 2))
        name, default, end = value[at + 2 : stop], None, -1
        if stop < len(value) and value[stop] == "}":
            end = stop + 1
        elif value.startswith(":-", stop):
            close = brace.at_or_after(stop + 2)
            if close < len(value):
                default, end = value[stop + 2 : close], close + 1
        if end < 0:
            at = value.find("${", at + 1)
            continue
        parts.append(value[cursor:at])
        if name in known:
            parts.append(known[name] or "")
        else:
            parts.append(os.environ.get(name, default or ""))
        cursor = end
        at = value.find("${", end)
    parts.append(value[cursor:])
    return "".join(parts)


def bindings(text: str) -> list[tuple[str, str | None]]:
    """The file cut into python-dotenv's bindings: (its exact text, its name or None for a
    comment, blank or invalid line). The texts joined are `text`, byte for byte."""
    from dotenv.parser import parse_stream

    parts = [(b.original.string, b.key) for b in parse_stream(io.StringIO(text, newline=""))]
    if "".join(part for part, _ in parts) != text:  # never seen; fall back to lines
        return [(line, None) for line in text.splitlines(keepends=True)]
    return parts


def _name(ref: SecretRef) -> str:
    if ref.field is None:
        raise ConfigError(f"{ref}: name the variable, as in dotenv://.env#OPENAI_API_KEY")
    return ref.field


def _read(ref: SecretRef) -> str:
    try:
        return read_text_as_is(ref.location)
    except FileNotFoundError:
        raise SecretNotFound(f"{ref}: {ref.location} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8"
        raise ProviderUnavailable(f"{ref}: cannot read {ref.location}: {reason}") from None


def get(ref: SecretRef) -> Fetched:
    name = _name(ref)
    value = parse(_read(ref)).get(name)
    if not value:
        raise SecretNotFound(f"{ref}: {ref.location} does not set {name}")
    return Fetched(Secret(value), str(ref))


def put(ref: SecretRef, value: str, *, tags: Mapping[str, str], overwrite: bool) -> Stored:
    name = _name(ref)
    if "$" in value:
        raise ConfigError(
            f"{ref}: a value with '$' would be expanded by python-dotenv; use another store"
        )
    path = Path(ref.location)
    text = _read(ref) if path.exists() else ""
    current = parse(text).get(name)
    if current == value:
        return Stored(None, created=False, changed=False)
    if current is not None and not overwrite:
        raise SecretConflict(f"{ref}: {name} already has another value (use --overwrite)")
    new = _with_binding(text, name, value)
    if parse(new) != {**parse(text), name: value}:  # our writer and their parser agree
        raise ConfigError(
            f"{ref}: writing {name} would change how python-dotenv reads "
            f"{path} (an unterminated quote?): fix the file or use another store"
        )
    _make_directory(ref, path.parent)
    try:
        write_atomically(path, new.encode("utf-8"), new_file_mode=0o600)
    except OSError as exc:
        raise ProviderUnavailable(f"{ref}: cannot write {path}: {exc.strerror}") from None
    return Stored(None, created=current is None, changed=True)


def remove(ref: SecretRef) -> bool:
    """Drop NAME's bindings from the file, atomically, keeping every other byte (a rotation's
    kept old value, once the old key is deleted); False when the file has none."""
    name = _name(ref)
    path = Path(ref.location)
    if not path.exists():
        return False
    text = _read(ref)
    kept = "".join(part for part, key in bindings(text) if key != name)
    if kept == text:
        return False
    if parse(kept) != {k: v for k, v in parse(text).items() if k != name}:
        raise ConfigError(
            f"{ref}: removing {name} would change how python-dotenv reads "
            f"{path} (another value uses it): remove it by hand"
        )
    try:
        write_atomically(path, kept.encode("utf-8"))
    except OSError as exc:
        raise ProviderUnavailable(f"{ref}: cannot write {path}: {exc.strerror}") from None
    return True


def _with_binding(text: str, name: str, value: str) -> str:
    """`text` with NAME's bindings set to `value` (or one appended); other bytes kept."""
    newline = "\r\n" if "\r\n" in text else "\n"
    line = f"{name}={_quote(value)}"
    parts = bindings(text)
    replaced = [f"{_lead(p)}{line}{_end(p) or newline}" if key == name else p for p, key in parts]
    if replaced == [p for p, _ in parts]:
        ending = "" if not text or text.endswith(("\n", "\r")) else newline
        replaced.append(f"{ending}{line}{newline}")
    return "".join(replaced)


def _lead(part: str) -> str:
    return re.match(r"\s*", part).group()  # type: ignore[union-attr]


def _end(part: str) -> str:
    return re.search(r"(\r\n|\n|\r)?\Z", part).group()  # type: ignore[union-attr]


def _make_directory(ref: SecretRef, directory: Path) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise ProviderUnavailable(f"{ref}: cannot create {directory}: {exc.strerror}") from None


def _quote(value: str) -> str:
    if _PLAIN.fullmatch(value):
        return value
    escaped = value.replace("\\", "\\\\").replace("'", "\\'")
    return f"'{escaped}'"


def describe(ref: SecretRef) -> dict[str, object]:
    path = Path(ref.location)
    names = sorted(parse(_read(ref))) if path.exists() else []
    return {"reference": str(ref), "file": str(path), "exists": path.exists(), "names": names}


def health(ref: SecretRef) -> Health:
    path = Path(ref.location)
    if not path.exists():
        return Health(False, f"{path} does not exist")
    return Health(
        os.access(path, os.R_OK),
        f"{path} is readable" if os.access(path, os.R_OK) else f"{path} is not readable",
    )

"""`dotenv://PATH#NAME`: a `NAME=value` line of a .env file.

The syntax is python-dotenv's: `export ` prefixes, `#` comments, single quotes (literal),
double quotes (with `\\n`, `\\"` and `\\\\` escapes). A put rewrites only the line it changes,
atomically, keeping the file's mode and line endings.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from keysentry.atomic import read_text_as_is, write_atomically
from keysentry.errors import ConfigError, ProviderUnavailable, SecretConflict, SecretNotFound
from keysentry.providers.base import Fetched, Health, SecretRef, Stored
from keysentry.secret import Secret

SCHEME = "dotenv"
OPTIONS: frozenset[str] = frozenset()

_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_.-]*)\s*=\s*(.*?)\s*$")
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\"}


def parse(text: str) -> dict[str, str]:
    """The names and values of a .env file."""
    values = {}
    for line in text.splitlines():
        match = _LINE.match(line)
        if match:
            values[match.group(1)] = _value(match.group(2))
    return values


def _value(raw: str) -> str:
    if raw[:1] == "'" and raw.find("'", 1) > 0:
        return raw[1 : raw.find("'", 1)]
    if raw[:1] == '"':
        out, i = [], 1
        while i < len(raw) and raw[i] != '"':
            if raw[i] == "\\" and i + 1 < len(raw):
                out.append(_ESCAPES.get(raw[i + 1], "\\" + raw[i + 1]))
                i += 2
            else:
                out.append(raw[i])
                i += 1
        return "".join(out)
    return re.split(r"\s+#", raw, maxsplit=1)[0].strip()


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
    path = Path(ref.location)
    text = _read(ref) if path.exists() else ""
    current = parse(text).get(name)
    if current == value:
        return Stored(None, created=False, changed=False)
    if current is not None and not overwrite:
        raise SecretConflict(f"{ref}: {name} already has another value (use overwrite)")
    newline = "\r\n" if "\r\n" in text else "\n"
    line = f"{name}={_quote(value)}"
    lines = text.splitlines()
    for index, existing in enumerate(lines):
        match = _LINE.match(existing)
        if match and match.group(1) == name:
            lines[index] = line
            break
    else:
        lines.append(line)
    write_atomically(path, (newline.join(lines) + newline).encode("utf-8"), new_file_mode=0o600)
    return Stored(None, created=current is None, changed=True)


def _quote(value: str) -> str:
    if re.fullmatch(r"[A-Za-z0-9_./:@+=-]*", value):
        return value
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def describe(ref: SecretRef) -> dict[str, object]:
    path = Path(ref.location)
    names = sorted(parse(_read(ref))) if path.exists() else []
    return {"reference": str(ref), "file": str(path), "exists": path.exists(), "names": names}


def health(ref: SecretRef) -> Health:
    path = Path(ref.location)
    if not path.exists():
        return Health(False, f"{path} does not exist")
    return Health(os.access(path, os.R_OK), f"{path} is readable" if os.access(path, os.R_OK)
                  else f"{path} is not readable")  # fmt: skip

"""keysentry's configuration: `keysentry.toml`, or `[tool.keysentry]` in pyproject.toml.

Found in the current directory unless a path is given. Every malformed value is a ConfigError
that names the file, the key and what is wrong.

A key pasted where a reference belongs (`OPENAI_API_KEY = "sk-proj-..."`) is found when the
file is read, and reading the section that holds it raises a ConfigError that names where it
is and what to do, never the key. The check sits in the mapping every section is read from
(`Config.raw`), so each reader of each section, including sections added later, refuses it;
a section without a key (the scan's, say) still reads, so `keysentry scan` can report the key.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple

from keysentry.errors import ConfigError

DEFAULT_MAX_FILE_SIZE = 100 << 20
_SIZE = re.compile(r"(\d+)\s*([KMG]?)(i?B)?\Z", re.IGNORECASE)
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


class ScanConfig(NamedTuple):
    exclude: tuple[str, ...] = ()
    max_file_size: int = DEFAULT_MAX_FILE_SIZE
    inline_allow: bool = True
    ignore_file: str = ".keysentryignore"


class Config(NamedTuple):
    path: Path | None = None  # None: no file, all defaults
    scan: ScanConfig = ScanConfig()
    raw: Mapping[str, Any] = MappingProxyType({})  # the whole table, for later sections


class Sections(Mapping[str, Any]):
    """The config's top-level table, by section name. Reading a section that holds a key
    raises the ConfigError that says where the key is."""

    def __init__(self, table: Mapping[str, Any], keyed: Mapping[str, str]) -> None:
        self._table, self._keyed = table, keyed  # keyed: section -> its error

    def __getitem__(self, name: str) -> Any:
        if name in self._keyed:
            raise ConfigError(self._keyed[name])
        return self._table[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._table)

    def __len__(self) -> int:
        return len(self._table)


def pasted_key(where: str) -> ConfigError:
    """The error for a key found where a reference (or other setting) belongs."""
    return ConfigError(
        f"{where} holds a key, not a reference: store it with `keysentry migrate` (or "
        "`keysentry migrate copy`) and put its reference here"
    )


def _first_key(value: Any, name: str) -> str | None:
    """The dotted name of the first value under `value` (a TOML value called `name`) that
    holds a key, or of a table entry whose name is one (scrubbed)."""
    from keysentry.safety import holds_key, scrub

    if isinstance(value, str):
        return name if holds_key(value) else None
    if isinstance(value, dict):
        dotted = f"{name}." if name else ""
        children = [(str(k), dotted + scrub(str(k)), item) for k, item in value.items()]
    elif isinstance(value, list):
        children = [("", f"{name}[{i}]", item) for i, item in enumerate(value)]
    else:
        return None
    for label, child, item in children:
        found = child if holds_key(label) else _first_key(item, child)
        if found is not None:
            return found
    return None


def parse_size(value: str | int, where: str) -> int:
    """`100M`, `10MiB`, `4096`: a size in bytes."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    match = _SIZE.match(str(value).strip())
    if not match or int(match.group(1)) == 0:
        raise ConfigError(f"{where}: expected a size such as 10M or 4096, got {value!r}")
    return int(match.group(1)) * _UNITS[match.group(2).upper()]


def load_config(explicit: Path | None = None, directory: Path | None = None) -> Config:
    """The configuration from `explicit`, else from keysentry.toml or pyproject.toml in
    `directory` (the current one by default), else the defaults."""
    if explicit is not None:
        return _from_file(explicit, required=True)
    base = directory or Path.cwd()
    for candidate in (base / "keysentry.toml", base / "pyproject.toml"):
        if candidate.is_file():
            config = _from_file(candidate, required=False)
            if config.path is not None:
                return config
    return Config()


def _from_file(path: Path, required: bool) -> Config:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on Python 3.10 only
        import tomli as tomllib
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8"
        raise ConfigError(f"{path}: cannot read config: {reason}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    if path.name == "pyproject.toml":
        table = document.get("tool", {}).get("keysentry")
        if table is None:
            if required:
                raise ConfigError(f"{path}: no [tool.keysentry] table")
            return Config()
        prefix = "tool.keysentry."
    else:
        table, prefix = document, ""
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [{prefix.rstrip('.')}] must be a table")
    keyed = {}
    for section, value in table.items():
        found = _first_key({section: value}, prefix.rstrip("."))
        if found is not None:
            keyed[section] = str(pasted_key(f"{path}: {found}"))
    sections = Sections(table, keyed)
    return Config(path, _scan_config(path, sections.get("scan", {}), prefix + "scan"), sections)


def _scan_config(path: Path, table: Any, name: str) -> ScanConfig:
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [{name}] must be a table")
    known = {"exclude", "max_file_size", "inline_allow", "ignore_file"}
    unknown = sorted(set(table) - known)
    if unknown:
        raise ConfigError(
            f"{path}: [{name}] has unknown key {unknown[0]!r} (known: {', '.join(sorted(known))})"
        )
    defaults = ScanConfig()
    exclude = table.get("exclude", [])
    if not isinstance(exclude, list) or not all(isinstance(p, str) for p in exclude):
        raise ConfigError(f"{path}: {name}.exclude must be a list of glob strings")
    inline_allow = table.get("inline_allow", defaults.inline_allow)
    if not isinstance(inline_allow, bool):
        raise ConfigError(f"{path}: {name}.inline_allow must be true or false")
    ignore_file = table.get("ignore_file", defaults.ignore_file)
    if not isinstance(ignore_file, str) or not ignore_file:
        raise ConfigError(f"{path}: {name}.ignore_file must be a file name")
    size = table.get("max_file_size", defaults.max_file_size)
    return ScanConfig(
        exclude=tuple(exclude),
        max_file_size=parse_size(size, f"{path}: {name}.max_file_size"),
        inline_allow=inline_allow,
        ignore_file=ignore_file,
    )

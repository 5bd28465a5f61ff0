"""keysentry's configuration: `keysentry.toml`, or `[tool.keysentry]` in pyproject.toml.

Found where the user expects it: for a scan, the nearest keysentry.toml or pyproject.toml from
the scanned directory up to its repository's root, else the working directory's (`find_config`);
`--config` names one. Every table is checked in one place (`TABLES`, below) when the file is
read: an unknown table or key, or a value of the wrong type, is a one-line ConfigError naming
the file, the table and the key.

A key pasted where a reference belongs (`OPENAI_API_KEY = "sk-proj-..."`) is found when the
file is read, and reading the section that holds it raises a ConfigError that names where it
is and what to do, never the key. The check sits in the mapping every section is read from
(`Config.raw`), so each reader of each section, including sections added later, refuses it;
a section without a key (the scan's, say) still reads, so `keysentry scan` can report the key.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple

from keysentry.errors import ConfigError
from keysentry.scanner.precheck import (
    CONFIG_FILES,
    IGNORE_FILE,
    mentions_keysentry,
    search_dirs,
)
from keysentry.scanner.precheck import (
    DEFAULT_MAX_FILE_SIZE as DEFAULT_MAX_FILE_SIZE,  # the default lives with the shortcut
)

_SIZE = re.compile(r"(\d+)\s*([KMG]?)(i?B)?\Z", re.IGNORECASE)
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


class ScanConfig(NamedTuple):
    exclude: tuple[str, ...] = ()
    max_file_size: int = DEFAULT_MAX_FILE_SIZE
    inline_allow: bool = True
    ignore_file: str = IGNORE_FILE
    # How far archives are opened (scanner/sources/archives.py Limits; None: its default).
    max_archive_depth: int | None = None
    max_archive_bytes: int | None = None
    max_archive_ratio: int | None = None
    max_archive_members: int | None = None


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


# What is wrong with a value, or None when it is fine.
Check = Callable[[Any], str | None]


class Table(NamedTuple):
    """A config table: its fixed keys, or (`each`) what every key holds when the keys are the
    user's own names (environments, secret names)."""

    keys: Mapping[str, Table | Check] = MappingProxyType({})
    each: Table | Check | None = None


def _string(value: Any) -> str | None:
    return None if isinstance(value, str) and value else "must be a non-empty string"


def _seconds(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        return f"must be a number of seconds (0 or more), got {value!r}"
    return None


def _number(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        return f"must be a number (0 or more), got {value!r}"
    return None


def _count(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return f"must be a whole number (0 or more), got {value!r}"
    return None


def _boolean(value: Any) -> str | None:
    return None if isinstance(value, bool) else f"must be true or false, got {value!r}"


def _globs(value: Any) -> str | None:
    if isinstance(value, list) and all(isinstance(p, str) for p in value):
        return None
    return 'must be a list of glob strings, such as ["vendor/*"]'


def _size(value: Any) -> str | None:
    try:
        parse_size(value, "")
    except ConfigError:
        return f"must be a size such as 10M or 4096, got {value!r}"
    return None


def _template(value: Any) -> str | None:
    """A destination with `{env}` and `{name}` placeholders (both optional)."""
    if not isinstance(value, str) or not value:
        return 'must be a reference template such as "aws-sm://{env}/openai#{name}"'
    try:
        value.format(env="env", name="name")
    except (KeyError, IndexError, ValueError):
        return f"may use {{env}} and {{name}} only, got {value!r}"
    return None


def _one_of(*choices: str) -> Check:
    def check(value: Any) -> str | None:
        return None if value in choices else f"must be one of {', '.join(choices)}, got {value!r}"

    return check


# The stores `migrate copy --to-provider` can write to (every provider but env://, which no
# command can write); tests/test_config.py holds this to keysentry.providers.PROVIDERS.
WRITABLE_SCHEMES = ("aws-sm", "azure-kv", "dotenv", "vault")

# Every table keysentry reads and what each key holds: the one place a config is checked, when
# it is read (README "Configuration" documents each). Readers may check more (a reference's
# syntax, a template's store), never less. A new table is added here.
TABLES = Table(
    {
        "scan": Table(
            {
                "exclude": _globs,
                "max_file_size": _size,
                "inline_allow": _boolean,
                "ignore_file": _string,
                "max_archive_depth": _count,
                "max_archive_bytes": _size,
                "max_archive_ratio": _count,
                "max_archive_members": _count,
            }
        ),
        "environments": Table(each=Table(each=_string)),
        "load": Table({"ttl_seconds": _seconds, "stale_if_error_seconds": _seconds}),
        "verify": Table(
            {"admin_key": _string, "spend_threshold_usd": _number, "base_url": _string}
        ),
        "migrate": Table(
            {
                "destination": _template,
                "destinations": Table(each=_template),
                "templates": Table(dict.fromkeys(WRITABLE_SCHEMES, _template)),
            }
        ),
        "rotate": Table(
            {
                "grace_seconds": _seconds,
                "name_template": _string,
                "poll_seconds": _seconds,
                "unused_window_seconds": _seconds,
                "max_wait_seconds": _seconds,
            }
        ),
        # The runtime guard's settings, shared and per environment: keysentry.runtime.settings
        # checks each (it knows their kinds and the environment variables that override them).
        "runtime": Table(each=lambda value: None),
        "policies": Table(
            each=Table(
                {
                    "max_key_age_days": _number,
                    "spend_limit": _one_of("required", "recommended", "off"),
                }
            )
        ),
    }
)


def validate(path: Path, table: Mapping[str, Any], prefix: str, skip: frozenset[str]) -> None:
    """Check every table of a config file against `TABLES`; the first problem is a
    ConfigError naming the file, the table and the key. Sections in `skip` (they hold a
    pasted key: reading them raises that error) are left alone."""
    for name, value in table.items():
        if name in skip:
            continue
        spec = TABLES.keys.get(name)
        if spec is None:
            known = ", ".join(f"[{k}]" for k in TABLES.keys)
            raise ConfigError(f"{path}: unknown table [{prefix}{name}] (known: {known})")
        _check(path, value, spec, f"{prefix}{name}", "")


def _check(path: Path, value: Any, spec: Table | Check, table: str, key: str) -> None:
    if not isinstance(spec, Table):
        problem = spec(value)
        if problem is not None:
            raise ConfigError(f"{path}: [{table}] {key} {problem}")
        return
    name = f"{table}.{key}" if key else table
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: [{name}] must be a table")
    for child_key, item in value.items():
        child = spec.keys.get(child_key, spec.each)
        if child is None:
            known = ", ".join(spec.keys)
            raise ConfigError(f"{path}: [{name}] has unknown key {child_key!r} (known: {known})")
        _check(path, item, child, name, str(child_key))


def find_config(start: Path) -> Config:
    """The configuration for a scan of `start` (a directory or file): the nearest
    keysentry.toml or pyproject.toml with [tool.keysentry] from it up to its repository's
    root (from it alone outside a repository), else the working directory's."""
    for directory in search_path(start):
        config = load_config(directory=directory)
        if config.path is not None:
            return config
    return load_config()


def search_path(start: Path) -> list[Path]:
    """Where a scan of `start` looks for its files (precheck.search_dirs: the pre-commit hook's
    shortcut looks in the same places)."""
    return [Path(directory) for directory in search_dirs(str(start))]


def load_config(explicit: Path | None = None, directory: Path | None = None) -> Config:
    """The configuration from `explicit`, else from keysentry.toml or pyproject.toml in
    `directory` (the current one by default), else the defaults."""
    if explicit is not None:
        return _from_file(explicit, required=True)
    base = directory or Path.cwd()
    for candidate in (base / name for name in CONFIG_FILES):
        if candidate.is_file():
            config = _from_file(candidate, required=False)
            if config.path is not None:
                return config
    return Config()


def _from_file(path: Path, required: bool) -> Config:
    if path.name == "pyproject.toml" and not required and not mentions_keysentry(str(path)):
        return Config()  # another tool's file: not parsed (tomllib costs a hook 5-30 ms)
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
    validate(path, table, prefix, frozenset(keyed))
    sections = Sections(table, keyed)
    return Config(path, _scan_config(path, sections.get("scan", {}), prefix + "scan"), sections)


def _scan_config(path: Path, table: Any, name: str) -> ScanConfig:
    """[scan], already checked by `validate`."""
    defaults = ScanConfig()
    size = table.get("max_file_size", defaults.max_file_size)
    return ScanConfig(
        exclude=tuple(table.get("exclude", [])),
        max_file_size=parse_size(size, f"{path}: [{name}] max_file_size"),
        inline_allow=table.get("inline_allow", defaults.inline_allow),
        ignore_file=table.get("ignore_file", defaults.ignore_file),
        max_archive_depth=table.get("max_archive_depth"),
        max_archive_bytes=(
            parse_size(table["max_archive_bytes"], f"{path}: [{name}] max_archive_bytes")
            if "max_archive_bytes" in table
            else None
        ),
        max_archive_ratio=table.get("max_archive_ratio"),
        max_archive_members=table.get("max_archive_members"),
    )

"""`migrate plan`: for each key in the working tree, where it goes and how its source changes.

Paths in a plan are relative to the planned directory (the journal keeps them so), so that
`apply`, `resume` and `rollback` find the same files from any working directory. A code file
whose keys cannot all be rewritten with a proof (see `rewrite`) is planned as a manual edit,
with the reason.

The environment comes from the file's name (`.env.production` → production) or `--env`; the
destination from `[migrate]` in the config (`destination = "aws-sm://{env}/openai#{name}"`,
and `[migrate.destinations]` per environment), with `{env}` and `{name}` filled in; the name
from the `.env` line or the assignment the literal sits in (else OPENAI_API_KEY). Two
different keys for one name and environment are a conflict to resolve, never a guess.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

from keysentry.atomic import read_text_as_is
from keysentry.config import Config
from keysentry.errors import ConfigError
from keysentry.providers.base import parse_ref
from keysentry.scanner.findings import Finding
from keysentry.scanner.pipeline import Suppression, scan_files
from keysentry.scanner.sources.files import FileSource
from keysentry.secret import Secret

DEFAULT_NAME = "OPENAI_API_KEY"
_ENV_FILE = re.compile(r"(?:^|/)\.env(?:\.([A-Za-z0-9_-]+))?$")
# The name a literal is assigned to: `NAME = "`, `NAME=`, `"NAME": "`, `NAME: `,
# `os.environ["NAME"] = "`.
_ASSIGNED = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)[\"']?\]?\s*[:=]\s*[\"'`]?$")
CODE_SUFFIXES = {
    ".py": "python",
    ".js": "js",
    ".mjs": "js",
    ".cjs": "js",
    ".ts": "js",
    ".tsx": "js",
    ".jsx": "js",
}
CONFIG_SUFFIXES = {".yaml", ".yml", ".json", ".toml", ".ini", ".cfg", ".conf", ".properties"}


class Item(NamedTuple):
    """One occurrence of a key to move: a finding, and what happens to it."""

    path: str
    line: int
    env: str
    name: str
    destination: str  # the reference the key is stored at
    secret: Secret
    fingerprint: str
    action: str  # env-line | python | js | config | notebook | manual
    note: str


class Plan(NamedTuple):
    items: list[Item]
    conflicts: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {
            "items": [
                {
                    "path": i.path,
                    "line": i.line,
                    "env": i.env,
                    "name": i.name,
                    "destination": i.destination,
                    "redacted": i.secret.redacted,
                    "fingerprint": i.fingerprint,
                    "action": i.action,
                    "note": i.note,
                }
                for i in self.items
            ],
            "conflicts": self.conflicts,
        }


def destination_template(config: Config, env: str) -> str:
    table = config.raw.get("migrate", {})
    if not isinstance(table, Mapping):
        raise ConfigError(f"{config.path}: [migrate] must be a table")
    per_env = table.get("destinations", {})
    template = (per_env.get(env) if isinstance(per_env, Mapping) else None) or table.get(
        "destination"
    )
    if not isinstance(template, str):
        raise ConfigError(
            f"{config.path or 'keysentry.toml'}: no destination for {env!r}: set [migrate] "
            'destination = "aws-sm://{env}/openai#{name}" (or [migrate.destinations])'
        )
    return template


def make_plan(root: str, config: Config, env: str | None, max_file_size: int) -> Plan:
    """Scan the working tree under `root` and plan every key's move."""
    from keysentry.migrate.rewrite import rewrite

    source = FileSource([root], max_file_size=max_file_size, exclude=config.scan.exclude)
    result = scan_files(source, Suppression(inline_allow=False))
    items: list[Item] = []
    texts: dict[str, str | None] = {}  # each file read once, however many keys it holds
    for finding in result.unsuppressed:
        path = _relative(finding.path, root)
        item_env = _environment(path, env)
        inside = "archive" in finding.provenance  # a member: no file to rewrite
        if path not in texts:
            texts[path] = None if inside else _text(finding.path)
        text = texts[path]
        name = _name(finding, (text or "").splitlines())
        template = destination_template(config, item_env)
        destination = template.format(env=item_env, name=name)
        _check_destination(destination, item_env)
        action, note = (
            _action(finding, path) if text is not None else ("manual", "not UTF-8: move it by hand")
        )
        if inside:
            action, note = "manual", "inside an archive: rebuild the archive without it"
        items.append(
            Item(
                path,
                finding.line,
                item_env,
                name,
                destination,
                finding.secret,
                finding.fingerprint,
                action,
                note,
            )
        )
    for path, text in texts.items():
        file_items = [i for i in items if i.path == path]
        left = rewrite(text, file_items).left if text is not None else {}
        items = [
            i._replace(action="manual", note=f"{i.action}: {left[i.fingerprint]}")
            if i.path == path and i.fingerprint in left
            else i
            for i in items
        ]
    return Plan(items, _conflicts(items))


def _relative(path: str, root: str) -> str:
    return Path(os.path.relpath(path, root)).as_posix()


def _text(path: str) -> str | None:
    try:
        return read_text_as_is(path)
    except UnicodeDecodeError:
        return None


def _check_destination(destination: str, env: str) -> None:
    """A reference the store can be written at: `apply` would refuse the others."""
    ref = parse_ref(destination, f"[migrate] destination for {env}")
    if ref.scheme == "env":
        raise ConfigError(
            f"[migrate] destination for {env}: {destination} is a process "
            "environment variable, which cannot store a key: name a store "
            "(aws-sm://, vault://, azure-kv://, dotenv://)"
        )


def _environment(path: str, default: str | None) -> str:
    match = _ENV_FILE.search(path.replace("\\", "/"))
    if match and match.group(1):
        return match.group(1)
    if default is None:
        raise ConfigError(f"{path}: which environment is this key for? pass --env")
    return default


def _name(finding: Finding, lines: list[str]) -> str:
    """The upper-case name the key is assigned to on its line, else OPENAI_API_KEY."""
    line = lines[finding.line - 1] if finding.line <= len(lines) else ""
    before = line[: finding.column - 1]
    match = _ASSIGNED.search(before)
    if match and match.group(1).isupper():
        return match.group(1)
    return DEFAULT_NAME


def _action(finding: Finding, relative: str) -> tuple[str, str]:
    path = Path(relative)
    if finding.encoding:
        return "manual", f"{'+'.join(finding.encoding)}-encoded: move it by hand"
    if _ENV_FILE.search(relative):
        return "env-line", "the line becomes a comment naming the reference"
    if path.suffix == ".ipynb":
        return "notebook", "code reads the environment; outputs holding the key are cleared"
    if path.suffix in CODE_SUFFIXES:
        kind = CODE_SUFFIXES[path.suffix]
        if kind == "python":
            return kind, 'the string reads os.environ["NAME"] (an f-string where it embeds the key)'
        return kind, "the literal becomes process.env.NAME"
    if path.suffix in CONFIG_SUFFIXES:
        return "config", "the value becomes ${NAME}, for the config loader to expand"
    return "manual", "unknown file type: the key is stored, and the source left for you"


def _conflicts(items: list[Item]) -> list[str]:
    seen: dict[tuple[str, str], str] = {}
    conflicts = []
    for item in items:
        key = (item.env, item.name)
        if key in seen and seen[key] != item.fingerprint:
            conflicts.append(
                f"{item.env}/{item.name}: two different keys (one in {item.path}); "
                "keep one, or give the other a distinct name"
            )
        seen.setdefault(key, item.fingerprint)
    return sorted(set(conflicts))

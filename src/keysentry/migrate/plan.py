"""`migrate plan`: for each key in the working tree, where it goes and how its source changes.

The environment comes from the file's name (`.env.production` → production) or `--env`; the
destination from `[migrate]` in the config (`destination = "aws-sm://{env}/openai#{name}"`,
and `[migrate.destinations]` per environment), with `{env}` and `{name}` filled in; the name
from the `.env` line or the assignment the literal sits in (else OPENAI_API_KEY). Two
different keys for one name and environment are a conflict to resolve, never a guess.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

from keysentry.config import Config
from keysentry.errors import ConfigError
from keysentry.providers.base import parse_ref
from keysentry.scanner.findings import Finding
from keysentry.scanner.pipeline import Suppression, scan_files
from keysentry.scanner.sources.files import FileSource
from keysentry.secret import Secret

DEFAULT_NAME = "OPENAI_API_KEY"
_ENV_FILE = re.compile(r"(?:^|/)\.env(?:\.([A-Za-z0-9_-]+))?$")
# The name a literal is assigned to: `NAME = "`, `NAME=`, `"NAME": "`, `NAME: `.
_ASSIGNED = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)[\"']?\s*[:=]\s*[\"']?$")
CODE_SUFFIXES = {".py": "python", ".js": "js", ".mjs": "js", ".cjs": "js", ".ts": "js",
                 ".tsx": "js", ".jsx": "js"}  # fmt: skip
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
                {"path": i.path, "line": i.line, "env": i.env, "name": i.name,
                 "destination": i.destination, "redacted": i.secret.redacted,
                 "fingerprint": i.fingerprint, "action": i.action, "note": i.note}
                for i in self.items
            ],
            "conflicts": self.conflicts,
        }  # fmt: skip


def destination_template(config: Config, env: str) -> str:
    table = config.raw.get("migrate", {})
    if not isinstance(table, Mapping):
        raise ConfigError(f"{config.path}: [migrate] must be a table")
    per_env = table.get("destinations", {})
    template = (per_env.get(env) if isinstance(per_env, Mapping) else None) or \
        table.get("destination")  # fmt: skip
    if not isinstance(template, str):
        raise ConfigError(
            f"{config.path or 'keysentry.toml'}: no destination for {env!r}: set [migrate] "
            'destination = "aws-sm://{env}/openai#{name}" (or [migrate.destinations])'
        )
    return template


def make_plan(root: str, config: Config, env: str | None, max_file_size: int) -> Plan:
    """Scan the working tree under `root` and plan every key's move."""
    source = FileSource([root], max_file_size=max_file_size, exclude=config.scan.exclude)
    result = scan_files(source, Suppression(inline_allow=False))
    items: list[Item] = []
    lines: dict[str, list[str]] = {}  # each file read once, however many keys it holds
    for finding in result.unsuppressed:
        item_env = _environment(finding.path, env)
        if finding.path not in lines:
            text = Path(finding.path).read_text(encoding="utf-8", errors="replace")
            lines[finding.path] = text.splitlines()
        name = _name(finding, lines[finding.path])
        template = destination_template(config, item_env)
        destination = template.format(env=item_env, name=name)
        parse_ref(destination, f"[migrate] destination for {item_env}")
        action, note = _action(finding)
        items.append(Item(finding.path, finding.line, item_env, name, destination,
                          finding.secret, finding.fingerprint, action, note))  # fmt: skip
    return Plan(items, _conflicts(items))


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


def _action(finding: Finding) -> tuple[str, str]:
    path = Path(finding.path)
    if finding.encoding:
        return "manual", f"{'+'.join(finding.encoding)}-encoded: move it by hand"
    if _ENV_FILE.search(finding.path.replace("\\", "/")):
        return "env-line", "the line becomes a comment naming the reference"
    if path.suffix == ".ipynb":
        return "notebook", "code reads the environment; outputs holding the key are cleared"
    if path.suffix in CODE_SUFFIXES:
        kind = CODE_SUFFIXES[path.suffix]
        lookup = "os.environ[...]" if kind == "python" else "process.env..."
        return kind, f"the literal becomes {lookup}"
    if path.suffix in CONFIG_SUFFIXES:
        return "config", "the value becomes ${NAME}, for the config loader to expand"
    return "manual", "unknown file type: the key is stored, and the source left for you"


def _conflicts(items: list[Item]) -> list[str]:
    seen: dict[tuple[str, str], str] = {}
    conflicts = []
    for item in items:
        key = (item.env, item.name)
        if key in seen and seen[key] != item.fingerprint:
            conflicts.append(f"{item.env}/{item.name}: two different keys (one in {item.path}); "
                             "keep one, or give the other a distinct name")  # fmt: skip
        seen.setdefault(key, item.fingerprint)
    return sorted(set(conflicts))

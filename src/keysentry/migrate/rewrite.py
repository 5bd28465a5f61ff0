"""How a source changes when its keys move out, and how to undo it without keeping a key.

`rewrite` returns the new text and a template of the old one in which each key is replaced
by a marker naming its fingerprint: rollback fills the markers from the store. Neither holds
a key. Line endings and encoding are kept; files are replaced atomically by the caller.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any, NamedTuple

from keysentry.migrate.plan import Item

MARKER = "\u27e6keysentry:{}\u27e7"  # ⟦keysentry:<fingerprint>⟧, never in real sources
_MARKER = re.compile("\u27e6keysentry:([0-9a-f]{32})\u27e7")


class Rewrite(NamedTuple):
    text: str
    template: str  # the old text, keys replaced by markers


def rewrite(text: str, items: Iterable[Item]) -> Rewrite:
    items = list(items)
    template = text
    for item in items:
        template = template.replace(item.secret.reveal(), MARKER.format(item.fingerprint))
    new = text
    for item in items:
        new = _apply(new, item)
    return Rewrite(new, template)


def restore(template: str, keys: dict[str, str]) -> str:
    """The original text: each marker replaced by the key with that fingerprint."""
    return _MARKER.sub(lambda m: keys[m.group(1)], template)


def markers(template: str) -> set[str]:
    return set(_MARKER.findall(template))


def _apply(text: str, item: Item) -> str:
    key = item.secret.reveal()
    if item.action == "env-line":
        pattern = re.compile(rf"^[^\r\n]*{re.escape(key)}[^\r\n]*(?=\r?\n|\Z)", re.MULTILINE)
        note = f"# {item.name}: moved to {item.destination} by keysentry migrate"
        return pattern.sub(lambda _: note, text)
    if item.action == "python":
        return _with_import_os(_replace_literal(text, key, f'os.environ["{item.name}"]'))
    if item.action == "js":
        return _replace_literal(text, key, f"process.env.{item.name}")
    if item.action == "config":
        return text.replace(key, "${" + item.name + "}")
    if item.action == "notebook":
        return _notebook(text, item)
    return text  # manual: left for the user


def _replace_literal(text: str, key: str, lookup: str) -> str:
    """Replace the quoted literal that is exactly the key; a key inside a longer string is
    replaced by the lookup concatenated in."""
    literal = re.compile(rf"""(["'`]){re.escape(key)}\1""")
    text = literal.sub(lambda _: lookup, text)
    return text.replace(key, "{" + lookup + "}") if key in text else text


def _with_import_os(text: str) -> str:
    if re.search(r"^\s*import os\b|^\s*from os import", text, re.MULTILINE):
        return text
    newline = "\r\n" if "\r\n" in text else "\n"
    lines = text.split(newline)
    at = 0
    # After a module docstring, `from __future__` imports and a shebang or coding line.
    while at < len(lines) and (lines[at].startswith(("#!", "# -*-", "from __future__"))
                               or lines[at].strip() == ""):  # fmt: skip
        at += 1
    if at < len(lines) and lines[at].lstrip().startswith(('"""', "'''")):
        quote = lines[at].lstrip()[:3]
        if lines[at].count(quote) < 2:
            at += 1
            while at < len(lines) and quote not in lines[at]:
                at += 1
        at += 1
        while at < len(lines) and lines[at].startswith("from __future__"):
            at += 1
    lines.insert(at, "import os")
    return newline.join(lines)


def _notebook(text: str, item: Item) -> str:
    notebook: dict[str, Any] = json.loads(text)
    key = item.secret.reveal()
    for cell in notebook.get("cells", []):
        source = "".join(cell.get("source", []))
        if key in source:
            source = _replace_literal(source, key, f'os.environ["{item.name}"]')
            if cell.get("cell_type") == "code" and "import os" not in source:
                source = "import os\n" + source
            cell["source"] = source.splitlines(keepends=True)
        if key in json.dumps(cell.get("outputs", [])):
            cell["outputs"] = []
            cell["execution_count"] = None
    return json.dumps(notebook, indent=1, ensure_ascii=False) + "\n"

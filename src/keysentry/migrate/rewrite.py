"""How a source changes when its keys move out, and how to undo it without keeping a key.

`rewrite` returns the new text, a template of the old one in which each key is replaced by a
marker naming its fingerprint (rollback fills the markers from the store), and the keys it
could not move with a proof (`left`: fingerprint -> why), which the plan shows as manual
edits. Neither text nor template holds a moved key. A file is rewritten whole or not at all:
if one of its keys cannot be moved, none is, and every one of them is left for a manual edit.
Line endings and encoding are kept; files are replaced atomically by the caller.

Per kind of file: Python (`python_source`, proven with tokenize and ast), notebooks
(`notebook`), JavaScript/TypeScript (`javascript`, whole-literal keys only), `.env` files (the
binding, as python-dotenv parses it, becomes a comment naming the reference), config files
(the value becomes `${NAME}`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, NamedTuple

from keysentry.migrate.javascript import rewrite_js
from keysentry.migrate.notebook import rewrite_notebook
from keysentry.migrate.python_source import Move, Unrewritable, rewrite_python

if TYPE_CHECKING:
    from keysentry.migrate.plan import Item

MARKER = "\u27e6keysentry:{}\u27e7"  # ⟦keysentry:<fingerprint>⟧, never in real sources
_MARKER = re.compile("\u27e6keysentry:([0-9a-f]{32})\u27e7")


class Rewrite(NamedTuple):
    text: str
    template: str  # the old text, keys replaced by markers
    left: dict[str, str]  # fingerprint -> why its key stays for a manual edit


def rewrite(text: str, items: Iterable[Item]) -> Rewrite:
    items = list(items)
    template = text
    for item in items:
        template = template.replace(item.secret.reveal(), MARKER.format(item.fingerprint))
    movable = [i for i in items if i.action != "manual"]
    if not movable:
        return Rewrite(text, template, {})
    action = movable[0].action
    moves = list({i.fingerprint: _move(i) for i in movable}.values())
    try:
        new = _REWRITERS[action](text, moves)
    except Unrewritable as exc:
        return Rewrite(text, template, {i.fingerprint: str(exc) for i in movable})
    return Rewrite(new, template, {})


def restore(template: str, keys: dict[str, str]) -> str:
    """The original text: each marker replaced by the key with that fingerprint."""
    return _MARKER.sub(lambda m: keys[m.group(1)], template)


def markers(template: str) -> set[str]:
    return set(_MARKER.findall(template))


def _move(item: Item) -> Move:
    return Move(item.secret.reveal(), item.name, item.destination)


def _env_lines(text: str, moves: Sequence[Move]) -> str:
    """Each binding holding a key (however many lines python-dotenv reads it from) becomes a
    comment naming the key's reference; every other byte stays."""
    from keysentry.providers.dotenv import bindings

    out = []
    for original, _name in bindings(text):
        move = next((m for m in moves if m.key in original), None)
        if move is None:
            out.append(original)
            continue
        lead = re.match(r"\s*", original).group()  # type: ignore[union-attr]
        end = re.search(r"(\r\n|\n|\r)?\Z", original).group()  # type: ignore[union-attr]
        where = move.destination.replace("\r", " ").replace("\n", " ")
        out.append(f"{lead}# {move.name}: moved to {where} by keysentry migrate{end}")
    return "".join(out)


def _config(text: str, moves: Sequence[Move]) -> str:
    for move in moves:
        text = text.replace(move.key, "${" + move.name + "}")
    return text


_REWRITERS: dict[str, Callable[[str, Sequence[Move]], str]] = {
    "python": rewrite_python,
    "notebook": rewrite_notebook,
    "js": rewrite_js,
    "env-line": _env_lines,
    "config": _config,
}

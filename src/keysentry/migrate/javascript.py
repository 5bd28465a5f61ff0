"""JavaScript and TypeScript sources: only a rewrite that is valid without a parser.

A quoted literal that is exactly the key (`"<key>"`, `'<key>'`, `` `<key>` ``), standing where
an expression stands (after `=`, `(`, `,`, `[`, `:`, `?`, `+`, `return`; before `,`, `;`, `)`,
`]`, `}`, `.`, `+` or a line end), becomes `process.env.NAME`: the quotes removed held only
the key's letters, so whether the literal was code, or text inside a comment or another
string, the file parses as before. A key anywhere else (inside a longer string, a template
literal, a comment) is left for a manual edit, and the plan says so: proving a template
literal's `${process.env.NAME}` would need a JavaScript parser.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from keysentry.migrate.python_source import Move, Unrewritable

_BEFORE = re.compile(r"(?:[=(,\[:?+]|\breturn)\s*\Z")
_AFTER = re.compile(r"\s*(?:[,;)\]}.+]|\n|\r|\Z)")


def rewrite_js(text: str, moves: Sequence[Move]) -> str:
    for move in moves:
        literal = re.compile(r"""(["'`])""" + re.escape(move.key) + r"\1")
        found = [m for m in literal.finditer(text) if _stands_alone(text, m.start(), m.end())]
        if len(found) != text.count(move.key):
            raise Unrewritable(
                f"the key sits inside a longer string, a template literal or a comment: edit "
                f"by hand (in a template literal: ${{process.env.{move.name}}})"
            )
        pieces, at = [], 0
        for match in found:
            pieces += [text[at : match.start()], f"process.env.{move.name}"]
            at = match.end()
        text = "".join([*pieces, text[at:]])
    return text


def _stands_alone(text: str, start: int, end: int) -> bool:
    return bool(_BEFORE.search(text, max(0, start - 200), start)) and bool(_AFTER.match(text, end))

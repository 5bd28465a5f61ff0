"""Jupyter notebooks: code cells rewritten as Python files are, outputs holding a key cleared.

The notebook stays the nbformat document it was: the same keys in the same order, each cell's
`source` kept a list of lines or a string as it was, written as Jupyter writes (one-space
indent, UTF-8, a final newline). In a code cell, IPython's line magics and shell lines (`%...`,
`!...`) are set aside while the Python around them is rewritten and proven; `%env NAME=<key>`
becomes a comment, as `os.environ["NAME"] = "<key>"` does, since the environment holds the key
from now on. A key in a cell magic (`%%bash`), a shell line or the notebook's metadata is left
for a manual edit. Markdown and raw cells are text: the key's text becomes `<NAME>`.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Sequence
from typing import Any

from keysentry.migrate.python_source import Move, Unrewritable, rewrite_python

_MAGIC = re.compile(r"^([ \t]*)[%!]")
_ENV_MAGIC = re.compile(r"^([ \t]*)%env\s+([A-Za-z_][A-Za-z0-9_]*)\s*[= ]\s*(\S+)\s*$")


def rewrite_notebook(text: str, moves: Sequence[Move]) -> str:
    try:
        notebook: Any = json.loads(text)
    except ValueError:
        raise Unrewritable("not valid JSON: edit by hand") from None
    if not isinstance(notebook, dict) or not isinstance(notebook.get("cells"), list):
        raise Unrewritable("not a notebook (no cells): edit by hand")
    for cell in notebook["cells"]:
        if not isinstance(cell, dict):
            raise Unrewritable("a cell that is not an object: edit by hand")
        _rewrite_cell(cell, moves)
    new = json.dumps(notebook, indent=1, ensure_ascii=False) + "\n"
    if any(m.key in new for m in moves):
        raise Unrewritable(
            "the key is also in the notebook's metadata or attachments: edit by hand"
        )
    return new


def _rewrite_cell(cell: dict[str, Any], moves: Sequence[Move]) -> None:
    source = cell.get("source", "")
    if isinstance(source, list) and all(isinstance(line, str) for line in source):
        joined = "".join(source)
    elif isinstance(source, str):
        joined = source
    else:
        raise Unrewritable("a cell source that is neither text nor lines: edit by hand")
    if any(m.key in joined for m in moves):
        if cell.get("cell_type") == "code":
            joined = _code(joined, moves)
        else:
            for move in moves:
                joined = joined.replace(move.key, f"<{move.name}>")
        cell["source"] = joined.splitlines(keepends=True) if isinstance(source, list) else joined
    if "outputs" in cell and any(m.key in json.dumps(cell["outputs"]) for m in moves):
        cell["outputs"] = []
        cell["execution_count"] = None


def _code(source: str, moves: Sequence[Move]) -> str:
    """The cell's Python rewritten, its magic and shell lines set aside and put back."""
    if source.lstrip().startswith("%%"):
        raise Unrewritable("a cell magic holds the key: edit by hand")
    nonce = secrets.token_hex(8)
    aside: dict[str, str] = {}
    lines = source.splitlines(keepends=True)
    for index, line in enumerate(lines):
        body = line.rstrip("\r\n")
        magic = _MAGIC.match(body)
        if not magic:
            continue
        env = _ENV_MAGIC.match(body)
        moved = next((m for m in moves if env and env.group(3) == m.key), None)
        if env and moved and env.group(2) == moved.name:
            body = (
                f"{env.group(1)}# {moved.name} comes from the environment (stored at "
                f"{_one_line(moved.destination)} by keysentry migrate)"
            )
        elif any(m.key in body for m in moves):
            raise Unrewritable("an IPython magic or shell line holds the key: edit by hand")
        placeholder = f"{magic.group(1)}pass  # keysentry-{nonce}-{index}"
        aside[placeholder] = body
        lines[index] = placeholder + line[len(line.rstrip("\r\n")) :]
    python = "".join(lines)
    if any(m.key in python for m in moves):
        python = rewrite_python(python, moves)
    for placeholder, body in aside.items():
        python = python.replace(placeholder, body)
    return python


def _one_line(text: str) -> str:
    return text.replace("\r", " ").replace("\n", " ")

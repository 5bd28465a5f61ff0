"""Python sources: every string that holds a key becomes a read of the environment, proven.

Tokens come from the standard `tokenize` module (exact spans of every string, f-string and
comment; implicit concatenation seen as one expression) and the proof from `ast`: for each
rewritten string expression, the parts of the new expression, with `os.environ["NAME"]` read
as the key, must equal the parts of the old one; the whole file must still parse. A file that
cannot be rewritten with such a proof raises `Unrewritable` and is left, whole, for a manual
edit. (libcst would do the same with a heavier import and a native wheel; see
docs/architecture.md.)

What a key becomes:
- a string that is exactly the key: `os.environ["NAME"]` (bytes: `os.environ["NAME"].encode()`);
- a string that embeds it: an f-string `f"Bearer {os.environ['NAME']}"`, or, where an f-string
  cannot say it (bytes, `u""`, escapes that braces would break), a parenthesised concatenation;
- `os.environ["NAME"] = "<key>"` (or `.setdefault`): a comment, since the environment holds it;
- a comment or a docstring: the key's text becomes `<NAME>`.
`import os` is added after the module docstring and `from __future__` imports when needed.
"""

from __future__ import annotations

import ast
import bisect
import io
import re
import tokenize
import warnings
from collections.abc import Iterator, Sequence
from typing import NamedTuple

_FSTART = {getattr(tokenize, n) for n in ("FSTRING_START", "TSTRING_START") if hasattr(tokenize, n)}
_FEND = {getattr(tokenize, n) for n in ("FSTRING_END", "TSTRING_END") if hasattr(tokenize, n)}
_QUOTES = ('"""', "'''", '"', "'")
_STATEMENT_EDGE = {tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER}


class Move(NamedTuple):
    """A key leaving a file, and the variable that holds it from now on."""

    key: str
    name: str
    destination: str


class Unrewritable(Exception):
    """The source cannot be rewritten with a proof; the message says why (never a key)."""


class _Edit(NamedTuple):
    start: int
    end: int
    text: str
    reads_env: bool  # the new text reads os.environ: the file needs `import os`


class _Group(NamedTuple):
    """Adjacent string tokens (implicit concatenation): one expression."""

    units: list[tuple[int, int]]  # each string's span in the text
    statement: bool  # the whole statement (a docstring or a bare string): text, not code


def rewrite_python(text: str, moves: Sequence[Move]) -> str:
    """`text` with every key of `moves` moved out, or Unrewritable."""
    if "\r" in text.replace("\r\n", ""):
        raise Unrewritable("bare CR line endings: edit by hand")
    tree = _parse(text, "not valid Python as it stands")
    lines = _LineStarts(text)
    edits = sorted(_environ_assignments(tree, moves, lines, text))
    starts = [e.start for e in edits]
    for group in _string_groups(text):
        start = group.units[0][0]
        before = bisect.bisect_right(starts, start) - 1  # the statement edit it may sit in
        if before >= 0 and start < edits[before].end:
            continue
        present = [m for m in moves if any(m.key in text[a:b] for a, b in group.units)]
        if present:
            edits.extend(_rewrite_group(text, group, present))
    edits.extend(_comments(text, moves))
    new = _apply(text, edits)
    if any(e.reads_env for e in edits):
        first = min(e.start for e in edits if e.reads_env)
        new = _with_import_os(new, _new_line_of(first, edits, text))
    _parse(new, "the rewritten file would not compile")
    if any(m.key in new for m in moves):
        raise Unrewritable(
            "a key sits where no rewrite is proven (inside an f-string expression?): edit by hand"
        )
    return new


def _parse(text: str, failure: str) -> ast.Module:
    try:
        module = _quiet_parse(text, "exec")
    except (SyntaxError, ValueError) as exc:  # ValueError: a NUL byte
        line = getattr(exc, "lineno", None)
        raise Unrewritable(failure + (f" (line {line})" if line else "")) from None
    assert isinstance(module, ast.Module)
    return module


def _quiet_parse(text: str, mode: str) -> ast.AST:
    """ast.parse without the warnings a user's code may raise (`"\\d"`: an invalid escape),
    which would otherwise be printed by a command that only reads the file."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SyntaxWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        return ast.parse(text, mode=mode)


class _LineStarts:
    """Character offsets of line starts, for tokenize's (row, col) and ast's (line, byte)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.starts = [0] + [m.end() for m in re.finditer("\n", text)]

    def offset(self, row: int, col: int) -> int:
        return self.starts[row - 1] + col

    def from_ast(self, row: int, byte_col: int) -> int:
        start = self.starts[row - 1]
        line = self.text[start : self.starts[row] if row < len(self.starts) else len(self.text)]
        return start + len(line.encode("utf-8")[:byte_col].decode("utf-8", errors="replace"))


def _tokens(text: str) -> list[tokenize.TokenInfo]:
    try:
        return list(tokenize.generate_tokens(io.StringIO(text).readline))
    except (tokenize.TokenError, SyntaxError) as exc:
        raise Unrewritable(f"not tokenizable: {type(exc).__name__}") from None


def _string_groups(text: str) -> Iterator[_Group]:
    tokens = _tokens(text)
    lines = _LineStarts(text)
    units: list[tuple[int, int]] = []
    before: tokenize.TokenInfo | None = None  # the significant token before the group
    last: tokenize.TokenInfo | None = None
    depth, start = 0, 0
    for token in tokens:
        if token.type in _FSTART:
            if depth == 0:
                start = lines.offset(*token.start)
            depth += 1
            continue
        if depth:
            if token.type in _FEND:
                depth -= 1
                if depth == 0:
                    if not units:
                        before = last
                    units.append((start, lines.offset(*token.end)))
            continue
        if token.type == tokenize.STRING:
            if not units:
                before = last
            units.append((lines.offset(*token.start), lines.offset(*token.end)))
            continue
        if token.type in (tokenize.NL, tokenize.COMMENT):
            continue
        if units:
            yield _Group(units, _edge(before) and _edge(token))
            units = []
        last = token


def _edge(token: tokenize.TokenInfo | None) -> bool:
    return token is None or token.type in _STATEMENT_EDGE or token.string == ";"


def _rewrite_group(text: str, group: _Group, moves: list[Move]) -> list[_Edit]:
    old = text[group.units[0][0] : group.units[-1][1]]
    expected = _parts_of(old, moves)
    if expected is None:
        raise Unrewritable("a string holding a key that does not parse alone: edit by hand")
    if group.statement:  # documentation: the key's text becomes <NAME>
        edits = [_Edit(a, b, _as_text(text[a:b], moves), False) for a, b in group.units]
        want = [(k, _substitute(v, moves)) for k, v in expected]
        if _parts_of(_apply(old, _shifted(edits, -group.units[0][0])), moves) == want:
            return edits
        raise Unrewritable("a documentation string holding a key: edit by hand")
    for strategy in (_whole, _fstring, _concatenation):
        candidate = strategy(text, group, moves)
        if candidate is None:
            continue
        wrapped = _apply(old, _shifted(candidate, -group.units[0][0]))
        if _parts_of(wrapped, moves) == expected:
            return candidate
    raise Unrewritable("a string holding a key that no rewrite reproduces: edit by hand")


def _whole(text: str, group: _Group, moves: list[Move]) -> list[_Edit] | None:
    if len(group.units) != 1 or len(moves) != 1:
        return None
    (a, b), move = group.units[0], moves[0]
    try:
        value = ast.literal_eval(_quiet_parse(text[a:b], "eval"))
    except (ValueError, SyntaxError):
        return None
    lookup = f'os.environ["{move.name}"]'
    if value == move.key:
        return [_Edit(a, b, lookup, True)]
    if value == move.key.encode():
        return [_Edit(a, b, lookup + ".encode()", True)]
    return None


def _fstring(text: str, group: _Group, moves: list[Move]) -> list[_Edit] | None:
    edits = []
    for a, b in group.units:
        if not any(m.key in text[a:b] for m in moves):
            continue
        prefix, quote, body = _split(text[a:b])
        if set(prefix.lower()) & {"b", "u", "t"}:
            return None
        if "f" not in prefix.lower():
            body, prefix = body.replace("{", "{{").replace("}", "}}"), prefix + "f"
        inner = "'" if quote[0] == '"' else '"'
        for move in moves:
            body = body.replace(move.key, "{os.environ[" + inner + move.name + inner + "]}")
        edits.append(_Edit(a, b, prefix + quote + body + quote, True))
    return edits


def _concatenation(text: str, group: _Group, moves: list[Move]) -> list[_Edit] | None:
    edits = []
    for a, b in group.units:
        prefix, quote, body = _split(text[a:b])
        if "f" in prefix.lower() or "t" in prefix.lower():
            if any(m.key in body for m in moves):
                return None
            continue
        pieces = _pieces(body, moves)
        if len(pieces) == 1:
            continue
        encode = ".encode()" if "b" in prefix.lower() else ""
        parts = [
            f'os.environ["{piece[1]}"]{encode}'
            if isinstance(piece, tuple)
            else prefix + quote + piece + quote
            for piece in pieces
            if piece
        ]
        edits.append(_Edit(a, b, " + ".join(parts), True))
    if not edits:
        return None
    first, last = group.units[0][0], group.units[-1][1]
    return [_Edit(first, first, "(", False), *edits, _Edit(last, last, ")", False)]


def _pieces(body: str, moves: list[Move]) -> list[str | tuple[str, str]]:
    """The body split around each key: text, (key, name), text, ..."""
    pattern = re.compile("|".join(re.escape(m.key) for m in moves))
    names = {m.key: m.name for m in moves}
    pieces: list[str | tuple[str, str]] = []
    at = 0
    for match in pattern.finditer(body):
        pieces += [body[at : match.start()], (match.group(), names[match.group()])]
        at = match.end()
    return [*pieces, body[at:]]


def _split(token: str) -> tuple[str, str, str]:
    prefix = re.match(r"[A-Za-z]*", token).group()  # type: ignore[union-attr]
    rest = token[len(prefix) :]
    quote = next(q for q in _QUOTES if rest.startswith(q))
    return prefix, quote, rest[len(quote) : -len(quote)]


def _as_text(token: str, moves: Sequence[Move]) -> str:
    for move in moves:
        token = token.replace(move.key, f"<{move.name}>")
    return token


def _substitute(value: object, moves: Sequence[Move]) -> object:
    for move in moves:
        if isinstance(value, str):
            value = value.replace(move.key, f"<{move.name}>")
        elif isinstance(value, bytes):
            value = value.replace(move.key.encode(), f"<{move.name}>".encode())
    return value


def _parts_of(expression: str, moves: Sequence[Move]) -> list[tuple[str, object]] | None:
    """The string expression as constant and formatted parts, adjacent constants joined,
    each `os.environ["NAME"]` read as NAME's key: equal parts, equal value."""
    try:
        tree = _quiet_parse("(" + expression + "\n)", "eval")
    except (SyntaxError, ValueError):
        return None
    assert isinstance(tree, ast.Expression)
    keys = {m.name: m.key for m in moves}
    parts: list[tuple[str, object]] = []
    for kind, value in _parts(tree.body, keys):
        if kind == "c" and parts and parts[-1][0] == "c" and type(parts[-1][1]) is type(value):
            parts[-1] = ("c", parts[-1][1] + value)  # type: ignore[operator]
        else:
            parts.append((kind, value))
    return parts


def _parts(node: ast.expr, keys: dict[str, str]) -> Iterator[tuple[str, object]]:
    if isinstance(node, ast.Constant) and isinstance(node.value, (str, bytes)):
        yield "c", node.value
    elif isinstance(node, ast.JoinedStr):
        for value in node.values:
            if isinstance(value, ast.Constant):
                yield "c", value.value
            elif (
                isinstance(value, ast.FormattedValue)
                and value.conversion == -1
                and value.format_spec is None
                and _lookup(value.value, keys)
            ):
                yield "c", _lookup(value.value, keys)
            else:
                yield "e", ast.dump(value)
    elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        yield from _parts(node.left, keys)
        yield from _parts(node.right, keys)
    elif _lookup(node, keys):
        yield "c", _lookup(node, keys)
    elif (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "encode"
        and not node.args
        and not node.keywords
        and _lookup(node.func.value, keys)
    ):
        yield "c", _lookup(node.func.value, keys).encode()
    else:
        yield "e", ast.dump(node)


def _lookup(node: ast.expr, keys: dict[str, str]) -> str:
    """The key `os.environ["NAME"]` reads, if `node` is that; else ''."""
    if (
        isinstance(node, ast.Subscript)
        and _is_environ(node.value)
        and isinstance(node.slice, ast.Constant)
        and node.slice.value in keys
    ):
        return keys[node.slice.value]
    return ""


def _is_environ(node: ast.expr) -> bool:
    return (
        isinstance(node, ast.Attribute)
        and node.attr == "environ"
        and isinstance(node.value, ast.Name)
        and node.value.id == "os"
    )


def _environ_assignments(
    tree: ast.Module, moves: Sequence[Move], lines: _LineStarts, text: str
) -> Iterator[_Edit]:
    """`os.environ["NAME"] = "<key>"` and `os.environ.setdefault("NAME", "<key>")`: once the
    environment holds the key they do nothing, so they become a comment saying where it is."""
    keys = {m.key: m for m in moves}
    top = set(map(id, tree.body))
    for node in ast.walk(tree):
        target = _environ_target(node, keys)
        if target is None:
            continue
        assert isinstance(node, ast.stmt) and node.end_lineno is not None
        move = keys[target[1]]
        if target[0] != move.name:
            continue  # another variable: the string rewrite makes it read NAME
        start = lines.from_ast(node.lineno, node.col_offset)
        end = lines.from_ast(node.end_lineno, node.end_col_offset or 0)
        line_end = text.find("\n", end)
        rest = text[end : len(text) if line_end < 0 else line_end].strip()
        alone = text[lines.starts[node.lineno - 1] : start].strip() == ""
        where = move.destination.replace("\r", " ").replace("\n", " ")
        note = f"# {move.name} comes from the environment (stored at {where} by keysentry migrate)"
        if rest and not rest.startswith("#"):
            yield _Edit(start, end, "pass", False)
        elif alone and id(node) in top:
            yield _Edit(start, end, note, False)
        else:
            yield _Edit(start, end, "pass  " + note, False)


def _environ_target(node: ast.AST, keys: dict[str, Move]) -> tuple[str, str] | None:
    """(NAME, key) when `node` puts a moved key into os.environ[NAME]."""
    if isinstance(node, ast.Assign) and len(node.targets) == 1:
        target, value = node.targets[0], node.value
        if (
            isinstance(target, ast.Subscript)
            and _is_environ(target.value)
            and isinstance(target.slice, ast.Constant)
            and isinstance(target.slice.value, str)
            and isinstance(value, ast.Constant)
            and value.value in keys
        ):
            return target.slice.value, value.value
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
        call = node.value
        if (
            isinstance(call.func, ast.Attribute)
            and call.func.attr == "setdefault"
            and _is_environ(call.func.value)
            and len(call.args) == 2
            and not call.keywords
            and all(isinstance(a, ast.Constant) for a in call.args)
        ):
            name, value = (a.value for a in call.args)  # type: ignore[attr-defined]
            if isinstance(name, str) and value in keys:
                return name, value
    return None


def _comments(text: str, moves: Sequence[Move]) -> Iterator[_Edit]:
    lines = _LineStarts(text)
    for token in _tokens(text):
        if token.type == tokenize.COMMENT and any(m.key in token.string for m in moves):
            start = lines.offset(*token.start)
            yield _Edit(start, lines.offset(*token.end), _as_text(token.string, moves), False)


def _shifted(edits: list[_Edit], by: int) -> list[_Edit]:
    return [e._replace(start=e.start + by, end=e.end + by) for e in edits]


def _apply(text: str, edits: Sequence[_Edit]) -> str:
    out, at = [], 0
    for edit in sorted(edits, key=lambda e: (e.start, e.end)):
        if edit.start < at:
            raise Unrewritable("overlapping rewrites: edit by hand")
        out += [text[at : edit.start], edit.text]
        at = edit.end
    return "".join([*out, text[at:]])


def _new_line_of(offset: int, edits: Sequence[_Edit], text: str) -> int:
    """The line, in the rewritten text, of what was at `offset` in the old one."""
    before = [e for e in edits if e.end <= offset]
    newlines = text.count("\n", 0, offset)
    newlines += sum(e.text.count("\n") - text.count("\n", e.start, e.end) for e in before)
    return newlines + 1


def _with_import_os(text: str, first_use: int) -> str:
    """`import os` after the docstring and `from __future__` imports, unless a module-level
    `import os` already runs before line `first_use`."""
    body = _parse(text, "the rewritten file would not compile").body
    for statement in body:
        if statement.lineno >= first_use:
            break
        if isinstance(statement, ast.Import) and any(
            (a.name == "os" or a.name.startswith("os.")) and a.asname is None
            for a in statement.names
        ):
            return text
    after = 0
    index = 0
    if (
        body
        and isinstance(body[0], ast.Expr)
        and isinstance(body[0].value, ast.Constant)
        and isinstance(body[0].value.value, str)
    ):
        after, index = body[0].end_lineno or 0, 1
    while index < len(body):
        statement = body[index]
        if not (isinstance(statement, ast.ImportFrom) and statement.module == "__future__"):
            break
        after, index = statement.end_lineno or 0, index + 1
    lines = re.split("(?<=\n)", text)
    if after == 0:  # keep a shebang, coding line, licence header on top
        while after < len(lines) and lines[after].lstrip().startswith("#"):
            after += 1
    newline = "\r\n" if "\r\n" in text else "\n"
    head = "".join(lines[:after])
    if head and not head.endswith("\n"):
        head += newline
    return head + "import os" + newline + "".join(lines[after:])

"""The guards every message that leaves the process passes through.

`scrub` is the one redaction choke point: CLI errors and warnings, exceptions raised by the
public API, report fields that carry remote text (API error bodies) and health payloads go
through it, so a key pasted where it does not belong, or quoted back by a server, is never
shown in full. `escape_control` makes a line built from untrusted names (file names, refs,
commit authors) unable to forge other lines or drive the terminal.
"""

from __future__ import annotations

import re

# C0 and C1 controls, DEL, and the Unicode line/paragraph separators and bidi overrides that
# would let a name start a new line or reorder what a person reads.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def scrub(text: str) -> str:
    """`text` with every OpenAI key in it (plain or encoded) replaced by its redacted form."""
    from keysentry.scanner.detect import detect  # here: importing safety stays free
    from keysentry.secret import redact

    data = text.encode("utf-8", "surrogateescape")
    for match in reversed(detect(data)):
        shown = redact(match.key.decode("ascii"), match.classified.prefix).encode()
        data = data[: match.start] + shown + data[match.end :]
    return data.decode("utf-8", "surrogateescape")


def escape_control(text: str) -> str:
    """`text` with every control character written as a visible escape (`\\n`, `\\x1b`), so
    that it stays on one line and sends nothing to the terminal."""
    return _CONTROL.sub(_escaped, text)


def _escaped(match: re.Match[str]) -> str:
    char = match.group()
    return {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(char) or f"\\u{ord(char):04x}"

"""The guards every message that leaves the process passes through.

`scrub` is the one redaction choke point: CLI errors and warnings, exceptions raised by the
public API (every KeysentryError scrubs its message when it is raised), report fields that
carry remote text (API error bodies) and health payloads go through it, so a key pasted where
it does not belong, or quoted back by a server, is never shown in full. `escape_control` makes
a line built from untrusted names (file names, refs, commit authors) unable to forge other
lines or drive the terminal. `say` is both, for a line on stderr.
"""

from __future__ import annotations

import re
import sys
from typing import TextIO

# C0 and C1 controls, DEL, the Unicode line/paragraph separators and bidi overrides that would
# let a name start a new line or reorder what a person reads, and lone surrogates (the bytes
# of a name that is not UTF-8, as os.fsdecode gives them), which no strict stream can write.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")

# Text shaped like an OpenAI key that the detector does not call one is still a secret, so
# messages never show it whole: a key glued to the text around it (a run of base64url holding
# the marker, which the detector rejects as part of a longer token), and `sk-`, an optional
# type word, then 20 or more base64url characters that look random (an unseen format, an admin
# key, a truncated key): both cases of letter or a digit, and few hyphens, unlike a name such
# as `disk-image-backup-2024-01`.
_RUN = re.compile(r"[A-Za-z0-9_-]{20,}")
_SK_AT = re.compile(r"sk-(?:[A-Za-z]{1,40}-)?([A-Za-z0-9_-]{20,256})")
_MARKER = "T3BlbkFJ"
_MIN_MARKED_RUN = 40
# Each `sk-` in a run is judged by a match that reads to the run's end, so a run with many of
# them would cost quadratic time; past this many, the rest of the run is redacted unjudged.
_MAX_SK_PER_RUN = 8

# surrogateescape maps an undecodable byte 0xNN to U+DCNN.
_ESCAPED_BYTES = range(0xDC80, 0xDD00)


def scrub(text: str) -> str:
    """`text` with every OpenAI key in it (plain or encoded), and anything key-shaped
    (`sk-` and 20 or more base64url characters), replaced by its redacted form."""
    from keysentry.scanner.detect import detect  # here: importing safety stays free
    from keysentry.secret import redact

    data = text.encode("utf-8", "surrogateescape")
    for match in reversed(detect(data)):
        shown = redact(match.key.decode("ascii"), match.classified.prefix).encode()
        data = data[: match.start] + shown + data[match.end :]
    return _RUN.sub(_redacted_run, data.decode("utf-8", "surrogateescape"))


def holds_key(text: str) -> bool:
    """Whether `scrub` would redact anything in `text`."""
    return scrub(text) != text


def escape_control(text: str) -> str:
    """`text` with every control character written as a visible escape (`\\n`, `\\u001b`),
    and each byte of a name that is not UTF-8 as `\\xNN`, so that it stays on one line, sends
    nothing to the terminal, and can be written to any UTF-8 stream."""
    return _CONTROL.sub(_escaped, text)


def say(text: str, file: TextIO | None = None) -> None:
    """Print `text` as one line, scrubbed and with control characters escaped, to stderr."""
    print(escape_control(scrub(text)), file=file or sys.stderr)


def _redacted_run(match: re.Match[str]) -> str:
    """A run of base64url characters with anything key-shaped in it redacted. Linear in the
    run's length: messages may quote a hostile server's body."""
    from keysentry.secret import redact

    run = match.group()
    if _MARKER in run and len(run) >= _MIN_MARKED_RUN:
        start = run.find("sk-")
        return run[:start] + redact(run[start:]) if start >= 0 else redact(run)
    at = run.find("sk-")
    for _ in range(_MAX_SK_PER_RUN):
        if at < 0:
            return run
        shaped = _SK_AT.match(run, at)
        if shaped is not None and _looks_random(shaped.group(1)):
            return run[:at] + redact(run[at:])
        at = run.find("sk-", at + 1)
    return run if at < 0 else run[:at] + redact(run[at:])


def _looks_random(tail: str) -> bool:
    return (
        any(c.islower() for c in tail)
        and any(c.isupper() or c.isdigit() for c in tail)
        and tail.count("-") * 10 <= len(tail)
    )


def _escaped(match: re.Match[str]) -> str:
    char = match.group()
    if ord(char) in _ESCAPED_BYTES:
        return f"\\x{ord(char) - 0xDC00:02x}"
    return {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(char) or f"\\u{ord(char):04x}"

"""JSON and JSON Lines reports. The schema is documented in docs/output.md.

File names (and git paths, refs, authors) are bytes that need not be UTF-8; os.fsdecode turns
their undecodable bytes into lone surrogates, which are not valid Unicode and which strict
JSON parsers reject. Every string field that holds one is written as valid text, each such
byte replaced by U+FFFD, with a sibling `<field>_bytes` holding the exact bytes in base64
(for a list of strings, a list of the same length, null for the entries that are valid):
readable, valid, and lossless.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any

from keysentry import __version__
from keysentry.scanner.findings import Finding
from keysentry.scanner.pipeline import ScanResult
from keysentry.scanner.report import shown

SCHEMA_VERSION = 1

_SURROGATE = re.compile("[\ud800-\udfff]")


def finding_to_dict(finding: Finding, show_secrets: bool) -> dict[str, Any]:
    record: dict[str, Any] = {
        "rule": finding.rule,
        "kind": finding.kind.value,
        "confidence": finding.confidence.value,
        "path": finding.path,
        "line": finding.line,
        "column": finding.column,
        "end_column": finding.end_column,
        "offset": finding.offset,
        "binary": finding.binary,
        "encoding": list(finding.encoding),
        "redacted": finding.redacted,
        "fingerprint": finding.fingerprint,
    }
    record.update(finding.provenance)
    record = shown(record, show_secrets)
    if show_secrets:
        record["secret"] = finding.secret.reveal()
    return lossless(record)


def summary_to_dict(result: ScanResult, show_secrets: bool) -> dict[str, Any]:
    summary = {
        "findings": len(result.findings),
        "scanned": result.blobs,
        "bytes": result.bytes,
        "seconds": round(result.seconds, 3),
        "suppressed": dict(sorted(result.suppressed.items())),
        "skipped": [
            {"path": s.path, "reason": s.reason, "unreadable": s.unreadable} for s in result.skipped
        ],
        "unreadable": result.unreadable,
    }
    return lossless(shown(summary, show_secrets))


def lossless(record: dict[str, Any]) -> dict[str, Any]:
    """`record`, at any depth, with every string valid Unicode and a `<field>_bytes` sibling
    (base64) for each field whose string, or one of whose strings, was not."""
    out: dict[str, Any] = {}
    for name, value in record.items():
        out[name] = _valid(value)
        raw = _raw(value)
        if raw is not None:
            out[f"{name}_bytes"] = raw
    return out


def _valid(value: Any) -> Any:
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, dict):
        return lossless(value)
    if isinstance(value, list | tuple):
        return [_valid(item) for item in value]
    return value


def _raw(value: Any) -> Any:
    """The base64 bytes of a string that is not valid Unicode (a list of them for a list of
    strings, any of which is not); None when there is nothing to add."""
    if isinstance(value, str):
        return _base64(value) if _SURROGATE.search(value) else None
    if isinstance(value, list | tuple) and any(
        isinstance(item, str) and _SURROGATE.search(item) for item in value
    ):
        return [_raw(item) if isinstance(item, str) else None for item in value]
    return None


def _base64(text: str) -> str:
    try:
        raw = text.encode("utf-8", "surrogateescape")  # the bytes os.fsdecode was given
    except UnicodeEncodeError:
        raw = text.encode("utf-8", "surrogatepass")  # a surrogate no decoder made: kept as is
    return base64.b64encode(raw).decode("ascii")


def render(result: ScanResult, show_secrets: bool, color: bool) -> str:
    document = {
        "version": SCHEMA_VERSION,
        "tool": {"name": "keysentry", "version": __version__},
        "findings": [finding_to_dict(f, show_secrets) for f in result.findings],
        "summary": summary_to_dict(result, show_secrets),
    }
    return json.dumps(document, indent=2) + "\n"


def render_lines(result: ScanResult, show_secrets: bool, color: bool) -> str:
    return "".join(json.dumps(finding_to_dict(f, show_secrets)) + "\n" for f in result.findings)

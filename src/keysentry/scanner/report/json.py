"""JSON and JSON Lines reports. The schema is documented in docs/output.md."""

from __future__ import annotations

import json
from typing import Any

from keysentry import __version__
from keysentry.scanner.findings import Finding
from keysentry.scanner.pipeline import ScanResult

SCHEMA_VERSION = 1


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
    if show_secrets:
        record["secret"] = finding.secret.reveal()
    return record


def summary_to_dict(result: ScanResult) -> dict[str, Any]:
    return {
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


def render(result: ScanResult, show_secrets: bool, color: bool) -> str:
    document = {
        "version": SCHEMA_VERSION,
        "tool": {"name": "keysentry", "version": __version__},
        "findings": [finding_to_dict(f, show_secrets) for f in result.findings],
        "summary": summary_to_dict(result),
    }
    return json.dumps(document, indent=2) + "\n"


def render_lines(result: ScanResult, show_secrets: bool, color: bool) -> str:
    return "".join(json.dumps(finding_to_dict(f, show_secrets)) + "\n" for f in result.findings)

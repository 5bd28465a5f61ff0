"""SARIF 2.1.0 for GitHub code scanning: one rule per key kind, a partial fingerprint per key.

Artifact URIs percent-encode the bytes of the path, so a file name that is not UTF-8 is a
valid URI naming exactly that file; property bags follow the JSON report's rule for such
names (valid text plus a `<field>_bytes` sibling, see report/json.py).
"""

from __future__ import annotations

import json
import os
from typing import Any
from urllib.parse import quote

from keysentry import __version__
from keysentry.scanner.findings import Finding
from keysentry.scanner.keys import Confidence, KeyKind
from keysentry.scanner.pipeline import ScanResult
from keysentry.scanner.report import shown
from keysentry.scanner.report.json import lossless

SCHEMA_URI = "https://json.schemastore.org/sarif-2.1.0.json"
RULES = list(KeyKind)


def _rule(kind: KeyKind) -> dict[str, Any]:
    return {
        "id": kind.rule,
        "name": "".join(part.title() for part in kind.rule.split("-")),
        "shortDescription": {"text": f"{kind.label} in source"},
        "fullDescription": {
            "text": f"An {kind.label} is written in a file. Everyone who can read the file or its "
            "history can spend on the account it belongs to."
        },
        "help": {
            "text": "Revoke the key, load its replacement from the environment or a secret "
            "store, and allow a false positive with `keysentry:allow` on its line or its "
            "fingerprint in .keysentryignore."
        },
        "defaultConfiguration": {"level": "error"},
        "properties": {
            "tags": ["security", "secret", "openai"],
            "security-severity": "9.0",
            "precision": "very-high",
        },
    }


def _region(finding: Finding) -> dict[str, Any]:
    if finding.binary:
        return {"byteOffset": finding.offset, "byteLength": len(finding.secret.reveal())}
    return {
        "startLine": finding.line,
        "startColumn": finding.column,
        "endLine": finding.line,
        "endColumn": finding.end_column,
    }


def artifact(path: str) -> dict[str, str]:
    # Only the platform's own separator becomes `/`: on POSIX a `\\` is part of a name (and of an
    # archive chain's escapes), which the percent-encoding keeps, byte for byte.
    posix = path.replace(os.sep, "/").encode("utf-8", "surrogateescape")
    if posix.startswith(b"/"):
        return {"uri": "file://" + quote(posix)}
    return {"uri": quote(posix), "uriBaseId": "%SRCROOT%"}


def _result(finding: Finding, show_secrets: bool) -> dict[str, Any]:
    value = finding.secret.reveal() if show_secrets else finding.redacted
    properties: dict[str, Any] = {
        "kind": finding.kind.value,
        "confidence": finding.confidence.value,
        "redacted": finding.redacted,
        "encoding": list(finding.encoding),
        **shown(finding.provenance, show_secrets),
    }
    if show_secrets:
        properties["secret"] = finding.secret.reveal()
    return {
        "ruleId": finding.rule,
        "ruleIndex": RULES.index(finding.kind),
        "level": "error" if finding.confidence is Confidence.HIGH else "warning",
        "message": {"text": f"{finding.kind.label} {value} found."},
        "locations": [
            {
                "physicalLocation": {
                    "artifactLocation": artifact(shown(finding.path, show_secrets)),
                    "region": _region(finding),
                }
            }
        ],
        "partialFingerprints": {"keysentry/v1": finding.fingerprint},
        "properties": lossless(properties),
    }


def tool() -> dict[str, Any]:
    """A run's `tool`: keysentry, with one rule per key kind (the fleet report shares it)."""
    return {
        "driver": {
            "name": "keysentry",
            "version": __version__,
            "informationUri": "https://pypi.org/project/keysentry/",
            "rules": [_rule(kind) for kind in RULES],
        }
    }


def render(result: ScanResult, show_secrets: bool, color: bool) -> str:
    document = {
        "$schema": SCHEMA_URI,
        "version": "2.1.0",
        "runs": [
            {
                "tool": tool(),
                "results": [_result(f, show_secrets) for f in result.findings],
                "columnKind": "unicodeCodePoints",
            }
        ],
    }
    return json.dumps(document, indent=2) + "\n"

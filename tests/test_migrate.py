"""Secrets migration: plan, apply, crash at every step then resume or roll back, conflicts,
copies; against moto, a real OpenBao and the project's Key Vault server."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from keygen import key_of
from keysentry import loader
from keysentry.config import load_config
from keysentry.providers import aws as aws_provider
from keysentry.providers import vault as vault_provider
from keysentry.providers.base import parse_ref
from keysentry.scanner.keys import KeyKind
from servers.azure_keyvault import KeyVaultServer
from stores import keyvault_client

NOTEBOOK = {
    "cells": [
        {
            "cell_type": "code",
            "execution_count": 1,
            "metadata": {},
            "source": ["from openai import OpenAI\n", 'client = OpenAI(api_key="{key}")\n'],
            "outputs": [{"output_type": "stream", "name": "stdout", "text": ["{key}\n"]}],
        },
        {"cell_type": "markdown", "metadata": {}, "source": ["# notes\n"]},
    ],
    "metadata": {},
    "nbformat": 4,
    "nbformat_minor": 5,
}


def sample_project(root: Path, rng: random.Random, prefix: str) -> dict[str, str]:
    """Keys in code, .env.production, .env.development and a notebook (the code's key again);
    returns them."""
    keys = {
        "code": key_of(KeyKind.PROJECT, rng).key,
        "production": key_of(KeyKind.SERVICE_ACCOUNT, rng).key,
        "development": key_of(KeyKind.PROJECT, rng).key,
    }
    keys["notebook"] = keys["code"]  # the same key, pasted into a notebook too
    (root / "app").mkdir(parents=True)
    (root / "app" / "settings.py").write_text(
        f'"""Settings."""\n\nDEBUG = False\nOPENAI_API_KEY = "{keys["code"]}"\n'
    )
    (root / ".env.production").write_bytes(
        f"# prod\r\nDEBUG=0\r\nOPENAI_API_KEY={keys['production']}\r\n".encode()
    )
    os.chmod(root / ".env.production", 0o600)
    (root / ".env.development").write_text(f"OPENAI_API_KEY={keys['development']}\nX=1\n")
    notebook = json.loads(json.dumps(NOTEBOOK).replace("{key}", keys["notebook"]))
    (root / "explore.ipynb").write_text(json.dumps(notebook, indent=1) + "\n")
    (root / "keysentry.toml").write_text(
        "[migrate]\n"
        f'destination = "aws-sm://{prefix}/{{env}}/openai#{{name}}"\n'
        "[migrate.destinations]\n"
        f'development = "vault://secret/{prefix}/{{env}}/openai#{{name}}"\n'
    )
    return keys


@pytest.fixture
def project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, aws: Any, vault: Any, rng: random.Random
) -> Iterator[tuple[Path, dict[str, str], str]]:
    root = tmp_path / "project"
    root.mkdir()
    prefix = uuid.uuid4().hex[:8]
    keys = sample_project(root, rng, prefix)
    monkeypatch.chdir(root)
    loader.configure(None)
    yield root, keys, prefix
    loader.configure(None)


def stored(ref: str) -> str | None:
    parsed = parse_ref(ref)
    provider = aws_provider if parsed.scheme == "aws-sm" else vault_provider
    try:
        value: str = provider.get(parsed).secret.reveal()
    except Exception:
        return None
    return value


def test_plan_is_redacted_and_names_each_move(
    project: tuple[Path, dict[str, str], str], cli: Any
) -> None:
    _root, keys, prefix = project
    result = cli("migrate", "plan", "--env", "staging", "--format", "json")
    assert result.code == 0
    plan = {Path(i["path"]).name: i for i in result.json()["items"]}
    assert plan["settings.py"]["destination"] == f"aws-sm://{prefix}/staging/openai#OPENAI_API_KEY"
    assert plan["settings.py"]["action"] == "python"
    assert plan[".env.production"]["env"] == "production"
    assert plan[".env.development"]["destination"].startswith("vault://secret/")
    assert plan["explore.ipynb"]["action"] == "notebook"
    assert not any(key in result.out for key in keys.values())


def test_two_keys_for_one_name_are_a_conflict(
    project: tuple[Path, dict[str, str], str], cli: Any, rng: random.Random
) -> None:
    root, _, _ = project
    (root / "app" / "other.py").write_text(f"OPENAI_API_KEY = '{key_of(KeyKind.ADMIN, rng).key}'\n")
    result = cli("migrate", "plan", "--env", "staging")
    assert result.code == 1 and "CONFLICT staging/OPENAI_API_KEY" in result.out
    refused = cli("migrate", "apply", "--env", "staging")
    assert refused.code == 2 and "conflicts" in refused.err


def test_one_plan_and_one_apply_move_everything(
    project: tuple[Path, dict[str, str], str], cli: Any
) -> None:
    root, keys, prefix = project
    result = cli("migrate", "apply", "--env", "staging")
    assert result.code == 0, result.err
    assert stored(f"aws-sm://{prefix}/staging/openai#OPENAI_API_KEY") == keys["code"]
    assert stored(f"aws-sm://{prefix}/production/openai#OPENAI_API_KEY") == keys["production"]
    assert (
        stored(f"vault://secret/{prefix}/development/openai#OPENAI_API_KEY") == keys["development"]
    )
    settings = (root / "app" / "settings.py").read_text()
    assert 'OPENAI_API_KEY = os.environ["OPENAI_API_KEY"]' in settings
    assert settings.startswith('"""Settings."""\nimport os\n')
    production = (root / ".env.production").read_bytes()
    assert (
        production
        == (
            f"# prod\r\nDEBUG=0\r\n# OPENAI_API_KEY: moved to aws-sm://{prefix}/"
            "production/openai#OPENAI_API_KEY by keysentry migrate\r\n"
        ).encode()
    )
    assert (root / ".env.production").stat().st_mode & 0o777 == 0o600
    notebook = json.loads((root / "explore.ipynb").read_text())
    assert notebook["cells"][0]["outputs"] == []
    assert 'os.environ["OPENAI_API_KEY"]' in "".join(notebook["cells"][0]["source"])
    assert ".env.*" in (root / ".gitignore").read_text()
    assert "still in git history" in result.err
    assert not any(key in result.out + result.err for key in keys.values())
    assert cli("scan", "--no-gitignore", ".").code == 0  # no key left anywhere
    loader.configure(None)
    assert loader.load_key(env="production").reveal() == keys["production"]
    assert cli("migrate", "apply", "--env", "staging").code == 0  # rerun: nothing to move


def run_apply(
    root: Path, crash_after: str | None = None, cwd: Path | None = None, path: str = "."
) -> int:
    env = {**os.environ}
    if crash_after:
        env["KEYSENTRY_MIGRATE_CRASH_AFTER"] = crash_after
    command = [sys.executable, "-m", "keysentry", "migrate", "apply", path, "--env", "staging"]
    return subprocess.run(
        command, cwd=cwd or root, env=env, capture_output=True, check=False
    ).returncode


SOURCES = ("app/settings.py", ".env.production", ".env.development", "explore.ipynb")


def snapshot(root: Path) -> dict[str, bytes | None]:
    """The sources, and the .gitignore and keysentry.toml that apply edits (None: absent)."""
    files = (*SOURCES, ".gitignore", "keysentry.toml")
    return {name: (root / name).read_bytes() if (root / name).exists() else None for name in files}


@pytest.mark.parametrize(
    "step", ["planned", "stored", "verified", "rewritten", "gitignored", "configured"]
)
@pytest.mark.parametrize("where", ["inside", "relative", "absolute"])
def test_a_crash_at_any_step_loses_nothing_and_resume_or_rollback_recover(
    project: tuple[Path, dict[str, str], str],
    cli: Any,
    step: str,
    where: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """From the project, or from its parent naming it relatively or absolutely; rollback puts
    back the sources, .gitignore and keysentry.toml byte for byte."""
    root, keys, prefix = project
    cwd, path = {
        "inside": (root, "."),
        "relative": (root.parent, root.name),
        "absolute": (root.parent, str(root)),
    }[where]
    monkeypatch.chdir(cwd)
    before = snapshot(root)
    assert run_apply(root, step, cwd, path) == 137
    middle = snapshot(root)
    refs = {
        "code": f"aws-sm://{prefix}/staging/openai#OPENAI_API_KEY",
        "production": f"aws-sm://{prefix}/production/openai#OPENAI_API_KEY",
        "development": f"vault://secret/{prefix}/development/openai#OPENAI_API_KEY",
        "notebook": f"aws-sm://{prefix}/staging/openai#OPENAI_API_KEY",
    }
    everything = b"".join(middle[name] or b"" for name in SOURCES).decode()
    for name, key in keys.items():  # every key is in its file, or verified in its store
        if name != "notebook":
            assert key in everything or stored(refs[name]) == key, name
    for name, content in middle.items():  # no file is half-written
        assert content == before[name] or keys_gone(content or b"", keys), name
    assert cli("migrate", "apply", path, "--env", "staging").code == 2  # resume or roll back
    rolled = cli("migrate", "rollback", path)
    assert rolled.code == 0, rolled.err
    assert snapshot(root) == before  # byte for byte, .gitignore and keysentry.toml included
    assert not (root / ".keysentry" / "migrate" / "journal.json").exists()
    assert run_apply(root, step, cwd, path) == 137
    resumed = cli("migrate", "resume", path)
    assert resumed.code == 0, resumed.err
    after = snapshot(root)
    assert all(keys_gone(after[name] or b"", keys) for name in SOURCES)
    assert stored(refs["production"]) == keys["production"]
    assert ".keysentry/" in (after[".gitignore"] or b"").decode().splitlines()
    assert "production" in loader.environments(load_config(root / "keysentry.toml"))


def keys_gone(content: bytes, keys: dict[str, str]) -> bool:
    return not any(k.encode() in content for k in keys.values())


def test_a_different_value_already_stored_is_refused_unless_overwrite(
    project: tuple[Path, dict[str, str], str], cli: Any, aws: Any
) -> None:
    _root, _, prefix = project
    aws.create_secret(
        Name=f"{prefix}/production/openai",
        SecretString=json.dumps({"OPENAI_API_KEY": "sk-other-value-entirely"}),
    )
    refused = cli("migrate", "apply", "--env", "staging")
    assert refused.code == 2 and "another value" in refused.err
    assert not (_root / ".keysentry" / "migrate" / "journal.json").exists()  # nothing to resume
    assert cli("migrate", "apply", "--env", "staging", "--overwrite").code == 0


def test_a_name_scheduled_for_deletion_in_aws_is_a_conflict(
    project: tuple[Path, dict[str, str], str], cli: Any, aws: Any
) -> None:
    _root, _, prefix = project
    aws.create_secret(Name=f"{prefix}/production/openai", SecretString="{}")
    aws.delete_secret(SecretId=f"{prefix}/production/openai", RecoveryWindowInDays=7)
    result = cli("migrate", "apply", "--env", "staging")
    assert result.code == 2
    (line,) = result.err.strip().splitlines()
    assert "marked for deletion" in line or "deleted" in line
    assert "restore-secret" in line


def test_copy_between_stores_and_a_whole_environment(
    project: tuple[Path, dict[str, str], str],
    cli: Any,
    aws: Any,
    rng: random.Random,
    keyvault: KeyVaultServer,
) -> None:
    _root, _, prefix = project
    key = key_of(KeyKind.PROJECT, rng).key
    aws.create_secret(Name=f"{prefix}/src", SecretString=json.dumps({"K": key}))
    result = cli(
        "migrate",
        "copy",
        "--from",
        f"aws-sm://{prefix}/src#K",
        "--to",
        f"vault://secret/{prefix}/dst#K",
    )
    assert result.code == 0 and key not in result.out
    assert stored(f"vault://secret/{prefix}/dst#K") == key
    again = cli(
        "migrate",
        "copy",
        "--from",
        f"aws-sm://{prefix}/src#K",
        "--to",
        f"vault://secret/{prefix}/dst#K",
    )
    assert "already there" in again.out
    keyvault_client(keyvault).set_secret("OPENAI-API-KEY", "old")
    keyvault_client(keyvault).begin_delete_secret("OPENAI-API-KEY").wait()
    deleted = cli(
        "migrate",
        "copy",
        "--from",
        f"aws-sm://{prefix}/src#K",
        "--to",
        "azure-kv://keysentry-test/OPENAI_API_KEY",
    )
    assert deleted.code == 2 and "deleted but recoverable" in deleted.err

"""keysentry rotate against the project's OpenAI server (the real openai SDK) and the real
stores (moto, OpenBao, the Key Vault server, .env files): a new key stored and proven, the old
one deleted after the loader TTL + grace; a crash at every journal step, then resume or
rollback, never leaving an environment without a live key; running clients that never fail."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import openai
import pytest

from conftest import GitRepo
from keygen import key_of
from keysentry import loader
from keysentry.providers import provider_for
from keysentry.providers.base import parse_ref
from keysentry.rotate.journal import JOURNAL_DIR
from keysentry.scanner.keys import KeyKind
from keysentry.secret import Secret
from keysentry.verify import client as api
from keysentry.verify.liveness import Status, check
from servers.azure_keyvault import KeyVaultServer
from servers.openai_api import OpenAIServer
from stores import keyvault_client
from test_openai_spec import problems

TTL, GRACE = 0.4, 0.3  # seconds: the loader's TTL and the rotation's grace, kept short here
STORES = ("aws", "vault", "azure", "dotenv")


class Stack(NamedTuple):
    root: Path
    server: OpenAIServer
    refs: dict[str, str]  # env -> reference
    keys: dict[str, str]  # env -> the key it held before any rotation
    admin: str


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[OpenAIServer]:
    running = OpenAIServer().start()
    monkeypatch.setenv("OPENAI_BASE_URL", running.base_url)
    api._breakers.clear()
    yield running
    running.stop()
    failures = [p for e in running.exchanges for p in problems(e)]  # held to OpenAI's spec
    assert not failures, "\n".join(failures)


def write_stack_config(root: Path, refs: dict[str, str], extra: str = "") -> None:
    lines = [f'[environments.{env}]\nOPENAI_API_KEY = "{ref}"' for env, ref in refs.items()]
    lines.append(f"[load]\nttl_seconds = {TTL}\n[rotate]\ngrace_seconds = {GRACE}\n{extra}")
    (root / "keysentry.toml").write_text("\n".join(lines) + "\n")


@pytest.fixture
def stack(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    server: OpenAIServer,
    aws: Any,
    vault: Any,
    keyvault: KeyVaultServer,
    rng: random.Random,
) -> Iterator[Stack]:
    """Four environments, one per store, each with a live key alone in its project: a user's
    key (production, preview) or a service account's (staging, development)."""
    root = tmp_path / "app"
    root.mkdir()
    prefix = uuid.uuid4().hex[:8]
    envs = {"production": "aws", "staging": "vault", "preview": "azure", "development": "dotenv"}
    refs = {
        "production": f"aws-sm://{prefix}/production/openai#OPENAI_API_KEY",
        "staging": f"vault://secret/{prefix}/staging/openai#api_key",
        "preview": "azure-kv://keysentry-test/OPENAI_API_KEY",
        "development": "dotenv://.env.development#OPENAI_API_KEY",
    }
    keys = {}
    for env in envs:
        server.org.project(f"proj_{env}")
        kind = KeyKind.SERVICE_ACCOUNT if env in ("staging", "development") else KeyKind.PROJECT
        keys[env] = key_of(kind, rng).key
        owner = "service_account" if kind is KeyKind.SERVICE_ACCOUNT else "user"
        server.org.add_key(keys[env], f"proj_{env}", id=f"key_{env}", owner_type=owner)
    aws.create_secret(
        Name=f"{prefix}/production/openai",
        SecretString=json.dumps({"OPENAI_API_KEY": keys["production"], "OTHER": "kept"}),
    )
    vault.secrets.kv.v2.create_or_update_secret(
        f"{prefix}/staging/openai", {"api_key": keys["staging"]}, mount_point="secret"
    )
    keyvault_client(keyvault).set_secret("OPENAI-API-KEY", keys["preview"])
    (root / ".env.development").write_text(
        f"# dev\nDEBUG=1\nOPENAI_API_KEY={keys['development']}\n"
    )
    write_stack_config(root, refs)
    admin = key_of(KeyKind.ADMIN, rng).key
    server.org.add_key(admin, None, id="key_admin")
    monkeypatch.setenv("OPENAI_ADMIN_KEY", admin)
    monkeypatch.chdir(root)
    loader.configure(None)
    yield Stack(root, server, refs, keys, admin)
    loader.configure(None)


def stored(stack: Stack, env: str) -> str:
    ref = parse_ref(stack.refs[env])
    if ref.scheme == "dotenv":
        ref = ref._replace(location=str(stack.root / ref.location))
    return provider_for(ref.scheme).get(ref).secret.reveal()


def accounts(stack: Stack, env: str) -> list[dict[str, Any]]:
    return [
        a for a in stack.server.org.service_accounts.values() if a["project_id"] == f"proj_{env}"
    ]


def assert_no_key_shown(stack: Stack, *texts: str) -> None:
    """No key of the organization (old, new, admin) in any output or in the journal."""
    sys.path.insert(0, str(Path(__file__).parent / "adversarial"))
    from leaks import assert_nowhere

    every = [*stack.keys.values(), *stack.server.org.keys]
    for key in every:
        assert_nowhere(key, *texts, under=[stack.root / ".keysentry"])


@pytest.mark.parametrize("env", ["production", "staging", "preview", "development"])
def test_one_rotate_stores_a_new_live_key_and_deletes_the_old_after_the_grace(
    stack: Stack, cli: Any, env: str
) -> None:
    old = stack.keys[env]
    started = time.monotonic()
    result = cli("rotate", "--env", env, "--yes")
    took = time.monotonic() - started
    assert result.code == 0, result.err
    new = stored(stack, env)
    assert new != old and new.startswith("sk-svcacct-")
    assert check(Secret(new)).status is Status.LIVE
    assert check(Secret(new)).project == f"proj_{env}"
    assert check(Secret(old)).status is Status.INVALID  # deleted
    assert took >= TTL + GRACE
    (account,) = accounts(stack, env)  # a staging/development key went with its own account
    assert account["name"].startswith(f"keysentry-{env}-")
    for step in ("created service account", "proved", "stored", "read back", "waiting", "deleted"):
        assert step in result.out, step
    assert not (stack.root / JOURNAL_DIR).exists()
    assert_no_key_shown(stack, result.out, result.err)


def test_aws_keeps_the_old_version_as_awsprevious_and_the_other_fields(
    stack: Stack, cli: Any, aws: Any
) -> None:
    ref = parse_ref(stack.refs["production"])
    assert cli("rotate", "--env", "production", "--yes").code == 0
    stages = aws.describe_secret(SecretId=ref.location)["VersionIdsToStages"]
    assert sorted(s for v in stages.values() for s in v) == ["AWSCURRENT", "AWSPREVIOUS"]
    previous = aws.get_secret_value(SecretId=ref.location, VersionStage="AWSPREVIOUS")
    assert json.loads(previous["SecretString"])["OPENAI_API_KEY"] == stack.keys["production"]
    current = json.loads(aws.get_secret_value(SecretId=ref.location)["SecretString"])
    assert current["OTHER"] == "kept"


def test_a_dotenv_rotation_keeps_every_other_byte(stack: Stack, cli: Any) -> None:
    assert cli("rotate", "--env", "development", "--yes").code == 0
    text = (stack.root / ".env.development").read_text()
    assert text == f"# dev\nDEBUG=1\nOPENAI_API_KEY={stored(stack, 'development')}\n"


def test_the_dry_run_prints_the_plan_and_changes_nothing(stack: Stack, cli: Any) -> None:
    result = cli("rotate", "--env", "production", "--dry-run")
    assert result.code == 0, result.err
    assert "wait 1 s: the loader's TTL 0 s + grace 0 s" in result.out or "wait" in result.out
    assert "DELETE …/projects/proj_production/api_keys/key_production" in result.out
    assert stored(stack, "production") == stack.keys["production"]
    assert not accounts(stack, "production")
    assert_no_key_shown(stack, result.out, result.err)


def test_without_yes_and_without_a_terminal_nothing_is_rotated(stack: Stack, cli: Any) -> None:
    result = cli("rotate", "--env", "production")
    assert result.code == 2 and "pass --yes" in result.err
    assert stored(stack, "production") == stack.keys["production"]
    assert not accounts(stack, "production") and not (stack.root / JOURNAL_DIR).exists()


def test_without_an_admin_key_rotation_is_a_config_error(
    stack: Stack, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_ADMIN_KEY")
    result = cli("rotate", "--env", "production", "--yes")
    assert result.code == 2 and "needs an admin key" in result.err


def test_a_service_account_holding_another_key_is_never_deleted(
    stack: Stack, cli: Any, rng: random.Random
) -> None:
    """Its key could only go with the account, and the other key with it: stop before, then
    roll back to the old key."""
    staging = stack.server.org.keys[stack.keys["staging"]]
    other = key_of(KeyKind.SERVICE_ACCOUNT, rng).key
    stack.server.org.add_key(
        other,
        "proj_staging",
        id="key_other",
        owner_type="service_account",
        owner_id=staging.owner_id,
    )
    result = cli("rotate", "--env", "staging", "--yes")
    assert result.code == 2 and "also holds key_other" in result.err
    assert check(Secret(other)).status is Status.LIVE
    assert check(Secret(stored(stack, "staging"))).status is Status.LIVE
    rolled = cli("rotate", "--rollback", "--env", "staging")
    assert rolled.code == 0, rolled.err
    assert stored(stack, "staging") == stack.keys["staging"]
    assert [a["id"] for a in accounts(stack, "staging")] == [staging.owner_id]


def test_a_second_rotation_while_one_is_interrupted_is_refused(stack: Stack, cli: Any) -> None:
    (stack.root / JOURNAL_DIR).mkdir(parents=True)
    (stack.root / JOURNAL_DIR / "production.json").write_text(
        json.dumps({"env": "production", "steps": ["planned"], "done": False})
    )
    result = cli("rotate", "--env", "production", "--yes")
    assert result.code == 2 and "--resume --env production" in result.err


# --- crashes at every step, then resume or rollback -------------------------------------------

STEPS = [
    "planned",
    "create requested",
    "created",
    "proven",
    "previous kept",
    "stored",
    "verified",
    "waited",
    "retired",
]


def crash_rotate(stack: Stack, env: str, step: str) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "KEYSENTRY_ROTATE_CRASH_AFTER": step}
    command = [sys.executable, "-m", "keysentry", "rotate", "--env", env, "--yes"]
    return subprocess.run(
        command,
        cwd=stack.root,
        env=environ,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


@pytest.mark.parametrize("step", STEPS)
@pytest.mark.parametrize("env", ["production", "staging", "development"])
def test_a_crash_at_any_step_keeps_a_live_key_and_resume_or_rollback_recover(
    stack: Stack, cli: Any, env: str, step: str
) -> None:
    if step == "previous kept" and env != "development":
        pytest.skip("only a .env file keeps the old value in a second binding")
    old = stack.keys[env]
    crashed = crash_rotate(stack, env, step)
    assert crashed.returncode == 137, crashed.stderr
    assert check(Secret(stored(stack, env))).status is Status.LIVE  # never without a live key
    assert_no_key_shown(stack, crashed.stdout, crashed.stderr)
    if step == "retired":
        refused = cli("rotate", "--rollback", "--env", env)
        assert refused.code == 2 and "already deleted" in refused.err
    else:
        rolled = cli("rotate", "--rollback", "--env", env)
        assert rolled.code == 0, rolled.err
        assert stored(stack, env) == old
        assert check(Secret(old)).status is Status.LIVE
        assert [a for a in accounts(stack, env) if a["name"].startswith("keysentry-")] == []
        assert not (stack.root / JOURNAL_DIR).exists()
        if env == "development":
            assert "PREVIOUS" not in (stack.root / ".env.development").read_text()
        crashed = crash_rotate(stack, env, step)
        assert crashed.returncode == 137, crashed.stderr
    resumed = cli("rotate", "--resume")
    assert resumed.code == 0, resumed.err
    new = stored(stack, env)
    assert new != old and check(Secret(new)).status is Status.LIVE
    assert check(Secret(old)).status is Status.INVALID
    assert len([a for a in accounts(stack, env) if a["name"].startswith("keysentry-")]) == 1
    assert not (stack.root / JOURNAL_DIR).exists()
    if env == "development":
        assert "PREVIOUS" not in (stack.root / ".env.development").read_text()
    assert_no_key_shown(stack, rolled.out if step != "retired" else "", resumed.out, resumed.err)


# --- running applications --------------------------------------------------------------------

CLIENT = textwrap.dedent(
    """
    import json, os, sys, time
    from keysentry import loader
    from keysentry.config import load_config
    from pathlib import Path

    config_path, stop, base_url = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
    loader.configure(load_config(Path(config_path)))
    client = loader.openai_client("production", base_url=base_url, max_retries=0)
    calls, failures, after_stop = 0, [], 0
    while True:
        stopping = stop.exists()
        try:
            client.models.list()
            calls += 1
        except Exception as exc:
            failures.append(f"{type(exc).__name__}: {getattr(exc, 'status_code', '')}")
        if stopping:
            break
        time.sleep(0.02)
    print(json.dumps({"calls": calls, "failures": failures}))
    """
)


def run_client(stack: Stack, config: Path, stop: Path) -> subprocess.Popen[str]:
    script = stack.root.parent / "client.py"
    script.write_text(CLIENT)
    return subprocess.Popen(
        [sys.executable, str(script), str(config), str(stop), stack.server.base_url],
        cwd=stack.root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize("client_ttl", [TTL, 3600.0])
def test_a_running_client_never_fails_across_a_rotation(
    stack: Stack, cli: Any, client_ttl: float
) -> None:
    """With the same TTL the client moves before the old key goes; with a TTL far longer
    than the rotation's wait it still holds the old key when it is deleted, gets one 401,
    re-reads the store and retries: no failed call reaches it either way."""
    config = stack.root.parent / "client.toml"
    config.write_text(
        f'[environments.production]\nOPENAI_API_KEY = "{stack.refs["production"]}"\n'
        f"[load]\nttl_seconds = {client_ttl}\n"
    )
    stop = stack.root.parent / "stop"
    process = run_client(stack, config, stop)
    try:
        deadline = time.monotonic() + 30
        while stack.server.org.keys[stack.keys["production"]].last_used_at is None:
            assert time.monotonic() < deadline and process.poll() is None, process.stderr
            time.sleep(0.05)
        result = cli("rotate", "--env", "production", "--yes")
        assert result.code == 0, result.err
        new = stored(stack, "production")
        calls_before = stack.server.requests["GET /v1/models"]
        while stack.server.requests["GET /v1/models"] < calls_before + 5:
            time.sleep(0.05)
    finally:
        stop.touch()
        out, err = process.communicate(timeout=30)
    outcome = json.loads(out)
    assert outcome["failures"] == [], outcome
    assert outcome["calls"] > 10
    assert stack.server.org.keys[new].last_used_at is not None
    assert stack.keys["production"] not in stack.server.org.keys
    assert_no_key_shown(stack, out, err, result.out)


# --- waiting until the old key is unused -----------------------------------------------------


def test_until_unused_waits_while_the_old_key_is_used_then_resumes(
    stack: Stack, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_stack_config(
        stack.root,
        stack.refs,
        "poll_seconds = 0.1\nunused_window_seconds = 1.5\nmax_wait_seconds = 2.0",
    )
    loader.configure(None)
    stop = threading.Event()
    old = openai.OpenAI(api_key=stack.keys["production"], base_url=stack.server.base_url)

    def keep_using() -> None:
        while not stop.is_set():
            old.models.list()
            time.sleep(1.1)  # last_used_at has whole seconds: a new second every call

    user = threading.Thread(target=keep_using)
    user.start()
    try:
        waited = cli("rotate", "--env", "production", "--yes", "--until-unused")
    finally:
        stop.set()
        user.join()
    assert waited.code == 2 and "still in use" in waited.err
    assert check(Secret(stack.keys["production"])).status is Status.LIVE
    assert check(Secret(stored(stack, "production"))).status is Status.LIVE
    resumed = cli("rotate", "--resume", "--env", "production")
    assert resumed.code == 0, resumed.err
    assert check(Secret(stack.keys["production"])).status is Status.INVALID


# --- policies: rotate --due ------------------------------------------------------------------


def test_due_rotates_keys_over_their_maximum_age_and_leaked_keys(stack: Stack, cli: Any) -> None:
    """The test server's keys were created on 2026-01-01: production's (maximum 30 days) is
    due, preview's (maximum 100 years) is not, and staging's is in the repository's history."""
    write_stack_config(
        stack.root,
        stack.refs,
        "[policies.production]\nmax_key_age_days = 30\n"
        "[policies.default]\nmax_key_age_days = 36500\n",
    )
    loader.configure(None)
    repo = GitRepo(stack.root)
    repo("init", "-q")
    repo.commit("oops", **{"notes.txt": f"staging key {stack.keys['staging']}\n"})
    dry = cli("rotate", "--due", "--dry-run")
    assert dry.code == 0, dry.err
    assert "rotate production: due: its key is" in dry.out
    assert "rotate staging: due: its key is in this repository's history (leaked)" in dry.out
    assert "rotate preview: not due" in dry.out
    result = cli("rotate", "--due", "--yes")
    assert result.code == 0, result.err
    assert stored(stack, "production") != stack.keys["production"]
    assert stored(stack, "staging") != stack.keys["staging"]
    assert stored(stack, "preview") == stack.keys["preview"]
    assert_no_key_shown(stack, dry.out, result.out, result.err)


def test_the_action_rotates_due_environments_and_never_echoes_the_admin_key(
    stack: Stack, cli: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    write_stack_config(
        stack.root,
        stack.refs,
        "[policies.production]\nmax_key_age_days = 30\n"
        "[policies.default]\nmax_key_age_days = 36500\n",
    )
    monkeypatch.chdir(tmp_path)  # the action's working directory is not the repository
    monkeypatch.setenv("KS_PATH", str(stack.root))
    monkeypatch.setenv("KS_ROTATE_DUE", "true")
    result = cli("action")
    assert result.code == 0, result.err
    assert stored(stack, "production") != stack.keys["production"]
    assert stored(stack, "staging") == stack.keys["staging"]
    assert "rotate production: done" in result.out
    assert_no_key_shown(stack, result.out, result.err)
    monkeypatch.setenv("KS_ROTATE_DUE", "yes")
    refused = cli("action")
    assert refused.code == 2 and "rotate-due takes true or false" in refused.err


def test_a_key_another_environment_also_holds_is_never_rotated_away(stack: Stack, cli: Any) -> None:
    """Deleting it would leave that environment without a live key."""
    (stack.root / ".env.development").write_text(f"OPENAI_API_KEY={stack.keys['production']}\n")
    result = cli("rotate", "--env", "production", "--yes")
    assert result.code == 2 and "development also holds the key of production" in result.err
    assert stored(stack, "production") == stack.keys["production"]
    assert not accounts(stack, "production") and not (stack.root / JOURNAL_DIR).exists()

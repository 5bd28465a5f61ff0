"""The verifier against the project's OpenAI API server, through the real openai SDK:
liveness for every key state, retries, the circuit breaker, spend, isolation, the CLI."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from conftest import GitRepo
from keygen import key_of
from keysentry import loader
from keysentry.scanner.keys import KeyKind
from keysentry.secret import Secret
from keysentry.verify import client as api
from keysentry.verify.client import ApiClient, CircuitBreaker, CircuitOpen
from keysentry.verify.liveness import Status, check, check_many, classify
from keysentry.verify.spend import KeyMap, month_start, redacted_match, spend
from servers.openai_api import DAY, OpenAIServer, Spend, error
from stores import write_config


def live_key(
    server: OpenAIServer, rng: random.Random, project: str = "proj_a", **options: Any
) -> str:
    server.org.project(project)
    value = key_of(KeyKind.PROJECT, rng).key
    server.org.add_key(value, project, **options)
    return value


def test_every_key_state_is_classified(server: OpenAIServer, rng: random.Random) -> None:
    live = live_key(server, rng)
    restricted = live_key(server, rng, restricted=True)
    unknown = key_of(KeyKind.PROJECT, rng).key
    admin = key_of(KeyKind.ADMIN, rng).key
    server.org.add_key(admin, None)
    results = {
        name: check(Secret(value))
        for name, value in (
            ("live", live),
            ("restricted", restricted),
            ("unknown", unknown),
            ("admin", admin),
        )
    }
    assert results["live"].status is Status.LIVE and results["live"].project == "proj_a"
    assert results["restricted"].status is Status.LIVE_RESTRICTED
    assert "api.model.read" in results["restricted"].detail
    assert results["unknown"].status is Status.INVALID
    assert results["unknown"].detail == "refused: invalid_api_key"
    assert results["admin"].status is Status.LIVE
    for value, verdict in zip((live, restricted, unknown, admin), results.values(), strict=True):
        assert value not in repr(verdict)


def test_mismatched_project_is_its_own_verdict(server: OpenAIServer, rng: random.Random) -> None:
    value = live_key(server, rng)
    sdk = openai.OpenAI(
        api_key=value, base_url=server.base_url, project="proj_other", max_retries=0
    )
    with pytest.raises(openai.AuthenticationError) as caught:
        sdk.models.list()
    assert classify(caught.value)[0] is Status.MISMATCHED_PROJECT


def test_project_variables_in_the_environment_do_not_leak_into_headers(
    server: OpenAIServer, rng: random.Random, monkeypatch: pytest.MonkeyPatch
) -> None:
    value = live_key(server, rng)
    monkeypatch.setenv("OPENAI_PROJECT_ID", "proj_from_some_other_app")
    monkeypatch.setenv("OPENAI_ORG_ID", "org-other")
    assert check(Secret(value)).status is Status.LIVE


def test_a_billing_429_is_live_and_not_retried(server: OpenAIServer, rng: random.Random) -> None:
    value = live_key(server, rng)
    body = error("You exceeded your current quota.", "insufficient_quota", "insufficient_quota")
    server.inject("/v1/models", 429, body, times=3)
    verdict = check(Secret(value))
    assert verdict.status is Status.LIVE and "billing" in verdict.detail
    assert server.requests["GET /v1/models"] == 1


def test_a_429_storm_is_retried_with_retry_after_then_unknown(
    server: OpenAIServer, rng: random.Random
) -> None:
    value = live_key(server, rng)
    body = error("Rate limit reached", "requests", "rate_limit_exceeded")
    # The spec's Retry-After: whole seconds, at least 1; the injected sleep keeps it fast.
    server.inject("/v1/models", 429, body, {"Retry-After": "1"}, times=5)
    slept: list[float] = []
    client = ApiClient(Secret(value), attempts=3, sleep=slept.append)
    with pytest.raises(openai.RateLimitError):
        client.call(lambda sdk: sdk.models.list())
    assert slept == [1.0, 1.0] and server.requests["GET /v1/models"] == 3
    server.injected.clear()
    server.inject("/v1/models", 429, body, {"Retry-After": "600"})
    with pytest.raises(openai.RateLimitError):  # too long to wait: reported, not slept
        ApiClient(Secret(value), sleep=slept.append).call(lambda sdk: sdk.models.list())
    assert len(slept) == 2


def test_5xx_runs_recover_within_the_retry_budget(server: OpenAIServer, rng: random.Random) -> None:
    value = live_key(server, rng)
    server.inject("/v1/models", 503, times=2)
    client = ApiClient(Secret(value), sleep=lambda s: None)
    assert len(client.call(lambda sdk: sdk.models.list()).data) == 2
    assert server.requests["GET /v1/models"] == 3


def test_no_retry_on_401_400_403(server: OpenAIServer, rng: random.Random) -> None:
    client = ApiClient(Secret(key_of(KeyKind.PROJECT, rng).key), sleep=lambda s: None)
    with pytest.raises(openai.AuthenticationError):
        client.call(lambda sdk: sdk.models.list())
    assert server.requests["GET /v1/models"] == 1


def test_timeouts_and_dropped_connections_are_unknown(
    server: OpenAIServer, rng: random.Random
) -> None:
    value = live_key(server, rng)
    server.delay = 0.5
    verdict = check(Secret(value), timeout=0.1)
    assert verdict.status is Status.UNKNOWN and "APITimeoutError" in verdict.detail
    server.delay = 0.0
    api._breakers.clear()
    server.drop = True
    assert check(Secret(value)).status is Status.UNKNOWN


def test_the_circuit_opens_fails_fast_and_half_opens(
    server: OpenAIServer, rng: random.Random
) -> None:
    value = live_key(server, rng)
    client = ApiClient(Secret(value), attempts=1, sleep=lambda s: None)
    client.breaker = CircuitBreaker(threshold=3, cooldown=0.2)
    server.inject("/v1/models", 500, times=3)
    for _ in range(3):
        with pytest.raises(openai.InternalServerError):
            client.call(lambda sdk: sdk.models.list())
    assert client.breaker.state == "open"
    with pytest.raises(CircuitOpen):
        client.call(lambda sdk: sdk.models.list())
    assert server.requests["GET /v1/models"] == 3  # failing fast: no request
    time.sleep(0.25)
    assert client.breaker.state == "half-open"
    client.call(lambda sdk: sdk.models.list())  # the trial succeeds
    assert client.breaker.state == "closed"


def test_a_half_open_trial_that_fails_unexpectedly_reopens_instead_of_sticking(
    server: OpenAIServer, rng: random.Random
) -> None:
    value = live_key(server, rng)
    client = ApiClient(Secret(value), attempts=1, sleep=lambda s: None)
    client.breaker = CircuitBreaker(threshold=1, cooldown=0.2)
    server.inject("/v1/models", 500)
    with pytest.raises(openai.InternalServerError):
        client.call(lambda sdk: sdk.models.list())
    time.sleep(0.25)
    # The trial gets a 200 whose body the SDK cannot validate: no verdict on the host.
    client.sdk = openai.OpenAI(
        api_key=value, base_url=server.base_url, max_retries=0, _strict_response_validation=True
    )
    server.inject("/v1/models", 200, {"object": "list", "data": "not a list"})
    with pytest.raises(openai.APIResponseValidationError):
        client.call(lambda sdk: sdk.models.list())
    assert client.breaker.state == "open"  # re-opened, with a new cool-down
    time.sleep(0.25)
    assert client.breaker.state == "half-open"
    assert len(client.call(lambda sdk: sdk.models.list()).data) == 2  # the next trial runs
    assert client.breaker.state == "closed"


def test_one_keys_rate_limit_does_not_open_the_circuit_for_other_keys(
    server: OpenAIServer, rng: random.Random
) -> None:
    limited, other = live_key(server, rng), live_key(server, rng)
    body = error("Rate limit reached for requests", "requests", "rate_limit_exceeded")
    server.inject("/v1/models", 429, body, {"Retry-After": "0"}, times=6)
    for _ in range(2):  # six 429s: more than the breaker's threshold of five failures
        with pytest.raises(openai.RateLimitError):
            ApiClient(Secret(limited), sleep=lambda s: None).call(lambda sdk: sdk.models.list())
    assert api.breaker_for(server.base_url).state == "closed"
    assert check(Secret(other)).status is Status.LIVE


def test_retry_after_as_an_http_date_is_honoured_and_capped(
    server: OpenAIServer, rng: random.Random
) -> None:
    import email.utils

    value = live_key(server, rng)
    body = error("Rate limit reached", "requests", "rate_limit_exceeded")

    def date_in(seconds: float) -> str:
        return email.utils.formatdate(time.time() + seconds, usegmt=True)

    slept: list[float] = []
    server.inject("/v1/models", 429, body, {"Retry-After": date_in(3)})
    server.inject("/v1/models", 429, body, {"Retry-After": date_in(-60)})  # already past
    client = ApiClient(Secret(value), sleep=slept.append)
    assert len(client.call(lambda sdk: sdk.models.list()).data) == 2
    assert 1.0 <= slept[0] <= 3.0 and slept[1] == 0.0
    server.inject("/v1/models", 429, body, {"Retry-After": date_in(3600)})
    with pytest.raises(openai.RateLimitError):  # an hour away: reported, not slept
        client.call(lambda sdk: sdk.models.list())
    assert len(slept) == 2


def test_each_distinct_key_is_checked_once(server: OpenAIServer, rng: random.Random) -> None:
    value = live_key(server, rng)
    verdicts = check_many([Secret(value)] * 5 + [Secret(key_of(KeyKind.PROJECT, rng).key)])
    assert len(verdicts) == 2 and server.requests["GET /v1/models"] == 2


def test_health_reports_without_spending(server: OpenAIServer, rng: random.Random) -> None:
    value = live_key(server, rng)
    assert api.health(Secret(value))["status"] == "ok"
    assert api.health(Secret(key_of(KeyKind.PROJECT, rng).key))["status"] == "down"


def test_redacted_values_match_both_forms(rng: random.Random) -> None:
    key = key_of(KeyKind.PROJECT, rng).key
    assert redacted_match(key[:8] + "*" * (len(key) - 12) + key[-4:], key)
    assert not redacted_match(key[:8] + "*" * (len(key) - 13) + key[-4:], key)  # length
    assert redacted_match(f"{key[:6]}...{key[-3:]}", key)
    assert not redacted_match(f"{key[:6]}...zzz", key)


@pytest.fixture
def org(server: OpenAIServer, rng: random.Random) -> dict[str, Any]:
    """An organization: production alone in its project, staging sharing one with 120 others
    (two pages of listing), an admin key; spend this month (by the code's own month boundary:
    on the 1st, "yesterday" is last month, so the earlier day is today then)."""
    now = int(time.time())
    today = now - now % DAY
    earlier = max(today - DAY, month_start())
    prod = live_key(server, rng, "proj_prod", id="key_prod")
    staging = live_key(server, rng, "proj_shared", id="key_staging")
    for index in range(120):
        server.org.add_key(key_of(KeyKind.PROJECT, rng).key, "proj_shared", id=f"key_o{index}")
    admin = key_of(KeyKind.ADMIN, rng).key
    server.org.add_key(admin, None, id="key_admin")
    server.org.spend += [
        Spend(today, "key_prod", "proj_prod", 12.5),
        Spend(earlier, "key_prod", "proj_prod", 30.0),
        Spend(today, "key_staging", "proj_shared", 1.0, "gpt-4o-mini", 1_000_000, 1_000_000),
        Spend(today, "key_o1", "proj_shared", 99.0, "gpt-4o", 5, 5),
    ]
    return {"prod": prod, "staging": staging, "admin": admin, "since": today - 2 * DAY}


def test_the_admin_listing_maps_keys_and_spend_falls_back(
    server: OpenAIServer, org: dict[str, Any]
) -> None:
    server.org.costs_per_key = "refused"  # as the live API did in July 2026
    admin = ApiClient(Secret(org["admin"]), admin=True)
    keymap = KeyMap(admin)
    assert len(keymap.records) == 122
    (prod,) = keymap.match(Secret(org["prod"]))
    (staging,) = keymap.match(Secret(org["staging"]))
    assert (prod.id, prod.project_id) == ("key_prod", "proj_prod")
    prod_spend = spend(admin, prod, keymap.keys_in("proj_prod"), org["since"])
    assert (prod_spend.usd, prod_spend.method) == (42.5, "project costs")  # per-key: 400
    staging_spend = spend(admin, staging, keymap.keys_in("proj_shared"), org["since"])
    assert staging_spend.method == "estimate"
    assert staging_spend.usd == pytest.approx(0.75)  # 1M in x 0.15 + 1M out x 0.60
    assert server.requests["GET /v1/organization/costs"] == 3  # 400, project; 400


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("KEYSENTRY_ENV", raising=False)
    loader.configure(None)
    yield tmp_path
    loader.configure(None)


def environments(directory: Path, keys: dict[str, str], threshold: float | None) -> None:
    table = {}
    for env, value in keys.items():
        (directory / f".env.{env}").write_text(f"OPENAI_API_KEY={value}\n")
        table[env] = {"OPENAI_API_KEY": f"dotenv://.env.{env}#OPENAI_API_KEY"}
    write_config(directory, table)
    if threshold is not None:
        with open(directory / "keysentry.toml", "a") as handle:
            handle.write(f"[verify]\nspend_threshold_usd = {threshold}\n")


def test_verify_passes_for_live_isolated_keys_within_budget(
    server: OpenAIServer,
    org: dict[str, Any],
    project: Path,
    cli: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_ADMIN_KEY", org["admin"])
    environments(project, {"production": org["prod"]}, threshold=100.0)
    assert cli("limit", "set", "--env", "production", "--usd", "200", "--yes").code == 0
    result = cli("verify", "--format", "json", "--no-history")
    document = result.json()
    assert result.code == 0, result.out
    production = document["environments"]["production"]
    assert production["liveness"] == "live" and production["key_id"] == "key_prod"
    assert production["spend_usd"] == 42.5
    assert org["prod"] not in result.out + result.err


def test_verify_fails_over_budget_shared_or_leaked_keys(
    server: OpenAIServer,
    org: dict[str, Any],
    project: Path,
    cli: Any,
    monkeypatch: pytest.MonkeyPatch,
    rng: random.Random,
) -> None:
    monkeypatch.setenv("OPENAI_ADMIN_KEY", org["admin"])
    dead = key_of(KeyKind.PROJECT, rng).key
    environments(
        project,
        {"production": org["prod"], "staging": org["prod"], "development": dead},
        threshold=10.0,
    )
    GitRepo(project)("init", "-q")
    gitrepo = GitRepo(project)
    gitrepo.commit("oops", **{"notes.txt": f"prod key {org['prod']}\n"})
    result = cli("verify")
    assert result.code == 1
    failed = {tuple(line.split()[:2]) for line in result.out.splitlines() if " FAILED " in line}
    assert ("production", "spend") in failed
    assert ("production", "distinct") in failed  # staging holds the same key
    assert ("production", "production") in failed  # ... so the production key is elsewhere
    assert ("production", "not") in failed  # and it is in the git history
    assert ("development", "live") in failed
    assert org["prod"] not in result.out + result.err and dead not in result.out


def test_verify_without_an_admin_key_reports_unknown_not_pass(
    server: OpenAIServer, org: dict[str, Any], project: Path, cli: Any
) -> None:
    environments(project, {"production": org["prod"]}, threshold=None)
    result = cli("verify", "--no-history")
    assert result.code == 1
    assert any("spend" in line and "unknown" in line for line in result.out.splitlines())


def test_scan_verify_reports_live_leaks_with_the_revoke_call(
    server: OpenAIServer,
    org: dict[str, Any],
    tmp_path: Path,
    cli: Any,
    monkeypatch: pytest.MonkeyPatch,
    rng: random.Random,
) -> None:
    monkeypatch.setenv("OPENAI_ADMIN_KEY", org["admin"])
    dead = key_of(KeyKind.PROJECT, rng).key
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "live.py").write_text(f"K = '{org['prod']}'\n")
    (tree / "dead.py").write_text(f"K = '{dead}'\n")
    result = cli("scan", "--verify", "--format", "json", str(tree))
    assert result.code == 3
    by_file = {Path(f["path"]).name: f["verification"] for f in result.json()["findings"]}
    assert by_file["dead.py"]["status"] == "invalid"
    assert by_file["live.py"]["status"] == "live"
    assert (
        by_file["live.py"]["revoke"]
        == "DELETE /v1/organization/projects/proj_prod/api_keys/key_prod"
    )
    (tree / "live.py").unlink()
    assert cli("scan", "--verify", "--fail-on", "live", str(tree)).code == 0
    assert cli("scan", "--fail-on", "live", str(tree)).code == 2


def test_revoke_needs_confirmation_and_then_revokes(
    server: OpenAIServer, org: dict[str, Any], cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_ADMIN_KEY", org["admin"])
    refused = cli("revoke", "--project", "proj_prod", "--key-id", "key_prod")
    assert refused.code == 2 and "pass --yes" in refused.err
    assert cli("revoke", "--project", "proj_prod", "--key-id", "key_prod", "--yes").code == 0
    assert check(Secret(org["prod"])).status is Status.INVALID
    missing = cli("revoke", "--project", "proj_prod", "--key-id", "key_nope", "--yes")
    assert missing.code == 2 and "HTTP 404" in missing.err


def test_text_output_shows_the_verification(
    server: OpenAIServer,
    org: dict[str, Any],
    tmp_path: Path,
    cli: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_ADMIN_KEY", org["admin"])
    (tmp_path / "k.py").write_text(f"K = '{org['prod']}'\n")
    result = cli("scan", "--verify", str(tmp_path / "k.py"))
    assert "verified live" in result.out and "keysentry revoke --project proj_prod" in result.out
    assert json.dumps(org["prod"])[1:-1] not in result.out


def test_verify_with_no_environments_is_an_error_with_a_hint(project: Path, cli: Any) -> None:
    result = cli("verify", "--no-history")
    assert result.code == 2 and result.out == ""  # never `"passed": true`
    (line,) = result.err.splitlines()
    assert "no environments configured" in line and "[environments.production]" in line


@pytest.fixture
def unreachable_api(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """OPENAI_BASE_URL on a loopback port where nothing listens: every verdict is unknown."""
    from stores import free_port

    url = f"http://127.0.0.1:{free_port()}/v1"
    monkeypatch.setenv("OPENAI_BASE_URL", url)
    for name in ("OPENAI_ORG_ID", "OPENAI_PROJECT_ID", "OPENAI_ADMIN_KEY", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    api._breakers.clear()
    yield url
    api._breakers.clear()


def test_fail_on_live_with_an_unreachable_api_is_unknown_unless_accepted(
    unreachable_api: str, tmp_path: Path, cli: Any, rng: random.Random
) -> None:
    key = key_of(KeyKind.PROJECT, rng).key
    (tmp_path / "app.py").write_text(f"K = '{key}'\n")
    unknown = cli("scan", "--verify", "--fail-on", "live", "--format", "json", str(tmp_path))
    assert unknown.code == 4
    assert unknown.json()["findings"][0]["verification"]["status"] == "unknown"
    assert "1 key found could not be verified" in unknown.err
    accepted = cli("scan", "--verify", "--fail-on", "live", "--accept-unknown", str(tmp_path))
    assert accepted.code == 0 and "accepted (--accept-unknown)" in accepted.err
    assert cli("scan", "--verify", "--accept-unknown", str(tmp_path)).code == 2
    for result in (unknown, accepted):
        assert key not in result.out + result.err


def test_the_actions_fail_on_live_with_an_unreachable_api_fails_unless_accepted(
    unreachable_api: str, gitrepo: GitRepo, rng: random.Random
) -> None:
    from test_action import run_action

    key = key_of(KeyKind.PROJECT, rng).key
    before = gitrepo.commit("clean", **{"a.txt": "a\n"})
    after = gitrepo.commit("leak", **{"app.py": f"K = '{key}'\n"})
    event = {"before": before, "after": after}
    failed = run_action(gitrepo.path, "push", event, fail_on="live")
    assert failed.code == 4 and "could not be verified" in failed.log
    assert any(a.startswith("::error title=keysentry::1 key(s)") for a in failed.annotations)
    accepted = run_action(gitrepo.path, "push", event, fail_on="live", accept_unknown="true")
    assert accepted.code == 0
    assert key not in failed.log + accepted.log + failed.summary


# --- held to OpenAI's spec: per-key costs, revocation by owner, what the spec leaves out ---


def test_per_key_costs_are_used_when_the_api_supports_them(
    server: OpenAIServer, org: dict[str, Any]
) -> None:
    admin = ApiClient(Secret(org["admin"]), admin=True)
    keymap = KeyMap(admin)
    (prod,) = keymap.match(Secret(org["prod"]))
    result = spend(admin, prod, keymap.keys_in("proj_prod"), org["since"])
    assert (result.usd, result.method) == (42.5, "per-key costs")
    assert server.requests["GET /v1/organization/costs"] == 1


def test_per_key_costs_count_only_that_key_when_the_api_returns_several(
    server: OpenAIServer, org: dict[str, Any]
) -> None:
    server.org.costs_per_key = "unfiltered"  # grouped by key, but every key's costs
    admin = ApiClient(Secret(org["admin"]), admin=True)
    keymap = KeyMap(admin)
    (staging,) = keymap.match(Secret(org["staging"]))
    result = spend(admin, staging, keymap.keys_in("proj_shared"), org["since"])
    answered = [e for e in server.exchanges if e.path == "/v1/organization/costs"]
    returned = {r["api_key_id"] for e in answered for b in e.body["data"] for r in b["results"]}
    assert {"key_staging", "key_o1", "key_prod"} <= returned  # the API gave several keys
    assert (result.usd, result.method) == (1.0, "per-key costs")  # key_o1's 99 not charged


def test_costs_that_name_no_key_fall_back_instead_of_being_charged(
    server: OpenAIServer, org: dict[str, Any]
) -> None:
    ungrouped = {
        "object": "organization.costs.result",
        "amount": {"value": 500.0, "currency": "usd"},
        "api_key_id": None,
        "project_id": None,
    }
    bucket = {
        "object": "bucket",
        "start_time": org["since"],
        "end_time": org["since"] + DAY,
        "results": [ungrouped],
    }
    page = {"object": "page", "data": [bucket], "has_more": False, "next_page": None}
    server.inject("/v1/organization/costs", 200, page)
    admin = ApiClient(Secret(org["admin"]), admin=True)
    keymap = KeyMap(admin)
    (prod,) = keymap.match(Secret(org["prod"]))
    result = spend(admin, prod, keymap.keys_in("proj_prod"), org["since"])
    assert (result.usd, result.method) == (42.5, "project costs")


def test_the_spec_short_redacted_form_still_maps_keys(
    server: OpenAIServer, org: dict[str, Any], rng: random.Random
) -> None:
    server.org.redaction = "short"  # `sk-proj-...xyz`, as the spec's examples
    keymap = KeyMap(ApiClient(Secret(org["admin"]), admin=True))
    assert [r.id for r in keymap.match(Secret(org["prod"]))] == ["key_prod"]
    assert [r.id for r in keymap.match_admin(Secret(org["admin"]))] == ["key_admin"]
    assert keymap.match(Secret(key_of(KeyKind.PROJECT, rng).key)) == []


def test_a_redacted_value_that_shows_nothing_matches_nothing(rng: random.Random) -> None:
    key = key_of(KeyKind.PROJECT, rng).key
    assert not redacted_match("...", key)
    assert not redacted_match("*" * len(key), key)
    assert not redacted_match(f"{key[:8]}...", key)
    legacy = key_of(KeyKind.LEGACY_USER, rng).key  # 51 characters
    assert not redacted_match(f"{legacy[:8]}...{legacy[-45:]}", legacy)  # shows more than it has


@pytest.fixture
def bots(server: OpenAIServer, org: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """A service account in proj_bots holding two keys; admin key from the environment."""
    server.org.project("proj_bots")
    first = key_of(KeyKind.SERVICE_ACCOUNT, rng).key
    record = server.org.add_key(first, "proj_bots", id="key_bot", owner_type="service_account")
    second = key_of(KeyKind.SERVICE_ACCOUNT, rng).key
    server.org.add_key(
        second, "proj_bots", id="key_bot2", owner_type="service_account", owner_id=record.owner_id
    )
    return {"key": first, "second": second, "account": record.owner_id}


def test_a_leaked_service_account_key_is_revoked_by_deleting_its_account(
    server: OpenAIServer,
    org: dict[str, Any],
    bots: dict[str, Any],
    tmp_path: Path,
    cli: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_ADMIN_KEY", org["admin"])
    assert bots["account"].startswith("svc_acct_")
    (tmp_path / "bot.py").write_text(f"K = '{bots['key']}'\n")
    scanned = cli("scan", "--verify", "--format", "json", str(tmp_path / "bot.py"))
    assert scanned.code == 3
    (finding,) = scanned.json()["findings"]
    info = finding["verification"]
    call = f"DELETE /v1/organization/projects/proj_bots/service_accounts/{bots['account']}"
    assert info["owner"] == "service_account" and info["revoke"] == call
    assert info["revoke_command"] == "keysentry revoke --project proj_bots --key-id key_bot"
    assert bots["account"] in info["revoke_also_removes"]
    text = cli("scan", "--verify", str(tmp_path / "bot.py")).out
    assert call in text and "which also deletes service account" in text

    refused = cli("revoke", "--project", "proj_bots", "--key-id", "key_bot")
    assert refused.code == 2 and "deleting its account" in refused.err
    assert check(Secret(bots["key"])).status is Status.LIVE
    revoked = cli("revoke", "--project", "proj_bots", "--key-id", "key_bot", "--yes")
    assert revoked.code == 0, revoked.err
    assert (
        server.requests[
            f"DELETE /v1/organization/projects/proj_bots/service_accounts/{bots['account']}"
        ]
        == 1
    )
    assert server.requests["DELETE /v1/organization/projects/proj_bots/api_keys/key_bot"] == 0
    assert check(Secret(bots["key"])).status is Status.INVALID
    assert check(Secret(bots["second"])).status is Status.INVALID  # the account's other key
    for value in (bots["key"], bots["second"], org["admin"]):
        assert value not in scanned.out + text + refused.err + revoked.out + revoked.err


def test_revoking_a_service_account_key_asks_and_says_it_removes_the_account(
    server: OpenAIServer,
    org: dict[str, Any],
    bots: dict[str, Any],
    cli: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sys

    monkeypatch.setenv("OPENAI_ADMIN_KEY", org["admin"])
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True, raising=False)
    prompts: list[str] = []

    def answer(prompt: str) -> str:
        prompts.append(prompt)
        return "no"

    monkeypatch.setattr("builtins.input", answer)
    declined = cli("revoke", "--project", "proj_bots", "--key-id", "key_bot")
    assert declined.code == 1 and "not revoked" in declined.err
    (prompt,) = prompts
    assert f"deleting service account {bots['account']}" in prompt
    assert check(Secret(bots["key"])).status is Status.LIVE


def test_the_api_refuses_the_key_delete_for_a_service_account_key(
    server: OpenAIServer, org: dict[str, Any], bots: dict[str, Any]
) -> None:
    admin = ApiClient(Secret(org["admin"]), admin=True, sleep=lambda s: None)
    with pytest.raises(openai.BadRequestError) as refused:
        admin.call(
            lambda sdk: sdk.admin.organization.projects.api_keys.delete(
                "key_bot", project_id="proj_bots"
            )
        )
    assert bots["account"] in str(refused.value.body)
    assert check(Secret(bots["key"])).status is Status.LIVE


def test_a_leaked_admin_key_is_revoked_with_the_admin_key_delete(
    server: OpenAIServer,
    org: dict[str, Any],
    rng: random.Random,
    tmp_path: Path,
    cli: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_ADMIN_KEY", org["admin"])
    leaked = key_of(KeyKind.ADMIN, rng).key
    server.org.add_key(leaked, None, id="key_leaked_admin")
    (tmp_path / "ops.py").write_text(f"K = '{leaked}'\n")
    scanned = cli("scan", "--verify", "--format", "json", str(tmp_path / "ops.py"))
    (finding,) = scanned.json()["findings"]
    info = finding["verification"]
    assert info["owner"] == "admin" and "project_id" not in info
    assert info["revoke"] == "DELETE /v1/organization/admin_api_keys/key_leaked_admin"
    assert info["revoke_command"] == "keysentry revoke --admin --key-id key_leaked_admin"
    assert "key key_leaked_admin" in cli("scan", "--verify", str(tmp_path / "ops.py")).out
    revoked = cli("revoke", "--admin", "--key-id", "key_leaked_admin", "--yes")
    assert revoked.code == 0, revoked.err
    assert check(Secret(leaked)).status is Status.INVALID
    assert check(Secret(org["admin"])).status is Status.LIVE
    assert leaked not in scanned.out + revoked.out + revoked.err


def test_revoke_needs_a_project_or_admin_but_not_both(
    server: OpenAIServer, org: dict[str, Any], cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_ADMIN_KEY", org["admin"])
    for args in (("--key-id", "key_prod"), ("--admin", "--project", "p", "--key-id", "k")):
        result = cli("revoke", *args, "--yes")
        assert result.code == 2 and len(result.err.splitlines()) == 1
        assert "--project" in result.err and "--admin" in result.err
    assert server.requests == {}  # nothing was called


def test_bad_requests_and_unknown_projects_are_not_retried_and_do_not_trip_the_breaker(
    server: OpenAIServer, org: dict[str, Any]
) -> None:
    admin = ApiClient(Secret(org["admin"]), admin=True, sleep=lambda s: None)
    admin.breaker = CircuitBreaker(threshold=1, cooldown=60)

    def usage(sdk: Any) -> Any:
        return sdk.admin.organization.usage

    calls: list[tuple[type[Exception], Any]] = [
        (openai.BadRequestError, lambda sdk: usage(sdk).costs(start_time=openai.omit)),
        (openai.BadRequestError, lambda sdk: usage(sdk).costs(start_time=0, limit=181)),
        (openai.BadRequestError, lambda sdk: usage(sdk).completions(start_time=0, limit=32)),
        (openai.BadRequestError, lambda sdk: sdk.admin.organization.projects.list(limit=0)),
        (
            openai.NotFoundError,
            lambda sdk: sdk.admin.organization.projects.api_keys.list("proj_nope"),
        ),
    ]
    for expected, call in calls:
        with pytest.raises(expected):
            admin.call(call)
    assert sum(server.requests.values()) == len(calls)  # one request each: no retry
    assert admin.breaker.state == "closed"


def test_without_the_openai_project_header_the_project_is_unknown(
    server: OpenAIServer, rng: random.Random
) -> None:
    value = live_key(server, rng)
    assert "project proj_a" in check(Secret(value)).detail
    server.omit_headers = {"openai-project"}
    verdict = check(Secret(value))
    assert verdict.status is Status.LIVE and verdict.project is None
    assert "project unknown" in verdict.detail


def test_without_a_request_id_an_unknown_verdict_says_so(
    server: OpenAIServer, rng: random.Random
) -> None:
    value = live_key(server, rng)
    server.inject(
        "/v1/models",
        403,
        error(
            "Country, region, or territory not supported",
            "request_forbidden",
            "unsupported_country",
        ),
    )
    with_id = check(Secret(value))
    assert with_id.status is Status.UNKNOWN and with_id.request_id
    assert f"request {with_id.request_id}" in with_id.detail
    server.omit_headers = {"x-request-id"}
    server.inject(
        "/v1/models",
        403,
        error(
            "Country, region, or territory not supported",
            "request_forbidden",
            "unsupported_country",
        ),
    )
    without = check(Secret(value))
    assert without.status is Status.UNKNOWN and without.request_id is None
    assert "request id unknown" in without.detail


def test_a_401_without_the_invalid_api_key_code_is_unknown_not_dead(
    server: OpenAIServer, rng: random.Random
) -> None:
    value = live_key(server, rng)
    server.inject("/v1/models", 401, error("IP not authorized"))
    verdict = check(Secret(value))
    assert verdict.status is Status.UNKNOWN and "without code invalid_api_key" in verdict.detail
    server.inject("/v1/models", 401, error("This key is associated with a deactivated account."))
    assert check(Secret(value)).status is Status.INVALID


def test_a_project_mismatch_without_its_code_is_unknown_not_dead(
    server: OpenAIServer, rng: random.Random
) -> None:
    value = live_key(server, rng)
    server.inject(
        "/v1/models", 401, error("OpenAI-Project header should match project for API key")
    )
    assert check(Secret(value)).status is Status.UNKNOWN


def test_a_429_without_a_billing_code_is_a_rate_limit_retried_then_unknown(
    server: OpenAIServer, rng: random.Random
) -> None:
    value = live_key(server, rng)
    server.inject("/v1/models", 429, error("You exceeded your current quota.", "requests"), times=3)
    slept: list[float] = []
    client = ApiClient(Secret(value), sleep=slept.append)
    with pytest.raises(openai.RateLimitError) as caught:
        client.call(lambda sdk: sdk.models.list())
    assert server.requests["GET /v1/models"] == 3
    assert classify(caught.value)[0] is Status.UNKNOWN


def test_without_retry_after_headers_the_client_backs_off_on_its_own(
    server: OpenAIServer, rng: random.Random
) -> None:
    value = live_key(server, rng)
    server.inject(
        "/v1/models", 429, error("Rate limit reached", "requests", "rate_limit_exceeded"), times=2
    )
    slept: list[float] = []
    client = ApiClient(Secret(value), sleep=slept.append)
    assert len(client.call(lambda sdk: sdk.models.list()).data) == 2
    assert len(slept) == 2 and 0 <= slept[0] <= 0.5 and 0 <= slept[1] <= 1.0

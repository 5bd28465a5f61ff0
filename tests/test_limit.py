"""Hard spend caps (`keysentry limit`), what `verify` reports about them and about key age,
and the revoke after-report; against the project's OpenAI server through the real SDK."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from keygen import key_of
from keysentry import loader
from keysentry.scanner.keys import KeyKind
from keysentry.verify import client as api
from servers.openai_api import OpenAIServer
from test_openai_spec import problems


class Org(NamedTuple):
    server: OpenAIServer
    root: Path
    keys: dict[str, str]


@pytest.fixture
def org(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rng: random.Random) -> Iterator[Org]:
    """production and staging, each alone in its project, in .env files; an admin key."""
    server = OpenAIServer().start()
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    api._breakers.clear()
    keys = {}
    lines = []
    for env in ("production", "staging"):
        server.org.project(f"proj_{env}")
        keys[env] = key_of(KeyKind.PROJECT, rng).key
        server.org.add_key(keys[env], f"proj_{env}", id=f"key_{env}")
        (tmp_path / f".env.{env}").write_text(f"OPENAI_API_KEY={keys[env]}\n")
        lines.append(f'[environments.{env}]\nOPENAI_API_KEY = "dotenv://.env.{env}#OPENAI_API_KEY"')
    lines.append("[verify]\nspend_threshold_usd = 100.0")
    (tmp_path / "keysentry.toml").write_text("\n".join(lines) + "\n")
    admin = key_of(KeyKind.ADMIN, rng).key
    server.org.add_key(admin, None, id="key_admin")
    monkeypatch.setenv("OPENAI_ADMIN_KEY", admin)
    monkeypatch.chdir(tmp_path)
    loader.configure(None)
    yield Org(server, tmp_path, keys)
    loader.configure(None)
    server.stop()
    failures = [p for e in server.exchanges for p in problems(e)]  # held to OpenAI's spec
    assert not failures, "\n".join(failures)


def configure(org: Org, extra: str) -> None:
    with open(org.root / "keysentry.toml", "a") as handle:
        handle.write(extra)
    loader.configure(None)


def assert_no_key_shown(org: Org, *texts: str) -> None:
    for key in org.server.org.keys:
        assert key not in "".join(texts)


def test_set_sends_cents_reads_back_and_show_and_clear_report_it(org: Org, cli: Any) -> None:
    assert "no hard spend limit" in cli("limit", "show", "--env", "production").out
    done = cli("limit", "set", "--env", "production", "--usd", "123.45", "--yes")
    assert done.code == 0, done.err
    assert org.server.org.spend_limits["proj_production"]["threshold_amount"] == 12345
    assert "set to $123.45 USD/month, enforcing" in done.out
    shown = cli("limit", "show")
    assert "limit production: proj_production: $123.45 USD/month, enforcing" in shown.out
    assert "limit staging: proj_staging: no hard spend limit" in shown.out
    cleared = cli("limit", "clear", "--env", "production", "--yes")
    assert cleared.code == 0 and "cleared" in cleared.out
    assert "proj_production" not in org.server.org.spend_limits
    again = cli("limit", "clear", "--env", "production", "--yes")
    assert again.code == 0 and "no hard spend limit to clear" in again.out
    assert_no_key_shown(org, done.out, shown.out, cleared.out, done.err)


@pytest.mark.parametrize("usd", ["0", "0.001", "1.234", "abc", "-5", "nan", "inf"])
def test_an_amount_that_is_not_whole_cents_of_at_least_one_is_refused(
    org: Org, cli: Any, usd: str
) -> None:
    result = cli("limit", "set", "--env", "production", "--usd", usd, "--yes")
    assert result.code == 2 and result.err.count("\n") == 1
    assert not org.server.org.spend_limits


def test_changing_a_limit_needs_confirmation(org: Org, cli: Any) -> None:
    refused = cli("limit", "set", "--env", "production", "--usd", "10")
    assert refused.code == 2 and "pass --yes" in refused.err
    org.server.org.spend_limits["proj_staging"] = {
        "object": "project.spend_limit",
        "threshold_amount": 500,
        "currency": "USD",
        "interval": "month",
        "enforcement": {"status": "enforcing"},
    }
    assert cli("limit", "clear", "--env", "staging").code == 2
    assert "proj_staging" in org.server.org.spend_limits and not org.server.org.spend_limits.get(
        "proj_production"
    )


def verify_lines(cli: Any) -> tuple[int, dict[tuple[str, str], str]]:
    result = cli("verify", "--no-history")
    marks = {}
    for line in result.out.splitlines():
        env, rest = line.split(maxsplit=1)
        for check in ("spend limit", "key age policy"):
            if rest.startswith(check):
                marks[(env, check)] = rest[len(check) :].split()[0]
    return result.code, marks


def test_verify_fails_production_without_a_cap_and_warns_for_the_others(org: Org, cli: Any) -> None:
    code, marks = verify_lines(cli)
    assert code == 1
    assert marks[("production", "spend limit")] == "FAILED"
    assert marks[("staging", "spend limit")] == "warning"
    assert cli("limit", "set", "--env", "production", "--usd", "100", "--yes").code == 0
    code, marks = verify_lines(cli)
    assert marks[("production", "spend limit")] == "ok"
    assert code == 0  # a warning is no failure


def test_an_inactive_limit_is_no_cap_and_policies_can_relax_it(org: Org, cli: Any) -> None:
    assert cli("limit", "set", "--env", "production", "--usd", "100", "--yes").code == 0
    org.server.org.spend_limits["proj_production"]["enforcement"]["status"] = "inactive"
    code, marks = verify_lines(cli)
    assert code == 1 and marks[("production", "spend limit")] == "FAILED"
    configure(org, '[policies.production]\nspend_limit = "off"\n')
    code, marks = verify_lines(cli)
    assert code == 0 and marks[("production", "spend limit")] == "ok"


def test_verify_reports_each_keys_age_against_its_policy(org: Org, cli: Any) -> None:
    """The server's keys were made on 2026-01-01."""
    configure(
        org,
        '[policies.production]\nmax_key_age_days = 30\nspend_limit = "off"\n'
        "[policies.default]\nmax_key_age_days = 36500\n",
    )
    result = cli("verify", "--no-history")
    _, marks = verify_lines(cli)
    assert marks[("production", "key age policy")] == "FAILED"
    assert marks[("staging", "key age policy")] == "ok"
    assert "keysentry rotate --env production" in result.out
    assert result.code == 1


def test_revoking_a_leaked_key_names_the_environments_that_may_break(
    org: Org, cli: Any, rng: random.Random
) -> None:
    """A key found in a scan that is no environment's: its project is production's."""
    leaked = key_of(KeyKind.PROJECT, rng).key
    org.server.org.add_key(leaked, "proj_production", id="key_leaked")
    result = cli("revoke", "--project", "proj_production", "--key-id", "key_leaked", "--yes")
    assert result.code == 0, result.err
    assert "may break: production (their keys are in proj_production" in result.out
    own = cli("revoke", "--project", "proj_staging", "--key-id", "key_staging", "--yes")
    assert "staging used this key: it has no live key now" in own.out
    assert_no_key_shown(org, result.out, own.out, result.err)

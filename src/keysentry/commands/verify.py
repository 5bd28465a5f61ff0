"""`keysentry verify`, `scan --verify` and `keysentry revoke`.

verify: for each environment, is its key live, within the spend threshold, and isolated?
Exit 0 when every check passed, 1 when one failed or could not be decided (unknown is not a
pass), 2 on a usage or config error, no environments (nothing to check) included.
scan --verify: `verify_findings` counts live and unknown verdicts apart, so `--fail-on live`
can fail on an unknown (exit 4) instead of passing a scan whose keys were never checked.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from collections.abc import Mapping
from typing import Any, NamedTuple

from keysentry import loader
from keysentry.errors import ConfigError, ExitCode, InputError, KeysentryError
from keysentry.providers.base import parse_ref
from keysentry.safety import escape_control, scrub
from keysentry.scanner.findings import fingerprint
from keysentry.scanner.pipeline import ScanResult
from keysentry.secret import Secret


class Settings(NamedTuple):
    admin_ref: str | None
    threshold: float | None
    base_url: str | None


def settings(base_url: str | None = None) -> Settings:
    config = loader.current_config()
    table = config.raw.get("verify", {})
    where = f"{config.path or 'keysentry config'}: [verify]"
    if not isinstance(table, Mapping):
        raise ConfigError(f"{where} must be a table")
    admin = table.get("admin_key")
    if admin is not None and not isinstance(admin, str):
        raise ConfigError(f"{where}.admin_key must be a secret reference")
    threshold: Any = table.get("spend_threshold_usd", os.environ.get("OPENAI_COST_ALERT_THRESHOLD"))
    if threshold is not None:
        try:
            threshold = float(threshold)
        except (TypeError, ValueError):
            raise ConfigError(
                f"{where}.spend_threshold_usd must be a number of dollars, got {threshold!r}"
            ) from None
    url = base_url or table.get("base_url") or None
    return Settings(admin, threshold, url)


def admin_client(config: Settings) -> Any | None:
    """The Admin API client, with the admin key from config (a reference) or OPENAI_ADMIN_KEY;
    None when there is none."""
    from keysentry.providers import provider_for
    from keysentry.verify.client import ApiClient

    if config.admin_ref:
        ref = parse_ref(config.admin_ref, "[verify].admin_key")
        key = provider_for(ref.scheme).get(ref).secret
    elif os.environ.get("OPENAI_ADMIN_KEY"):
        key = Secret(os.environ["OPENAI_ADMIN_KEY"])
    else:
        return None
    return ApiClient(key, admin=True, base_url=config.base_url)


def _since(text: str | None) -> int:
    from keysentry.verify.spend import month_start

    if not text:
        return month_start()
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        raise InputError(f"--since takes a date such as 2026-11-01, got {text!r}") from None
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.timezone.utc).timestamp())


def verify(
    envs: list[str], fmt: str, since: str | None, base_url: str | None, history: bool
) -> int:
    from keysentry.rotate.policies import lifecycle_checks
    from keysentry.verify.isolation import Check, isolation
    from keysentry.verify.liveness import check_many
    from keysentry.verify.spend import KeyMap, spend

    table = loader.configured_environments(loader.current_config())
    envs = envs or sorted(table)
    for env in envs:
        loader.environment(loader.current_config(), env)  # an unknown one is an error
    config = settings(base_url)
    start = _since(since)
    checks: list[Check] = []
    keys: dict[str, Secret] = {}
    every_value: dict[str, set[str]] = {}
    for env in sorted(table):
        values = set()
        for name in table[env]:
            try:
                secret = loader.load_key(name, env=env)
            except KeysentryError as exc:
                if env in envs and name == loader.DEFAULT_NAME:
                    checks.append(Check("load", env, False, str(exc)))
                continue
            values.add(fingerprint(secret.reveal()))
            if name == loader.DEFAULT_NAME and env in envs:
                keys[env] = secret
        every_value[env] = values
    if not keys and not checks:
        raise ConfigError(f"no {loader.DEFAULT_NAME} in {', '.join(envs)}: nothing to verify")
    for env in envs:
        if loader.DEFAULT_NAME not in table[env]:
            checks.append(Check("live", env, None, f"no {loader.DEFAULT_NAME} to verify"))
    verdicts = check_many(keys.values(), base_url=config.base_url)
    admin = admin_client(config)
    keymap = KeyMap(admin) if admin is not None else None
    records = {env: keymap.match(key) for env, key in keys.items()} if keymap else None
    report: dict[str, dict[str, Any]] = {}
    for env, key in sorted(keys.items()):
        verdict = verdicts[fingerprint(key.reveal())]
        checks.append(
            Check(
                "live",
                env,
                verdict.status.is_live if verdict.status.value != "unknown" else None,
                f"{verdict.status.value}: {verdict.detail}",
            )
        )
        entry: dict[str, Any] = {
            "key": key.redacted,
            "fingerprint": verdict.fingerprint,
            "liveness": verdict.status.value,
            "detail": verdict.detail,
        }
        if records is None:
            checks.append(
                Check(
                    "spend",
                    env,
                    None,
                    "needs an admin key ([verify].admin_key or OPENAI_ADMIN_KEY)",
                )
            )
        elif len(records[env]) != 1:
            what = (
                "matches no key"
                if not records[env]
                else f"matches {len(records[env])} keys: ambiguous"
            )
            checks.append(Check("spend", env, None, f"the admin listing {what}"))
        else:
            record = records[env][0]
            assert keymap is not None and admin is not None
            spent = spend(admin, record, keymap.keys_in(record.project_id), start)
            entry.update(
                {
                    "project_id": record.project_id,
                    "key_id": record.id,
                    "spend_usd": spent.usd,
                    "spend_method": spent.method,
                }
            )
            within = (
                None
                if config.threshold is None or spent.usd is None
                else spent.usd <= config.threshold
            )
            limit = (
                f" of {config.threshold:.2f}"
                if config.threshold is not None
                else " (no threshold set)"
            )
            checks.append(
                Check(
                    "spend",
                    env,
                    within,
                    f"${spent.usd:.2f}{limit} ({spent.method}: {spent.detail})",
                )
            )
        report[env] = entry
    fingerprints = {env: fingerprint(k.reveal()) for env, k in keys.items()}
    from keysentry.scanner.git.scans import history_fingerprints

    committed = history_fingerprints() if history else None
    checks += isolation(fingerprints, every_value, records, committed)
    checks += lifecycle_checks(loader.current_config(), records, admin, config.threshold)
    passed = all(c.ok for c in checks)
    if fmt == "json":
        for env in report:
            report[env]["checks"] = [
                {"check": c.check, "ok": c.ok, "detail": c.detail, "warning": c.warning}
                for c in checks
                if c.env == env
            ]
        print(json.dumps({"passed": passed, "environments": report}, indent=2))
    else:
        for c in sorted(checks, key=lambda c: (c.env, c.check)):
            mark = "FAILED" if c.ok is False else "unknown" if c.ok is None else "ok"
            mark = "warning" if c.ok and c.warning else mark
            print(f"{c.env:<14} {c.check:<26} {mark:<8} {c.detail}")
    return int(ExitCode.CLEAN if passed else ExitCode.FINDINGS)


class Verified(NamedTuple):
    """What `scan --verify` learned: how many findings hold a live key, and how many a key
    whose verdict is unknown (the API did not answer). Unknown is never taken for not live."""

    live: int
    unknown: int


def verify_findings(result: ScanResult, base_url: str | None) -> Verified:
    """Add each finding's liveness (and, for a live key with an admin key at hand, its
    project, key id and the call that revokes it); count the live and the unknown."""
    from keysentry.verify.liveness import check_many

    config = settings(base_url)
    verdicts = check_many((f.secret for f in result.findings), base_url=config.base_url)
    admin = admin_client(config) if any(v.status.is_live for v in verdicts.values()) else None
    keymap = None
    if admin is not None:
        from keysentry.verify.spend import KeyMap

        keymap = KeyMap(admin)
    live = unknown = 0
    for index, finding in enumerate(result.findings):
        verdict = verdicts[finding.fingerprint]
        unknown += verdict.status.value == "unknown"
        # The detail is remote text (the API's words): scrubbed here, where it joins a report.
        info: dict[str, Any] = {"status": verdict.status.value, "detail": scrub(verdict.detail)}
        if verdict.status.is_live:
            live += 1
            info.update(_revoke_info(keymap, finding.secret) if keymap else {})
        result.findings[index] = finding._replace(
            provenance={**finding.provenance, "verification": info}
        )
    return Verified(live, unknown)


def _revoke_info(keymap: Any, secret: Secret) -> dict[str, Any]:
    """For a live key the admin listing maps to exactly one key: its ids and the call that
    revokes it, chosen by its owner (a service account's key goes with its account); nothing
    for a key the listing cannot place."""
    from keysentry.verify.spend import revocation

    admin_key = secret.reveal().startswith("sk-admin-")
    matches = keymap.match_admin(secret) if admin_key else keymap.match(secret)
    if len(matches) != 1:
        return {}
    record = matches[0]
    plan = revocation(record)
    info: dict[str, Any] = {
        "key_id": record.id,
        "owner": record.owner,
        "revoke": plan.call,
        "revoke_command": plan.command,
    }
    if record.project_id:
        info["project_id"] = record.project_id
    if plan.also_removes:
        info["revoke_also_removes"] = plan.also_removes
    return info


def revoke(
    project: str | None, key_id: str, admin_key: bool, yes: bool, base_url: str | None
) -> int:
    """Revoke one key by the call its owner needs: a user's project key by the API-key
    delete; a service account's key by deleting the service account (the API refuses the
    key delete for it), which removes the account and every key it holds, so the prompt
    says so; an admin key (`--admin`) by the admin-key delete. The owner is looked up first."""
    from keysentry.rotate.policies import revocation_impact
    from keysentry.verify.spend import revocation

    if admin_key == (project is not None):
        raise InputError(
            "name the key's project (--project PROJECT_ID) for a project key, or "
            "pass --admin for an admin key"
        )
    admin = admin_client(settings(base_url))
    if admin is None:
        raise ConfigError("revoking needs an admin key: [verify].admin_key or OPENAI_ADMIN_KEY")
    record = _look_up(admin, project, key_id)
    plan = revocation(record)
    what = f"admin key {key_id}" if project is None else f"{key_id} of {project}"
    if plan.also_removes:
        print(
            f"keysentry: {key_id} belongs to a service account; the API revokes such a key "
            f"only by deleting its account. This deletes {plan.also_removes}.",
            file=sys.stderr,
        )
        what = f"{key_id} by deleting {plan.also_removes}"
    if not yes:
        if not sys.stdin or not sys.stdin.isatty():
            raise InputError("refusing to revoke without confirmation: pass --yes")
        answer = input(
            f"Revoke {what}? Applications using it stop working. Type 'revoke' to confirm: "
        )
        if answer.strip() != "revoke":
            print("keysentry: not revoked", file=sys.stderr)
            return int(ExitCode.FINDINGS)
    impact = revocation_impact(loader.current_config(), admin, record)  # before it is gone
    admin.call(lambda sdk: _delete(sdk, record))
    print(f"keysentry: revoked {what} ({plan.call})")
    for line in impact:
        print(escape_control(scrub(f"keysentry: {line}")))
    return int(ExitCode.CLEAN)


def _look_up(admin: Any, project: str | None, key_id: str) -> Any:
    """The key's record, owner included, from the Admin API (a 404 ends the command)."""
    from keysentry.verify.spend import KeyRecord

    if project is None:
        key = admin.call(lambda sdk: sdk.admin.organization.admin_api_keys.retrieve(key_id))
        owner_id = getattr(key.owner, "id", None) or ""
        return KeyRecord(
            key.id,
            "",
            key.name or "",
            key.redacted_value,
            key.created_at,
            key.last_used_at,
            "admin",
            owner_id,
        )
    key = admin.call(
        lambda sdk: sdk.admin.organization.projects.api_keys.retrieve(key_id, project_id=project)
    )
    owner = key.owner
    kind = getattr(owner, "type", None)
    detail = getattr(owner, kind, None) if kind in ("user", "service_account") else None
    if kind not in ("user", "service_account") or detail is None:
        raise KeysentryError(
            f"the Admin API names no owner for {key_id}: cannot tell which call revokes it"
        )
    return KeyRecord(
        key.id,
        project,
        key.name or "",
        key.redacted_value,
        key.created_at,
        key.last_used_at,
        kind,
        detail.id,
        detail.name or "",
    )


def _delete(sdk: Any, record: Any) -> Any:
    # Whole `sdk.…` chains: tests/test_openai_spec.py finds every call the product makes by them.
    if record.owner == "admin":
        return sdk.admin.organization.admin_api_keys.delete(record.id)
    if record.owner == "service_account":
        return sdk.admin.organization.projects.service_accounts.delete(
            record.owner_id, project_id=record.project_id
        )
    return sdk.admin.organization.projects.api_keys.delete(record.id, project_id=record.project_id)

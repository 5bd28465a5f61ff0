"""Rotation settings and key lifecycle policies, from keysentry.toml.

    [rotate]
    grace_seconds = 60                  # beyond the loader's [load].ttl_seconds
    name_template = "keysentry-{env}-{date}-{id}"
    poll_seconds = 60                   # --until-unused: how often last_used_at is read
    unused_window_seconds = 3600        # --until-unused: unused this long, then delete
    max_wait_seconds = 604800           # --until-unused: give up (resumable) after this

    [policies.production]               # [policies.default] for every other environment
    max_key_age_days = 90
    spend_limit = "required"            # required | recommended | off

The wait before the old key is deleted is the loader's cache TTL plus the grace: a loader
refreshes a cached value at most `ttl_seconds` after it read it (its jitter only shortens
that), so once the new key has been in the store that long every loader that can reach the
store holds it. Both numbers come from the same config file, so they cannot disagree.

Without a `spend_limit` setting, production (`production` or `prod`) requires a hard spend
limit and every other environment only recommends one (a warning).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, NamedTuple

from keysentry.config import Config
from keysentry.errors import ConfigError, KeysentryError
from keysentry.verify.isolation import PRODUCTION, Check
from keysentry.verify.spend import KeyRecord

DAY = 86400.0
SPEND_LIMIT_MODES = ("required", "recommended", "off")


class Settings(NamedTuple):
    ttl: float  # the loader's cache TTL ([load].ttl_seconds)
    grace: float = 60.0
    name_template: str = "keysentry-{env}-{date}-{id}"
    poll: float = 60.0
    unused_window: float = 3600.0
    max_wait: float = 7 * DAY

    @property
    def wait(self) -> float:
        """How long the new key must be in the store before the old one may go."""
        return self.ttl + self.grace


class Policy(NamedTuple):
    max_age_days: float | None
    spend_limit: str  # required | recommended | off


def _where(config: Config, section: str) -> str:
    return f"{config.path or 'keysentry config'}: [{section}]"


def _table(config: Config, section: str) -> Mapping[str, Any]:
    table = config.raw.get(section, {})
    if not isinstance(table, Mapping):
        raise ConfigError(f"{_where(config, section)} must be a table")
    return table


def _seconds(table: Mapping[str, Any], key: str, default: float, where: str) -> float:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ConfigError(f"{where}.{key} must be a number of seconds, got {value!r}")
    return float(value)


def settings(config: Config, grace: float | None = None) -> Settings:
    """The [rotate] settings, with the loader's TTL; `grace` overrides the configured one."""
    from keysentry.loader import load_settings

    table = _table(config, "rotate")
    where = _where(config, "rotate")
    # Unknown keys and wrong types were refused when the file was read (config.TABLES).
    defaults = Settings(ttl=0.0)
    template = table.get("name_template", defaults.name_template)
    if not isinstance(template, str) or not template.strip():
        raise ConfigError(
            f"{where}.name_template must be a name such as {defaults.name_template!r}"
        )
    try:
        template.format(env="e", date="d", id="i")
    except (KeyError, IndexError, ValueError):
        raise ConfigError(
            f"{where}.name_template may use {{env}}, {{date}} and {{id}} only, got {template!r}"
        ) from None
    poll = _seconds(table, "poll_seconds", defaults.poll, where)
    return Settings(
        ttl=load_settings(config)[0],
        grace=_seconds(table, "grace_seconds", defaults.grace, where) if grace is None else grace,
        name_template=template,
        poll=max(poll, 0.01),
        unused_window=_seconds(table, "unused_window_seconds", defaults.unused_window, where),
        max_wait=_seconds(table, "max_wait_seconds", defaults.max_wait, where),
    )


def policy(config: Config, env: str) -> Policy:
    """The environment's policy: [policies.<env>], else [policies.default], else defaults."""
    policies = _table(config, "policies")
    chosen: Any = policies.get(env, policies.get("default", {}))
    name = env if env in policies else "default"
    where = f"{config.path or 'keysentry config'}: [policies.{name}]"
    if not isinstance(chosen, Mapping):
        raise ConfigError(f"{where} must be a table")
    unknown = sorted(set(chosen) - {"max_key_age_days", "spend_limit"})
    if unknown:
        raise ConfigError(
            f"{where} has no setting {unknown[0]!r} (known: max_key_age_days, spend_limit)"
        )
    age = chosen.get("max_key_age_days")
    if age is not None and (isinstance(age, bool) or not isinstance(age, int | float) or age <= 0):
        raise ConfigError(f"{where}.max_key_age_days must be a number of days, got {age!r}")
    default_mode = "required" if env in PRODUCTION else "recommended"
    mode = chosen.get("spend_limit", default_mode)
    if mode not in SPEND_LIMIT_MODES:
        raise ConfigError(f"{where}.spend_limit takes {', '.join(SPEND_LIMIT_MODES)}, got {mode!r}")
    return Policy(float(age) if age is not None else None, str(mode))


def age_days(record: KeyRecord, now: float | None = None) -> float:
    return ((now or time.time()) - record.created_at) / DAY


def overdue(record: KeyRecord, rule: Policy, now: float | None = None) -> bool:
    return rule.max_age_days is not None and age_days(record, now) > rule.max_age_days


def age_check(env: str, record: KeyRecord, rule: Policy) -> Check:
    """The key's age against the environment's maximum (a failed check when over it)."""
    days = age_days(record)
    if rule.max_age_days is None:
        return Check(
            "key age policy",
            env,
            True,
            f"{days:.0f} days old; no maximum set ([policies.{env}].max_key_age_days)",
        )
    if days > rule.max_age_days:
        return Check(
            "key age policy",
            env,
            False,
            f"{days:.0f} days old, over the maximum of "
            f"{rule.max_age_days:.0f}: keysentry rotate --env {env}",
        )
    return Check(
        "key age policy",
        env,
        True,
        f"{days:.0f} days old, within the maximum of {rule.max_age_days:.0f}",
    )


def lifecycle_checks(
    config: Config,
    records: Mapping[str, list[KeyRecord]] | None,
    admin: Any | None,
    threshold: float | None,
) -> list[Check]:
    """For `keysentry verify`: each key's age against its policy, and each environment's
    project's hard spend limit (with the alert threshold beside it). Nothing without an
    admin key: the spend check already fails as unknown then."""
    from keysentry.verify.limits import limit_check

    if records is None or admin is None:
        return []
    checks = []
    for env, matches in sorted(records.items()):
        if len(matches) != 1:
            continue  # the spend check says why the key cannot be placed
        rule = policy(config, env)
        checks.append(age_check(env, matches[0], rule))
        checks.append(limit_check(admin, env, matches[0].project_id, rule.spend_limit, threshold))
    return checks


def revocation_impact(config: Config, admin: Any, record: KeyRecord) -> list[str]:
    """Before a key is revoked: which configured environments may break. Its own environment
    goes down; the environments whose key is in the same project are the
    applications most likely to have used it. Read before the delete, reported after."""
    import openai

    from keysentry.loader import DEFAULT_NAME, environments, load_key
    from keysentry.verify.spend import KeyMap

    if not record.project_id:
        return []
    try:
        keymap, table = KeyMap(admin), environments(config)
    except (KeysentryError, openai.APIError) as exc:
        return [f"could not tell which environments may break: {type(exc).__name__}"]
    own, same_project, unplaced = [], [], []
    for env, names in sorted(table.items()):
        if DEFAULT_NAME not in names:
            continue
        try:
            secret = load_key(DEFAULT_NAME, env=env)
        except KeysentryError:
            unplaced.append(env)
            continue
        matches = keymap.match(secret)
        if any(m.id == record.id for m in matches):
            own.append(env)
        elif len(matches) == 1 and matches[0].project_id == record.project_id:
            same_project.append(env)
        elif len(matches) != 1:
            unplaced.append(env)
    lines = [
        f"{env} used this key: it has no live key now; store a new key of {record.project_id} "
        f"(next time: keysentry rotate --env {env}, which deletes the old key last)"
        for env in own
    ]
    if same_project:
        lines.append(
            f"may break: {', '.join(same_project)} (their keys are in {record.project_id}, "
            "where applications may have used this one)"
        )
    elif not own:
        lines.append(f"no configured environment has its key in {record.project_id}")
    if unplaced:
        lines.append(f"could not tell for {', '.join(unplaced)} (key not loaded or not placed)")
    return lines

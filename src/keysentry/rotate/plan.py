"""What rotating one environment's key means: where the key lives, which key it is (the admin
listing: its id, project and owner), the new service account's name, and how long to wait.

A rotation needs a store that keeps the old value where a rollback can find it: a versioned
store (AWS Secrets Manager, Vault KV v2, Azure Key Vault: the old value's version is recorded)
or a .env file (the old value is kept in a second binding of the same file, NAME +
`__KEYSENTRY_PREVIOUS`, until the old key is deleted). A reference that pins a version or a
stage other than AWSCURRENT is refused: the loader would never see the new value.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import time
from pathlib import Path
from typing import Any, NamedTuple

from keysentry.config import Config
from keysentry.errors import ConfigError, KeysentryError
from keysentry.providers.base import SecretRef, parse_ref
from keysentry.rotate.policies import Settings
from keysentry.scanner.findings import fingerprint
from keysentry.secret import Secret
from keysentry.verify.spend import KeyMap

PREVIOUS_SUFFIX = "__KEYSENTRY_PREVIOUS"
ROTATABLE = ("dotenv", "aws-sm", "vault", "azure-kv")


class Target(NamedTuple):
    env: str
    name: str
    ref: SecretRef  # a relative .env path resolved beside the config


def target(config: Config, env: str, name: str) -> Target:
    """The environment's reference for `name`, checked to be one a rotation can write."""
    from keysentry.loader import environment

    where = f"{config.path or 'keysentry config'}: [environments.{env}].{name}"
    text = environment(config, env).get(name)
    if text is None:
        raise ConfigError(f"{where} is not set: nothing to rotate")
    ref = parse_ref(text, where)
    if ref.scheme not in ROTATABLE or (ref.scheme == "vault" and ref.option("kv") == "1"):
        raise ConfigError(
            f"{where}: {ref.scheme}:// cannot be rotated (a rotation needs a store that keeps "
            "the old version for a rollback: aws-sm, vault KV v2, azure-kv, or a .env file)"
        )
    pinned = [o for o in ("version", "version-id") if ref.option(o)]
    if pinned or (ref.scheme == "aws-sm" and ref.option("stage", "AWSCURRENT") != "AWSCURRENT"):
        raise ConfigError(
            f"{where}: the reference pins a version or stage, so loaders would "
            "never see a new one: point it at the latest version"
        )
    return Target(env, name, located(config, ref))


def located(config: Config, ref: SecretRef) -> SecretRef:
    """A relative `.env` path is beside the config (where the loader reads it from)."""
    if ref.scheme == "dotenv" and not os.path.isabs(ref.location):
        base = config.path.parent if config.path is not None else Path.cwd()
        return ref._replace(location=str(base / ref.location))
    return ref


def ref_data(ref: SecretRef) -> dict[str, Any]:
    return {
        "scheme": ref.scheme,
        "location": ref.location,
        "field": ref.field,
        "options": dict(ref.options),
    }


def ref_of(data: dict[str, Any]) -> SecretRef:
    return SecretRef(data["scheme"], data["location"], data["field"], dict(data["options"]))


def previous_ref(ref: SecretRef, version: str | None) -> SecretRef:
    """Where the old value stays readable once the new one is current."""
    if ref.scheme == "dotenv":
        return ref._replace(field=f"{ref.field}{PREVIOUS_SUFFIX}")
    if version is None:
        raise KeysentryError(f"{ref}: the store named no version for the old value")
    option = "version-id" if ref.scheme == "aws-sm" else "version"
    return ref._replace(options={**ref.options, option: version})


def account_name(settings: Settings, env: str, rotation_id: str, now: float) -> str:
    """The new service account's name: the template, with the rotation's id added when the
    template has none, so a crash between creating it and recording it can find it."""
    date = dt.datetime.fromtimestamp(now, dt.timezone.utc).strftime("%Y-%m-%d")
    template = settings.name_template
    if "{id}" not in template:
        template += "-{id}"
    return template.format(env=env, date=date, id=rotation_id)


def make(
    chosen: Target,
    current: Secret,
    version: str | None,
    keymap: KeyMap,
    settings: Settings,
    until_unused: bool,
) -> dict[str, Any]:
    """The journal's first content: everything the steps need, no key."""
    matches = keymap.match(current)
    where = f"{chosen.env}'s {chosen.name} ({current.redacted})"
    if len(matches) != 1:
        what = "matches no key" if not matches else f"matches {len(matches)} keys"
        raise KeysentryError(
            f"{where}: the admin listing {what}, so its project cannot be told: rotate it by hand"
        )
    record = matches[0]
    if record.owner not in ("user", "service_account") or not record.project_id:
        raise KeysentryError(
            f"{where}: the admin listing names no owner ({record.owner}) for "
            f"{record.id}: cannot tell how to retire it"
        )
    now = time.time()
    rotation_id = secrets.token_hex(3)
    return {
        "version": 1,
        "env": chosen.env,
        "name": chosen.name,
        "ref": ref_data(chosen.ref),
        "id": rotation_id,
        "started": now,
        "old": {
            "fingerprint": fingerprint(current.reveal()),
            "redacted": current.redacted,
            "version": version,
            "key_id": record.id,
            "project_id": record.project_id,
            "owner": record.owner,
            "owner_id": record.owner_id,
            "created_at": record.created_at,
        },
        "new": {"account_name": account_name(settings, chosen.env, rotation_id, now)},
        "settings": {
            "ttl": settings.ttl,
            "grace": settings.grace,
            "poll": settings.poll,
            "unused_window": settings.unused_window,
            "max_wait": settings.max_wait,
            "until_unused": until_unused,
        },
    }


def describe(data: dict[str, Any]) -> list[str]:
    """The plan, one redacted line per step."""
    old, new, wait = data["old"], data["new"], data["settings"]
    ref = ref_of(data["ref"])
    retire = (
        f"DELETE …/projects/{old['project_id']}/api_keys/{old['key_id']}"
        if old["owner"] == "user"
        else f"DELETE …/projects/{old['project_id']}/service_accounts/{old['owner_id']} "
        "(a service account's key goes with its account)"
    )
    if wait["until_unused"]:
        waiting = (
            f"wait until the old key's last_used_at has not moved for "
            f"{wait['unused_window']:.0f} s (polled every {wait['poll']:.0f} s, at most "
            f"{wait['max_wait']:.0f} s)"
        )
    else:
        waiting = (
            f"wait {wait['ttl'] + wait['grace']:.0f} s: the loader's TTL {wait['ttl']:.0f} s "
            f"+ grace {wait['grace']:.0f} s"
        )
    return [
        f"old key {old['redacted']} ({old['key_id']}, {old['owner']}) in {old['project_id']}, "
        f"stored at {ref}",
        f"create service account {new['account_name']} in {old['project_id']}, with a new key",
        f"prove it live (GET /v1/models) and in {old['project_id']}",
        f"store it as a new version of {ref}, and read it back",
        waiting,
        f"retire the old key: {retire}",
    ]

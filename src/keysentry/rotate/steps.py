"""The rotation's steps, each recorded in the journal before the next, and resume and rollback.

    planned          the journal: the old key's fingerprint, id, project, owner, version
    create requested a service account is about to be created (its name is unique: the
                     rotation's id is in it, so a crash before `created` can find it)
    created          the account and its key's id and fingerprint; the key's value, which the
                     API answers only once, is in this process's memory only
    proven           the new key is live (GET /v1/models) and in the old key's project
    previous kept    (.env files) the old value kept in a second binding, for a rollback
    stored           the new key is the store's current version
    verified         read back from the store: the same key
    waited           the loader's TTL + grace, or the old key unused for a window
    retired          the old key deleted (a service account's key: its account)

Invariant: the store always holds a live key. Until `stored` it holds the old key, which is
not touched; from `stored` on it holds the new key, proven live first, and the old key is
deleted only after the store is read once more and the new key proven live again.

Resume after a crash: before `stored` the new key's value is lost with the process, so its
account is deleted (it holds a key nobody has) and a new one is made; a crash between the
store's write and its record is told by the store holding the new key's fingerprint. Rollback
(refused once the old key is deleted): the old value back from its version (or the kept
binding), read back, then, after the same wait (loaders may hold the new key), the new
account deleted.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

from keysentry.errors import InputError, KeysentryError, SecretConflict
from keysentry.providers.base import Provider, SecretRef
from keysentry.rotate.journal import RotationJournal, discard
from keysentry.rotate.plan import previous_ref, ref_of
from keysentry.scanner.findings import fingerprint
from keysentry.secret import Secret
from keysentry.verify.client import ApiClient

Report = Callable[[str], None]
PROVE_DELAYS = (1.0, 2.0, 4.0, 8.0)  # a new key may take a moment to be accepted everywhere
CREATED_SLACK = 300  # seconds: an account created this long before the rotation began is not ours


class Rotation:
    """One environment's rotation: its journal, the admin client, and the new key while this
    process has it."""

    def __init__(
        self,
        journal: RotationJournal,
        admin: ApiClient,
        report: Report,
        *,
        base_url: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        from keysentry.providers import provider_for

        self.journal = journal
        self.data = journal.data
        self.admin = admin
        self.base_url = base_url
        self.ref: SecretRef = ref_of(self.data["ref"])
        self.provider: Provider = provider_for(self.ref.scheme)
        self.new_key: Secret | None = None
        self._report = report
        self._sleep = sleep

    @property
    def env(self) -> str:
        return str(self.data["env"])

    @property
    def old(self) -> dict[str, Any]:
        return dict(self.data["old"])

    @property
    def new(self) -> dict[str, Any]:
        return dict(self.data["new"])

    @property
    def project(self) -> str:
        return str(self.data["old"]["project_id"])

    def say(self, line: str) -> None:
        self._report(f"rotate {self.env}: {line}")

    def stored_print(self) -> str:
        """The fingerprint of what the store holds now (read fresh, never from a cache)."""
        return fingerprint(self.provider.get(self.ref).secret.reveal())

    def forget(self, *steps: str) -> None:
        self.data["steps"] = [s for s in self.data["steps"] if s not in steps]
        self.journal.save()


def advance(r: Rotation) -> None:
    """Run every step not yet recorded, then discard the journal."""
    j = r.journal
    if not j.has("stored"):
        current = r.stored_print()
        if current == r.new.get("fingerprint"):  # stored, then the process died
            r.data["stored_at"] = time.time()  # later than the write: only a longer wait
            j.record("stored")
        elif current != r.old["fingerprint"]:
            raise SecretConflict(
                f"{r.ref}: the store holds neither the old key nor the new one: "
                "someone changed it during the rotation"
            )
        else:
            if r.new_key is None and j.has("create requested"):
                remove_new_accounts(r, "its key's value was lost with the interrupted process")
                r.forget("create requested", "created", "proven", "previous kept")
                r.data["new"] = {"account_name": r.new["account_name"]}
            if r.new_key is None:
                create(r)
            prove(r)
            store(r)
    if not j.has("verified"):
        read_back(r)
    if not j.has("waited"):
        wait(r)
    if not j.has("retired"):
        retire(r)
    finish(r)


def create(r: Rotation) -> None:
    r.journal.record("create requested")
    name = r.new["account_name"]
    account = r.admin.call(
        lambda sdk: sdk.admin.organization.projects.service_accounts.create(r.project, name=name)
    )
    r.data["new"].update({"account_id": account.id})
    key = getattr(account, "api_key", None)
    if key is None or not getattr(key, "value", None):
        r.journal.save()  # so a rollback deletes the account
        raise KeysentryError(f"the API created service account {account.id} without a key")
    r.new_key = Secret(key.value)
    r.data["new"].update(
        {"key_id": key.id, "fingerprint": fingerprint(key.value), "redacted": r.new_key.redacted}
    )
    r.journal.record("created")
    r.say(
        f"created service account {account.id} ({name}) in {r.project} with key {key.id} "
        f"({r.new_key.redacted})"
    )
    remove_new_accounts(r, "a duplicate left by a retried request", keep=account.id)


def prove(r: Rotation) -> None:
    """The new key is live and belongs to the old key's project: by the `openai-project`
    header when the API sends it, and always by the admin listing of that project."""
    from keysentry.verify.liveness import check
    from keysentry.verify.spend import redacted_match

    assert r.new_key is not None
    verdict = check(r.new_key, base_url=r.base_url)
    for delay in PROVE_DELAYS:
        if verdict.status.is_live:
            break
        r._sleep(delay)
        verdict = check(r.new_key, base_url=r.base_url)
    if not verdict.status.is_live:
        raise KeysentryError(
            f"the new key {r.new_key.redacted} is not live ({verdict.status.value}: "
            f"{verdict.detail}); the store still holds the old key"
        )
    if verdict.project is not None and verdict.project != r.project:
        raise KeysentryError(
            f"the new key answers for {verdict.project}, not {r.project}; the "
            "store still holds the old key"
        )
    key_id = r.new["key_id"]
    listed = r.admin.call(
        lambda sdk: sdk.admin.organization.projects.api_keys.retrieve(key_id, project_id=r.project)
    )
    if not redacted_match(listed.redacted_value, r.new_key.reveal()):
        raise KeysentryError(f"{key_id} in {r.project} is not the key the API answered")
    r.journal.record("proven")
    r.say(f"proved {r.new_key.redacted} live and in {r.project}")


def store(r: Rotation) -> None:
    assert r.new_key is not None
    tags = {"managed-by": "keysentry", "environment": r.env}
    if r.ref.scheme == "dotenv" and not r.journal.has("previous kept"):
        old = r.provider.get(r.ref).secret
        r.provider.put(previous_ref(r.ref, None), old.reveal(), tags=tags, overwrite=True)
        r.journal.record("previous kept")
        r.say(f"kept the old value as {previous_ref(r.ref, None).field} for a rollback")
    stored = r.provider.put(r.ref, r.new_key.reveal(), tags=tags, overwrite=True)
    r.data["new"]["version"] = stored.version
    r.data["stored_at"] = time.time()
    r.journal.record("stored")
    version = f" (version {stored.version})" if stored.version else ""
    r.say(f"stored {r.new_key.redacted} at {r.ref}{version}")


def read_back(r: Rotation) -> None:
    fetched = r.provider.get(r.ref)
    if fingerprint(fetched.secret.reveal()) != r.new.get("fingerprint"):
        raise SecretConflict(f"{r.ref}: reading it back gave another key; the old key is kept")
    r.new_key = fetched.secret
    r.journal.record("verified")
    r.say(f"read back {fetched.secret.redacted} from {fetched.source}{_stages(r)}")


def _stages(r: Rotation) -> str:
    """For AWS: which versions carry AWSCURRENT and AWSPREVIOUS now."""
    if r.ref.scheme != "aws-sm":
        return ""
    versions: Any = r.provider.describe(r.ref).get("versions", {})
    labels = {stage: vid for vid, stages in versions.items() for stage in stages}
    return "".join(f"; {s} {labels[s]}" for s in ("AWSCURRENT", "AWSPREVIOUS") if s in labels)


def wait(r: Rotation) -> None:
    settings = r.data["settings"]
    if settings["until_unused"]:
        wait_until_unused(r)
    else:
        until = float(r.data["stored_at"]) + settings["ttl"] + settings["grace"]
        left = until - time.time()
        if left > 0:
            r.say(
                f"waiting {left:.0f} s for loaders to move (TTL {settings['ttl']:.0f} s + grace "
                f"{settings['grace']:.0f} s)"
            )
            _sleep_until(r, until)
    r.journal.record("waited")


def _sleep_until(r: Rotation, until: float) -> None:
    while (left := until - time.time()) > 0:
        r._sleep(min(left, 5.0))


def wait_until_unused(r: Rotation) -> None:
    """Poll the old key's last_used_at until it has not moved for the window."""
    settings = r.data["settings"]
    started = time.time()
    seen = _last_used(r)
    still_since = started
    r.say(
        f"waiting until {r.old['key_id']} is unused for {settings['unused_window']:.0f} s "
        f"(last used {_when(seen)})"
    )
    while time.time() - still_since < settings["unused_window"]:
        if time.time() - started > settings["max_wait"]:
            raise KeysentryError(
                f"{r.old['key_id']} is still in use after {settings['max_wait']:.0f} s (last used "
                f"{_when(seen)}): find what still uses it, then keysentry rotate --resume --env "
                f"{r.env} (or --rollback)"
            )
        r._sleep(
            min(settings["poll"], max(0.0, settings["unused_window"] - (time.time() - still_since)))
        )
        now_seen = _last_used(r)
        if now_seen != seen:
            seen, still_since = now_seen, time.time()
            r.say(f"{r.old['key_id']} was used at {_when(seen)}: still waiting")


def _last_used(r: Rotation) -> int | None:
    key_id = r.old["key_id"]
    listed = r.admin.call(
        lambda sdk: sdk.admin.organization.projects.api_keys.retrieve(key_id, project_id=r.project)
    )
    value = listed.last_used_at
    return int(value) if value is not None else None


def _when(stamp: int | None) -> str:
    if stamp is None:
        return "never"
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(stamp))


def retire(r: Rotation) -> None:
    """Delete the old key, once the store is read again and its key proven live again."""
    import openai

    from keysentry.verify.liveness import check

    current = r.provider.get(r.ref).secret
    if fingerprint(current.reveal()) != r.new["fingerprint"]:
        raise SecretConflict(
            f"{r.ref}: the store no longer holds the new key: the old key is not deleted"
        )
    verdict = check(current, base_url=r.base_url)
    if not verdict.status.is_live:
        raise KeysentryError(
            f"the stored key {current.redacted} is not live ({verdict.status.value}): the old "
            "key is not deleted"
        )
    old = r.old
    try:
        if old["owner"] == "user":
            r.admin.call(
                lambda sdk: sdk.admin.organization.projects.api_keys.delete(
                    old["key_id"], project_id=r.project
                )
            )
            what = f"deleted {old['key_id']} ({old['redacted']})"
        else:
            _refuse_a_shared_account(r)
            r.admin.call(
                lambda sdk: sdk.admin.organization.projects.service_accounts.delete(
                    old["owner_id"], project_id=r.project
                )
            )
            what = (
                f"deleted service account {old['owner_id']} and its key {old['key_id']} "
                f"({old['redacted']})"
            )
    except openai.NotFoundError:
        what = f"{old['key_id']} was already deleted"
    r.journal.record("retired")
    r.say(what)


def _refuse_a_shared_account(r: Rotation) -> None:
    """A service account's key goes only with its account: never when the account holds
    another key, which something else may use."""
    from keysentry.verify.spend import KeyMap

    old = r.old
    others = [
        rec.id
        for rec in KeyMap(r.admin).records
        if rec.owner_id == old["owner_id"] and rec.id != old["key_id"]
    ]
    if others:
        raise KeysentryError(
            f"the old key's service account {old['owner_id']} also holds {', '.join(others)}: "
            "deleting it would revoke those too; delete the old key by hand, then "
            f"keysentry rotate --resume --env {r.env}"
        )


def finish(r: Rotation) -> None:
    _drop_previous(r)
    discard(r.journal)
    r.say(f"done: {r.new.get('redacted', 'the new key')} is the only key of {r.env}")


def _drop_previous(r: Rotation) -> None:
    if r.ref.scheme == "dotenv":
        from keysentry.providers import dotenv

        dotenv.remove(previous_ref(r.ref, None))


def remove_new_accounts(r: Rotation, why: str, keep: str | None = None) -> None:
    """Delete the service accounts this rotation made (by id, and by its unique name), except
    `keep`: after a crash, the one whose key's value is gone; after a retried create, a
    duplicate."""
    import openai

    name, started = r.new["account_name"], float(r.data["started"])
    known = r.new.get("account_id")
    found = {
        a.id for a in _accounts(r) if a.name == name and a.created_at >= started - CREATED_SLACK
    }
    if known:
        found.add(known)
    for account_id in sorted(found - {keep}):
        try:
            r.admin.call(
                functools.partial(_delete_account, account_id=account_id, project=r.project)
            )
        except openai.NotFoundError:
            continue
        r.say(f"deleted service account {account_id} ({why})")


def _delete_account(sdk: Any, account_id: str, project: str) -> Any:
    return sdk.admin.organization.projects.service_accounts.delete(account_id, project_id=project)


def _list_accounts(sdk: Any, project: str, after: Any) -> Any:
    return sdk.admin.organization.projects.service_accounts.list(project, limit=100, after=after)


def _accounts(r: Rotation) -> list[Any]:
    import openai

    accounts: list[Any] = []
    after: Any = openai.omit
    while True:
        page = r.admin.call(functools.partial(_list_accounts, project=r.project, after=after))
        accounts += page.data
        if not page.has_more or not page.data:
            return accounts
        after = page.data[-1].id


def rollback(r: Rotation) -> None:
    """Put the old key back and delete the new one; refused once the old key is deleted."""
    j = r.journal
    if j.has("retired"):
        raise InputError(
            f"the old key of {r.env} is already deleted: there is nothing to roll "
            "back to (the new key stays); run keysentry rotate --resume"
        )
    current = r.stored_print()
    if current == r.new.get("fingerprint"):
        restore_old(r)
    elif current != r.old["fingerprint"]:
        raise SecretConflict(
            f"{r.ref}: the store holds neither the old key nor the new one: nothing is changed"
        )
    if j.has("restored"):  # loaders may have picked the new key up: let them move back first
        settings = r.data["settings"]
        until = float(r.data["restored_at"]) + settings["ttl"] + settings["grace"]
        if until > time.time():
            r.say(f"waiting {until - time.time():.0f} s for loaders to move back")
            _sleep_until(r, until)
    if j.has("create requested"):
        remove_new_accounts(r, "rolled back")
    _drop_previous(r)
    discard(j)
    r.say(f"rolled back: {r.old['redacted']} is the key of {r.env}, as before")


def restore_old(r: Rotation) -> None:
    previous = previous_ref(r.ref, r.old["version"])
    old = r.provider.get(previous).secret
    if fingerprint(old.reveal()) != r.old["fingerprint"]:
        raise SecretConflict(f"{previous}: holds another key than the old one: nothing is changed")
    tags = {"managed-by": "keysentry", "environment": r.env}
    r.provider.put(r.ref, old.reveal(), tags=tags, overwrite=True)
    if r.stored_print() != r.old["fingerprint"]:
        raise SecretConflict(f"{r.ref}: reading it back gave another key than the old one")
    r.data["restored_at"] = time.time()
    r.journal.record("restored")
    r.say(f"restored {old.redacted} at {r.ref}")

"""Which key id and project a key is (the Admin API's listings), and what it has spent.

Mapping: every project (archived included) and every project API key (`owner_project_access
=any`, or some enabled keys stay hidden), paginated; admin keys from the admin-key listing. A
key matches a listing when its `redacted_value` prefix and suffix agree, and, in the
full-length asterisk form real listings use, its length too (the spec's short form
`sk-admin...def` carries no length). Zero or several matches are reported as such: never
guessed.

Revocation depends on who owns the key (`revocation`): a user's project key goes by the
API-key delete; a service account's key cannot (the spec: that delete is an error for it), it
goes by deleting the service account, with every key it holds; an admin key by the admin-key
delete.

Spend, month to date (or since a date), most exact first:
1. costs grouped by `api_key_id` and filtered to this key (in the spec; the live API answered
   400 in July 2026), counting only results whose `api_key_id` is this key's id,
2. the project's costs, exact when the key is the only one in its project,
3. usage tokens times a versioned price table, marked as an estimate.
A grouped answer with results that name no key (or no project) cannot be attributed: the next
method is used instead of a total that may belong to someone else.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

from keysentry.safety import escape_control, scrub
from keysentry.secret import Secret
from keysentry.verify.client import ApiClient

# USD per million tokens (input, output). An estimate only: batch, cached and flex prices
# differ, and usage does not reconcile exactly with costs.
PRICES_VERSION = "2026-11"
PRICES = {
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "o3": (2.00, 8.00),
    "o4-mini": (1.10, 4.40),
}
_FALLBACK_PRICE = PRICES["gpt-4o"]


class KeyRecord(NamedTuple):
    id: str
    project_id: str  # "" for admin keys, which belong to the organization
    name: str
    redacted_value: str
    created_at: int
    last_used_at: int | None
    owner: str  # user, service_account or admin
    owner_id: str = ""  # user_… or the service account's id; "" when the listing has none
    owner_name: str = ""


class Revocation(NamedTuple):
    """How to revoke one key: the Admin API call, the keysentry command that makes it, and
    what else goes with it ("" when nothing)."""

    call: str
    command: str
    also_removes: str


def revocation(record: KeyRecord) -> Revocation:
    """The call that revokes this key, chosen by its owner (see the module docstring).
    A service-account key without a known account id cannot be revoked by a call we can
    name: the command then looks the owner up itself."""
    command = f"keysentry revoke --project {record.project_id} --key-id {record.id}"
    if record.owner == "admin":
        return Revocation(
            f"DELETE /v1/organization/admin_api_keys/{record.id}",
            f"keysentry revoke --admin --key-id {record.id}",
            "",
        )
    if record.owner == "service_account":
        base = f"DELETE /v1/organization/projects/{record.project_id}/service_accounts/"
        # The account's name is the API's text: shown without keys, escaped, as one line.
        name = f" ({escape_control(scrub(record.owner_name))[:80]})" if record.owner_name else ""
        account = record.owner_id or "<its service account>"
        return Revocation(
            base + account, command, f"service account {account}{name} and every key it holds"
        )
    call = f"DELETE /v1/organization/projects/{record.project_id}/api_keys/{record.id}"
    return Revocation(call, command, "")


class Spend(NamedTuple):
    usd: float | None
    method: str  # per-key costs | project costs | estimate | unavailable
    detail: str


def month_start(now: dt.datetime | None = None) -> int:
    now = now or dt.datetime.now(dt.timezone.utc)
    return int(dt.datetime(now.year, now.month, 1, tzinfo=dt.timezone.utc).timestamp())


def redacted_match(redacted: str, secret: str) -> bool:
    """Whether a listing's `redacted_value` can be `secret`.

    Two forms: full-length asterisks (`sk-proj-` + `*`… + `abcd`, seen in real listings) and
    the spec's short form (`sk-admin...def`). Both need the same prefix and suffix, each at
    least one character (a value that shows nothing matches nothing); the asterisk form also
    needs the same length, the short form cannot tell it."""
    parts = re.split(r"\*+|\.\.\.", redacted)
    if len(parts) < 2:
        return redacted == secret
    prefix, suffix = parts[0], parts[-1]
    if not prefix or not suffix or len(prefix) + len(suffix) > len(secret):
        return False
    if not (secret.startswith(prefix) and secret.endswith(suffix)):
        return False
    return "..." in redacted or len(redacted) == len(secret)


def _pages(client: ApiClient, fetch: Callable[..., Any]) -> Iterator[Any]:
    """Every item of a cursor-paginated listing, each page through the retrying client;
    `fetch(sdk, after=...)` asks for one page."""
    after: Any = _omit()
    while True:
        page = client.call(functools.partial(fetch, after=after))
        yield from page.data
        if not page.has_more or not page.data:
            return
        after = page.data[-1].id


def _list_projects(sdk: Any, after: Any) -> Any:
    return sdk.admin.organization.projects.list(limit=100, include_archived=True, after=after)


def _list_keys(sdk: Any, after: Any, project: str) -> Any:
    return sdk.admin.organization.projects.api_keys.list(
        project, limit=100, owner_project_access="any", after=after
    )


def _list_admin_keys(sdk: Any, after: Any) -> Any:
    return sdk.admin.organization.admin_api_keys.list(limit=100, after=after)


def _owner(key: Any) -> tuple[str, str, str]:
    """(type, id, name) of a project key's owner; the type is "unknown" when the listing
    names none, so that no revocation call is guessed for it."""
    owner = getattr(key, "owner", None)
    kind = getattr(owner, "type", None) or "unknown"
    detail = getattr(owner, kind, None) if kind in ("user", "service_account") else None
    return kind, getattr(detail, "id", None) or "", getattr(detail, "name", None) or ""


class KeyMap:
    def __init__(self, admin: ApiClient) -> None:
        self._admin = admin
        self._admin_records: list[KeyRecord] | None = None
        self.records: list[KeyRecord] = []
        for project in _pages(admin, _list_projects):
            for key in _pages(admin, functools.partial(_list_keys, project=project.id)):
                kind, owner_id, owner_name = _owner(key)
                self.records.append(
                    KeyRecord(
                        key.id,
                        project.id,
                        key.name or "",
                        key.redacted_value,
                        key.created_at,
                        key.last_used_at,
                        kind,
                        owner_id,
                        owner_name,
                    )
                )

    def match(self, secret: Secret) -> list[KeyRecord]:
        """The project keys `secret` can be."""
        return [r for r in self.records if redacted_match(r.redacted_value, secret.reveal())]

    def match_admin(self, secret: Secret) -> list[KeyRecord]:
        """The admin keys `secret` can be (the admin-key listing, fetched on first use)."""
        if self._admin_records is None:
            self._admin_records = [
                KeyRecord(
                    key.id,
                    "",
                    key.name or "",
                    key.redacted_value,
                    key.created_at,
                    key.last_used_at,
                    "admin",
                    getattr(key.owner, "id", None) or "",
                    getattr(key.owner, "name", None) or "",
                )
                for key in _pages(self._admin, _list_admin_keys)
            ]
        return [r for r in self._admin_records if redacted_match(r.redacted_value, secret.reveal())]

    def keys_in(self, project_id: str) -> int:
        return sum(1 for r in self.records if r.project_id == project_id)


def spend(admin: ApiClient, record: KeyRecord, keys_in_project: int, since: int) -> Spend:
    import openai

    try:
        total = _cost_total(
            admin,
            "api_key_id",
            record.id,
            start_time=since,
            group_by=["api_key_id"],
            api_key_ids=[record.id],
        )
    except openai.BadRequestError:
        total = None  # per-key costs are in the spec but were refused live: fall back
    if total is not None:
        return Spend(total, "per-key costs", f"costs of {record.id}")
    if keys_in_project == 1:
        total = _cost_total(
            admin,
            "project_id",
            record.project_id,
            start_time=since,
            group_by=["project_id"],
            project_ids=[record.project_id],
        )
        if total is not None:
            return Spend(total, "project costs", f"{record.project_id} holds only this key")
    estimate = 0.0
    buckets = _buckets(
        admin,
        _usage_page,
        start_time=since,
        api_key_ids=[record.id],
        group_by=["model"],
        bucket_width="1d",
        limit=31,
    )
    for bucket in buckets:
        for result in bucket.results:
            price_in, price_out = PRICES.get(result.model or "", _FALLBACK_PRICE)
            estimate += (result.input_tokens * price_in + result.output_tokens * price_out) / 1e6
    detail = (
        f"usage tokens x prices {PRICES_VERSION}; {record.project_id} has {keys_in_project} keys"
    )
    return Spend(round(estimate, 4), "estimate", detail)


def _omit() -> Any:
    """The SDK's "leave this parameter out" marker."""
    import openai

    return openai.omit


def _costs_page(sdk: Any, page: Any, **query: Any) -> Any:
    return sdk.admin.organization.usage.costs(limit=180, page=page, **query)


def _usage_page(sdk: Any, page: Any, **query: Any) -> Any:
    return sdk.admin.organization.usage.completions(page=page, **query)


def _buckets(admin: ApiClient, fetch: Callable[..., Any], **query: Any) -> Iterator[Any]:
    """Every bucket of a usage or costs report, following `next_page`."""
    page: Any = _omit()
    while True:
        response = admin.call(functools.partial(fetch, page=page, **query))
        yield from response.data
        if not response.has_more:
            return
        page = response.next_page


def _cost_total(admin: ApiClient, field: str, wanted: str, **query: Any) -> float | None:
    """The costs of the results whose `field` (`api_key_id`, `project_id`) is `wanted`,
    across every bucket and page; results of other keys or projects, which the API may return
    beside the ones asked for, are not counted. None when a result with an amount names no
    `field` at all: the API did not group as asked, and its total cannot be attributed."""
    total = 0.0
    for bucket in _buckets(admin, _costs_page, **query):
        for result in bucket.results:
            if not result.amount:
                continue
            owner = getattr(result, field, None)
            if owner is None:
                return None
            if owner == wanted:
                total += float(result.amount.value)
    return round(total, 6)

"""Which key id and project a key is (the Admin API's listings), and what it has spent.

Mapping: every project (archived included) and every project API key (`owner_project_access
=any`, or some enabled keys stay hidden), paginated; a key matches a listing when its
`redacted_value` prefix, suffix (and, for the asterisk form, length) agree. Zero or several
matches are reported as such: never guessed.

Spend, month to date (or since a date), most exact first:
1. costs grouped by `api_key_id` (in the spec; the live API answered 400 in July 2026),
2. the project's costs, exact when the key is the only one in its project,
3. usage tokens times a versioned price table, marked as an estimate.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

from keysentry.secret import Secret
from keysentry.verify.client import ApiClient

# USD per million tokens (input, output). An estimate only: batch, cached and flex prices
# differ, and usage does not reconcile exactly with costs.
PRICES_VERSION = "2026-11"
PRICES = {"gpt-4o": (2.50, 10.00), "gpt-4o-mini": (0.15, 0.60), "gpt-4.1": (2.00, 8.00),
          "gpt-4.1-mini": (0.40, 1.60), "o3": (2.00, 8.00), "o4-mini": (1.10, 4.40)}  # fmt: skip
_FALLBACK_PRICE = PRICES["gpt-4o"]


class KeyRecord(NamedTuple):
    id: str
    project_id: str
    name: str
    redacted_value: str
    created_at: int
    last_used_at: int | None
    owner: str  # user or service_account


class Spend(NamedTuple):
    usd: float | None
    method: str  # per-key costs | project costs | estimate | unavailable
    detail: str


def month_start(now: dt.datetime | None = None) -> int:
    now = now or dt.datetime.now(dt.timezone.utc)
    return int(dt.datetime(now.year, now.month, 1, tzinfo=dt.timezone.utc).timestamp())


def redacted_match(redacted: str, secret: str) -> bool:
    """Whether a listing's `redacted_value` (`sk-proj-****…abcd` or `sk-abc...wxyz`) can be
    `secret`: same prefix and suffix; for the asterisk form, the same length too."""
    parts = re.split(r"\*+|\.\.\.", redacted)
    if len(parts) < 2:
        return redacted == secret
    prefix, suffix = parts[0], parts[-1]
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


class KeyMap:
    def __init__(self, admin: ApiClient) -> None:
        self.records: list[KeyRecord] = []
        for project in _pages(admin, _list_projects):
            for key in _pages(admin, functools.partial(_list_keys, project=project.id)):
                owner = key.owner.type if key.owner else "user"
                self.records.append(KeyRecord(key.id, project.id, key.name or "",
                                              key.redacted_value, key.created_at,
                                              key.last_used_at, owner or "user"))  # fmt: skip

    def match(self, secret: Secret) -> list[KeyRecord]:
        return [r for r in self.records if redacted_match(r.redacted_value, secret.reveal())]

    def keys_in(self, project_id: str) -> int:
        return sum(1 for r in self.records if r.project_id == project_id)


def spend(admin: ApiClient, record: KeyRecord, keys_in_project: int, since: int) -> Spend:
    import openai

    try:
        total = _cost_total(admin, start_time=since, group_by=["api_key_id"],
                            api_key_ids=[record.id])  # fmt: skip
        return Spend(total, "per-key costs", f"costs of {record.id}")
    except openai.BadRequestError:
        pass  # per-key costs are in the spec but refused live: fall back
    if keys_in_project == 1:
        total = _cost_total(admin, start_time=since, group_by=["project_id"],
                            project_ids=[record.project_id])  # fmt: skip
        return Spend(total, "project costs", f"{record.project_id} holds only this key")
    estimate = 0.0
    buckets = _buckets(admin, _usage_page, start_time=since, api_key_ids=[record.id],
                       group_by=["model"], bucket_width="1d", limit=31)  # fmt: skip
    for bucket in buckets:
        for result in bucket.results:
            price_in, price_out = PRICES.get(result.model or "", _FALLBACK_PRICE)
            estimate += (result.input_tokens * price_in + result.output_tokens * price_out) / 1e6
    detail = (f"usage tokens x prices {PRICES_VERSION}; {record.project_id} has "
              f"{keys_in_project} keys")  # fmt: skip
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


def _cost_total(admin: ApiClient, **query: Any) -> float:
    buckets = _buckets(admin, _costs_page, **query)
    return round(sum(float(r.amount.value) for b in buckets for r in b.results if r.amount), 6)

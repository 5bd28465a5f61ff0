"""Is a key live? One unbilled call per distinct key, classified by status, code and body.

`GET /models` for project, service-account and user keys; `GET /organization/admin_api_keys`
for admin keys (they have no `api.model.read`). A 401 is not always a dead key: a restricted
key missing a scope gets 401 with `code: null` and "Missing scopes", and is live.

What the verdicts lean on that OpenAI's OpenAPI document does not define, and what happens
without it (each absence is a test in tests/test_verify.py):
- the `invalid_api_key` code: only it (or an account "deactivated" message) makes a 401 a dead
  key; a 401 without it may be an IP allow-list or an organization refusing a live key, so the
  verdict is unknown;
- the `mismatched_project` code: without it, that 401 is unknown as well, never invalid;
- the billing codes (`insufficient_quota` and kin, as `code` or `type`): without them a 429 is
  a rate limit, retried, then unknown;
- the `openai-project` header on `/models`: the verdict's project, or "project unknown";
- `x-request-id`: the verdict's request id, or None (reports say "unknown").
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

from keysentry.safety import escape_control, scrub
from keysentry.scanner.findings import fingerprint
from keysentry.secret import Secret
from keysentry.verify.client import (
    BILLING_CODES,
    ApiClient,
    CircuitOpen,
    error_code,
    error_message,
    unreachable,
)


class Status(str, enum.Enum):
    LIVE = "live"
    LIVE_RESTRICTED = "live-restricted"
    INVALID = "invalid"
    MISMATCHED_PROJECT = "mismatched-project"
    UNKNOWN = "unknown"

    @property
    def is_live(self) -> bool:
        return self in (Status.LIVE, Status.LIVE_RESTRICTED)


class Verdict(NamedTuple):
    fingerprint: str
    redacted: str
    status: Status
    detail: str
    project: str | None = None  # from the `openai-project` header, when the API sends it
    request_id: str | None = None


def check(key: Secret, *, base_url: str | None = None, timeout: float = 10.0) -> Verdict:
    import openai

    admin = key.reveal().startswith("sk-admin-")
    print_id = fingerprint(key.reveal())

    def verdict(status: Status, detail: str, **extra: Any) -> Verdict:
        return Verdict(print_id, key.redacted, status, detail, **extra)

    try:
        client = ApiClient(key, admin=admin, base_url=base_url, timeout=timeout)
        if admin:
            client.call(lambda sdk: sdk.admin.organization.admin_api_keys.list(limit=1))
            return verdict(Status.LIVE, "the Admin API accepts it")
        raw = client.call(lambda sdk: sdk.models.with_raw_response.list())
        project = raw.headers.get("openai-project") or None
        where = f"project {project}" if project else "project unknown (no openai-project header)"
        return verdict(
            Status.LIVE,
            f"GET /models answered 200; {where}",
            project=project,
            request_id=raw.headers.get("x-request-id") or None,
        )
    except CircuitOpen as exc:
        return verdict(Status.UNKNOWN, f"not checked, verdict unknown: {exc}")
    except openai.APIStatusError as exc:
        status, detail = classify(exc)
        request_id = exc.request_id or None
        if status is Status.UNKNOWN:  # what OpenAI's support asks for first
            detail += f"; request {request_id}" if request_id else "; request id unknown"
        return verdict(status, detail, request_id=request_id)
    except openai.APIError as exc:
        return verdict(Status.UNKNOWN, unreachable(exc))


def classify(exc: Any) -> tuple[Status, str]:
    code, message, status = error_code(exc), error_message(exc), exc.status_code
    if status in (401, 403) and "Missing scopes" in message:
        found = re.search(r"Missing scopes:\s*(.+?)\.(?:\s|$)", message)
        scopes = _shown(found.group(1)) if found else "some scopes"
        return Status.LIVE_RESTRICTED, f"live, restricted: lacks {scopes}"
    if code == "mismatched_project":
        return Status.MISMATCHED_PROJECT, "the key belongs to another project"
    if status == 401 and code == "invalid_api_key":
        return Status.INVALID, "refused: invalid_api_key"
    if status == 401 and "deactivated" in message:
        return Status.INVALID, "refused: deactivated"
    if status == 401:
        return Status.UNKNOWN, (
            f"HTTP 401 without code invalid_api_key (code {_shown(code or 'none')}): "
            "a live key refused for another reason (IP allow-list, "
            "organization) looks the same"
        )
    kind = getattr(exc, "type", None)
    if status == 429 and (code in BILLING_CODES or kind in BILLING_CODES):
        return Status.LIVE, f"live, but blocked by billing: {_shown(code or kind or '')}"
    return Status.UNKNOWN, f"HTTP {status} after retries: {_shown(message)}"


def _shown(text: str) -> str:
    """Text from an API answer, fit for one report line: no key, no control characters."""
    return escape_control(scrub(text))[:120]


def check_many(
    keys: Iterable[Secret], *, base_url: str | None = None, concurrency: int = 8
) -> dict[str, Verdict]:
    """A verdict per distinct key (by fingerprint), checked concurrently, each once."""
    distinct = {fingerprint(k.reveal()): k for k in keys}
    if not distinct:
        return {}
    with ThreadPoolExecutor(min(concurrency, len(distinct))) as pool:
        verdicts = pool.map(lambda k: check(k, base_url=base_url), distinct.values())
        return {v.fingerprint: v for v in verdicts}

"""A project's hard spend limit, through the Admin API (`…/projects/{id}/spend_limit`).

The wire is cents and upper-case `USD` (unlike costs' dollars and `usd`), the interval is
`month`, and a limit is `enforcing` or `inactive`. The API answers 404 while no limit is set
(unverified against the live API: any other error is an unknown, never "no limit"). A limit
of $0 cannot be set: the API requires at least one cent.
"""

from __future__ import annotations

import decimal
from typing import Any, NamedTuple

from keysentry.errors import InputError
from keysentry.verify.client import ApiClient, error_message
from keysentry.verify.isolation import Check


class Limit(NamedTuple):
    cents: int
    currency: str
    interval: str
    enforcing: bool

    def __str__(self) -> str:
        state = "enforcing" if self.enforcing else "not enforcing (inactive)"
        return f"${self.cents / 100:,.2f} {self.currency}/{self.interval}, {state}"


def cents(usd: str) -> int:
    """Dollars as the user typed them (`100`, `12.50`) in whole cents, at least one."""
    try:
        amount = decimal.Decimal(usd.strip())
    except decimal.InvalidOperation:
        raise InputError(
            f"--usd takes an amount of dollars such as 100 or 12.50, got {usd!r}"
        ) from None
    if not amount.is_finite() or amount * 100 != (amount * 100).to_integral_value():
        raise InputError(f"--usd takes dollars with at most two decimals, got {usd!r}")
    value = int(amount * 100)
    if value < 1:
        raise InputError("a hard spend limit is at least $0.01 (the API refuses 0)")
    return value


def _limit(answer: Any) -> Limit:
    status = getattr(getattr(answer, "enforcement", None), "status", None)
    return Limit(
        int(answer.threshold_amount),
        str(answer.currency),
        str(answer.interval),
        status == "enforcing",
    )


def get_limit(admin: ApiClient, project: str) -> Limit | None:
    """The project's limit; None when the API says none is set (404)."""
    import openai

    try:
        answer = admin.call(
            lambda sdk: sdk.admin.organization.projects.spend_limit.retrieve(project)
        )
    except openai.NotFoundError:
        return None
    return _limit(answer)


def set_limit(admin: ApiClient, project: str, amount: int) -> Limit:
    """Set the project's monthly limit to `amount` cents, and read it back."""
    admin.call(
        lambda sdk: sdk.admin.organization.projects.spend_limit.update(
            project, threshold_amount=amount, currency="USD", interval="month"
        )
    )
    stored = get_limit(admin, project)
    if stored is None or stored.cents != amount:
        raise InputError(f"{project}: reading the spend limit back gave {stored or 'none'}")
    return stored


def clear_limit(admin: ApiClient, project: str) -> bool:
    """Remove the project's limit; False when there was none."""
    import openai

    try:
        admin.call(lambda sdk: sdk.admin.organization.projects.spend_limit.delete(project))
    except openai.NotFoundError:
        return False
    return True


def limit_check(
    admin: ApiClient, env: str, project: str, mode: str, threshold: float | None
) -> Check:
    """`verify`'s line for the environment's project limit: a failure without an enforcing
    limit where the policy requires one, a warning where it only recommends one."""
    import openai

    alert = (
        f"alert threshold ${threshold:,.2f}" if threshold is not None else "no alert threshold set"
    )
    try:
        limit = get_limit(admin, project)
    except openai.APIError as exc:
        return Check(
            "spend limit", env, None, f"{project}: {error_message(exc)[:120] or type(exc).__name__}"
        )
    if limit is not None and limit.enforcing:
        return Check("spend limit", env, True, f"{project}: hard limit {limit}; {alert}")
    what = f"hard limit {limit}" if limit is not None else "no hard spend limit"
    hint = f"keysentry limit set --env {env} --usd N"
    if mode == "required":
        return Check("spend limit", env, False, f"{project}: {what} ({hint}); {alert}")
    if mode == "off":
        return Check("spend limit", env, True, f"{project}: {what} (not required); {alert}")
    return Check(
        "spend limit", env, True, f"{project}: {what}, recommended ({hint}); {alert}", warning=True
    )

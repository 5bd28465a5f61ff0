"""The runtime guard: the SDK's own clients with production rules wired into their transport.

    from keysentry import openai_client
    client = openai_client("production")          # an openai.OpenAI
    client.chat.completions.create(model="gpt-4o-mini", messages=[...])

Retries, deadline and breaker come from `keysentry.resilience` (shared with the verifier);
budgets and spend from `budget.py`; `/health/openai` handlers from `health.py`. Nothing here
is imported by `import keysentry` or by the scan path: openai, httpx2, redis and tiktoken load
only when a client or handler is made.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from keysentry.runtime.budget import BudgetExceeded, ModelNotAllowed
    from keysentry.runtime.client import async_openai_client, guard_for, openai_client
    from keysentry.runtime.settings import Settings, settings_for

__all__ = [
    "BudgetExceeded",
    "ModelNotAllowed",
    "Settings",
    "async_openai_client",
    "guard_for",
    "openai_client",
    "settings_for",
]

_LAZY = {
    "BudgetExceeded": "keysentry.runtime.budget",
    "ModelNotAllowed": "keysentry.runtime.budget",
    "async_openai_client": "keysentry.runtime.client",
    "guard_for": "keysentry.runtime.client",
    "openai_client": "keysentry.runtime.client",
    "Settings": "keysentry.runtime.settings",
    "settings_for": "keysentry.runtime.settings",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'keysentry.runtime' has no attribute {name!r}")

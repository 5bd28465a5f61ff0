"""keysentry: OpenAI API key hygiene.

The public runtime API is imported lazily so that `import keysentry` stays cheap on the scan
path (the pre-commit hook runs on every commit).
"""

from __future__ import annotations

__version__ = "0.1.0"

TYPE_CHECKING = False  # not `typing`'s: importing it costs the pre-commit hook 15 ms
if TYPE_CHECKING:
    from typing import Any

    from keysentry.loader import load_key, refresh
    from keysentry.runtime.budget import BudgetExceeded, ModelNotAllowed
    from keysentry.runtime.client import async_openai_client, openai_client
    from keysentry.secret import Secret

__all__ = [
    "BudgetExceeded",
    "ModelNotAllowed",
    "Secret",
    "__version__",
    "async_openai_client",
    "load_key",
    "openai_client",
    "refresh",
]

_LAZY = {
    "BudgetExceeded": "keysentry.runtime.budget",
    "ModelNotAllowed": "keysentry.runtime.budget",
    "Secret": "keysentry.secret",
    "async_openai_client": "keysentry.runtime.client",
    "load_key": "keysentry.loader",
    "openai_client": "keysentry.runtime.client",
    "refresh": "keysentry.loader",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'keysentry' has no attribute {name!r}")

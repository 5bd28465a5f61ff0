"""keysentry: OpenAI API key hygiene.

The public runtime API is imported lazily so that `import keysentry` stays cheap on the scan
path (the pre-commit hook runs on every commit).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from keysentry.secret import Secret

__all__ = ["Secret", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "Secret":
        from keysentry.secret import Secret

        return Secret
    raise AttributeError(f"module 'keysentry' has no attribute {name!r}")

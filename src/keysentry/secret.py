"""A secret value that never shows itself by accident.

`repr`, `str` and f-strings give the redacted form; the value comes only from `.reveal()`.
Pickling and copying refuse: a pickle carries the raw value wherever it goes (caches, queues,
multiprocessing pipes, logs), and `__slots__` would otherwise hand it to `__getstate__`.
"""

from __future__ import annotations

from typing import Any, NoReturn

# OpenAI key prefixes that name a key type; any other `sk-` value keeps only `sk-`.
_TYPED_PREFIXES = ("sk-proj-", "sk-svcacct-", "sk-admin-", "sk-None-")


def redact(value: str, prefix: str | None = None) -> str:
    """The redacted form of a secret: an OpenAI key keeps its type prefix and last 4 characters.

    `prefix` is the key's parsed prefix when the caller knows it (a detected `sk-<slug>-` key).
    Otherwise an `sk-` value keeps its typed prefix (`sk-proj-...wxyz`), anything else long
    enough keeps only its last 4 characters, and a short value keeps nothing.
    """
    if len(value) >= 24 and value.startswith("sk-"):
        if prefix is None:
            prefix = next((p for p in _TYPED_PREFIXES if value.startswith(p)), "sk-")
        return f"{prefix}...{value[-4:]}"
    if len(value) >= 16:
        return f"...{value[-4:]}"
    return "****"


class Secret:
    """A secret string whose printed forms are redacted."""

    __slots__ = ("_redacted", "_value")

    def __init__(self, value: str, redacted: str | None = None) -> None:
        self._value = value
        self._redacted = redacted if redacted is not None else redact(value)

    def reveal(self) -> str:
        """The secret value itself. Call it only where the value is used, never to print it."""
        return self._value

    @property
    def redacted(self) -> str:
        return self._redacted

    def __repr__(self) -> str:
        return f"Secret({self._redacted!r})"

    def __str__(self) -> str:
        return self._redacted

    def __format__(self, spec: str) -> str:
        return format(self._redacted, spec)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        import hmac  # here: loading OpenSSL at import would cost every scan 4 ms

        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> NoReturn:
        _refuse("pickled")

    def __reduce_ex__(self, protocol: Any) -> NoReturn:
        _refuse("pickled")

    def __getstate__(self) -> NoReturn:
        _refuse("pickled")

    def __copy__(self) -> NoReturn:
        _refuse("copied")

    def __deepcopy__(self, memo: Any) -> NoReturn:
        _refuse("copied")


def _refuse(what: str) -> NoReturn:
    raise TypeError(f"Secret values cannot be {what}: pass the Secret itself, or its reference")

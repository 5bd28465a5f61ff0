"""`env://NAME`: a variable of this process's environment."""

from __future__ import annotations

import os
from collections.abc import Mapping

from keysentry.errors import ConfigError, SecretNotFound
from keysentry.providers.base import Fetched, Health, SecretRef, Stored
from keysentry.secret import Secret

SCHEME = "env"
OPTIONS: frozenset[str] = frozenset()


def get(ref: SecretRef) -> Fetched:
    value = os.environ.get(ref.location)
    if not value:
        raise SecretNotFound(f"{ref}: the environment variable {ref.location} is not set")
    return Fetched(Secret(value), str(ref))


def put(ref: SecretRef, value: str, *, tags: Mapping[str, str], overwrite: bool) -> Stored:
    raise ConfigError(f"{ref}: a process environment cannot store a secret; use a store")


def describe(ref: SecretRef) -> dict[str, object]:
    return {"reference": str(ref), "set": bool(os.environ.get(ref.location))}


def health(ref: SecretRef) -> Health:
    return Health(True, "the process environment is always there")

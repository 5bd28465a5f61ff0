"""keysentry's exceptions and exit codes.

Every error a user can cause is a KeysentryError with a one-line message that never holds a
secret; the CLI prints it and exits with its code.
"""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    """Stable process exit codes; documented in the README."""

    CLEAN = 0  # nothing found
    FINDINGS = 1  # at least one finding was reported
    ERROR = 2  # usage, input or configuration error: nothing can be trusted about the scan
    INTERRUPTED = 130


class KeysentryError(Exception):
    """Base of every error keysentry raises on purpose."""

    exit_code = ExitCode.ERROR


class InputError(KeysentryError):
    """A path, file or stream that cannot be scanned or written as asked."""


class ConfigError(KeysentryError):
    """A configuration file or value that is missing or malformed."""


class ProviderError(KeysentryError):
    """A secret store could not give or take a secret. Messages name the reference, never a
    secret value."""


class SecretNotFound(ProviderError):
    """The store has no such secret, version or field."""


class AccessDenied(ProviderError):
    """The store refused the credentials keysentry used."""


class ProviderUnavailable(ProviderError):
    """The store could not be reached or did not answer in time."""


class SecretConflict(ProviderError):
    """A write was refused because the store holds something else there (a different value,
    a newer version, a deleted-but-recoverable name)."""

"""keysentry's exceptions and exit codes.

Every error a user can cause is a KeysentryError with a one-line message that never holds a
secret: its arguments pass through `safety.scrub` when it is raised, so no caller (the CLI,
an application calling `load_key`, a log handler) can ever see a key in one, whatever text
went into it. The CLI prints it and exits with its code.
"""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    """Every process exit code keysentry uses, in one place; documented in the README. They
    never change meaning: scripts and CI branch on them."""

    CLEAN = 0  # nothing found, every check passed
    FINDINGS = 1  # at least one finding was reported, or a check failed
    ERROR = 2  # usage, input or configuration error, or an incomplete scan: trust nothing
    LIVE = 3  # with --verify: at least one key found is live
    UNKNOWN = 4  # with --fail-on live: no key is live, but some verdict is unknown
    # `keysentry run` otherwise exits with its child's status, and as a shell does when the
    # command cannot be started:
    COMMAND_NOT_EXECUTABLE = 126  # it exists but cannot be executed (permissions, a directory)
    COMMAND_NOT_FOUND = 127
    INTERRUPTED = 130


class KeysentryError(Exception):
    """Base of every error keysentry raises on purpose; its message is scrubbed of keys."""

    exit_code = ExitCode.ERROR

    def __init__(self, *args: object) -> None:
        from keysentry.safety import scrub  # here: importing errors stays free

        super().__init__(*(scrub(str(arg)) for arg in args))


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

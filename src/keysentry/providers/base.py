"""Secret references and the interface every provider implements.

A reference is a URI naming where a secret lives:

    env://OPENAI_API_KEY
    dotenv://.env.production#OPENAI_API_KEY
    aws-sm://prod/openai#OPENAI_API_KEY?region=us-east-1&stage=AWSCURRENT
    vault://secret/prod/openai#api_key?namespace=team-a&version=3
    azure-kv://my-vault/openai-api-key-prod?version=<id>

`#field` picks one field of a structured secret (a JSON object, a Vault KV entry, a .env
name); `?key=value` options follow the provider's documented list. Query and fragment may come
in either order. Like pre-commit's languages, each provider is a module with the same four
functions (`get`, `put`, `describe`, `health`), listed in `keysentry.providers`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple, Protocol
from urllib.parse import parse_qsl, unquote

from keysentry.errors import ConfigError
from keysentry.secret import Secret


class SecretRef(NamedTuple):
    scheme: str
    location: str  # what follows `scheme://`, up to `#` or `?`
    field: str | None
    options: Mapping[str, str]

    def __str__(self) -> str:
        text = f"{self.scheme}://{self.location}"
        if self.field is not None:
            text += f"#{self.field}"
        if self.options:
            text += "?" + "&".join(f"{k}={v}" for k, v in sorted(self.options.items()))
        return text

    def option(self, name: str, default: str | None = None) -> str | None:
        return self.options.get(name, default)


class Fetched(NamedTuple):
    """A secret as a provider returned it, and where exactly it came from."""

    secret: Secret
    source: str  # the reference, resolved (a region, a version) where the store says
    version: str | None = None


class Stored(NamedTuple):
    """What a put did."""

    version: str | None
    created: bool  # a new secret, as opposed to a new version of an existing one
    changed: bool  # False when the store already held this very value


class Health(NamedTuple):
    ok: bool
    detail: str


class Provider(Protocol):
    SCHEME: str
    OPTIONS: frozenset[str]

    def get(self, ref: SecretRef) -> Fetched: ...

    def put(
        self, ref: SecretRef, value: str, *, tags: Mapping[str, str], overwrite: bool
    ) -> Stored: ...

    def describe(self, ref: SecretRef) -> dict[str, object]: ...

    def health(self, ref: SecretRef) -> Health: ...


def parse_ref(text: str, where: str = "reference") -> SecretRef:
    """A SecretRef from its URI; a ConfigError naming `where` and what is wrong otherwise
    (a key given instead of a reference gets its own error, which never shows it)."""
    from keysentry.providers import PROVIDERS

    scheme, sep, rest = text.partition("://")
    if not sep or not scheme or scheme not in PROVIDERS:
        _refuse_a_key(text, where)
    if not sep or not scheme:
        raise ConfigError(f"{where}: {text!r} is not a secret reference (scheme://location)")
    if scheme not in PROVIDERS:
        known = ", ".join(f"{s}://" for s in PROVIDERS)
        raise ConfigError(f"{where}: unknown scheme {scheme}:// (known: {known})")
    cut = min((i for i in (rest.find("#"), rest.find("?")) if i >= 0), default=len(rest))
    location, tail = rest[:cut], rest[cut:]
    field: str | None = None
    query = ""
    while tail:
        marker, tail = tail[0], tail[1:]
        stop = tail.find("?" if marker == "#" else "#")
        part, tail = (tail, "") if stop < 0 else (tail[:stop], tail[stop:])
        if marker == "#":
            field = unquote(part)
        else:
            query = part
    options = dict(parse_qsl(query, keep_blank_values=True, strict_parsing=False))
    if not location:
        raise ConfigError(f"{where}: {text!r} names no secret after {scheme}://")
    unknown = sorted(set(options) - PROVIDERS[scheme].OPTIONS)
    if unknown:
        allowed = ", ".join(sorted(PROVIDERS[scheme].OPTIONS)) or "none"
        raise ConfigError(f"{where}: {scheme}:// has no option {unknown[0]!r} (options: {allowed})")
    if field == "":
        raise ConfigError(f"{where}: {text!r} has an empty #field")
    return SecretRef(scheme, unquote(location), field, options)


def _refuse_a_key(text: str, where: str) -> None:
    """Raise the pasted-key error if `text`, which is not a reference, is a key. Checked only
    for what does not parse, so that a valid reference costs no detector run."""
    from keysentry.config import pasted_key
    from keysentry.safety import holds_key

    if holds_key(text):
        raise pasted_key(where)

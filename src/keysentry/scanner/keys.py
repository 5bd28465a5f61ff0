"""OpenAI API key anatomy: the formats, how a candidate is classified, how a key is redacted.

Every OpenAI key is `sk-` + an optional type + `-` + a first half + the marker `T3BlbkFJ`
(base64 for "OpenAI") + a second half of the same length. This module knows nothing about
files, encodings or git; `detect` finds candidates and asks `classify` what they are.
"""

from __future__ import annotations

import enum
import re
from typing import NamedTuple

from keysentry.scanner.needles import MARKER as MARKER  # the marker's home is the lean module

ALNUM = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
BASE64URL = ALNUM | frozenset(b"-_")

# Halves of other lengths are reported at low confidence when the structure holds.
MIN_HALF = 16
MAX_HALF = 100
# `sk-` + a named service account's slug of up to 42 characters + `-`.
MAX_PREFIX = 3 + 42 + 1
# The shortest key: `sk-`, two halves of MIN_HALF, the marker.
MIN_KEY_LENGTH = 3 + 2 * MIN_HALF + len(MARKER)

_SLUG = re.compile(rb"[a-z0-9](?:[a-z0-9-]{0,40}[a-z0-9])?\Z")
# Other vendors use `sk-<word>-` prefixes too (Anthropic `sk-ant-api03-`, OpenRouter
# `sk-or-v1-`); a slug that starts with one of their words is never an OpenAI key.
_OTHER_VENDOR_WORDS = (b"ant", b"or")


class KeyKind(str, enum.Enum):
    """What a key is, named after OpenAI's own terms."""

    LEGACY_USER = "legacy-user"
    LEGACY_PROJECT = "legacy-project"
    PROJECT = "project"
    SERVICE_ACCOUNT = "service-account"
    NAMED_SERVICE_ACCOUNT = "named-service-account"
    ADMIN = "admin"
    UNSCOPED = "unscoped"

    @property
    def rule(self) -> str:
        """The stable rule id reports use for this kind."""
        return f"openai-{self.value}-key"

    @property
    def label(self) -> str:
        return _LABELS[self]


_LABELS = {
    KeyKind.LEGACY_USER: "OpenAI legacy user key",
    KeyKind.LEGACY_PROJECT: "OpenAI legacy project key",
    KeyKind.PROJECT: "OpenAI project key",
    KeyKind.SERVICE_ACCOUNT: "OpenAI service account key",
    KeyKind.NAMED_SERVICE_ACCOUNT: "OpenAI named service account key",
    KeyKind.ADMIN: "OpenAI Admin API key",
    KeyKind.UNSCOPED: "OpenAI key not tied to a project (sk-None-)",
}


class Confidence(str, enum.Enum):
    HIGH = "high"  # a known format, exactly
    LOW = "low"  # the structure holds (marker, alphabet, equal halves) at an unseen length


class KeyFormat(NamedTuple):
    """One known format: `prefix` + half + MARKER + half, each half of a listed length."""

    kind: KeyKind
    type_name: bytes  # the word between `sk-` and the half; b"" for bare `sk-`
    half_lengths: tuple[int, ...]
    alphabet: frozenset[int]

    def prefix(self, slug: bytes = b"service-account") -> str:
        name = slug if self.kind is KeyKind.NAMED_SERVICE_ACCOUNT else self.type_name
        return f"sk-{name.decode()}-" if name else "sk-"


# `type_name` b"<slug>" stands for any service-account slug.
SLUG = b"<slug>"

FORMATS: tuple[KeyFormat, ...] = (
    KeyFormat(KeyKind.LEGACY_USER, b"", (20,), ALNUM),
    KeyFormat(KeyKind.LEGACY_PROJECT, b"proj", (20,), ALNUM),
    KeyFormat(KeyKind.PROJECT, b"proj", (58, 74), BASE64URL),
    KeyFormat(KeyKind.SERVICE_ACCOUNT, b"svcacct", (46, 74), BASE64URL),
    KeyFormat(KeyKind.ADMIN, b"admin", (58, 74), BASE64URL),
    KeyFormat(KeyKind.UNSCOPED, b"None", (20,), ALNUM),
    KeyFormat(KeyKind.UNSCOPED, b"None", (74,), BASE64URL),
    KeyFormat(KeyKind.NAMED_SERVICE_ACCOUNT, SLUG, (20,), ALNUM),
)

# The kind a typed prefix gets at an unseen half length.
_KIND_OF_TYPE = {
    b"": KeyKind.LEGACY_USER,
    b"proj": KeyKind.PROJECT,
    b"svcacct": KeyKind.SERVICE_ACCOUNT,
    b"admin": KeyKind.ADMIN,
    b"None": KeyKind.UNSCOPED,
    SLUG: KeyKind.NAMED_SERVICE_ACCOUNT,
}


class Classified(NamedTuple):
    kind: KeyKind
    confidence: Confidence
    prefix: str  # `sk-proj-`, `sk-<slug>-`, `sk-`: what redaction keeps


def parse_type(prefix: bytes) -> bytes | None:
    """The type word of a prefix such as `sk-proj-`: b"" for bare `sk-`, SLUG for a service
    account's name, None when the prefix is not an OpenAI key prefix at all."""
    if prefix == b"sk-":
        return b""
    if not (prefix.startswith(b"sk-") and prefix.endswith(b"-") and len(prefix) > 4):
        return None
    word = prefix[3:-1]
    if word in _KIND_OF_TYPE:
        return word
    if not _SLUG.match(word):
        return None
    if any(word == w or word.startswith(w + b"-") for w in _OTHER_VENDOR_WORDS):
        return None
    return SLUG


def _looks_random(half: bytes) -> bool:
    # Placeholders like `xxxx…T3BlbkFJ…xxxx` have few distinct characters; a random half of
    # 20 alphanumerics has about 17, so this bound never rejects a real key.
    return len(set(half)) >= max(6, len(half) // 4)


def classify(prefix: bytes, first: bytes, second: bytes) -> Classified | None:
    """What `prefix + first + MARKER + second` is, or None when it is not an OpenAI key."""
    type_name = parse_type(prefix)
    if type_name is None or len(first) != len(second):
        return None
    half = len(first)
    if not (MIN_HALF <= half <= MAX_HALF and _looks_random(first) and _looks_random(second)):
        return None
    chars = frozenset(first) | frozenset(second)
    shown = prefix.decode()
    for fmt in FORMATS:
        if fmt.type_name == type_name and half in fmt.half_lengths and chars <= fmt.alphabet:
            return Classified(fmt.kind, Confidence.HIGH, shown)
    if not chars <= BASE64URL:
        return None
    return Classified(_KIND_OF_TYPE[type_name], Confidence.LOW, shown)

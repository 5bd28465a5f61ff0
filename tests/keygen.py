"""Build OpenAI-shaped keys at run time from the anatomy in `keysentry.scanner.keys`.

No realistic key literal is ever committed: every test key is made here, from a seed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from keysentry.scanner.keys import ALNUM, FORMATS, MARKER, KeyFormat, KeyKind

ALNUM_CHARS = bytes(sorted(ALNUM)).decode()
BASE64URL_CHARS = ALNUM_CHARS + "-_"


@dataclass(frozen=True)
class Planted:
    key: str
    kind: KeyKind
    prefix: str


def half(rng: random.Random, length: int, alphabet: str) -> str:
    return "".join(rng.choice(alphabet) for _ in range(length))


def make_key(
    fmt: KeyFormat, half_length: int, rng: random.Random, slug: str = "svc-bot"
) -> Planted:
    alphabet = ALNUM_CHARS if fmt.alphabet == ALNUM else BASE64URL_CHARS
    prefix = fmt.prefix(slug.encode())
    key = prefix + half(rng, half_length, alphabet) + MARKER.decode()
    key += half(rng, half_length, alphabet)
    return Planted(key, fmt.kind, prefix)


def every_format(rng: random.Random) -> list[Planted]:
    """One key of every known format and half length."""
    return [make_key(f, n, rng) for f in FORMATS for n in f.half_lengths]


def key_of(kind: KeyKind, rng: random.Random, half_length: int | None = None) -> Planted:
    fmt = next(
        f for f in FORMATS if f.kind is kind and (half_length in f.half_lengths or not half_length)
    )
    return make_key(fmt, half_length or fmt.half_lengths[-1], rng)

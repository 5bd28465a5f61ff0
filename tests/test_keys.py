"""Key anatomy: every format is typed; look-alikes are not keys."""

from __future__ import annotations

import random

import pytest

from keygen import ALNUM_CHARS, BASE64URL_CHARS, every_format, half, key_of
from keysentry.scanner.detect import detect
from keysentry.scanner.keys import FORMATS, MARKER, Confidence, KeyKind
from keysentry.secret import Secret, redact

M = MARKER.decode()


def only_key(text: str) -> list[tuple[str, KeyKind, Confidence]]:
    return [
        (m.key.decode(), m.classified.kind, m.classified.confidence) for m in detect(text.encode())
    ]


@pytest.mark.parametrize(
    ("fmt", "length"), [(f, n) for f in FORMATS for n in f.half_lengths], ids=str
)
def test_every_known_format_is_found_and_typed_with_high_confidence(
    fmt: object, length: int, rng: random.Random
) -> None:
    from keygen import make_key

    planted = make_key(fmt, length, rng)  # type: ignore[arg-type]
    assert only_key(f'KEY="{planted.key}"') == [(planted.key, planted.kind, Confidence.HIGH)]


def test_known_lengths_give_the_documented_total_lengths(rng: random.Random) -> None:
    lengths = {(p.kind, len(p.key)) for p in every_format(rng)}
    assert (KeyKind.LEGACY_USER, 51) in lengths
    assert (KeyKind.PROJECT, 164) in lengths
    assert (KeyKind.SERVICE_ACCOUNT, 167) in lengths
    assert (KeyKind.ADMIN, 133) in lengths


def test_a_long_slug_names_a_service_account(rng: random.Random) -> None:
    slug = "build-bot-" + "x" * 20 + "-9"
    key = f"sk-{slug}-{half(rng, 20, ALNUM_CHARS)}{M}{half(rng, 20, ALNUM_CHARS)}"
    assert only_key(key) == [(key, KeyKind.NAMED_SERVICE_ACCOUNT, Confidence.HIGH)]


@pytest.mark.parametrize("length", [16, 32, 40, 64, 90, 100])
def test_unseen_equal_half_lengths_are_low_confidence_not_missed(
    length: int, rng: random.Random
) -> None:
    key = f"sk-proj-{half(rng, length, BASE64URL_CHARS)}{M}{half(rng, length, BASE64URL_CHARS)}"
    assert only_key(key) == [(key, KeyKind.PROJECT, Confidence.LOW)]


def test_a_short_half_with_base64url_characters_is_low_confidence(rng: random.Random) -> None:
    first = half(rng, 19, ALNUM_CHARS) + "_"
    key = f"sk-proj-{first}{M}{half(rng, 20, ALNUM_CHARS)}"
    assert only_key(key) == [(key, KeyKind.PROJECT, Confidence.LOW)]


def near_misses(rng: random.Random) -> dict[str, str]:
    a20, b20 = half(rng, 20, ALNUM_CHARS), half(rng, 20, ALNUM_CHARS)
    a74, b74 = half(rng, 74, BASE64URL_CHARS), half(rng, 74, BASE64URL_CHARS)
    return {
        "wrong marker": f"sk-proj-{a74}T4BlbkFJ{b74}",
        "lower-case marker": f"sk-proj-{a74}{M.lower()}{b74}",
        "no marker, 48 alnum (Moonshot, Stability)": "sk-" + half(rng, 48, ALNUM_CHARS),
        "DeepSeek": "sk-" + half(rng, 32, "0123456789abcdef"),
        "Anthropic": "sk-ant-api03-" + half(rng, 93, BASE64URL_CHARS) + "AA",
        "Anthropic shaped around the marker": f"sk-ant-api03-{a20}{M}{b20}",
        "OpenRouter": "sk-or-v1-" + half(rng, 64, "0123456789abcdef"),
        "OpenRouter shaped around the marker": f"sk-or-v1-{a20}{M}{b20}",
        "task-proj": f"task-proj-{a74}{M}{b74}",
        "truncated": f"sk-proj-{a74}{M}{b74[:-1]}",
        "truncated at the marker": f"sk-proj-{a74}{M}",
        "glued after": f"sk-proj-{a74}{M}{b74}x",
        "glued before": f"Xsk-proj-{a74}{M}{b74}",
        "inside a base64url run": f"{half(rng, 40, BASE64URL_CHARS)}sk-{a20}{M}{b20}Zq",
        "unequal halves": f"sk-proj-{a74}{M}{b74[:58]}",
        "legacy with non-key characters": f"sk-{a20[:10]}.{a20[11:]}{M}{b20}",
        "placeholder": "sk-proj-your-actual-key-here",
        "dots": "sk-...",
        "placeholder around the marker": "sk-proj-" + "x" * 20 + M + "x" * 20,
        "repeated pattern": "sk-proj-" + "abc1" * 15 + M + "abc1" * 15,
        "marker alone": f"OpenAI is {M} in base64",
        "too short": f"sk-{a20[:8]}{M}{b20[:8]}",
        "too long": f"sk-proj-{half(rng, 110, ALNUM_CHARS)}{M}{half(rng, 110, ALNUM_CHARS)}",
    }


def test_near_misses_and_other_vendors_are_not_keys(rng: random.Random) -> None:
    found = {name: only_key(f'x = "{text}"') for name, text in near_misses(rng).items()}
    assert {name: hits for name, hits in found.items() if hits} == {}


def test_redaction_keeps_only_the_type_prefix_and_last_four(rng: random.Random) -> None:
    planted = key_of(KeyKind.PROJECT, rng)
    assert redact(planted.key) == "sk-proj-..." + planted.key[-4:]
    assert redact("sk-" + "a" * 30 + "wxyz") == "sk-...wxyz"
    assert redact("hunter2") == "****"


def test_a_secret_never_shows_its_value(rng: random.Random) -> None:
    planted = key_of(KeyKind.ADMIN, rng)
    secret = Secret(planted.key)
    shown = [repr(secret), str(secret), f"{secret}", f"{secret!r}", "%s" % secret]  # noqa: UP031
    assert all(planted.key not in text for text in shown)
    assert secret.reveal() == planted.key
    with pytest.raises(TypeError):
        import pickle

        pickle.dumps(secret)

"""Secret references: parsing, and precise errors for malformed ones."""

from __future__ import annotations

import random

import pytest

from keygen import key_of
from keysentry.errors import ConfigError
from keysentry.providers.base import SecretRef, parse_ref
from keysentry.scanner.keys import KeyKind


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("env://OPENAI_API_KEY", SecretRef("env", "OPENAI_API_KEY", None, {})),
        (
            "dotenv://.env.production#OPENAI_API_KEY",
            SecretRef("dotenv", ".env.production", "OPENAI_API_KEY", {}),
        ),
        (
            "aws-sm://prod/openai#OPENAI_API_KEY?region=us-east-1&stage=AWSCURRENT",
            SecretRef(
                "aws-sm",
                "prod/openai",
                "OPENAI_API_KEY",
                {"region": "us-east-1", "stage": "AWSCURRENT"},
            ),
        ),
        (
            "aws-sm://prod/openai?region=eu-west-1#OPENAI_API_KEY",
            SecretRef("aws-sm", "prod/openai", "OPENAI_API_KEY", {"region": "eu-west-1"}),
        ),
        (
            "vault://secret/prod/openai#api_key?namespace=team-a&version=3",
            SecretRef(
                "vault", "secret/prod/openai", "api_key", {"namespace": "team-a", "version": "3"}
            ),
        ),
        (
            "azure-kv://my-vault/openai-api-key-prod?version=abc",
            SecretRef("azure-kv", "my-vault/openai-api-key-prod", None, {"version": "abc"}),
        ),
    ],
)
def test_the_documented_references_parse(text: str, expected: SecretRef) -> None:
    assert parse_ref(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("OPENAI_API_KEY", "is not a secret reference"),
        ("gcp-sm://x", "unknown scheme gcp-sm://"),
        ("aws-sm://x?colour=red", "aws-sm:// has no option 'colour'"),
        ("env://", "names no secret"),
        ("dotenv://.env#", "empty #field"),
    ],
)
def test_malformed_references_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        parse_ref(text, "keysentry.toml: [environments.prod].OPENAI_API_KEY")
    assert str(caught.value).startswith("keysentry.toml: [environments.prod].OPENAI_API_KEY: ")


@pytest.mark.parametrize("template", ["{key}", "  {key}\n", "gcp-sm://{key}", "{key}://x"])
def test_a_key_given_as_a_reference_gets_its_own_error_without_the_key(
    template: str, rng: random.Random
) -> None:
    key = key_of(KeyKind.PROJECT, rng).key
    where = "keysentry.toml: [environments.prod].OPENAI_API_KEY"
    with pytest.raises(ConfigError) as caught:
        parse_ref(template.format(key=key), where)
    message = str(caught.value)
    assert message == (
        f"{where} holds a key, not a reference: store it with `keysentry migrate` (or "
        "`keysentry migrate copy`) and put its reference here"
    )
    assert key[len(key) // 2 :] not in message + repr(caught.value)

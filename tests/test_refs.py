"""Secret references: parsing, and precise errors for malformed ones."""

from __future__ import annotations

import pytest

from keysentry.errors import ConfigError
from keysentry.providers.base import SecretRef, parse_ref


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("env://OPENAI_API_KEY", SecretRef("env", "OPENAI_API_KEY", None, {})),
        ("dotenv://.env.production#OPENAI_API_KEY",
         SecretRef("dotenv", ".env.production", "OPENAI_API_KEY", {})),
        ("aws-sm://prod/openai#OPENAI_API_KEY?region=us-east-1&stage=AWSCURRENT",
         SecretRef("aws-sm", "prod/openai", "OPENAI_API_KEY",
                   {"region": "us-east-1", "stage": "AWSCURRENT"})),
        ("aws-sm://prod/openai?region=eu-west-1#OPENAI_API_KEY",
         SecretRef("aws-sm", "prod/openai", "OPENAI_API_KEY", {"region": "eu-west-1"})),
        ("vault://secret/prod/openai#api_key?namespace=team-a&version=3",
         SecretRef("vault", "secret/prod/openai", "api_key",
                   {"namespace": "team-a", "version": "3"})),
        ("azure-kv://my-vault/openai-api-key-prod?version=abc",
         SecretRef("azure-kv", "my-vault/openai-api-key-prod", None, {"version": "abc"})),
    ],
)  # fmt: skip
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

"""Opt-in live tests against real stores and the real OpenAI API. Each runs only when its
environment variable names a reference to read (it then leaves loopback, with the machine's
own HOME and credentials: the `machine_env` fixture); skipped otherwise.

    KEYSENTRY_LIVE_AWS_REF=aws-sm://...   KEYSENTRY_LIVE_VAULT_REF=vault://...
    KEYSENTRY_LIVE_AZURE_REF=azure-kv://...   KEYSENTRY_LIVE_OPENAI_REF=<any reference>
"""

from __future__ import annotations

import os

import pytest

from keysentry.providers import provider_for
from keysentry.providers.base import parse_ref


@pytest.mark.parametrize(
    "variable", ["KEYSENTRY_LIVE_AWS_REF", "KEYSENTRY_LIVE_VAULT_REF", "KEYSENTRY_LIVE_AZURE_REF"]
)
def test_a_real_store_gives_its_secret(
    variable: str, machine_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = os.environ.get(variable)
    if not text:
        pytest.skip(f"{variable} is not set")
    # The autouse fixture points the AWS SDK at nothing; a live test wants the real chain.
    for name in ("AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE", "AWS_EC2_METADATA_DISABLED"):
        monkeypatch.delenv(name, raising=False)
    ref = parse_ref(text)
    fetched = provider_for(ref.scheme).get(ref)
    assert fetched.secret.reveal()
    assert provider_for(ref.scheme).health(ref).ok


def test_a_real_openai_key_is_live(machine_env: None) -> None:
    text = os.environ.get("KEYSENTRY_LIVE_OPENAI_REF")
    if not text:
        pytest.skip("KEYSENTRY_LIVE_OPENAI_REF is not set")
    from keysentry.verify.liveness import check

    ref = parse_ref(text)
    verdict = check(provider_for(ref.scheme).get(ref).secret)
    assert verdict.status.is_live, verdict.detail

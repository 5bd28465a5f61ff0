"""vault://: HashiCorp Vault KV through hvac, against a real OpenBao dev server."""

from __future__ import annotations

import random
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from keygen import key_of
from keysentry.errors import AccessDenied, ProviderUnavailable, SecretConflict, SecretNotFound
from keysentry.providers import vault as provider
from keysentry.providers.base import parse_ref
from keysentry.scanner.keys import KeyKind
from stores import BAO_TOKEN, free_port


def unique(prefix: str) -> str:
    """A path of its own per test: the dev server lives for the whole session."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_kv_v2_read_a_field_and_a_version(vault: Any, rng: random.Random) -> None:
    path = unique("prod/openai")
    old, new = key_of(KeyKind.PROJECT, rng).key, key_of(KeyKind.PROJECT, rng).key
    vault.secrets.kv.v2.create_or_update_secret(path, {"api_key": old}, mount_point="secret")
    vault.secrets.kv.v2.create_or_update_secret(path, {"api_key": new}, mount_point="secret")
    fetched = vault_get(f"vault://secret/{path}#api_key")
    assert (fetched.secret.reveal(), fetched.version) == (new, "2")
    assert vault_get(f"vault://secret/{path}#api_key?version=1").secret.reveal() == old


def vault_get(text: str) -> Any:
    return provider.get(parse_ref(text))


def test_kv_v1(vault: Any, rng: random.Random) -> None:
    mount = unique("kv1")
    vault.sys.enable_secrets_engine("kv", path=mount, options={"version": "1"})
    key = key_of(KeyKind.ADMIN, rng).key
    vault.secrets.kv.v1.create_or_update_secret("openai", {"key": key}, mount_point=mount)
    assert vault_get(f"vault://{mount}/openai#key?kv=1").secret.reveal() == key
    assert provider.put(
        parse_ref(f"vault://{mount}/openai#other?kv=1"), "x", tags={}, overwrite=False
    ).changed


def test_put_uses_check_and_set(vault: Any, rng: random.Random) -> None:
    path = unique("staging/openai")
    ref = parse_ref(f"vault://secret/{path}#api_key")
    key, other = key_of(KeyKind.PROJECT, rng).key, key_of(KeyKind.PROJECT, rng).key
    created = provider.put(ref, key, tags={"managed-by": "keysentry"}, overwrite=False)
    assert created.created and created.version == "1"
    assert not provider.put(ref, key, tags={}, overwrite=False).changed
    with pytest.raises(SecretConflict, match="another value"):
        provider.put(ref, other, tags={}, overwrite=False)
    assert provider.put(ref, other, tags={}, overwrite=True).version == "2"
    meta = provider.describe(ref)
    assert meta["current_version"] == 2 and meta["custom_metadata"] == {"managed-by": "keysentry"}


def test_a_concurrent_write_is_a_check_and_set_conflict(vault: Any, rng: random.Random) -> None:
    path = unique("race")
    vault.secrets.kv.v2.create_or_update_secret(path, {"a": "1"}, mount_point="secret")
    original = vault.secrets.kv.v2.create_or_update_secret

    def racing(path_: str, secret: dict[str, str], cas: int | None = None, **kw: Any) -> Any:
        # Someone else writes between keysentry's read and its write.
        original(path_, {"a": "2"}, mount_point="secret")
        return original(path_, secret, cas=cas, **kw)

    client = provider._client(parse_ref(f"vault://secret/{path}#b"))
    client.secrets.kv.v2.create_or_update_secret = racing
    try:
        with pytest.raises(SecretConflict, match="check-and-set"):
            provider.put(parse_ref(f"vault://secret/{path}#b"), "x", tags={}, overwrite=False)
    finally:
        del client.secrets.kv.v2.create_or_update_secret


def test_approle_login(vault: Any, rng: random.Random, monkeypatch: pytest.MonkeyPatch) -> None:
    mount = unique("approle")
    vault.sys.enable_auth_method("approle", path=mount)
    vault.sys.create_or_update_policy("read-openai", 'path "secret/data/*" {capabilities=["read"]}')
    vault.auth.approle.create_or_update_approle(
        "app", token_policies=["read-openai"], mount_point=mount
    )
    role_id = vault.auth.approle.read_role_id("app", mount_point=mount)["data"]["role_id"]
    secret_id = vault.auth.approle.generate_secret_id("app", mount_point=mount)["data"]["secret_id"]
    path = unique("app")
    key = key_of(KeyKind.PROJECT, rng).key
    vault.secrets.kv.v2.create_or_update_secret(path, {"api_key": key}, mount_point="secret")
    monkeypatch.delenv("VAULT_TOKEN")
    monkeypatch.setenv("VAULT_ROLE_ID", role_id)
    monkeypatch.setenv("VAULT_SECRET_ID", secret_id)
    monkeypatch.setenv("VAULT_APPROLE_MOUNT", mount)
    assert vault_get(f"vault://secret/{path}#api_key").secret.reveal() == key
    with pytest.raises(AccessDenied):  # the policy reads only
        provider.put(parse_ref(f"vault://secret/{path}#api_key"), "x", tags={}, overwrite=True)


def test_a_namespace(vault: Any, rng: random.Random, bao_addr: str) -> None:
    import hvac

    namespace = unique("team")
    vault.sys.create_namespace(namespace)
    scoped = hvac.Client(url=bao_addr, token=vault.token, namespace=namespace)
    scoped.sys.enable_secrets_engine("kv", path="secret", options={"version": "2"})
    key = key_of(KeyKind.PROJECT, rng).key
    scoped.secrets.kv.v2.create_or_update_secret("openai", {"api_key": key}, mount_point="secret")
    assert vault_get(f"vault://secret/openai#api_key?namespace={namespace}").secret.reveal() == key
    with pytest.raises(SecretNotFound):
        vault_get("vault://secret/openai#api_key")  # not in the root namespace


def test_errors_missing_denied_and_down(vault: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SecretNotFound):
        vault_get(f"vault://secret/{unique('none')}#x")
    path = unique("fields")
    vault.secrets.kv.v2.create_or_update_secret(path, {"a": "1"}, mount_point="secret")
    with pytest.raises(SecretNotFound, match="no field 'b'"):
        vault_get(f"vault://secret/{path}#b")
    monkeypatch.setenv("VAULT_TOKEN", "not-a-token")
    provider._clients.clear()
    with pytest.raises(AccessDenied, match="permission denied"):
        vault_get(f"vault://secret/{path}#a")
    with pytest.raises(ProviderUnavailable):
        vault_get(f"vault://secret/{path}#a?addr=http://127.0.0.1:{free_port()}")


def test_a_slow_vault_times_out_as_unavailable(vault: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    silent = socket.socket()  # accepts connections (the kernel's backlog) and never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    try:
        monkeypatch.setenv("VAULT_CLIENT_TIMEOUT", "0.3")
        monkeypatch.setenv("VAULT_ADDR", f"http://127.0.0.1:{silent.getsockname()[1]}")
        provider._clients.clear()
        started = time.monotonic()
        with pytest.raises(ProviderUnavailable, match="did not answer"):
            vault_get("vault://secret/slow#x")
        assert time.monotonic() - started < 5
    finally:
        silent.close()


def approle(vault: Any, monkeypatch: pytest.MonkeyPatch, **role: Any) -> None:
    """An AppRole that reads secret/, and keysentry's environment set to log in with it."""
    mount = unique("approle")
    vault.sys.enable_auth_method("approle", path=mount)
    vault.sys.create_or_update_policy("read-openai", 'path "secret/data/*" {capabilities=["read"]}')
    vault.auth.approle.create_or_update_approle(
        "app", token_policies=["read-openai"], mount_point=mount, **role
    )
    role_id = vault.auth.approle.read_role_id("app", mount_point=mount)["data"]["role_id"]
    secret_id = vault.auth.approle.generate_secret_id("app", mount_point=mount)["data"]["secret_id"]
    monkeypatch.delenv("VAULT_TOKEN")
    monkeypatch.setenv("VAULT_ROLE_ID", role_id)
    monkeypatch.setenv("VAULT_SECRET_ID", secret_id)
    monkeypatch.setenv("VAULT_APPROLE_MOUNT", mount)


def stored(vault: Any, rng: random.Random) -> tuple[str, str]:
    """A key stored at a path of its own: (reference, key)."""
    path = unique("app")
    key = key_of(KeyKind.PROJECT, rng).key
    vault.secrets.kv.v2.create_or_update_secret(path, {"api_key": key}, mount_point="secret")
    return f"vault://secret/{path}#api_key", key


def test_a_vault_token_file_in_home_is_never_read(
    vault: Any, rng: random.Random, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    ref, _ = stored(vault, rng)
    (tmp_path / ".vault-token").write_text(BAO_TOKEN)  # valid: using it would succeed
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("VAULT_TOKEN")
    with pytest.raises(AccessDenied, match="no Vault credentials"):
        vault_get(ref)


def test_approle_logs_in_despite_a_wrong_vault_token_file_in_home(
    vault: Any, rng: random.Random, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    ref, key = stored(vault, rng)
    (tmp_path / ".vault-token").write_text("s.wrong-token-from-another-session")
    monkeypatch.setenv("HOME", str(tmp_path))
    approle(vault, monkeypatch)
    assert vault_get(ref).secret.reveal() == key


def test_a_login_token_is_renewed_before_it_expires_and_after_a_revocation(
    vault: Any, rng: random.Random, monkeypatch: pytest.MonkeyPatch
) -> None:
    ref, key = stored(vault, rng)
    approle(vault, monkeypatch, token_ttl="2s", token_max_ttl="2s")
    assert vault_get(ref).secret.reveal() == key
    first = provider._client(parse_ref(ref)).token
    time.sleep(2.5)  # the token has expired
    assert vault_get(ref).secret.reveal() == key
    second = provider._client(parse_ref(ref)).token
    assert second != first
    vault.auth.token.revoke(second)  # refused from now on: 403
    assert vault_get(ref).secret.reveal() == key
    assert provider._client(parse_ref(ref)).token not in (first, second)


def test_an_expired_vault_token_is_replaced_by_the_environments_new_one(
    vault: Any, rng: random.Random, monkeypatch: pytest.MonkeyPatch
) -> None:
    ref, key = stored(vault, rng)
    vault.sys.create_or_update_policy("read-openai", 'path "secret/data/*" {capabilities=["read"]}')

    def token(ttl: str) -> str:
        created = vault.auth.token.create(policies=["read-openai"], ttl=ttl)
        return str(created["auth"]["client_token"])

    monkeypatch.setenv("VAULT_TOKEN", token("1s"))
    assert vault_get(ref).secret.reveal() == key
    time.sleep(1.5)
    with pytest.raises(AccessDenied):  # expired, and nothing new to log in with: one line
        vault_get(ref)
    monkeypatch.setenv("VAULT_TOKEN", token("1h"))  # e.g. a sidecar renewed it
    assert vault_get(ref).secret.reveal() == key

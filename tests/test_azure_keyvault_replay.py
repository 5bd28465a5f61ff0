"""The Azure Key Vault test server replayed against the Azure SDK's own recorded sessions.

`tests/spec/azure-keyvault-recorded.json` holds exchanges the azure-keyvault-secrets SDK
recorded against a real vault (its source and what was left out are written in the file).
Each request is sent, in order, to `tests/servers/azure_keyvault.py`; the answer must have
the recorded status and the recorded body's shape: the same keys at every level, the same
JSON types, and the same values except where a real vault's values cannot repeat (times,
version ids, the vault's recovery settings). `EVENTUAL` names the one recorded behaviour the
server does not reproduce on purpose.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from servers.azure_keyvault import KeyVaultServer

RECORDED = Path(__file__).parent / "spec" / "azure-keyvault-recorded.json"
VAULT = "https://vaultname.vault.azure.net"
API_VERSION = "7.3"
# Values a real vault gives differently on every run, or by its own configuration.
VOLATILE = {
    "created",
    "updated",
    "deletedDate",
    "scheduledPurgeDate",
    "recoveryLevel",
    "recoverableDays",
}
VERSION = re.compile(r"/[0-9a-f]{32}\b")
# The real service deletes asynchronously (the SDK's poller reads 404 until the deletion
# lands); the server deletes at once, so the recorded 404 of that window is not replayed.
EVENTUAL = "eventual"


def sessions() -> dict[str, list[dict[str, Any]]]:
    recorded: dict[str, list[dict[str, Any]]] = json.loads(RECORDED.read_text())["sessions"]
    return recorded


@pytest.fixture
def vault() -> Iterator[KeyVaultServer]:
    server = KeyVaultServer(VAULT).start()
    yield server
    server.stop()


def send(server: KeyVaultServer, entry: dict[str, Any], version: str) -> tuple[int, Any, Any]:
    path = entry["path"].replace("{version}", version)
    url = f"http://127.0.0.1:{server.port}{path}?api-version={API_VERSION}"
    data = None if entry["body"] is None else json.dumps(entry["body"]).encode()
    headers = {"Content-Type": "application/json"}
    if entry.get("auth", True):
        headers["Authorization"] = "Bearer recorded-session-token"
    request = urllib.request.Request(url, data=data, headers=headers, method=entry["method"])
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            raw, status, got = response.read(), response.status, response.headers
    except urllib.error.HTTPError as answer:
        raw, status, got = answer.read(), answer.code, answer.headers
    return int(status), json.loads(raw) if raw else None, got


def differences(recorded: Any, answered: Any, where: str = "") -> list[str]:
    """How `answered` departs from `recorded` in shape, type or stable value."""
    if isinstance(recorded, dict) and isinstance(answered, dict):
        found = []
        for key in recorded.keys() | answered.keys():
            here = f"{where}.{key}"
            if key not in answered:
                found.append(f"{here}: recorded, not answered")
            elif key not in recorded:
                found.append(f"{here}: answered {answered[key]!r}, absent from the recording")
            elif key not in VOLATILE:
                found += differences(recorded[key], answered[key], here)
        return found
    if isinstance(recorded, list) and isinstance(answered, list):
        if len(recorded) != len(answered):
            return [f"{where}: {len(answered)} items, recorded {len(recorded)}"]
        return [
            d
            for i, (r, a) in enumerate(zip(recorded, answered, strict=True))
            for d in differences(r, a, f"{where}[{i}]")
        ]
    if isinstance(recorded, str) and isinstance(answered, str):
        if VERSION.sub("/{version}", recorded) != VERSION.sub("/{version}", answered):
            return [f"{where}: {answered!r}, recorded {recorded!r}"]
        return []
    if type(recorded) is not type(answered) or recorded != answered:
        return [f"{where}: {answered!r}, recorded {recorded!r}"]
    return []


@pytest.mark.parametrize("name", sorted(sessions()))
def test_the_key_vault_server_answers_as_the_recorded_vault_did(
    vault: KeyVaultServer, name: str
) -> None:
    version = ""
    found = []
    for index, entry in enumerate(sessions()[name]):
        if EVENTUAL in entry:
            continue
        status, body, headers = send(vault, entry, version)
        where = f"{name} #{index} {entry['method']} {entry['path']}"
        if status != entry["status"]:
            found.append(f"{where}: HTTP {status}, recorded {entry['status']}: {body}")
            continue
        if entry["status"] >= 400:  # the error's code; messages are free text
            if body["error"]["code"] != entry["response"]["error"]["code"]:
                found.append(f"{where}: error code {body['error']['code']}")
        else:
            found += [f"{where}: {d}" for d in differences(entry["response"], body)]
        challenge = entry.get("headers", {}).get("WWW-Authenticate")
        if challenge and 'resource="https://vault.azure.net"' not in (
            headers.get("WWW-Authenticate") or ""
        ):
            found.append(f"{where}: no bearer challenge for the vault resource")
        if entry["method"] == "PUT" and status == 200:
            version = body["id"].rsplit("/", 1)[1]
    assert not found, "\n".join(found)


def test_the_replay_notices_a_departure(vault: KeyVaultServer) -> None:
    """The comparison is not a rubber stamp."""
    recorded = sessions()["test_example_secret_crud_operations[7.3]"][1]["response"]
    assert differences(recorded, recorded) == []
    assert differences(recorded, {**recorded, "value": "other"})
    assert differences(recorded, {k: v for k, v in recorded.items() if k != "attributes"})
    assert differences(recorded, {**recorded, "tags": {}})
    moved = {**recorded, "id": recorded["id"].replace("vaultname", "elsewhere")}
    assert differences(recorded, moved)

"""aws-sm://: AWS Secrets Manager through boto3, against moto in server mode."""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from keygen import key_of
from keysentry.errors import (
    AccessDenied,
    ProviderError,
    ProviderUnavailable,
    SecretConflict,
    SecretNotFound,
)
from keysentry.providers import aws
from keysentry.providers.base import parse_ref
from keysentry.scanner.keys import KeyKind
from stores import free_port


def test_a_json_field_and_a_whole_secret(aws_client_rng: tuple[Any, random.Random]) -> None:
    client, rng = aws_client_rng
    key, whole = key_of(KeyKind.PROJECT, rng).key, key_of(KeyKind.ADMIN, rng).key
    client.create_secret(Name="prod/openai", SecretString=json.dumps({"OPENAI_API_KEY": key}))
    client.create_secret(Name="ops/admin", SecretString=whole)
    fetched = aws.get(parse_ref("aws-sm://prod/openai#OPENAI_API_KEY"))
    assert fetched.secret.reveal() == key and fetched.version
    assert aws.get(parse_ref("aws-sm://ops/admin")).secret.reveal() == whole


def test_version_stages_and_version_ids(aws_client_rng: tuple[Any, random.Random]) -> None:
    client, rng = aws_client_rng
    old, new = key_of(KeyKind.PROJECT, rng).key, key_of(KeyKind.PROJECT, rng).key
    first = client.create_secret(Name="rotating", SecretString=old)["VersionId"]
    client.put_secret_value(SecretId="rotating", SecretString=new)
    assert aws.get(parse_ref("aws-sm://rotating")).secret.reveal() == new
    assert aws.get(parse_ref("aws-sm://rotating?stage=AWSPREVIOUS")).secret.reveal() == old
    assert aws.get(parse_ref(f"aws-sm://rotating?version-id={first}")).secret.reveal() == old


def test_put_creates_then_versions_and_refuses_to_overwrite(
    aws_client_rng: tuple[Any, random.Random],
) -> None:
    client, rng = aws_client_rng
    key, other = key_of(KeyKind.PROJECT, rng).key, key_of(KeyKind.PROJECT, rng).key
    ref = parse_ref("aws-sm://staging/openai#OPENAI_API_KEY")
    created = aws.put(ref, key, tags={"managed-by": "keysentry"}, overwrite=False)
    assert created.created and created.changed
    assert not aws.put(ref, key, tags={}, overwrite=False).changed
    with pytest.raises(SecretConflict):
        aws.put(ref, other, tags={}, overwrite=False)
    second = aws.put(parse_ref("aws-sm://staging/openai#SECOND"), other, tags={}, overwrite=False)
    assert second.changed and not second.created
    stored = json.loads(client.get_secret_value(SecretId="staging/openai")["SecretString"])
    assert stored == {"OPENAI_API_KEY": key, "SECOND": other}
    description = aws.describe(ref)
    assert description["tags"] == {"managed-by": "keysentry"}
    assert len(description["versions"]) == 2  # type: ignore[arg-type]


def test_missing_secret_field_and_malformed_json(
    aws_client_rng: tuple[Any, random.Random],
) -> None:
    client, rng = aws_client_rng
    key = key_of(KeyKind.PROJECT, rng).key
    client.create_secret(Name="plain", SecretString=key)
    client.create_secret(Name="json", SecretString=json.dumps({"OTHER": "x"}))
    with pytest.raises(SecretNotFound, match="ResourceNotFoundException"):
        aws.get(parse_ref("aws-sm://nope"))
    with pytest.raises(SecretNotFound, match="no field 'OPENAI_API_KEY'"):
        aws.get(parse_ref("aws-sm://json#OPENAI_API_KEY"))
    with pytest.raises(ProviderError, match="not a JSON object") as caught:
        aws.get(parse_ref("aws-sm://plain#OPENAI_API_KEY"))
    assert key not in str(caught.value)


def test_a_store_that_is_down_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in (
        ("AWS_ACCESS_KEY_ID", "t"),
        ("AWS_SECRET_ACCESS_KEY", "t"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
    ):
        monkeypatch.setenv(name, value)
    aws._clients.clear()
    closed = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ProviderUnavailable, match="did not answer"):
        aws.get(parse_ref(f"aws-sm://x?endpoint={closed}"))
    assert not aws.health(parse_ref(f"aws-sm://x?endpoint={closed}")).ok


class _Denying(BaseHTTPRequestHandler):
    """Secrets Manager's real AccessDenied answer, which moto cannot produce (400 + JSON)."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = json.dumps(
            {
                "__type": "AccessDeniedException",
                "Message": "User: arn:aws:iam::1:"
                "user/ci is not authorized to perform: secretsmanager:GetSecretValue",
            }
        )
        self.send_response(400)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args: Any) -> None:
        return


@pytest.fixture
def denying_endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Denying)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    for name, value in (
        ("AWS_ACCESS_KEY_ID", "t"),
        ("AWS_SECRET_ACCESS_KEY", "t"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
    ):
        monkeypatch.setenv(name, value)
    aws._clients.clear()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_access_denied_is_its_own_error(denying_endpoint: str) -> None:
    with pytest.raises(AccessDenied, match="AccessDeniedException"):
        aws.get(parse_ref(f"aws-sm://prod/openai?endpoint={denying_endpoint}"))


@pytest.fixture
def aws_client_rng(aws: Any, rng: random.Random) -> tuple[Any, random.Random]:
    return aws, rng

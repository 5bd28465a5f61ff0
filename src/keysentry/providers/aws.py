"""`aws-sm://SECRET-ID[#FIELD]`: AWS Secrets Manager, through boto3.

Options: `region`, `profile`, `endpoint` (else boto3's usual environment, such as
`AWS_ENDPOINT_URL_SECRETS_MANAGER`), `stage` (default AWSCURRENT) or `version-id`. With
`#FIELD` the SecretString is a JSON object and FIELD one of its keys (one secret per
environment holding several names); without it, the whole SecretString.

Clients are made once per (profile, region, endpoint) and shared by threads. After a fork the
child starts with none and a fresh lock: a parent's thread may have held the lock mid-creation
(a fork from gunicorn or Celery prefork), and a boto3 client's connections are the parent's.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator, Mapping
from typing import Any

from keysentry.errors import (
    AccessDenied,
    ConfigError,
    ProviderError,
    ProviderUnavailable,
    SecretConflict,
    SecretNotFound,
)
from keysentry.providers._fields import read_field, write_field
from keysentry.providers.base import Fetched, Health, SecretRef, Stored
from keysentry.secret import Secret

SCHEME = "aws-sm"
OPTIONS = frozenset({"region", "profile", "endpoint", "stage", "version-id"})

_clients: dict[tuple[str | None, str | None, str | None], Any] = {}
_clients_lock = threading.Lock()

_NOT_FOUND = {"ResourceNotFoundException"}
_DENIED = {
    "AccessDeniedException",
    "UnrecognizedClientException",
    "InvalidSignatureException",
    "ExpiredTokenException",
    "DecryptionFailure",
    "403",
}
_UNAVAILABLE = {"ThrottlingException", "InternalServiceError", "ServiceUnavailable", "500", "503"}
_CONFLICT = {"ResourceExistsException"}


def _client(ref: SecretRef) -> Any:
    key = (ref.option("profile"), ref.option("region"), ref.option("endpoint"))
    with _clients_lock:
        if key not in _clients:
            import boto3
            from botocore.config import Config

            session = boto3.session.Session(profile_name=key[0], region_name=key[1])
            config = Config(
                connect_timeout=5, read_timeout=10, retries={"max_attempts": 2, "mode": "standard"}
            )
            _clients[key] = session.client("secretsmanager", endpoint_url=key[2], config=config)
        return _clients[key]


def _reset_after_fork() -> None:
    global _clients_lock
    _clients_lock = threading.Lock()
    _clients.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


@contextlib.contextmanager
def _translated(ref: SecretRef) -> Iterator[None]:
    """botocore's exceptions as keysentry's, with the reference and AWS's code."""
    from botocore import exceptions as aws

    try:
        yield
    except aws.ClientError as exc:
        error = exc.response.get("Error", {})
        code, message = str(error.get("Code", "")), str(error.get("Message", ""))
        text = f"{ref}: {code}: {message}".rstrip(": ")
        if code in _NOT_FOUND:
            raise SecretNotFound(text) from None
        if code in _DENIED:
            raise AccessDenied(text) from None
        if code in _CONFLICT:
            raise SecretConflict(text) from None
        if code == "InvalidRequestException" and "deleted" in message.lower():
            raise SecretConflict(
                f"{text}; restore it (restore-secret) or wait until the deletion completes"
            ) from None
        if code in _UNAVAILABLE:
            raise ProviderUnavailable(text) from None
        raise ProviderError(text) from None
    except aws.NoRegionError:
        raise ConfigError(f"{ref}: no AWS region: add ?region= or set AWS_REGION") from None
    except (aws.NoCredentialsError, aws.PartialCredentialsError):
        raise AccessDenied(f"{ref}: no AWS credentials were found") from None
    except aws.ProfileNotFound as exc:
        raise ConfigError(f"{ref}: {exc}") from None
    except (
        aws.EndpointConnectionError,
        aws.ConnectTimeoutError,
        aws.ReadTimeoutError,
        aws.ConnectionClosedError,
    ) as exc:
        raise ProviderUnavailable(f"{ref}: Secrets Manager did not answer: {exc}") from None


def _fetch(ref: SecretRef) -> dict[str, Any]:
    request: dict[str, str] = {"SecretId": ref.location}
    version = ref.option("version-id")
    if version:
        request["VersionId"] = version
    else:
        request["VersionStage"] = ref.option("stage") or "AWSCURRENT"
    with _translated(ref):
        response: dict[str, Any] = _client(ref).get_secret_value(**request)
    return response


def _text(ref: SecretRef, response: Mapping[str, Any]) -> str:
    if "SecretString" in response:
        return str(response["SecretString"])
    try:
        return bytes(response["SecretBinary"]).decode("utf-8")
    except (KeyError, UnicodeDecodeError):
        raise ProviderError(f"{ref}: the secret is binary, not text") from None


def get(ref: SecretRef) -> Fetched:
    response = _fetch(ref)
    value = read_field(ref, _text(ref, response))
    version = str(response.get("VersionId"))
    return Fetched(Secret(value), f"{ref} (version {version})", version)


def put(ref: SecretRef, value: str, *, tags: Mapping[str, str], overwrite: bool) -> Stored:
    client = _client(ref)
    aws_tags = [{"Key": k, "Value": v} for k, v in sorted(tags.items())]
    try:
        current: str | None = _text(ref, _fetch(ref._replace(field=None)))
    except SecretNotFound:
        current = None
    if current is None:
        text, _ = write_field(ref, None, value)
        with _translated(ref):
            created = client.create_secret(Name=ref.location, SecretString=text, Tags=aws_tags)
        return Stored(str(created["VersionId"]), created=True, changed=True)
    text, old = write_field(ref, current, value)
    if old == value:
        return Stored(None, created=False, changed=False)
    if old is not None and not overwrite:
        raise SecretConflict(f"{ref}: the store already holds another value (use --overwrite)")
    with _translated(ref):
        stored = client.put_secret_value(SecretId=ref.location, SecretString=text)
        if aws_tags:
            client.tag_resource(SecretId=ref.location, Tags=aws_tags)
    return Stored(str(stored["VersionId"]), created=False, changed=True)


def describe(ref: SecretRef) -> dict[str, object]:
    with _translated(ref):
        info = _client(ref).describe_secret(SecretId=ref.location)
    return {
        "reference": str(ref),
        "arn": info.get("ARN"),
        "versions": info.get("VersionIdsToStages", {}),
        "tags": {t["Key"]: t["Value"] for t in info.get("Tags", [])},
        "last_changed": str(info.get("LastChangedDate", "")),
    }


def health(ref: SecretRef) -> Health:
    try:
        with _translated(ref):
            _client(ref).list_secrets(MaxResults=1)
    except ProviderError as exc:
        return Health(False, str(exc))
    return Health(True, "Secrets Manager answered")

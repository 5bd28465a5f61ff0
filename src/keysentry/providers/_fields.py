"""One field of a structured secret: the `#field` of a reference to a JSON secret."""

from __future__ import annotations

import json

from keysentry.errors import ProviderError, SecretNotFound
from keysentry.providers.base import SecretRef


def read_field(ref: SecretRef, text: str) -> str:
    """The value `ref` names in a secret's text: the whole text, or one field of its JSON."""
    if ref.field is None:
        return text
    document = _object(ref, text)
    value = document.get(ref.field)
    if value is None:
        raise SecretNotFound(f"{ref}: the secret has no field {ref.field!r}")
    if not isinstance(value, str):
        raise ProviderError(f"{ref}: field {ref.field!r} is not a string")
    return value


def write_field(ref: SecretRef, text: str | None, value: str) -> tuple[str, str | None]:
    """The secret's new text with `ref`'s field set to `value`, and the field's old value."""
    if ref.field is None:
        return value, text
    document = _object(ref, text) if text else {}
    old = document.get(ref.field)
    document[ref.field] = value
    return json.dumps(document, sort_keys=True), old if isinstance(old, str) else None


def _object(ref: SecretRef, text: str) -> dict[str, object]:
    try:
        document = json.loads(text)
    except ValueError:
        document = None
    if not isinstance(document, dict):
        raise ProviderError(
            f"{ref}: the secret is not a JSON object, so it has no fields; drop "
            f"#{ref.field} to use it whole"
        )
    return document

"""Secret stores behind one small interface: one module per store, like pre-commit's languages.

Every module is light to import: the store's SDK (boto3, hvac, azure) is imported only when
that store is used.
"""

from __future__ import annotations

from types import MappingProxyType

from keysentry.providers import aws, azure, dotenv, env, vault
from keysentry.providers.base import Provider

PROVIDERS: MappingProxyType[str, Provider] = MappingProxyType(
    {module.SCHEME: module for module in (env, dotenv, aws, vault, azure)}
)


def provider_for(scheme: str) -> Provider:
    return PROVIDERS[scheme]

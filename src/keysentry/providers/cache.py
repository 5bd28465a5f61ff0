"""A per-process cache of fetched secrets: TTL with jitter, single flight, stale-if-error.

- A fresh entry is returned without taking a lock (the fast path is a dict lookup and a clock
  read: well under 5 µs).
- When an entry is missing or expired, one caller fetches and every other caller of the same
  key waits for that fetch (a hundred threads on a cold cache make one provider call).
- When a refresh fails and the last good value is younger than `ttl + stale_if_error`, that
  value is served, with a warning naming the reference (never the value), and the store is
  retried after a short pause rather than on every call.
- Thread-safe; after a fork the child gets fresh locks and keeps the values.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
import weakref
from collections.abc import Callable
from typing import NamedTuple

from keysentry.errors import ProviderError
from keysentry.providers.base import Fetched

log = logging.getLogger("keysentry")

_caches: weakref.WeakSet[SecretCache] = weakref.WeakSet()


class _Entry(NamedTuple):
    value: Fetched
    fetched: float  # monotonic time of the successful fetch
    expires: float  # when to fetch again
    stale_until: float  # after this, a failing store is an error


class _Flight:
    """One fetch in progress, which the other callers of the same key wait for."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.result: Fetched | None = None
        self.error: BaseException | None = None


class SecretCache:
    def __init__(self, ttl: float = 300.0, stale_if_error: float = 3600.0) -> None:
        self.ttl = ttl
        self.stale_if_error = stale_if_error
        self._entries: dict[str, _Entry] = {}
        self._flights: dict[str, _Flight] = {}
        self._lock = threading.Lock()
        _caches.add(self)

    def get(self, key: str, fetch: Callable[[], Fetched]) -> Fetched:
        entry = self._entries.get(key)
        if entry is not None and time.monotonic() < entry.expires:
            return entry.value
        return self._refresh(key, fetch)

    def invalidate(self, key: str | None = None) -> None:
        """Forget one key (or all): the next get fetches."""
        with self._lock:
            if key is None:
                self._entries.clear()
            else:
                self._entries.pop(key, None)

    def _refresh(self, key: str, fetch: Callable[[], Fetched]) -> Fetched:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and time.monotonic() < entry.expires:
                return entry.value
            flight = self._flights.get(key)
            leading = flight is None
            if flight is None:
                flight = self._flights[key] = _Flight()
        if not leading:
            flight.done.wait()
            if flight.result is None:
                assert flight.error is not None
                raise flight.error
            return flight.result
        try:
            flight.result = self._fetch(key, fetch, entry)
            return flight.result
        except BaseException as exc:
            flight.error = exc
            raise
        finally:
            with self._lock:
                self._flights.pop(key, None)
            flight.done.set()

    def _fetch(self, key: str, fetch: Callable[[], Fetched], entry: _Entry | None) -> Fetched:
        try:
            value = fetch()
        except ProviderError as exc:
            now = time.monotonic()
            if entry is None or now >= entry.stale_until:
                raise
            log.warning(
                "keysentry: serving the cached value of %s, fetched %.0f s ago: the store "
                "failed (%s)",
                key,
                now - entry.fetched,
                exc,
            )
            retry = now + min(self.ttl, max(1.0, self.ttl / 10))
            with self._lock:
                self._entries[key] = entry._replace(expires=min(retry, entry.stale_until))
            return entry.value
        now = time.monotonic()
        # Jitter spreads the refreshes of many processes that started together.
        ttl = self.ttl * random.uniform(0.9, 1.0)
        with self._lock:
            self._entries[key] = _Entry(value, now, now + ttl, now + ttl + self.stale_if_error)
        return value

    def _after_fork(self) -> None:
        self._lock = threading.Lock()
        self._flights = {}


def _reset_after_fork() -> None:
    for cache in list(_caches):
        cache._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)

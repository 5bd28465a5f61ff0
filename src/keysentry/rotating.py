"""An HTTP transport that sends the current key and survives a rotation.

The openai SDK (3.x) speaks through `httpx2`, a fork of httpx with the same API.

Every request carries the key the loader has now (a cache hit). When the API answers 401, the
key is read from the store again; if it changed, the request is sent once more with it.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx2 as httpx

from keysentry.secret import Secret


class RotatingKeyTransport(httpx.BaseTransport):
    def __init__(
        self,
        inner: httpx.BaseTransport,
        current: Callable[[], Secret],
        refreshed: Callable[[], Secret],
    ) -> None:
        self._inner = inner
        self._current = current
        self._refreshed = refreshed

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        key = self._current()
        request.headers["Authorization"] = f"Bearer {key.reveal()}"
        response = self._inner.handle_request(request)
        if response.status_code != 401:
            return response
        fresh = self._refreshed()
        if fresh == key:
            return response  # not a rotation: the key itself is refused
        response.close()
        request.headers["Authorization"] = f"Bearer {fresh.reveal()}"
        return self._inner.handle_request(request)

    def close(self) -> None:
        self._inner.close()

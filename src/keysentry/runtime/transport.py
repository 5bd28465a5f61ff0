"""The runtime guard in the SDK's HTTP transport: every request the `OpenAI` / `AsyncOpenAI`
client sends passes here, so every SDK feature (streaming, Responses, files, batches) gets the
same rules without wrappers around its methods.

For each request, in order:
1. A generation call (`POST …/chat/completions`, `POST …/responses`) is checked: its model
   against the allowlist (ModelNotAllowed), an output cap set when it has none, a streamed
   chat call asked for its usage (`stream_options.include_usage`), its tokens against the
   budget (BudgetExceeded). Refusals are raised before anything is sent.
2. The current key is set (a cache hit in the loader), then the request is sent under
   `keysentry.resilience`: retries by status and code, waits, the call's deadline (each
   attempt's timeouts are cut to what is left of it), and the host's circuit breaker.
3. A 401 reads the key from the store once more; if it changed (a rotation), the same request,
   body included, is sent again with it. That replay is not a retry and is done once.
4. The answer's `usage` is counted against the budget: read from a JSON body, or picked from
   the event stream as the caller reads it.
The SDK's own retries are off (`max_retries=0`): they would retry billing 429s.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx2 as httpx

from keysentry.errors import KeysentryError
from keysentry.resilience import (
    Call,
    CircuitBreaker,
    RetryPolicy,
    Verdict,
    breaker_for,
    status_verdict,
    transport_verdict,
)
from keysentry.runtime.budget import Budget, ModelNotAllowed, estimate
from keysentry.runtime.observe import telemetry
from keysentry.runtime.settings import Settings
from keysentry.secret import Secret

log = logging.getLogger("keysentry.runtime")
GENERATION_PATHS = ("/chat/completions", "/responses")
OUTPUT_CAPS = ("max_completion_tokens", "max_tokens", "max_output_tokens")
MAX_EVENT_LINE = 16 * 1024 * 1024  # bytes: a Responses `response.completed` holds the output
TRANSPORT_ERRORS = (httpx.TimeoutException, httpx.TransportError)


class Guard:
    """The rules of one client, shared by its sync or async transport."""

    def __init__(
        self,
        settings: Settings,
        budget: Budget,
        base_url: str,
        current: Callable[[], Secret],
        refreshed: Callable[[], Secret],
    ) -> None:
        self.settings, self.budget = settings, budget
        self.current, self.refreshed = current, refreshed
        self.policy = RetryPolicy(
            attempts=settings.max_retries + 1,
            backoff_base=settings.backoff_base_seconds,
            backoff_cap=settings.backoff_cap_seconds,
            max_retry_after=settings.max_retry_after_seconds,
            deadline=settings.deadline_seconds or None,
        )
        self.breaker: CircuitBreaker = breaker_for(
            base_url,
            threshold=settings.breaker_failures,
            cooldown=settings.breaker_cooldown_seconds,
        )

    def prepare(self, request: httpx.Request) -> tuple[httpx.Request, str | None]:
        """The request as it will be sent, and the model it bills (None: not a generation)."""
        if request.method != "POST" or not request.url.path.endswith(GENERATION_PATHS):
            return request, None
        try:
            body = json.loads(request.content)
        except ValueError:
            return request, None
        if not isinstance(body, dict):
            return request, None
        model = str(body.get("model", ""))
        allowed = self.settings.models
        if allowed and model not in allowed:
            raise ModelNotAllowed(
                f"model {model!r} is not allowed in this environment "
                f"(allowed: {', '.join(allowed)})"
            )
        cap = self.settings.max_output_tokens
        if cap and not any(name in body for name in OUTPUT_CAPS):
            chat = request.url.path.endswith("/chat/completions")
            body["max_completion_tokens" if chat else "max_output_tokens"] = cap
        if body.get("stream") is True and request.url.path.endswith("/chat/completions"):
            options = body.get("stream_options")
            if not isinstance(options, dict):
                options = body["stream_options"] = {}
            options.setdefault("include_usage", True)
        self.budget.check(estimate(body))
        headers = [
            (k, v) for k, v in request.headers.multi_items() if k.lower() != "content-length"
        ]
        rebuilt = httpx.Request(
            request.method,
            request.url,
            headers=headers,
            content=json.dumps(body).encode(),
            extensions=request.extensions,
        )
        return rebuilt, model

    def reread(self, key: Secret) -> Secret:
        """The key from its store again after a 401; `key` itself when the store cannot say
        (then the 401 is the answer, not the store's error)."""
        try:
            return self.refreshed()
        except KeysentryError as exc:
            log.warning(
                "after a 401, the key could not be read again: %s",
                exc,
                extra={"keysentry_event": "key_reread_failed"},
            )
            return key

    def start(self, request: httpx.Request) -> Call:
        return Call(self.policy, self.breaker, self.breaker.host)

    @staticmethod
    def send_with(request: httpx.Request, key: Secret, call: Call) -> None:
        request.headers["Authorization"] = f"Bearer {key.reveal()}"
        left = call.remaining()
        timeout = request.extensions.get("timeout")
        if left is not None and isinstance(timeout, dict):
            request.extensions["timeout"] = {
                name: left if value is None else min(value, left) for name, value in timeout.items()
            }

    @staticmethod
    def verdict(response: httpx.Response) -> Verdict:
        """The core's verdict on an answer whose body has been read."""
        code = type_ = None
        if response.status_code >= 400:
            try:
                body = json.loads(response.content)
            except ValueError:
                body = None
            inner = body.get("error") if isinstance(body, dict) else None
            if isinstance(inner, dict):
                code, type_ = _text_or_none(inner.get("code")), _text_or_none(inner.get("type"))
        return status_verdict(response.status_code, code, type_, response.headers)

    @staticmethod
    def scrubbed(response: httpx.Response, request: httpx.Request) -> httpx.Response:
        """An error answer (read) without any key in its body: the SDK puts the body in its
        exception's text, which apps log. The API quotes keys back; a hostile one in full."""
        from keysentry.safety import scrub

        if response.status_code < 400:
            return response
        text = response.content.decode("utf-8", "replace")
        clean = scrub(text)
        if clean == text:
            return response
        dropped = ("content-length", "content-encoding", "transfer-encoding")
        headers = [(k, v) for k, v in response.headers.multi_items() if k.lower() not in dropped]
        return httpx.Response(
            response.status_code,
            headers=headers,
            content=clean.encode(),
            request=request,
            extensions=response.extensions,
        )

    def metered(self, response: httpx.Response, model: str | None) -> httpx.Response:
        """The answer, its usage counted now (JSON) or as its stream is read (SSE)."""
        if model is None or response.status_code >= 400:
            return response
        if "text/event-stream" in response.headers.get("content-type", ""):
            response.stream = _MeteredStream(response.stream, lambda u: self._count(model, u))
            return response
        return response  # JSON: counted by `count_json` once the body is read

    def count_json(self, response: httpx.Response, model: str | None) -> None:
        if model is None or response.status_code >= 400:
            return
        try:
            body = json.loads(response.content)
        except ValueError:
            return
        if isinstance(body, dict):
            self._count(str(body.get("model") or model), body.get("usage"))

    def _count(self, model: str, usage: Any) -> None:
        if not isinstance(usage, dict):
            return
        prompt = usage.get("prompt_tokens", usage.get("input_tokens", 0))
        completion = usage.get("completion_tokens", usage.get("output_tokens", 0))
        if isinstance(prompt, int) and isinstance(completion, int):
            self.budget.record(model, prompt, completion)


def _text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


class _EventUsage:
    """Finds `usage` in a server-sent event stream as it passes: a chat stream's last chunk
    (`"usage": {...}` with `include_usage`), or a Responses stream's `response.completed`.
    Linear in the stream: each byte is looked at once, a line is joined once, and a line past
    MAX_EVENT_LINE (no usage event is that long) is skipped rather than kept."""

    def __init__(self, found: Callable[[Any], None]) -> None:
        self._found, self._done = found, False
        self._parts: list[bytes] = []
        self._size = 0

    def feed(self, chunk: bytes) -> None:
        if self._done:
            return
        start = 0
        while (end := chunk.find(b"\n", start)) != -1:
            self._keep(chunk[start:end])
            if self._size <= MAX_EVENT_LINE:
                self._line(b"".join(self._parts).strip())
            self._parts, self._size = [], 0
            start = end + 1
        self._keep(chunk[start:])

    def _keep(self, part: bytes) -> None:
        self._size += len(part)
        if self._size <= MAX_EVENT_LINE:
            self._parts.append(part)
        else:
            self._parts = []

    def _line(self, line: bytes) -> None:
        if not line.startswith(b"data:") or b'"usage"' not in line:
            return
        try:
            event = json.loads(line[5:])
        except ValueError:
            return
        if not isinstance(event, dict):
            return
        usage = event.get("usage")
        model = event.get("model")
        inner = event.get("response")
        if usage is None and isinstance(inner, dict):
            usage, model = inner.get("usage"), inner.get("model")
        if isinstance(usage, dict):
            self._done = True
            self._found({"model": model, **usage})


class _MeteredStream(httpx.SyncByteStream, httpx.AsyncByteStream):
    def __init__(self, inner: Any, count: Callable[[Any], None]) -> None:
        self._inner = inner
        self._usage = _EventUsage(count)

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._inner:
            self._usage.feed(chunk)
            yield chunk

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._inner:
            self._usage.feed(chunk)
            yield chunk

    def close(self) -> None:
        self._inner.close()

    async def aclose(self) -> None:
        await self._inner.aclose()


class GuardedTransport(httpx.BaseTransport):
    """The guard around a sync transport."""

    def __init__(
        self,
        inner: httpx.BaseTransport,
        guard: Guard,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._inner, self.guard, self._sleep = inner, guard, sleep

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        with telemetry().span(request.method, request.url.path):
            return self._guarded(request)

    def _guarded(self, request: httpx.Request) -> httpx.Response:
        guard = self.guard
        request.read()  # a body that can be sent again: retries and the 401 replay
        request, model = guard.prepare(request)
        call, key, reread = guard.start(request), guard.current(), False
        while True:
            call.before()
            guard.send_with(request, key, call)
            try:
                response = self._inner.handle_request(request)
            except TRANSPORT_ERRORS as exc:
                wait = call.after(transport_verdict(type(exc).__name__))
                if wait is None:
                    raise
                telemetry().retried(1, request.url.path)
                self._sleep(wait)
                continue
            except BaseException:
                guard.breaker.abandon()
                raise
            if response.status_code == 401 and not reread:
                reread, fresh = True, guard.reread(key)
                if fresh != key:
                    response.close()
                    guard.breaker.success()  # the host answered
                    call.attempt -= 1  # a replay with the new key is not a retry
                    key = fresh
                    continue
            if response.status_code >= 400 or (model is not None and not _streamed(response)):
                response.read()
            wait = call.after(guard.verdict(response))
            if wait is None:
                guard.count_json(response, None if _streamed(response) else model)
                return guard.metered(guard.scrubbed(response, request), model)
            response.close()
            telemetry().retried(1, request.url.path)
            self._sleep(wait)

    def close(self) -> None:
        self._inner.close()


class AsyncGuardedTransport(httpx.AsyncBaseTransport):
    """The guard around an async transport."""

    def __init__(self, inner: httpx.AsyncBaseTransport, guard: Guard) -> None:
        self._inner, self.guard = inner, guard

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        with telemetry().span(request.method, request.url.path):
            return await self._guarded(request)

    async def _guarded(self, request: httpx.Request) -> httpx.Response:
        guard = self.guard
        await request.aread()
        request, model = guard.prepare(request)
        # The loader may read a store (a cache miss, a refresh): not on the event loop.
        key = await asyncio.to_thread(guard.current)
        call, reread = guard.start(request), False
        while True:
            call.before()
            guard.send_with(request, key, call)
            try:
                response = await self._inner.handle_async_request(request)
            except TRANSPORT_ERRORS as exc:
                wait = call.after(transport_verdict(type(exc).__name__))
                if wait is None:
                    raise
                telemetry().retried(1, request.url.path)
                await asyncio.sleep(wait)
                continue
            except BaseException:
                guard.breaker.abandon()
                raise
            if response.status_code == 401 and not reread:
                reread, fresh = True, await asyncio.to_thread(guard.reread, key)
                if fresh != key:
                    await response.aclose()
                    guard.breaker.success()
                    call.attempt -= 1
                    key = fresh
                    continue
            if response.status_code >= 400 or (model is not None and not _streamed(response)):
                await response.aread()
            wait = call.after(guard.verdict(response))
            if wait is None:
                guard.count_json(response, None if _streamed(response) else model)
                return guard.metered(guard.scrubbed(response, request), model)
            await response.aclose()
            telemetry().retried(1, request.url.path)
            await asyncio.sleep(wait)

    async def aclose(self) -> None:
        await self._inner.aclose()


def _streamed(response: httpx.Response) -> bool:
    return "text/event-stream" in response.headers.get("content-type", "")

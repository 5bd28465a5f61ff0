"""Optional telemetry for the runtime guard: OpenTelemetry spans and metrics, and a Prometheus
collector, each only when its package is installed (looked up with `find_spec`, imported only
then). The standard `logging` records (logger `keysentry.resilience` for retries and breaker
transitions, `keysentry.runtime` for usage, budget and spend events; each with a
`keysentry_event` attribute) are always there. No span, metric or label carries a key: they
hold the method, the path, the model, counts and states.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from functools import cache
from typing import Any


def installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


class Telemetry:
    """OpenTelemetry's tracer and meter for keysentry, or nothing when it is not installed."""

    def __init__(self) -> None:
        self.enabled = installed("opentelemetry")
        if not self.enabled:
            return
        from opentelemetry import metrics, trace

        self.tracer: Any = trace.get_tracer("keysentry")
        meter = metrics.get_meter("keysentry")
        self.tokens: Any = meter.create_counter(
            "keysentry.openai.tokens", unit="{token}", description="tokens used, by the answer"
        )
        self.cost: Any = meter.create_counter(
            "keysentry.openai.cost", unit="USD", description="priced by keysentry's price table"
        )
        self.retries: Any = meter.create_counter(
            "keysentry.openai.retries", unit="{retry}", description="requests sent again"
        )

    def span(self, method: str, path: str) -> AbstractContextManager[Any]:
        if not self.enabled:
            return nullcontext()
        attributes = {"http.request.method": method, "url.path": path}
        span: AbstractContextManager[Any] = self.tracer.start_as_current_span(
            "openai " + path, attributes=attributes
        )
        return span

    def used(self, env: str | None, model: str, tokens: int, usd: float) -> None:
        if self.enabled:
            labels = {"keysentry.env": env or "", "gen_ai.request.model": model}
            self.tokens.add(tokens, labels)
            self.cost.add(usd, labels)

    def retried(self, count: int, path: str) -> None:
        if self.enabled and count:
            self.retries.add(count, {"url.path": path})


@cache
def telemetry() -> Telemetry:
    return Telemetry()


class PrometheusCollector:
    """Gauges of every environment's window (tokens, spend) and every host's breaker:
    `prometheus_client.REGISTRY.register(PrometheusCollector())`."""

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        from keysentry.resilience import _breakers
        from keysentry.runtime.budget import _counters

        tokens = GaugeMetricFamily(
            "keysentry_openai_window_tokens", "tokens used in the budget window", labels=["env"]
        )
        spend = GaugeMetricFamily(
            "keysentry_openai_window_spend_usd", "spend in the budget window", labels=["env"]
        )
        for (env, _, _), counter in list(_counters.items()):
            totals = counter.totals()
            tokens.add_metric([env or ""], totals.tokens)
            spend.add_metric([env or ""], totals.usd)
        breaker = GaugeMetricFamily(
            "keysentry_openai_breaker_open",
            "1 while the host's circuit breaker is open or half-open",
            labels=["host"],
        )
        for host, each in list(_breakers.items()):
            breaker.add_metric([host], 0 if each.state == "closed" else 1)
        yield from (tokens, spend, breaker)

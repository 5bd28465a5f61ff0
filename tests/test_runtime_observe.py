"""The runtime guard's telemetry: logging records always; OpenTelemetry spans and metrics and a
Prometheus collector when installed, none of them holding the key; and nothing of it imported
by `import keysentry`."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest

from keysentry import openai_client
from servers.openai_api import OpenAIServer, error


def test_retries_breaker_transitions_and_usage_are_logged_without_the_key(
    api: OpenAIServer, key: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="keysentry")
    api.inject("/v1/chat", 503, error(f"down for {key}", "server_error"), times=2)
    sdk = openai_client(base_url=api.base_url, backoff_base_seconds=0.01, breaker_failures=2)
    with pytest.raises(Exception, match="503"):
        sdk.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
        )
    events = [r.__dict__.get("keysentry_event") for r in caplog.records]
    assert events.count("retry") == 1 and "breaker" in events
    assert all(key not in r.getMessage() for r in caplog.records)


def test_spans_and_metrics_when_opentelemetry_is_installed(api: OpenAIServer, key: str) -> None:
    pytest.importorskip("opentelemetry.sdk")
    from opentelemetry import metrics, trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from keysentry.runtime.observe import telemetry

    spans, reader = InMemorySpanExporter(), InMemoryMetricReader()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    trace.set_tracer_provider(tracer_provider)
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
    telemetry.cache_clear()
    api.inject("/v1/chat", 500)
    sdk = openai_client(base_url=api.base_url, backoff_base_seconds=0.01)
    sdk.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    names = [s.name for s in spans.get_finished_spans()]
    assert names == ["openai /v1/chat/completions"]
    data = reader.get_metrics_data()
    assert data is not None
    found = {
        m.name: m for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics
    }

    def total(name: str) -> float:
        return sum(getattr(p, "value", 0) for p in found[name].data.data_points)

    assert total("keysentry.openai.retries") == 1 and total("keysentry.openai.tokens") == 12
    assert key not in str(data.to_json()) and key not in str(
        [s.to_json() for s in spans.get_finished_spans()]
    )
    telemetry.cache_clear()


def test_the_prometheus_collector_reports_windows_and_breakers(api: OpenAIServer, key: str) -> None:
    pytest.importorskip("prometheus_client")
    from prometheus_client import CollectorRegistry, generate_latest

    from keysentry.runtime.observe import PrometheusCollector

    registry = CollectorRegistry()
    registry.register(PrometheusCollector())
    sdk = openai_client(base_url=api.base_url)
    sdk.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    text = generate_latest(registry).decode()
    assert 'keysentry_openai_window_tokens{env=""} 12.0' in text
    assert "keysentry_openai_breaker_open" in text and key not in text


def test_import_keysentry_loads_no_sdk_and_no_telemetry() -> None:
    code = (
        "import sys, keysentry\n"
        "heavy = {'openai', 'httpx2', 'redis', 'tiktoken', 'opentelemetry', 'prometheus_client'}\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"

"""Budgets shared across processes through a real redis-server (the distribution's package,
started here on a loopback port): one process's usage counts against another's budget, and the
spend alert fires once for all of them."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from keysentry.runtime.budget import BudgetExceeded, budget_for
from keysentry.runtime.settings import Settings

SERVER = shutil.which("redis-server")
# CI installs redis-server (.ci/run): there a missing server fails rather than skips.
pytestmark = pytest.mark.skipif(
    SERVER is None and not os.environ.get("CI"),
    reason="redis-server is not installed (apt-get install redis-server)",
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [
            str(SERVER),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    import redis

    deadline = time.monotonic() + 10
    while True:
        try:
            redis.Redis.from_url(url).ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                process.kill()
                raise
            time.sleep(0.05)
    yield url
    process.terminate()
    process.wait(10)


CHILD = """
import sys
from keysentry.runtime.budget import budget_for
from keysentry.runtime.settings import Settings
settings = Settings(redis_url=sys.argv[1], token_budget=1000, cost_alert_threshold=0.001)
budget_for("production", settings).record("gpt-4o", 600, 100)
"""


def test_usage_in_one_process_counts_against_the_budget_of_another(redis_url: str) -> None:
    alerts: list[Any] = []
    settings = Settings(
        redis_url=redis_url,
        token_budget=1000,
        cost_alert_threshold=0.001,
        on_alert=alerts.append,
    )
    budget = budget_for("production", settings)
    budget.check(900)  # nothing used yet
    subprocess.run([sys.executable, "-c", CHILD, redis_url], check=True, timeout=60)
    assert budget.counter.totals().tokens == 700
    with pytest.raises(BudgetExceeded, match="700 of 1000"):
        budget.check(301)
    budget.check(300)
    # The child crossed the threshold ($0.0025 > $0.001) and took the window's one alert.
    budget.record("gpt-4o-mini", 10, 10)
    assert alerts == []
    other = budget_for("staging", settings)
    other.record("gpt-4o", 600, 100)
    assert len(alerts) == 1 and alerts[0]["env"] == "staging"
    other.record("gpt-4o", 600, 100)
    assert len(alerts) == 1  # once per window

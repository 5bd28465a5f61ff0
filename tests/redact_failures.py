"""A pytest plugin: no test report ever shows a full key, even when a test comparing keys fails.

Failure messages, captured output and logs are scrubbed with the same detector the scanner
uses, so a failing assertion shows `sk-proj-...WXYZ` instead of the key it compared.
"""

from __future__ import annotations

import re
from collections.abc import Generator
from typing import Any

import pytest

from keysentry import safety

# pytest shortens long strings in assertion messages to `head...tail`: not a whole key, so
# the detector does not see it, yet more of one than a redacted form shows.
_SHORTENED = re.compile(
    r"\b(sk-(?:[A-Za-z0-9]+-)?)[A-Za-z0-9_-]*\.\.\.[A-Za-z0-9_-]*([A-Za-z0-9_-]{4})"
)


def scrub(text: str) -> str:
    return _SHORTENED.sub(r"\1...\2", safety.scrub(text))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Generator[None, Any, None]:
    outcome = yield
    report = outcome.get_result()
    if report.longrepr is not None:
        text = str(report.longrepr)
        cleaned = scrub(text)
        if cleaned != text:
            report.longrepr = cleaned
    report.sections = [(title, scrub(content)) for title, content in report.sections]

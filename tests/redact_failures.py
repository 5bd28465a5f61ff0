"""A pytest plugin: no test report ever shows a full key, even when a test comparing keys fails.

Failure messages, captured output and logs are scrubbed with the same detector the scanner
uses, so a failing assertion shows `sk-proj-...WXYZ` instead of the key it compared. A test
parametrized with a key is named by the key's redacted form; an id given explicitly that holds
a key (`ids=str`, `pytest.param(key, id=key)`) is refused before any test runs, since pytest
shows a test's id in every line, summary and JUnit report about it.
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
    r"(sk-(?:[A-Za-z0-9]+-)?)[A-Za-z0-9_-]*(?:\.\.\.[A-Za-z0-9_-]*)*\.\.\.[A-Za-z0-9_-]*([A-Za-z0-9_-]{4})"
)
# pprint (pytest's full diff) splits a long string or bytes literal into adjacent literals on
# lines of their own, `(b'sk-proj-AB...'` / `b'CD...')`: no piece is a whole key, but together
# they are one. A literal's end, the next line's prefix and the next literal's start are cut
# out, so that the detector sees the key whole.
_SPLIT_LITERAL = re.compile(r"([A-Za-z0-9_-])(['\"])\n[^\n'\"]*\s[bru]?\2(?=[A-Za-z0-9_-])")


def scrub(text: str) -> str:
    joined = _SPLIT_LITERAL.sub(r"\1", text)
    if safety.scrub(joined) != joined:
        text = joined
    return _SHORTENED.sub(r"\1...\2", safety.scrub(text))


def pytest_make_parametrize_id(config: pytest.Config, val: object, argname: str) -> str | None:
    """A parameter that holds a key is named by its redacted form, never by itself."""
    if isinstance(val, bytes):
        val = val.decode("utf-8", "surrogateescape")
    if isinstance(val, str) and safety.holds_key(val):
        return safety.scrub(val)
    return None


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """An id given explicitly (`ids=`, `pytest.param(id=...)`) that holds a key would be shown
    in every line about its test: refuse it before any test runs, naming it redacted."""
    named = [safety.scrub(item.nodeid) for item in items if safety.holds_key(item.nodeid)]
    if named:
        raise pytest.UsageError(
            f"test ids that hold a key (give them ids that do not): {', '.join(named)}"
        )


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

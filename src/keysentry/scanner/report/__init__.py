"""Reports: each format renders a ScanResult; none sees a key unless `show_secrets` is set."""

from __future__ import annotations

from collections.abc import Callable

from keysentry.scanner.pipeline import ScanResult
from keysentry.scanner.report import github, json, sarif, text

Renderer = Callable[[ScanResult, bool, bool], str]

FORMATS: dict[str, Renderer] = {
    "text": text.render,
    "json": json.render,
    "jsonl": json.render_lines,
    "sarif": sarif.render,
    "github": github.render,
}


def render(result: ScanResult, fmt: str, *, show_secrets: bool, color: bool) -> str:
    return FORMATS[fmt](result, show_secrets, color)

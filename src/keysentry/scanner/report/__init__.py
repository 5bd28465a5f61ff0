"""Reports: each format renders a ScanResult; none sees a key unless `show_secrets` is set.

Renderers are imported when used, so that naming the formats (the CLI's option list) costs
nothing at start-up.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from keysentry.scanner.pipeline import ScanResult

# format name -> (module, function)
FORMATS: dict[str, tuple[str, str]] = {
    "text": ("text", "render"),
    "json": ("json", "render"),
    "jsonl": ("json", "render_lines"),
    "sarif": ("sarif", "render"),
    "github": ("github", "render"),
}


def render(result: ScanResult, fmt: str, *, show_secrets: bool, color: bool) -> str:
    module_name, function = FORMATS[fmt]
    module = importlib.import_module(f"keysentry.scanner.report.{module_name}")
    rendered: str = getattr(module, function)(result, show_secrets, color)
    return rendered

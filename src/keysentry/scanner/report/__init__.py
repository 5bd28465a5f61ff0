"""Reports: each format renders a ScanResult; none sees a key unless `show_secrets` is set.

Renderers are imported when used, so that naming the formats (the CLI's option list) costs
nothing at start-up. Every string a report takes from outside (file names, commit authors and
emails, refs, remote messages) passes through `shown`: a key someone put in a directory name, a
branch name or `git config user.name` is redacted like a key found in a file.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from keysentry.scanner.pipeline import ScanResult

T = TypeVar("T")

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


def shown(value: T, show_secrets: bool) -> T:
    """`value` (a string, or lists and dicts of them at any depth) as a report may show it:
    every key in it redacted, unless the user asked to see secrets (`--show-secrets`)."""
    if show_secrets:
        return value
    return _scrubbed(value)  # type: ignore[no-any-return]


def _scrubbed(value: Any) -> Any:
    from keysentry.safety import scrub

    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {name: _scrubbed(item) for name, item in value.items()}
    if isinstance(value, list | tuple):
        return [_scrubbed(item) for item in value]
    return value

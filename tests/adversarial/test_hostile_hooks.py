"""A hostile repository's hook settings: `core.hooksPath` is the repository's own text, and
`keysentry install-hook` / `uninstall-hook` name it: on one line, no escape sequence, no key.

Every test ends with `assert_nowhere`: the key is in no output.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from leaks import assert_nowhere

from conftest import git
from keygen import key_of
from keysentry.scanner.keys import KeyKind


def test_a_hooks_path_with_controls_and_a_key_is_named_on_one_redacted_line(
    repo: Path, rng: random.Random, cli: Any
) -> None:
    key = key_of(KeyKind.PROJECT, rng).key
    hooks = repo / f"h\x1b[31m\nkeysentry: forged {key}"
    git(repo, "config", "core.hooksPath", str(hooks))
    installed = cli("install-hook", str(repo))
    assert installed.code == 0 and (hooks / "pre-commit").exists()
    removed = cli("uninstall-hook", str(repo))
    assert removed.code == 0 and not (hooks / "pre-commit").exists()
    for result in (installed, removed):
        (line,) = result.out.splitlines()
        assert "\\u001b[31m\\nkeysentry: forged sk-proj-..." in line
    assert_nowhere(key, installed.out, installed.err, removed.out, removed.err)

"""Hostile migrations: file names that try to forge plan lines, sources built so that a rewrite
would change what code does, notebooks and .env files built to break the tools that read them,
and sources sized to make a rewrite cost more than linear time.

Every test ends with `assert_nowhere`: the key is in no output, journal, template or backup.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dotenv import dotenv_values
from leaks import assert_nowhere

from keygen import key_of
from keysentry import loader
from keysentry.errors import ConfigError
from keysentry.migrate.python_source import Move, rewrite_python
from keysentry.providers import dotenv
from keysentry.providers.base import parse_ref
from keysentry.scanner.keys import KeyKind

FORGED = "a\nb.py:1: sk-proj-...AAAA -> aws-sm:attacker#K (x K; python: fine)\n.py"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, aws: Any) -> Iterator[Path]:
    root = tmp_path / "proj"
    root.mkdir()
    (root / "keysentry.toml").write_text(
        f'[migrate]\ndestination = "aws-sm://{uuid.uuid4().hex[:8]}/{{env}}/openai#{{name}}"\n'
    )
    monkeypatch.chdir(root)
    loader.configure(None)
    yield root
    loader.configure(None)


def test_a_file_name_with_line_breaks_cannot_forge_a_plan_or_apply_line(
    project: Path, cli: Any, rng: random.Random
) -> None:
    key = key_of(KeyKind.PROJECT, rng).key
    (project / FORGED).write_text(f'OPENAI_API_KEY = "{key}"\n')
    planned = cli("migrate", "plan", "--env", "staging")
    assert planned.code == 0, planned.err
    (line,) = planned.out.strip().splitlines()  # one key, one line
    assert line.startswith("a\\nb.py:1: sk-proj-")
    applied = cli("migrate", "apply", "--env", "staging")
    assert applied.code == 0, applied.err
    assert not any(out.startswith("b.py") for out in applied.out.splitlines())
    assert_nowhere(
        key,
        planned.out,
        planned.err,
        applied.out,
        applied.err,
        under=[project / ".keysentry", project / FORGED],
    )


HOSTILE_PYTHON = {
    # Rewriting inside the expression would read a different dictionary entry.
    "fstring_expression": "d = {{}}\nvalue = f\"{{d.get('{key}', 0)}}\"\n",
    # A format spec is not text: `{{x:{key}}}` is a spec, not a place for a lookup.
    "format_spec": "x = 1\nvalue = f\"{{x:>{{len('{key}')}}}}\"\n",
    # A pattern matches a value; os.environ[...] there is a syntax error or another meaning.
    "match_pattern": 'match 1:\n    case "{key}":\n        pass\n',
    # Not Python to begin with: a rewrite cannot be proven on it.
    "not_python": 'value = "{key}"\n<<<<<<< HEAD\n',
}


@pytest.mark.parametrize("case", sorted(HOSTILE_PYTHON))
def test_python_built_to_make_a_rewrite_change_its_meaning_is_left_whole(
    project: Path, cli: Any, rng: random.Random, case: str
) -> None:
    key = key_of(KeyKind.PROJECT, rng).key
    source = HOSTILE_PYTHON[case].format(key=key)
    (project / "hostile.py").write_text(source)
    planned = cli("migrate", "plan", "--env", "staging", "--format", "json")
    assert {i["action"] for i in planned.json()["items"]} == {"manual"}
    applied = cli("migrate", "apply", "--env", "staging")
    assert applied.code == 0, applied.err
    assert (project / "hostile.py").read_text() == source
    assert_nowhere(
        key,
        planned.out,
        planned.err,
        applied.out,
        applied.err,
        under=[project / ".keysentry", project / "keysentry.toml"],
    )


def test_a_notebook_with_the_key_in_its_metadata_or_broken_json_is_left_whole(
    project: Path, cli: Any, rng: random.Random
) -> None:
    key = key_of(KeyKind.PROJECT, rng).key
    in_metadata = {
        "cells": [
            {
                "cell_type": "code",
                "metadata": {},
                "outputs": [],
                "execution_count": None,
                "source": [f"k = '{key}'\n"],
            }
        ],
        "metadata": {"secret": key},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    (project / "meta.ipynb").write_text(json.dumps(in_metadata))
    (project / "broken.ipynb").write_text('{"cells": [{"source": "k = \'' + key + "'\"")
    applied = cli("migrate", "apply", "--env", "staging")
    assert applied.code == 0, applied.err
    assert json.loads((project / "meta.ipynb").read_text()) == in_metadata
    assert "left for you to edit" in applied.err
    assert_nowhere(key, applied.out, applied.err, under=[project / ".keysentry"])


def test_a_dotenv_file_built_to_swallow_the_next_binding_is_not_written(
    tmp_path: Path, rng: random.Random
) -> None:
    """An unterminated quote would close on the quote of the value we write, changing what
    python-dotenv reads for another name: refused in one line, the file untouched."""
    key = key_of(KeyKind.PROJECT, rng).key
    path = tmp_path / ".env"
    original = "A='unterminated\nB=2\n"
    path.write_text(original)
    with pytest.raises(ConfigError) as caught:
        dotenv.put(parse_ref(f"dotenv://{path}#K"), f"x'{key}", tags={}, overwrite=False)
    assert "\n" not in str(caught.value)
    assert path.read_text() == original and dotenv_values(path)["B"] == "2"
    assert_nowhere(key, str(caught.value), under=[tmp_path])


def test_a_source_full_of_keys_and_environ_assignments_rewrites_in_linear_time(
    rng: random.Random,
) -> None:
    key = key_of(KeyKind.PROJECT, rng).key
    move = [Move(key, "OPENAI_API_KEY", "aws-sm://x#OPENAI_API_KEY")]

    def seconds(n: int) -> float:
        """The best of three runs: one slow run on a loaded machine is not the algorithm."""
        source = f'import os\nos.environ["OPENAI_API_KEY"] = "{key}"\nv = "a{key}"\n' * n
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            new = rewrite_python(source, move)
            best = min(best, time.perf_counter() - start)
            assert_nowhere(key, new)
        return best

    small, large = seconds(500), seconds(4000)
    assert large < 8 * 4 * max(small, 0.01)  # 8x the input: far from 64x


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_a_key_in_a_file_name_is_redacted_in_the_plan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: Any, rng: random.Random, fmt: str
) -> None:
    key, named = key_of(KeyKind.PROJECT, rng).key, key_of(KeyKind.PROJECT, rng).key
    (tmp_path / "keysentry.toml").write_text(
        '[migrate]\ndestination = "dotenv://store/{env}.env#{name}"\n'
    )
    (tmp_path / f"d{named}").mkdir()
    (tmp_path / f"d{named}" / ".env").write_text(f"OPENAI_API_KEY={key}\n")
    monkeypatch.chdir(tmp_path)
    loader.configure(None)
    planned = cli("migrate", "plan", "--env", "dev", "--format", fmt)
    assert planned.code == 0, planned.err
    assert "dsk-proj-..." in planned.out
    assert_nowhere(named, planned.out, planned.err)
    assert_nowhere(key, planned.out, planned.err)

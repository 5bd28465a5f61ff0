"""env:// and dotenv://: the stores that need no service."""

from __future__ import annotations

import os
import random
import stat
from pathlib import Path

import pytest

from keygen import key_of
from keysentry.errors import ConfigError, SecretConflict, SecretNotFound
from keysentry.providers import dotenv, env
from keysentry.providers.base import parse_ref
from keysentry.scanner.keys import KeyKind


def test_env_reads_the_process_environment(
    monkeypatch: pytest.MonkeyPatch, rng: random.Random
) -> None:
    key = key_of(KeyKind.PROJECT, rng).key
    monkeypatch.setenv("OPENAI_API_KEY", key)
    fetched = env.get(parse_ref("env://OPENAI_API_KEY"))
    assert fetched.secret.reveal() == key
    monkeypatch.delenv("OPENAI_API_KEY")
    with pytest.raises(SecretNotFound, match="OPENAI_API_KEY is not set"):
        env.get(parse_ref("env://OPENAI_API_KEY"))
    with pytest.raises(ConfigError):
        env.put(parse_ref("env://X"), "v", tags={}, overwrite=False)


def test_dotenv_syntax(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_text(
        "# comment\nexport A=plain # trailing\nB='single # kept'\n"
        'C="double \\"quoted\\"\\nline"\n  D = spaced  \nnot a line\n'
    )
    assert dotenv.parse(path.read_text()) == {
        "A": "plain",
        "B": "single # kept",
        "C": 'double "quoted"\nline',
        "D": "spaced",
    }


def test_dotenv_put_changes_one_line_keeps_mode_and_line_endings(
    tmp_path: Path, rng: random.Random
) -> None:
    key, other = key_of(KeyKind.PROJECT, rng).key, key_of(KeyKind.PROJECT, rng).key
    path = tmp_path / ".env.production"
    path.write_bytes(b"# prod\r\nDEBUG=0\r\nOPENAI_API_KEY=old\r\n")
    os.chmod(path, 0o640)
    ref = parse_ref(f"dotenv://{path}#OPENAI_API_KEY")
    with pytest.raises(SecretConflict):
        dotenv.put(ref, key, tags={}, overwrite=False)
    assert dotenv.put(ref, key, tags={}, overwrite=True).changed
    assert path.read_bytes() == f"# prod\r\nDEBUG=0\r\nOPENAI_API_KEY={key}\r\n".encode()
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert not dotenv.put(ref, key, tags={}, overwrite=False).changed  # same value: no-op
    added = dotenv.put(parse_ref(f"dotenv://{path}#SECOND"), other, tags={}, overwrite=False)
    assert added.created
    assert dotenv.get(parse_ref(f"dotenv://{path}#SECOND")).secret.reveal() == other


def test_dotenv_errors_name_the_file_never_the_value(tmp_path: Path, rng: random.Random) -> None:
    key = key_of(KeyKind.PROJECT, rng).key
    path = tmp_path / ".env"
    path.write_text(f"OTHER={key}\n")
    with pytest.raises(SecretNotFound) as caught:
        dotenv.get(parse_ref(f"dotenv://{path}#OPENAI_API_KEY"))
    assert str(path) in str(caught.value) and key not in str(caught.value)
    with pytest.raises(SecretNotFound, match="does not exist"):
        dotenv.get(parse_ref(f"dotenv://{tmp_path / 'missing'}#X"))
    with pytest.raises(ConfigError, match="name the variable"):
        dotenv.get(parse_ref(f"dotenv://{path}"))

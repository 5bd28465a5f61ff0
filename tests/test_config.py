"""The configuration: every table checked in one place, found where the user expects it."""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

import pytest

from keygen import key_of
from keysentry.config import TABLES, WRITABLE_SCHEMES, find_config, load_config
from keysentry.errors import ConfigError
from keysentry.scanner.keys import KeyKind

README = Path(__file__).resolve().parent.parent / "README.md"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[colour]\nx = 1\n", "unknown table [colour]"),
        (
            "[migrate.templates]\naws = 'aws-sm://{env}/{name}'\n",
            "[migrate.templates] has unknown key 'aws' (known: aws-sm, azure-kv, dotenv, vault)",
        ),
        (
            "[migrate.templates]\nvault = 'vault://{environment}'\n",
            "[migrate.templates] vault may use {env} and {name} only",
        ),
        ("[migrate]\ndestinations = 'x'\n", "[migrate.destinations] must be a table"),
        ("[migrate]\ndestination = 3\n", "[migrate] destination must be a reference template"),
        ("[load]\nttl_seconds = 'soon'\n", "[load] ttl_seconds must be a number of seconds"),
        ("[load]\nttl = 3\n", "[load] has unknown key 'ttl'"),
        ("[verify]\nspend_threshold_usd = true\n", "[verify] spend_threshold_usd must be a number"),
        ("[verify]\nadmin = 'env://X'\n", "[verify] has unknown key 'admin'"),
        ("[environments]\nproduction = 'x'\n", "[environments.production] must be a table"),
        (
            "[environments.production]\nOPENAI_API_KEY = 3\n",
            "[environments.production] OPENAI_API_KEY must be a non-empty string",
        ),
        ("[rotate]\ngrace = 3\n", "[rotate] has unknown key 'grace'"),
        (
            "[policies.production]\nspend_limit = 'maybe'\n",
            "[policies.production] spend_limit must be one of required, recommended, off",
        ),
        ("[scan]\ninline_allow = 'yes'\n", "[scan] inline_allow must be true or false"),
    ],
)
def test_each_table_is_checked_when_read_with_one_line_naming_file_table_and_key(
    tmp_path: Path, content: str, message: str
) -> None:
    (tmp_path / "keysentry.toml").write_text(content)
    with pytest.raises(ConfigError) as raised:
        load_config(directory=tmp_path)
    text = str(raised.value)
    assert text.startswith(f"{tmp_path / 'keysentry.toml'}: ")
    assert message in text
    assert "\n" not in text


def test_pyproject_tables_are_named_as_the_file_spells_them(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.keysentry.migrate.templates]\nazure = 'x'\n")
    with pytest.raises(ConfigError, match=r"\[tool\.keysentry\.migrate\.templates\] has unknown"):
        load_config(directory=tmp_path)


def test_a_pasted_key_is_still_the_error_of_the_table_that_holds_it(
    tmp_path: Path, rng: random.Random
) -> None:
    """Validation leaves a table holding a key alone: reading it says where the key is, and
    the other tables (the scan's) still work."""
    key = key_of(KeyKind.PROJECT, rng).key
    (tmp_path / "keysentry.toml").write_text(
        f'[scan]\nmax_file_size = "1M"\n[environments.production]\nOPENAI_API_KEY = "{key}"\n'
    )
    config = load_config(directory=tmp_path)
    assert config.scan.max_file_size == 1 << 20
    with pytest.raises(ConfigError, match="holds a key, not a reference") as raised:
        config.raw["environments"]
    assert key not in str(raised.value)


def test_the_writable_schemes_are_the_providers_that_can_store_a_key() -> None:
    from keysentry.providers import PROVIDERS

    assert sorted(WRITABLE_SCHEMES) == sorted(s for s in PROVIDERS if s != "env")


def test_every_toml_snippet_in_the_readme_is_a_valid_config(tmp_path: Path) -> None:
    blocks = re.findall(r"```toml\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)
    assert len(blocks) >= 3
    for number, block in enumerate(blocks):
        directory = tmp_path / str(number)
        directory.mkdir()
        (directory / "keysentry.toml").write_text(block)
        assert load_config(directory=directory).path is not None


def test_every_config_table_is_documented_in_the_readme() -> None:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("### Configuration") :]
    for table, spec in TABLES.keys.items():
        assert f"[{table}" in section, table
        for key in getattr(spec, "keys", {}):
            line = rf"^(\[{table}\.)?{re.escape(key)}[\] ]"
            assert re.search(line, section, re.MULTILINE), (table, key)


def test_a_scan_finds_the_config_of_the_directory_it_scans(
    tmp_path: Path, monkeypatch: Any
) -> None:
    project = tmp_path / "proj"
    (project / "sub").mkdir(parents=True)
    (project / ".git").mkdir()
    (project / "keysentry.toml").write_text('[scan]\nexclude = ["vendor/*"]\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert find_config(project).path == project / "keysentry.toml"
    # From a subdirectory: the nearest one up to the repository root.
    assert find_config(project / "sub").path == project / "keysentry.toml"
    # Outside any repository, no parent is searched: the working directory's applies.
    (elsewhere / "keysentry.toml").write_text("[scan]\ninline_allow = false\n")
    lone = tmp_path / "lone" / "deep"
    lone.mkdir(parents=True)
    (tmp_path / "lone" / "keysentry.toml").write_text("[scan]\n")
    assert find_config(lone).path == elsewhere / "keysentry.toml"

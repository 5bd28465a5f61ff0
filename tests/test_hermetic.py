"""The test suite's own isolation (tests/conftest.py): whatever the machine that runs it holds in
HOME or its environment, no test sees it, and neither does any process a test starts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import LEAKY_NAMES, LEAKY_PREFIXES, MACHINE_ENV

TESTS = Path(__file__).resolve().parent


def child_environment() -> dict[str, str]:
    """The environment a process started by a test gets."""
    script = "import json, os; print(json.dumps(dict(os.environ)))"
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    return dict(json.loads(done.stdout))


# What tests/stores.py sets on purpose: the AWS SDK reads no credentials file and no metadata.
NO_CLOUD = {
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}


def leaky(environ: dict[str, str]) -> dict[str, str]:
    return {
        name: value
        for name, value in environ.items()
        if name.startswith(LEAKY_PREFIXES) or name.upper() in LEAKY_NAMES
    }


def test_each_test_has_an_empty_home_of_its_own_that_its_processes_inherit(
    own_home: Path,
) -> None:
    assert Path.home() == own_home != Path(MACHINE_ENV.get("HOME", "/"))
    assert not [p for p in own_home.rglob("*") if p.is_file()]
    child = child_environment()
    assert child["HOME"] == str(own_home)
    assert child["XDG_CONFIG_HOME"] == str(own_home / ".config")


def test_no_credential_or_configuration_variable_reaches_a_test_or_its_processes() -> None:
    assert leaky(dict(os.environ)) == NO_CLOUD
    assert leaky(child_environment()) == NO_CLOUD


def test_what_the_machine_holds_when_pytest_starts_never_reaches_a_test(tmp_path: Path) -> None:
    home = tmp_path / "machine-home"
    home.mkdir()
    (home / ".vault-token").write_text("machine-token\n")
    planted = {
        "HOME": str(home),
        "VAULT_TOKEN": "machine-token",
        "AWS_ACCESS_KEY_ID": "AKIAMACHINE",
        "OPENAI_API_KEY": "machine",
        "KEYSENTRY_ENV": "production",
        "NO_COLOR": "1",
        "GIT_DIR": str(tmp_path),
        "https_proxy": "http://127.0.0.1:9",
        "PYTHONUNBUFFERED": "1",
    }
    inner = [
        f"{__name__}.py::{test.__name__}"
        for test in (
            test_each_test_has_an_empty_home_of_its_own_that_its_processes_inherit,
            test_no_credential_or_configuration_variable_reaches_a_test_or_its_processes,
        )
    ]
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *inner],
        cwd=TESTS,
        env={**os.environ, **planted},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 passed" in done.stdout

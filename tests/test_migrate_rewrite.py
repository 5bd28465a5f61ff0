"""Migration rewrites that stay correct code: every rewritten Python file compiled and run
with the key in the environment, notebooks validated by nbformat, JavaScript checked by node,
keysentry.toml parsed by tomllib, .env files read by python-dotenv; from any directory."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from dotenv import dotenv_values
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from keygen import key_of
from keysentry import loader
from keysentry.errors import ConfigError
from keysentry.migrate.apply import _with_environments
from keysentry.migrate.python_source import Move, Unrewritable, rewrite_python
from keysentry.providers import dotenv
from keysentry.providers.base import parse_ref
from keysentry.scanner.keys import KeyKind

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

NAME = "OPENAI_API_KEY"

# Each source sets `result` from the key `{key}`; doubled braces are the source's own braces.
PYTHON = {
    "whole": 'result = "{key}"\n',
    "bearer": 'result = {{"Authorization": "Bearer {key}"}}\n',
    "fstring": 'user = "ada"\nresult = f"Bearer {key} for {{user!r:>8}}"\n',
    "bytes": "result = b'{key}'\n",
    "bytes_embedded": 'result = b"Bearer {key}".split()\n',
    "raw": "result = r'\\d{key}\\n'\n",
    "raw_bytes": "result = rb'{key}'\n",
    "triple": 'result = """line one\n{key}\nline "three" """\n',
    "implicit": 'result = ("Bearer "\n          "{key}"  # the key\n          "!")\n',
    "implicit_twice": 'result = "{key}" "{key}"\n',
    "braces_and_format": 'result = "{{}} {key} %s".format(1) % 2\n',
    "unicode_prefix": 'result = u"Bearer {key}"\n',
    "method_after": 'result = "Bearer {key}".upper().lower()\n',
    "named_escape": 'result = "\\N{{EM DASH}}{key}"\n',
    "default_argument": 'def f(k="{key}"):\n    return k\n\n\nresult = f()\n',
    "docstring_future": '"""Settings.\n\nMore."""\n\nfrom __future__ import annotations\n\n'
    'result = "{key}"\n',
    "shebang": '#!/usr/bin/env python3\n# -*- coding: utf-8 -*-\nresult = "{key}"\n',
    "crlf": '"""Doc."""\r\nresult = "Bearer {key}"\r\n',
    "environ_assignment": 'import os\n\nos.environ["OPENAI_API_KEY"] = "{key}"\n'
    'result = os.environ["OPENAI_API_KEY"]\n',
    "environ_setdefault": 'import os\nos.environ.setdefault("OPENAI_API_KEY", "{key}")\n'
    'result = os.environ["OPENAI_API_KEY"]\n',
    "environ_other_name": 'import os\nos.environ["MY_KEY"] = "{key}"\n'
    'result = os.environ["MY_KEY"]\n',
    "comment": "# the old key was {key}\nresult = 1\n",
    "os_imported_late": 'result = "{key}"\nimport os\n',
}


def run(source: str, key: str, monkeypatch: pytest.MonkeyPatch, env: bool) -> Any:
    """`result` after running `source` (the environment holding the key, if `env`)."""
    with monkeypatch.context() as patch:
        for name in (NAME, "MY_KEY"):
            patch.delenv(name, raising=False)
        if env:
            patch.setenv(NAME, key)
        namespace: dict[str, Any] = {}
        exec(compile(source, "<test>", "exec"), namespace)
        return namespace["result"]


@pytest.mark.parametrize("case", sorted(PYTHON))
def test_a_python_string_holding_a_key_becomes_code_with_the_same_value(
    case: str, rng: random.Random, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = key_of(KeyKind.PROJECT, rng).key
    before = PYTHON[case].format(key=key)
    after = rewrite_python(before, [Move(key, NAME, "aws-sm://prod/openai#OPENAI_API_KEY")])
    assert key not in after
    compile(after, f"{case}.py", "exec")  # valid code
    assert run(after, key, monkeypatch, env=True) == run(before, key, monkeypatch, env=False)


def test_a_python_rewrite_reads_as_a_person_would_write_it(rng: random.Random) -> None:
    key = key_of(KeyKind.PROJECT, rng).key
    move = [Move(key, NAME, "aws-sm://prod/openai#OPENAI_API_KEY")]

    def rewritten(case: str) -> str:
        return rewrite_python(PYTHON[case].format(key=key), move)

    assert rewritten("bearer") == (
        'import os\nresult = {"Authorization": f"Bearer {os.environ[\'OPENAI_API_KEY\']}"}\n'
    )
    assert rewritten("bytes") == 'import os\nresult = os.environ["OPENAI_API_KEY"].encode()\n'
    assert '(b"Bearer " + os.environ["OPENAI_API_KEY"].encode()).split()' in rewritten(
        "bytes_embedded"
    )
    assert rewritten("docstring_future").startswith(
        '"""Settings.\n\nMore."""\n\nfrom __future__ import annotations\nimport os\n'
    )
    assert rewritten("shebang").startswith("#!/usr/bin/env python3\n# -*- coding: utf-8 -*-\n")
    assert rewritten("crlf") == (
        '"""Doc."""\r\nimport os\r\nresult = f"Bearer {os.environ[\'OPENAI_API_KEY\']}"\r\n'
    )
    assignment = rewritten("environ_assignment")
    assert "os.environ['OPENAI_API_KEY'] = os.environ" not in assignment
    assert "# OPENAI_API_KEY comes from the environment (stored at aws-sm://" in assignment
    assert rewritten("comment").startswith("# the old key was <OPENAI_API_KEY>\n")


@pytest.mark.parametrize(
    "source",
    [
        "result = f\"{{d['{key}']}}\"\n",  # inside an f-string's expression
        'match x:\n    case "{key}":\n        pass\n',  # a pattern cannot read the environment
        'result = "{key}"\nif\n',  # not Python to begin with
    ],
)
def test_a_python_key_no_rewrite_can_prove_is_left_whole(source: str, rng: random.Random) -> None:
    key = key_of(KeyKind.PROJECT, rng).key
    with pytest.raises(Unrewritable) as caught:
        rewrite_python(source.format(key=key), [Move(key, NAME, "aws-sm://x#K")])
    assert key not in str(caught.value)


@pytest.fixture
def project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, aws: Any
) -> Iterator[tuple[Path, str]]:
    """An empty project whose keys go to moto; the working directory is its parent."""
    root = tmp_path / "proj"
    root.mkdir()
    prefix = uuid.uuid4().hex[:8]
    (root / "keysentry.toml").write_text(
        f'[migrate]\ndestination = "aws-sm://{prefix}/{{env}}/openai#{{name}}"\n'
    )
    monkeypatch.chdir(tmp_path)
    loader.configure(None)
    yield root, prefix
    loader.configure(None)


def test_every_python_form_is_migrated_from_another_directory_and_runs_the_same(
    project: tuple[Path, str], cli: Any, rng: random.Random
) -> None:
    root, _ = project
    key = key_of(KeyKind.PROJECT, rng).key
    (root / "app").mkdir()
    printing = "\nprint(repr(result))\n"
    for case, template in PYTHON.items():
        (root / "app" / f"{case}.py").write_text(template.format(key=key) + printing, newline="")
    expected = {case: python(root / "app" / f"{case}.py", {}) for case in PYTHON}
    planned = cli("migrate", "plan", "proj", "--env", "staging", "--format", "json")
    assert planned.code == 0, planned.err
    assert {i["path"] for i in planned.json()["items"]} >= {"proj/app/bearer.py"}
    assert {i["action"] for i in planned.json()["items"]} == {"python"}
    applied = cli("migrate", "apply", "proj", "--env", "staging")
    assert applied.code == 0, applied.err
    for case in PYTHON:
        path = root / "app" / f"{case}.py"
        source = path.read_bytes().decode()
        assert key not in source, case
        compile(source, str(path), "exec")
        assert python(path, {NAME: key, "MY_KEY": key}) == expected[case], case
    assert key not in applied.out + applied.err


def python(path: Path, env: dict[str, str]) -> str:
    clean = {k: v for k, v in os.environ.items() if k not in (NAME, "MY_KEY")}
    done = subprocess.run(
        [sys.executable, str(path)],
        env={**clean, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def test_a_key_no_rewrite_can_prove_is_planned_as_a_manual_edit_and_left_untouched(
    project: tuple[Path, str], cli: Any, rng: random.Random
) -> None:
    root, _ = project
    key = key_of(KeyKind.PROJECT, rng).key
    tricky = f"d = {{}}\nresult = f\"{{d.get('{key}')}}\"\nsafe = '{key}'\n"
    (root / "tricky.py").write_text(tricky)
    (root / "app.js").write_text(f"const h = `Bearer {key}`;\n")
    planned = cli("migrate", "plan", str(root), "--env", "staging", "--format", "json")
    items = {Path(i["path"]).name: i for i in planned.json()["items"]}
    assert items["tricky.py"]["action"] == "manual"
    assert "edit by hand" in items["tricky.py"]["note"]
    assert items["app.js"]["action"] == "manual"
    assert "${process.env.OPENAI_API_KEY}" in items["app.js"]["note"]
    applied = cli("migrate", "apply", str(root), "--env", "staging")
    assert applied.code == 0, applied.err
    assert (root / "tricky.py").read_text() == tricky  # the whole file left for the person
    assert "left for you to edit" in applied.err and "tricky.py" in applied.err
    assert key not in applied.out + applied.err


NOTEBOOK = {
    "cells": [
        {
            "cell_type": "markdown",
            "id": "intro",
            "metadata": {},
            "source": ["# Try the API\n", "The key is {key} for now.\n"],
        },
        {
            "cell_type": "code",
            "execution_count": 1,
            "id": "setup",
            "metadata": {},
            "source": [
                "%pip install openai\n",
                "import os\n",
                "os.environ['OPENAI_API_KEY'] = '{key}'\n",
                "!echo ready\n",
            ],
            "outputs": [{"output_type": "stream", "name": "stdout", "text": ["ready\n"]}],
        },
        {
            "cell_type": "code",
            "execution_count": 2,
            "id": "magic",
            "metadata": {},
            "source": "%env OPENAI_API_KEY={key}\nprint(1)",
            "outputs": [],
        },
        {
            "cell_type": "code",
            "execution_count": 3,
            "id": "client",
            "metadata": {},
            "source": [
                "from openai import OpenAI\n",
                "client = OpenAI(default_headers={{'Authorization': 'Bearer {key}'}})\n",
                "print('{key}')",
            ],
            "outputs": [{"output_type": "stream", "name": "stdout", "text": ["{key}\n"]}],
        },
    ],
    "metadata": {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}
    },
    "nbformat": 4,
    "nbformat_minor": 5,
}


def test_a_notebook_moved_from_another_directory_stays_a_valid_notebook_that_reads_the_env(
    project: tuple[Path, str], cli: Any, rng: random.Random, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, _ = project
    key = key_of(KeyKind.PROJECT, rng).key
    (root / "nb").mkdir()
    text = json.dumps(NOTEBOOK, indent=1).replace("{key}", key).replace("{{", "{")
    text = text.replace("}}", "}")
    (root / "nb" / "notebook.ipynb").write_text(text + "\n")
    nbformat.validate(read_notebook(text))
    planned = cli("migrate", "plan", "proj/nb", "--env", "staging")  # proj's config, found
    assert planned.code == 0 and "proj/nb/notebook.ipynb" in planned.out, planned.err
    monkeypatch.chdir(root)
    loader.configure(None)
    applied = cli("migrate", "apply", "nb", "--env", "staging")
    assert applied.code == 0, applied.err
    new = (root / "nb" / "notebook.ipynb").read_text()
    assert key not in new
    notebook = read_notebook(new)
    nbformat.validate(notebook)  # the nbformat 4.5 schema, cell ids and all
    cells = {cell["id"]: cell for cell in notebook.cells}
    assert cells["intro"]["source"].endswith("The key is <OPENAI_API_KEY> for now.\n")
    setup = cells["setup"]["source"]
    assert setup.startswith("%pip install openai\nimport os\n# OPENAI_API_KEY comes from")
    assert setup.endswith("!echo ready\n")
    assert "os.environ['OPENAI_API_KEY'] = os.environ" not in new
    assert cells["setup"]["outputs"] == [
        {"output_type": "stream", "name": "stdout", "text": "ready\n"}
    ]
    assert cells["magic"]["source"].startswith("# OPENAI_API_KEY comes from the environment")
    client = cells["client"]
    assert client["outputs"] == [] and client["execution_count"] is None
    assert "f'Bearer {os.environ[\"OPENAI_API_KEY\"]}'" in client["source"]
    for cell in notebook.cells:
        if cell["cell_type"] == "code":  # the Python of each cell, magics aside, compiles
            python = "\n".join(
                line for line in cell["source"].splitlines() if not line.startswith(("%", "!"))
            )
            compile(python, cell["id"], "exec")
    assert json.loads(new)["metadata"] == NOTEBOOK["metadata"]


def read_notebook(text: str) -> Any:
    """nbformat's reading (version 4), lines joined as Jupyter gives them to code."""
    return nbformat.reads(text, as_version=4)  # type: ignore[no-untyped-call]


@pytest.mark.skipif(shutil.which("node") is None, reason="node checks the JavaScript")
def test_a_javascript_literal_that_is_the_key_reads_process_env_and_node_accepts_it(
    project: tuple[Path, str], cli: Any, rng: random.Random
) -> None:
    root, _ = project
    key = key_of(KeyKind.PROJECT, rng).key
    source = (
        "const OpenAI = function (o) { this.o = o; };\n"
        f'const client = new OpenAI({{ apiKey: "{key}" }});\n'
        f"const again = '{key}'.trim();\n"
        f"function get() {{\n  return `{key}`\n}}\n"
        "console.log(client.o.apiKey === again && again === get());\n"
    )
    (root / "app.js").write_text(source)
    applied = cli("migrate", "apply", "proj", "--env", "staging")
    assert applied.code == 0, applied.err
    new = (root / "app.js").read_text()
    assert key not in new and new.count("process.env.OPENAI_API_KEY") == 3
    checked = subprocess.run(
        ["node", "--check", str(root / "app.js")], capture_output=True, check=False
    )
    assert checked.returncode == 0, checked.stderr
    ran = subprocess.run(
        ["node", str(root / "app.js")],
        capture_output=True,
        text=True,
        env={**os.environ, NAME: key},
        check=True,
    )
    assert ran.stdout == "true\n"


TOML_CASES = {
    "crlf": '# where keys go\r\n[migrate]\r\ndestination = "x"\r\n',
    "quoted_header": '[environments."staging"]\nOTHER = "env://OTHER"  # kept\n\n[verify]\nx = 1\n',
    "existing_tables": '[environments.production]\nA = "env://A"\n[environments.staging]\n',
    "inline": 'environments = { production = { A = "env://A" } }\n',
    "dotted": '[environments]\nstaging.OTHER = "env://OTHER"\n',
    "empty": "",
}


@pytest.mark.parametrize("case", sorted(TOML_CASES))
def test_keysentry_toml_gets_the_mapping_with_comments_and_layout_kept(case: str) -> None:
    text = TOML_CASES[case]
    reference = "dotenv://C:\\secrets\\.env#OPENAI_API_KEY"  # a backslash, quoted by tomlkit
    new = _with_environments(Path("keysentry.toml"), text, {"staging": {NAME: reference}})
    parsed = tomllib.loads(new)
    assert parsed["environments"]["staging"][NAME] == reference
    original = tomllib.loads(text)
    for env, names in original.get("environments", {}).items():
        for name, value in names.items():  # nothing dropped
            assert parsed["environments"][env][name] == value
    if "#" in text:
        assert all(line in new for line in text.splitlines() if "#" in line)
    if "\r\n" in text:
        assert "\n" not in new.replace("\r\n", "")  # one line ending throughout
    assert new.count("[environments.staging]") + new.count('[environments."staging"]') <= 1


def test_pyproject_gets_the_mapping_under_tool_keysentry() -> None:
    text = '[project]\nname = "x"\n\n[tool.keysentry.migrate]\ndestination = "v"\n'
    new = _with_environments(Path("pyproject.toml"), text, {"prod": {NAME: "env://K"}})
    parsed = tomllib.loads(new)
    assert parsed["tool"]["keysentry"]["environments"]["prod"][NAME] == "env://K"
    assert parsed["project"] == {"name": "x"}


DOTENV = (
    "# comment\r\n"
    "export PLAIN=value # trailing comment\r\n"
    "SINGLE='it\\'s'\r\n"
    'DOUBLE="tab\\tand \\"quotes\\""\r\n'
    'MULTI="first\nsecond"\r\n'
    "'QUOTED KEY'=quoted\r\n"
    "EXPANDED=${PLAIN}-and-${FROM_ENV:-fallback}\r\n"
    "BROKEN='unterminated\r\n"
    "AFTER=1\r\n"
)


def test_dotenv_reads_exactly_what_python_dotenv_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FROM_ENV", "from-the-environment")
    path = tmp_path / ".env"
    path.write_bytes(DOTENV.encode())
    theirs = {k: v for k, v in dotenv_values(path).items() if v is not None}
    assert dotenv.parse(path.read_text()) == theirs
    for name, value in theirs.items():
        assert dotenv.get(parse_ref(f"dotenv://{path}#{name}")).secret.reveal() == value
    assert theirs["MULTI"] == "first\nsecond" and theirs["SINGLE"] == "it's"
    assert theirs["EXPANDED"] == "value-and-from-the-environment"


def test_dotenv_put_rewrites_one_binding_and_python_dotenv_reads_it_back(
    tmp_path: Path, rng: random.Random
) -> None:
    key = key_of(KeyKind.PROJECT, rng).key
    path = tmp_path / ".env"
    path.write_bytes(DOTENV.encode())
    ref = parse_ref(f"dotenv://{path}#MULTI")
    assert dotenv.put(ref, key, tags={}, overwrite=True).changed
    assert path.read_bytes() == DOTENV.replace('MULTI="first\nsecond"', f"MULTI={key}").encode()
    assert dotenv_values(path)["MULTI"] == key
    with pytest.raises(ConfigError, match="unterminated quote"):  # BROKEN's quote would close
        dotenv.put(parse_ref(f"dotenv://{path}#ODD"), "it's", tags={}, overwrite=False)
    assert dotenv_values(path)["MULTI"] == key  # and the file was left as it was
    clean = tmp_path / ".env.clean"
    odd = "quote ' backslash \\ hash # end\nnext line"
    dotenv.put(parse_ref(f"dotenv://{clean}#ODD"), odd, tags={}, overwrite=False)
    assert dotenv_values(clean)["ODD"] == odd


def test_a_dotenv_destination_in_a_missing_directory_is_created(
    tmp_path: Path, rng: random.Random
) -> None:
    key = key_of(KeyKind.PROJECT, rng).key
    path = tmp_path / "secrets" / "deep" / ".env"
    assert dotenv.put(parse_ref(f"dotenv://{path}#{NAME}"), key, tags={}, overwrite=False).created
    assert dotenv_values(path)[NAME] == key
    assert (path.parent.stat().st_mode & 0o777) == 0o700


def test_the_scan_path_imports_neither_python_dotenv_nor_tomlkit(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("x = 1\n")
    code = (
        "import sys\nfrom keysentry.cli import main\ncode = main(['scan', sys.argv[1]])\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'dotenv', 'tomlkit'}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, check=False
    )
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stderr


def test_plan_refuses_an_env_destination_that_apply_could_not_write(
    project: tuple[Path, str], cli: Any, rng: random.Random
) -> None:
    root, _ = project
    (root / "keysentry.toml").write_text('[migrate]\ndestination = "env://{name}"\n')
    (root / "a.py").write_text(f'KEY = "{key_of(KeyKind.PROJECT, rng).key}"\n')
    for command in ("plan", "apply"):
        result = cli("migrate", command, "proj", "--env", "staging")
        assert result.code == 2
        (line,) = result.err.strip().splitlines()
        assert "cannot store a key" in line
    assert not (root / ".keysentry").exists()


def test_a_dotenv_destination_under_the_project_is_written_there_from_any_directory(
    project: tuple[Path, str], cli: Any, rng: random.Random
) -> None:
    root, _ = project
    key = key_of(KeyKind.PROJECT, rng).key
    (root / "keysentry.toml").write_text(
        '[migrate]\ndestination = "dotenv://vault/.env.{env}#{name}"\n'
    )
    (root / "a.py").write_text(f'OPENAI_API_KEY = "{key}"\n')
    applied = cli("migrate", "apply", "proj", "--env", "staging")
    assert applied.code == 0, applied.err
    assert dotenv_values(root / "vault" / ".env.staging")[NAME] == key
    assert not Path("vault").exists()  # not under the working directory
    config = tomllib.loads((root / "keysentry.toml").read_text())
    assert config["environments"]["staging"][NAME] == "dotenv://vault/.env.staging#OPENAI_API_KEY"
    gitignore = (root / ".gitignore").read_text().splitlines()
    assert ".keysentry/" in gitignore and "/vault/.env.staging" in gitignore
    rolled = cli("migrate", "rollback", "proj")
    assert rolled.code == 0, rolled.err
    assert (root / "a.py").read_text() == f'OPENAI_API_KEY = "{key}"\n'
    assert not (root / ".gitignore").exists()
    assert "environments" not in (root / "keysentry.toml").read_text()


def test_rollback_leaves_a_gitignore_changed_after_the_migration(
    project: tuple[Path, str], cli: Any, rng: random.Random
) -> None:
    root, _ = project
    (root / ".gitignore").write_text("build/\n")
    (root / "a.py").write_text(f'KEY = "{key_of(KeyKind.PROJECT, rng).key}"\n')
    assert cli("migrate", "apply", "proj", "--env", "staging").code == 0
    with (root / ".gitignore").open("a") as handle:
        handle.write("dist/\n")
    rolled = cli("migrate", "rollback", "proj")
    assert rolled.code == 0 and "left .gitignore as it is" in rolled.out
    assert (root / ".gitignore").read_text().endswith("dist/\n")


def test_a_crlf_config_with_a_quoted_header_and_a_multiline_env_file_stay_what_they_read(
    project: tuple[Path, str], cli: Any, rng: random.Random, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, prefix = project
    key = key_of(KeyKind.PROJECT, rng).key
    config = (
        "# keysentry\r\n[migrate]\r\n"
        f'destination = "aws-sm://{prefix}/{{env}}/openai#{{name}}"\r\n\r\n'
        '[environments."staging"]\r\nOTHER = "env://OTHER"  # stays\r\n'
    )
    (root / "keysentry.toml").write_bytes(config.encode())
    env_file = (
        f"GREETING=\"hello\r\nworld\"\r\nexport OPENAI_API_KEY='{key}'\r\nX=${{GREETING}}\r\n"
    )
    (root / ".env.staging").write_bytes(env_file.encode())
    before = dotenv_values(root / ".env.staging")
    applied = cli("migrate", "apply", "proj")
    assert applied.code == 0, applied.err
    new_config = (root / "keysentry.toml").read_bytes().decode()
    assert new_config.startswith(config) and "\n" not in new_config.replace("\r\n", "")
    assert new_config.count("staging") == 2  # the header once, and the reference
    parsed = tomllib.loads(new_config)
    assert parsed["environments"]["staging"] == {
        "OTHER": "env://OTHER",
        NAME: f"aws-sm://{prefix}/staging/openai#OPENAI_API_KEY",
    }
    after = dotenv_values(root / ".env.staging")
    assert after == {k: v for k, v in before.items() if k != NAME}
    assert key not in (root / ".env.staging").read_text()
    monkeypatch.chdir(root)
    loader.configure(None)
    assert loader.load_key(env="staging").reveal() == key


SOURCE_TEXT = st.text(alphabet="ab {}\\'\"\n%x:!r0N", max_size=8)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(
    prefix=st.sampled_from(["", "r", "b", "rb", "u", "f", "rf", "F", "R"]),
    quote=st.sampled_from(['"', "'", '"""', "'''"]),
    before=SOURCE_TEXT,
    after=SOURCE_TEXT,
    neighbour=st.sampled_from(["", ' "tail"', " 'x{x}'", ' f"{x}"']),
)
def test_any_string_around_a_key_is_rewritten_to_the_same_value_or_left(
    prefix: str, quote: str, before: str, after: str, neighbour: str
) -> None:
    key = key_of(KeyKind.PROJECT, random.Random(f"{prefix}{quote}{before}{after}")).key
    literal = f"{prefix}{quote}{before}{key}{after}{quote}"
    if "b" in prefix.lower() and neighbour:
        neighbour = neighbour.replace(' "', ' b"').replace(" '", " b'").replace(" f", " b")
    source = f"x = 7\nresult = ({literal}{neighbour})\n"
    try:
        original = run_plain(source)
    except Exception:
        assume(False)  # not a valid program to begin with
    try:
        new = rewrite_python(source, [Move(key, NAME, "aws-sm://x#K")])
    except Unrewritable:
        return  # left whole for a person: allowed, never wrong
    assert key not in new
    assert run_plain(new, {NAME: key}) == original


def run_plain(source: str, env: dict[str, str] | None = None) -> Any:
    saved = {name: os.environ.get(name) for name in (env or {})}
    os.environ.update(env or {})
    try:
        namespace: dict[str, Any] = {}
        with warnings.catch_warnings():  # "\\N", "\\ " and the like: invalid escapes warn
            warnings.simplefilter("ignore", SyntaxWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            exec(compile(source, "<hypothesis>", "exec"), namespace)
        return namespace["result"]
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value

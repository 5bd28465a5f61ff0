"""The options people reach for, declared once and documented: --exclude, -v, --no-color,
--exit-zero, --branch, --debug, help texts and the hints that name options."""

from __future__ import annotations

import os
import pty
import random
import re
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest

from conftest import GitRepo, console_script
from keygen import key_of
from keysentry.cli import Shared, SharedArgument, cli
from keysentry.scanner.keys import KeyKind

SRC = Path(__file__).resolve().parent.parent / "src" / "keysentry"
SHARED_OPTIONS = {
    "--env",
    "--format",
    "--base-url",
    "--overwrite",
    "--yes",
    "--allow-shallow",
    "--no-history",
    "--debug",
    "--pre-push",
}


def commands(group: click.Group = cli, prefix: str = "keysentry") -> Iterator[tuple[str, Any]]:
    """Every command and group under `group`, with its full name."""
    yield prefix, group
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from commands(command, f"{prefix} {name}")
        else:
            yield f"{prefix} {name}", command


def test_every_shared_option_has_one_definition() -> None:
    """--env, --format, --base-url, PATH ... come from cli.py's one declaration each."""
    for name, command in commands():
        for param in command.params:
            if isinstance(param, click.Option) and SHARED_OPTIONS & set(param.opts):
                assert isinstance(param, Shared), f"{name} declares its own {param.opts[0]}"
            if isinstance(param, click.Argument) and param.name == "path":
                assert isinstance(param, SharedArgument), f"{name} declares its own PATH"


def test_no_command_summary_is_cut_mid_sentence() -> None:
    for name, command in commands():
        if isinstance(command, click.Group):
            with click.Context(command, info_name=name) as ctx:
                shown = command.get_help(ctx)
            listing = shown[shown.index("Commands:") :]
            assert "..." not in listing, f"{name}: {listing}"


def test_every_option_is_documented_and_format_lists_its_choices() -> None:
    for name, command in commands():
        for param in command.params:
            if isinstance(param, click.Option) and not param.hidden:
                assert param.help, f"{name} {param.opts[0]} has no help"
                if "--format" in param.opts:
                    assert param.show_default and isinstance(param.type, click.Choice), name


def test_migrate_env_says_which_keys_it_is_for() -> None:
    plan = cli.commands["migrate"].commands["plan"]  # type: ignore[attr-defined]
    (env,) = [p for p in plan.params if "--env" in getattr(p, "opts", ())]
    assert env.help.startswith("The environment of the keys whose file name does not say")


def test_every_option_a_message_tells_the_user_to_use_exists() -> None:
    """ "use --overwrite", "pass --env", "run with --no-gitignore": each hint names an option
    that exists, and every command that can raise the hint has that option."""
    options = {opt for _, c in commands() for p in c.params for opt in getattr(p, "opts", ())}
    hint = re.compile(r"(?:use|pass|with|run with|unless|needs|accepts it\)?)\s+\(?(--[a-z-]+)")
    for path in SRC.rglob("*.py"):
        for option in hint.findall(path.read_text(encoding="utf-8")):
            assert option in options, f"{path.name} hints at {option}, which no command has"
    assert "use overwrite" not in "".join(p.read_text() for p in SRC.rglob("*.py"))
    migrate = cli.commands["migrate"].commands  # type: ignore[attr-defined]
    for command in ("apply", "copy"):  # they store keys: a conflict says "use --overwrite"
        assert any("--overwrite" in p.opts for p in migrate[command].params if hasattr(p, "opts"))
    for command in ("plan", "apply"):  # "which environment is this key for? pass --env"
        assert any("--env" in p.opts for p in migrate[command].params if hasattr(p, "opts"))


def test_exclude_is_repeatable_and_verbose_names_what_it_excluded(
    tmp_path: Path, rng: random.Random, cli: Any
) -> None:
    for name in ("vendor/lib.py", "dist/app.min.js", "src/app.py"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(f"K = '{key_of(KeyKind.PROJECT, rng).key}'\n")
    excludes = ["--exclude", "vendor/*", "--exclude", "*.min.js"]
    result = cli("scan", "--format", "json", *excludes, "-v", str(tmp_path))
    assert result.code == 1
    assert [f["path"] for f in result.json()["findings"]] == [str(tmp_path / "src" / "app.py")]
    assert f"keysentry: excluded {tmp_path / 'vendor' / 'lib.py'}" in result.err
    assert f"keysentry: excluded {tmp_path / 'dist' / 'app.min.js'}" in result.err
    assert "exclude: vendor/*, *.min.js" in result.err


def test_exit_zero_and_fail_on_never_report_without_failing(
    tmp_path: Path, rng: random.Random, cli: Any
) -> None:
    (tmp_path / "a.py").write_text(f"K = '{key_of(KeyKind.ADMIN, rng).key}'\n")
    for flags in (["--exit-zero"], ["--fail-on", "never"]):
        result = cli("scan", *flags, str(tmp_path))
        assert result.code == 0
        assert "a.py:1:6: OpenAI Admin API key" in result.out
    assert cli("scan", "--exit-zero", "--fail-on", "live", "--verify", str(tmp_path)).code == 2
    # An error is still an error: nothing about it is a pass.
    assert cli("scan", "--exit-zero", str(tmp_path / "missing")).code == 2


def test_an_incomplete_scan_still_exits_two_under_exit_zero(
    tmp_path: Path, rng: random.Random, cli: Any
) -> None:
    (tmp_path / "a.py").write_text(f"K = '{key_of(KeyKind.PROJECT, rng).key}'\n")
    (tmp_path / "loop").symlink_to(tmp_path / "loop")  # a symlink loop: unreadable
    assert cli("scan", "--exit-zero", str(tmp_path)).code == 2
    assert cli("scan", "--exit-zero", "--allow-incomplete", str(tmp_path)).code == 0


def _on_a_terminal(args: list[str], env: dict[str, str]) -> str:
    """Run keysentry with its stdout on a pseudo-terminal; returns what it printed there."""
    leader, follower = pty.openpty()
    with subprocess.Popen(
        [str(console_script()), *args], stdout=follower, stderr=subprocess.DEVNULL, env=env
    ) as process:
        os.close(follower)
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the terminal's other side closed
                break
            if not chunk:
                break
            chunks.append(chunk)
        process.wait()
    os.close(leader)
    return b"".join(chunks).decode()


def test_colour_only_on_a_terminal_and_never_with_no_color(
    tmp_path: Path, rng: random.Random
) -> None:
    (tmp_path / "a.py").write_text(f"K = '{key_of(KeyKind.PROJECT, rng).key}'\n")
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    assert "\033[" in _on_a_terminal(["scan", str(tmp_path)], env)
    assert "\033[" not in _on_a_terminal(["scan", "--no-color", str(tmp_path)], env)
    assert "\033[" not in _on_a_terminal(["scan", str(tmp_path)], {**env, "NO_COLOR": "1"})


@pytest.mark.parametrize("where", ["before", "after", "environment"])
def test_debug_shows_an_internal_errors_traceback_without_the_key(
    tmp_path: Path, rng: random.Random, cli: Any, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    key = key_of(KeyKind.PROJECT, rng).key

    def broken(*args: object) -> None:
        raise RuntimeError(f"a bug holding {key}")

    monkeypatch.setattr("keysentry.commands.scan.execute", broken)
    plain = cli("scan", str(tmp_path))
    assert plain.code == 2
    (line,) = plain.err.splitlines()
    assert line.endswith("(run again with --debug for the traceback)")
    args = {"before": ["--debug", "scan"], "after": ["scan", "--debug"], "environment": ["scan"]}
    if where == "environment":
        monkeypatch.setenv("KEYSENTRY_DEBUG", "1")
    debugged = cli(*args[where], str(tmp_path))
    assert debugged.code == 2
    assert "Traceback (most recent call last):" in debugged.err
    assert ", in broken" in debugged.err
    assert "keysentry: internal error: RuntimeError: a bug holding sk-proj-..." in debugged.err
    assert key not in debugged.out + debugged.err


def test_branch_limits_the_history_scan_to_what_the_ref_reaches(
    gitrepo: GitRepo, rng: random.Random, cli: Any
) -> None:
    on_main, on_side = key_of(KeyKind.PROJECT, rng).key, key_of(KeyKind.ADMIN, rng).key
    gitrepo.commit("main", **{"main.py": f"A = '{on_main}'\n"})
    gitrepo("checkout", "-q", "-b", "side")
    gitrepo.commit("side", **{"side.py": f"B = '{on_side}'\n"})
    gitrepo("checkout", "-q", "main")

    def paths(*flags: str) -> list[str]:
        result = cli("scan", "--history", "--format", "json", *flags, str(gitrepo.path))
        assert result.code == 1, result.err
        return sorted(f["path"] for f in result.json()["findings"])

    assert paths() == ["main.py", "side.py"]
    assert paths("--branch", "main") == ["main.py"]
    assert paths("--branch", "side") == ["main.py", "side.py"]
    assert paths("--branch", "main", "--no-cache") == ["main.py"]
    wrong = cli("scan", "--history", "--branch", "nope", str(gitrepo.path))
    assert wrong.code == 2
    assert wrong.err.strip() == f"keysentry: error: 'nope' is not a commit in {gitrepo.path}"
    assert cli("scan", "--branch", "main", str(gitrepo.path)).code == 2


def test_shell_completion_as_documented_completes_commands_and_options() -> None:
    script = subprocess.run(
        [str(console_script())],
        env={**os.environ, "_KEYSENTRY_COMPLETE": "bash_source"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "complete " in script and "_keysentry_completion" in script
    words = {"COMP_WORDS": "keysentry scan --exc", "COMP_CWORD": "2"}
    done = subprocess.run(
        [str(console_script())],
        env={**os.environ, "_KEYSENTRY_COMPLETE": "bash_complete", **words},
        capture_output=True,
        text=True,
        check=True,
    )
    assert "--exclude" in done.stdout


README = SRC.parent.parent / "README.md"


def readme_commands() -> list[str]:
    """Every shell line of the README's ```sh blocks that runs keysentry, comments removed."""
    blocks = re.findall(r"```sh\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)
    lines = [re.sub(r"\s+#.*$", "", line).strip() for b in blocks for line in b.splitlines()]
    return [line for line in lines if "keysentry" in line.split("#")[0]]


def keysentry_argv(line: str) -> list[str] | None:
    """The arguments of the `keysentry` command in a shell line (None if it runs none)."""
    for part in re.split(r"&&|\|", line):
        words = shlex.split(re.sub(r"\[[^]]*\]", "", part))  # [--env ENV]: optional, in prose
        if words and words[0] == "keysentry":
            return words[1:]
    return None


def test_every_keysentry_command_in_the_readme_parses() -> None:
    """Options and commands the README shows exist (the ones that need stores, keys or the
    network are parsed here; the scanning ones also run, below)."""
    checked = 0
    for line in readme_commands():
        argv = keysentry_argv(line)
        if argv is None:
            continue
        group: click.Command = cli
        ctx = click.Context(cli, info_name="keysentry")
        while isinstance(group, click.Group) and argv and not argv[0].startswith("-"):
            found = group.get_command(ctx, argv[0])
            assert found is not None, f"README: no command {argv[0]!r} in `{line}`"
            group, argv = found, argv[1:]
        try:
            group.make_context(group.name, list(argv), parent=ctx)
        except click.UsageError as exc:
            raise AssertionError(f"README: `{line}`: {exc}") from None
        checked += 1
    assert checked >= 25


def test_the_readme_scanning_and_hook_commands_run_as_written(
    gitrepo: GitRepo, rng: random.Random
) -> None:
    for name in ("src/app.py", "config/app.env", "dump.txt", "vendor/lib.py", "x.min.js"):
        gitrepo.write(name, "print('no key here')\n")
    before = gitrepo.commit("first", **{"README": "x\n"})
    gitrepo("add", "-A")
    after = gitrepo.commit("second")
    gitrepo("update-ref", "refs/remotes/origin/main", before)
    path = f"{console_script().parent}{os.pathsep}{os.environ['PATH']}"
    env = {**os.environ, "BEFORE": before, "AFTER": after, "PATH": path}
    ran = 0
    for line in readme_commands():
        argv = keysentry_argv(line) or []
        runs = argv[:1] in (["scan"], ["install-hook"], ["uninstall-hook"]) or "COMPLETE" in line
        if not runs or "--verify" in argv or "pip install" in line:
            continue
        done = subprocess.run(
            ["bash", "-c", line], cwd=gitrepo.path, env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, f"README: `{line}` exited {done.returncode}: {done.stderr}"
        ran += 1
    assert ran >= 15


def test_offline_verify_says_what_could_not_be_reached_and_what_to_set(
    tmp_path: Path, rng: random.Random, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No answer at all (a closed port stands for DNS, proxy or TLS failures): the message
    names the host, the variables that route around it, and that the verdict is unknown."""
    import socket

    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # bound, never listening: connections are refused
        monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{port}/v1")
        key = key_of(KeyKind.PROJECT, rng).key
        (tmp_path / "a.py").write_text(f"K = '{key}'\n")
        result = cli("scan", "--verify", "--format", "json", str(tmp_path))
    (finding,) = result.json()["findings"]
    detail = finding["verification"]["detail"]
    assert finding["verification"]["status"] == "unknown"
    assert "127.0.0.1 could not be reached (APIConnectionError: DNS, timeout" in detail
    assert "the verdict is unknown" in detail
    assert "HTTPS_PROXY" in detail and "OPENAI_BASE_URL" in detail
    assert key not in result.out + result.err

"""The `keysentry` command line: options here, each command's body in `commands/`.

Every error a user can cause ends as one line on stderr and exit code 2, never a traceback
(`--debug`, or KEYSENTRY_DEBUG=1, adds the traceback of an internal error, keys redacted); no
message ever holds a key. An option that several commands take is declared once, below
(`env_option`, `path_argument`, `format_option`, ...), and every command uses that one.
Shell completion is click's: `eval "$(_KEYSENTRY_COMPLETE=bash_source keysentry)"`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import click

from keysentry import __version__
from keysentry.errors import ExitCode
from keysentry.hook import PRE_COMMIT_FLAG, files_as_files, guarded
from keysentry.scanner.report import FORMATS

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]
_RUN = {"debug": False}  # set by --debug (or KEYSENTRY_DEBUG) for this run


class Shared(click.Option):
    """An option declared once, here, for every command that takes it (a test checks that no
    command declares its own --env, --format, --base-url, ...)."""


class SharedArgument(click.Argument):
    """An argument declared once, here, for every command that takes it."""


def env_option(help: str, *, multiple: bool = False, required: bool = False) -> Decorator:
    """--env ENV: an environment of keysentry.toml's [environments.*] (passed as `env`, or as
    `envs` when repeatable)."""
    return click.option(
        "--env",
        "envs" if multiple else "env",
        metavar="ENV",
        cls=Shared,
        multiple=multiple,
        required=required,
        help=help,
    )


def path_argument() -> Decorator:
    """PATH: the repository or directory a command works on, the current one by default."""
    path = click.Path(file_okay=False, path_type=str)
    return click.argument("path", default=".", cls=SharedArgument, type=path)


def format_option(choices: Iterable[str], help: str) -> Decorator:
    """--format: how the command prints what it found (passed as `fmt`)."""
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(list(choices)),
        default="text",
        show_default=True,
        cls=Shared,
        help=help,
    )


def base_url_option() -> Decorator:
    """--base-url URL: the OpenAI API to call (a proxy, or a compatible endpoint)."""
    return click.option(
        "--base-url",
        metavar="URL",
        cls=Shared,
        help="The OpenAI API to call [default: $OPENAI_BASE_URL, else https://api.openai.com/v1].",
    )


def overwrite_option() -> Decorator:
    help = "Replace a different value the store already holds."
    return click.option("--overwrite", is_flag=True, cls=Shared, help=help)


def yes_option() -> Decorator:
    return click.option("--yes", is_flag=True, cls=Shared, help="Do not ask for confirmation.")


def allow_shallow_option() -> Decorator:
    help = "Scan a shallow clone anyway: history before its cut-off is not scanned."
    return click.option("--allow-shallow", is_flag=True, cls=Shared, help=help)


def no_history_option(help: str) -> Decorator:
    return click.option("--no-history", is_flag=True, cls=Shared, help=help)


def _set_debug(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        _RUN["debug"] = True


def _debug_option() -> click.Option:
    return Shared(
        ["--debug"],
        is_flag=True,
        expose_value=False,
        is_eager=True,
        callback=_set_debug,
        help="On an internal error, print its traceback too (keys redacted). Also "
        "KEYSENTRY_DEBUG=1.",
    )


class KeysentryGroup(click.Group):
    """A group whose every command and subgroup, whenever added, takes --debug: one switch
    for a traceback, wherever the user types it."""

    group_class = type  # subgroups are KeysentryGroups too

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.params.append(_debug_option())

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        if not any(p.name == "debug" for p in cmd.params):
            cmd.params.append(_debug_option())
        super().add_command(cmd, name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The commands, each with its whole first sentence (wrapped), never one cut short
        with "..." as click does when it is longer than the line."""
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(limit=1 << 16)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=KeysentryGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="keysentry")
def cli() -> None:
    """OpenAI API key hygiene: find leaked keys, and keep them out of code.

    Shell completion: eval "$(_KEYSENTRY_COMPLETE=bash_source keysentry)" in ~/.bashrc
    (zsh_source, fish_source for zsh and fish).
    """


@cli.command(short_help="Find OpenAI keys in files, stdin, or a git repository.")
@click.argument("paths", nargs=-1, type=click.Path(path_type=str))
@format_option(FORMATS, "Report format (docs/output.md).")
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the report to FILE instead of stdout.",
)
@click.option(
    "--show-secrets",
    is_flag=True,
    help="Print full keys in the report. Off by default: keys are redacted.",
)
@click.option(
    "--no-inline-allow",
    is_flag=True,
    help="Ignore keysentry:allow, gitleaks:allow and pragma markers (for CI).",
)
@click.option(
    "--baseline",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Report only keys whose fingerprint is not in this baseline file.",
)
@click.option(
    "--update-baseline",
    is_flag=True,
    help="Write every current finding's fingerprint to --baseline and exit 0.",
)
@click.option(
    "--ignore-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Fingerprints and path patterns to ignore [default: the nearest .keysentryignore "
    "from the scanned directory up to its repository root].",
)
@click.option("--no-gitignore", is_flag=True, help="Also scan files that .gitignore excludes.")
@click.option(
    "--exclude",
    metavar="GLOB",
    multiple=True,
    help="Skip paths matching GLOB (relative to the scanned directory; `*` crosses /), as "
    "[scan] exclude does; repeatable.",
)
@click.option(
    "--max-file-size",
    metavar="SIZE",
    help="Skip (and report) files larger than SIZE, e.g. 10M [default: 100M].",
)
@click.option(
    "--image",
    metavar="NAME",
    help="Scan a container image: a `docker save`/`podman save` tarball, an OCI layout "
    "(directory or tarball), or an image NAME that docker save (else skopeo) fetches.",
)
@click.option(
    "--max-archive-depth",
    type=click.IntRange(0),
    metavar="N",
    help="Open archives (zip, wheels, jars, tar, .gz, ...) nested up to N deep; deeper ones "
    "make the scan incomplete [default: 8].",
)
@click.option(
    "--max-archive-bytes",
    metavar="SIZE",
    help="Stop a file's archives past SIZE decompressed, every level counted: the scan is "
    "then incomplete [default: 4G].",
)
@click.option(
    "--max-archive-ratio",
    type=click.IntRange(1),
    metavar="N",
    help="Stop a compressed stream past N:1 (after its first MiB), as a zip bomb: the scan "
    "is then incomplete [default: 100].",
)
@click.option(
    "--max-archive-members",
    type=click.IntRange(1),
    metavar="N",
    help="Stop a file's archives past N members, every level counted: the scan is then "
    "incomplete [default: 1000000].",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Config file [default: the nearest keysentry.toml or pyproject.toml from the scanned "
    "directory up to its repository root, else here].",
)
@click.option("--quiet", "-q", is_flag=True, help="No summary or skip notes on stderr.")
@click.option(
    PRE_COMMIT_FLAG,
    "pre_commit",
    is_flag=True,
    help="PATHS are the files pre-commit passes: each that exists is scanned as a file, even one "
    "named like an option (.pre-commit-hooks.yaml uses it).",
)
@click.option(
    "--verbose",
    "-v",
    is_flag=True,
    help="Also say which config, ignore file and baseline were used, and each file excluded.",
)
@click.option("--no-color", is_flag=True, help="No colour in the report (as NO_COLOR=1 does).")
@click.option(
    "--staged",
    is_flag=True,
    help="Scan what is staged for the next commit (the index), in repository PATH.",
)
@click.option(
    "--history",
    is_flag=True,
    help="Scan every blob of the repository at PATH once, with each key's timeline.",
)
@click.option(
    "--all-objects", is_flag=True, help="With --history: also report keys in unreachable objects."
)
@click.option(
    "--branch",
    metavar="REF",
    help="With --history: scan only what REF reaches (the blobs of its commits).",
)
@click.option("--since", metavar="REV", help="Scan the commits after REV up to HEAD.")
@click.option(
    "--range",
    "spans",
    metavar="A..B",
    multiple=True,
    help="Scan the commits in A..B (an all-zeros A is a new branch); repeatable.",
)
@allow_shallow_option()
@click.option(
    "--allow-incomplete",
    is_flag=True,
    help="Exit as if complete when some files, blobs or objects could not be read (they are "
    "still named). Without it an incomplete scan exits 2.",
)
@click.option(
    "--verify",
    "verify_keys",
    is_flag=True,
    help="Check each key found against the OpenAI API (live or not).",
)
@click.option(
    "--fail-on",
    type=click.Choice(["any", "live", "never"]),
    default="any",
    show_default=True,
    help="What fails the scan: any key; live keys only (with --verify); never (report only).",
)
@click.option(
    "--exit-zero",
    is_flag=True,
    help="Report, but exit 0 when keys are found (as --fail-on never). Errors and incomplete "
    "scans still exit 2.",
)
@click.option(
    "--accept-unknown",
    is_flag=True,
    help="With --verify --fail-on live: pass even if some keys could not be verified (the API "
    "did not answer). Without it that exits 4.",
)
@click.option(
    "--no-cache",
    is_flag=True,
    help="With --history: read every blob, ignoring the clean-blob cache.",
)
def scan(paths: tuple[str, ...], **options: object) -> int:
    """Find OpenAI keys in PATHS (files and directories; `-` for stdin; default: `.`), or in
    the git repository at PATH with --staged, --history, --since or --range.

    Exit codes: 0 nothing found (or --exit-zero), 1 keys found, 2 usage or input error or an
    incomplete scan, 3 a key found is live (--verify), 4 none is live but one could not be
    verified (--fail-on live).
    """
    from keysentry.commands.scan import ScanOptions, run

    return run(list(paths), ScanOptions.from_click(options))


def _pre_push_option(help: str) -> Decorator:
    return click.option(
        "--pre-push", "hook", flag_value="pre-push", default="pre-commit", cls=Shared, help=help
    )


@cli.command("install-hook")
@path_argument()
@_pre_push_option("Install the pre-push hook (scans the pushed commits) instead.")
def install_hook(path: str, hook: str) -> int:
    """Install a plain git hook (pre-commit by default) in the repository at PATH."""
    from keysentry.commands import hooks

    _say_out(f"keysentry: {hooks.install(path, hook)}")
    return int(ExitCode.CLEAN)


@cli.command("uninstall-hook")
@path_argument()
@_pre_push_option("Remove the pre-push hook instead.")
def uninstall_hook(path: str, hook: str) -> int:
    """Remove keysentry's git hook and restore the hook it chained, if any."""
    from keysentry.commands import hooks

    _say_out(f"keysentry: {hooks.uninstall(path, hook)}")
    return int(ExitCode.CLEAN)


def _say_out(line: str) -> None:
    """`line` on stdout as `safety.say` writes stderr: the hooks directory is the repository's
    own `core.hooksPath`, anyone's text."""
    from keysentry.safety import escape_control, scrub

    print(escape_control(scrub(line)))


@cli.command("pre-push")
@path_argument()
@format_option(FORMATS, "Report format (docs/output.md).")
@allow_shallow_option()
def pre_push(path: str, fmt: str, allow_shallow: bool) -> int:
    """Scan the commits a push sends (for pre-commit and git pre-push hooks).

    Reads the ranges from pre-commit's PRE_COMMIT_FROM_REF/PRE_COMMIT_TO_REF, or from the
    lines git writes to a pre-push hook's standard input.
    """
    from keysentry.hook import pre_push as push

    return push(path, fmt, allow_shallow)


@cli.command()
def action() -> int:
    """Run as the GitHub Actions step (action.yml); configured by its environment."""
    import os

    from keysentry.commands import action as github_action

    return github_action.run(dict(os.environ))


@cli.command("get")
@click.argument("name", default="OPENAI_API_KEY")
@env_option("The environment [default: $KEYSENTRY_ENV].")
@click.option("--reveal", is_flag=True, help="Print the value itself (for scripts).")
def get_command(name: str, env: str | None, reveal: bool) -> int:
    """Show NAME for an environment, redacted unless --reveal, and where it came from."""
    from keysentry.commands import secrets

    return secrets.get(name, env, reveal)


@cli.command("run", context_settings={"ignore_unknown_options": True})
@env_option("The environment [default: $KEYSENTRY_ENV].")
@click.option("--override", is_flag=True, help="Replace variables already set.")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def run_command(env: str | None, override: bool, command: tuple[str, ...]) -> int:
    """Run COMMAND (after --) with the environment's keys in its environment."""
    from keysentry.commands import secrets

    return secrets.run(list(command), env, override)


@cli.group("env")
def env_group() -> None:
    """Environments and their secret references."""


@env_group.command("check")
@env_option("Check only ENV (repeatable) [default: every environment].", multiple=True)
def env_check(envs: tuple[str, ...]) -> int:
    """Resolve every reference of every environment and report, redacted, which work."""
    from keysentry.commands import secrets

    return secrets.check(list(envs))


@cli.command("verify")
@env_option("Verify only ENV (repeatable) [default: every environment].", multiple=True)
@format_option(["text", "json"], "text for people, json for scripts.")
@click.option("--since", metavar="DATE", help="Spend since DATE [default: the 1st of the month].")
@base_url_option()
@no_history_option("Skip the scan of this repository's history.")
def verify_command(
    envs: tuple[str, ...], fmt: str, since: str | None, base_url: str | None, no_history: bool
) -> int:
    """Prove each environment's key live, within its spend threshold, and isolated.

    Exit codes: 0 every check passed, 1 a check failed or could not be decided, 2 error.
    """
    from keysentry.commands import verify
    from keysentry.verify.client import translated

    return translated(lambda: verify.verify(list(envs), fmt, since, base_url, not no_history))


@cli.command("revoke")
@click.option("--project", metavar="PROJECT_ID", help="The project of a project API key.")
@click.option("--admin", "admin_key", is_flag=True, help="KEY_ID is an admin API key.")
@click.option("--key-id", required=True, metavar="KEY_ID", help="The key's id (key_...).")
@yes_option()
@base_url_option()
def revoke_command(
    project: str | None, admin_key: bool, key_id: str, yes: bool, base_url: str | None
) -> int:
    """Revoke a key with the Admin API (asks first).

    It uses the call its owner needs. A user's project key is deleted; a service account's
    key can only be revoked by deleting its service account, with every key it holds (the
    prompt says so); an admin key (--admin) is deleted with the admin-key call.
    """
    from keysentry.commands import verify
    from keysentry.verify.client import translated

    return translated(lambda: verify.revoke(project, key_id, admin_key, yes, base_url))


@cli.command("rotate")
@env_option("The environment whose key to rotate.")
@click.option("--name", default="OPENAI_API_KEY", show_default=True, help="The key's name.")
@click.option("--due", is_flag=True, help="Rotate every environment due by policy or leaked.")
@click.option("--resume", is_flag=True, help="Finish an interrupted rotation.")
@click.option("--rollback", is_flag=True, help="Undo an interrupted rotation (old key kept).")
@click.option("--dry-run", is_flag=True, help="Print the plan; change nothing.")
@yes_option()
@click.option(
    "--until-unused",
    is_flag=True,
    help="Delete the old key once its last_used_at stops moving ([rotate] window), instead "
    "of after the loader TTL + grace.",
)
@click.option("--grace", type=float, metavar="SECONDS", help="Grace beyond the loader's TTL.")
@no_history_option("With --due: skip the history scan.")
@base_url_option()
def rotate_command(
    env: str | None,
    name: str,
    due: bool,
    resume: bool,
    rollback: bool,
    dry_run: bool,
    yes: bool,
    until_unused: bool,
    grace: float | None,
    no_history: bool,
    base_url: str | None,
) -> int:
    """Replace an environment's key with zero downtime: a new service-account key in the same
    project, proven live, stored as a new version and read back; the old key deleted once
    loaders have moved. Journaled: --resume, --rollback.

    Exit codes: 0 done (or nothing due), 1 not confirmed, 2 error.
    """
    from keysentry.commands.rotate import Options, run
    from keysentry.verify.client import translated

    options = Options(
        env,
        name,
        due,
        resume,
        rollback,
        dry_run,
        yes,
        until_unused,
        grace,
        base_url,
        not no_history,
    )
    return translated(lambda: run(options))


@cli.group("limit")
def limit_group() -> None:
    """The hard spend limit of each environment's project (the Admin API)."""


@limit_group.command("show")
@env_option("Only ENV (repeatable) [default: every environment].", multiple=True)
@base_url_option()
def limit_show(envs: tuple[str, ...], base_url: str | None) -> int:
    """Show each environment's project hard spend limit."""
    from keysentry.commands import limit
    from keysentry.verify.client import translated

    return translated(lambda: limit.show(list(envs), base_url))


@limit_group.command("set")
@env_option("The environment.", required=True)
@click.option("--usd", required=True, metavar="DOLLARS", help="The monthly limit in dollars.")
@yes_option()
@base_url_option()
def limit_set(env: str, usd: str, yes: bool, base_url: str | None) -> int:
    """Set the environment's project hard spend limit (per month; read back)."""
    from keysentry.commands import limit
    from keysentry.verify.client import translated

    return translated(lambda: limit.set_(env, usd, yes, base_url))


@limit_group.command("clear")
@env_option("The environment.", required=True)
@yes_option()
@base_url_option()
def limit_clear(env: str, yes: bool, base_url: str | None) -> int:
    """Remove the environment's project hard spend limit."""
    from keysentry.commands import limit
    from keysentry.verify.client import translated

    return translated(lambda: limit.clear(env, yes, base_url))


@cli.group("migrate")
def migrate_group() -> None:
    """Move keys out of code and .env files into secret stores, and between stores."""


_MIGRATE_ENV = (
    "The environment of the keys whose file name does not say (.env.production says "
    "production); without it such keys are an error."
)


@migrate_group.command("plan")
@path_argument()
@env_option(_MIGRATE_ENV)
@format_option(["text", "json"], "text for people, json for scripts.")
def migrate_plan(path: str, env: str | None, fmt: str) -> int:
    """Show, redacted, where each key in PATH would go and how its source would change."""
    from keysentry.commands import migrate

    return migrate.plan(path, env, fmt)


@migrate_group.command("apply")
@path_argument()
@env_option(_MIGRATE_ENV)
@overwrite_option()
def migrate_apply(path: str, env: str | None, overwrite: bool) -> int:
    """Store each key, read it back, then rewrite the sources (journaled)."""
    from keysentry.commands import migrate

    return migrate.apply(path, env, overwrite)


@migrate_group.command("resume")
@path_argument()
def migrate_resume(path: str) -> int:
    """Finish an interrupted migrate apply."""
    from keysentry.commands import migrate

    return migrate.resume(path)


@migrate_group.command("rollback")
@path_argument()
def migrate_rollback(path: str) -> int:
    """Put back the sources as they were before migrate apply (keys from their stores)."""
    from keysentry.commands import migrate

    return migrate.rollback(path)


@migrate_group.command("copy")
@click.option("--from", "source", metavar="REF", help="The secret to copy.")
@click.option("--to", "destination", metavar="REF", help="Where to copy it.")
@env_option("Copy every name of ENV (with --to-provider).")
@click.option(
    "--to-provider",
    metavar="SCHEME",
    help="With --env: copy to this store (aws-sm, azure-kv, dotenv, vault), at its "
    "[migrate.templates] destination.",
)
@overwrite_option()
def migrate_copy(
    source: str | None,
    destination: str | None,
    env: str | None,
    to_provider: str | None,
    overwrite: bool,
) -> int:
    """Copy secrets between stores, reading each back."""
    from keysentry.commands import migrate

    return migrate.copy(source, destination, env, to_provider, overwrite)


@cli.group("baseline")
def baseline_group() -> None:
    """Keysentry baselines: accepted findings, by fingerprint."""


@baseline_group.command("import")
@click.argument("sources", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--baseline",
    type=click.Path(dir_okay=False, path_type=Path),
    default=".keysentry-baseline.json",
    show_default=True,
    help="The keysentry baseline to add to (created if missing).",
)
@click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=Path),
    default=".",
    show_default=True,
    help="The repository or directory the other tool scanned (its paths are relative to it).",
)
def baseline_import(sources: tuple[Path, ...], baseline: Path, root: Path) -> int:
    """Add the keys another scanner accepted to a keysentry baseline.

    SOURCES are .gitleaksignore, .betterleaksignore, gitleaks or betterleaks JSON reports, or
    detect-secrets .secrets.baseline files. Says which entries cannot be mapped, and why.

    Exit codes: 0 every OpenAI entry mapped, 1 some could not be, 2 error.
    """
    from keysentry.commands.baseline import import_baselines

    return import_baselines(list(sources), baseline, root)


@cli.group("fleet")
def fleet_group() -> None:
    """Scan every repository of an organisation on a Dask cluster into a datastore, and
    report from it (needs the fleet extra: pip install 'keysentry[fleet]')."""


@fleet_group.command("scan")
@click.option("--repos", metavar="FILE", help="A file of clone URLs or local paths, one a line.")
@click.option("--github-org", metavar="ORG", help="Every repository of a GitHub organisation.")
@click.option("--github-user", metavar="USER", help="Every repository a GitHub user owns.")
@click.option(
    "--github-url",
    metavar="URL",
    help="The GitHub API (Enterprise: https://HOST/api/v3) [default: https://api.github.com].",
)
@click.option("--forks", is_flag=True, help="Include forks.")
@click.option("--archived", is_flag=True, help="Include archived repositories.")
@click.option(
    "--store",
    metavar="URL",
    default="keysentry-fleet.db",
    show_default=True,
    help="The datastore: a SQLite path or a postgresql:// URL.",
)
@click.option(
    "--scheduler",
    metavar="ADDRESS",
    help="A Dask scheduler (tcp://HOST:8786) [default: DASK_SCHEDULER_ADDRESS, else an "
    "embedded cluster].",
)
@click.option("--workers", type=click.IntRange(1), help="Embedded cluster's worker processes.")
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where workers keep their mirrors [default: ~/.cache/keysentry/fleet].",
)
@click.option("--verify", is_flag=True, help="Verify each new distinct key once (OpenAI API).")
@click.option("--openai-base-url", metavar="URL", help="The OpenAI API [default: OPENAI_BASE_URL].")
@click.option(
    "--retries", type=click.IntRange(0), default=3, show_default=True, help="Per repository."
)
@click.option("--fresh", is_flag=True, help="Start a new scan instead of resuming one.")
@click.option("--max-file-size", default="50M", show_default=True, help="Larger blobs: skipped.")
@click.option("--quiet", "-q", is_flag=True, help="No progress line.")
def fleet_scan(**options: object) -> int:
    """Scan the history of many repositories into the datastore; a rerun reads only what
    changed. Exit codes: 0 no key, 1 keys, 2 error or a repository failed, 3 a live key."""
    from keysentry.commands import fleet

    return fleet.scan(options)


@fleet_group.command("report")
@click.option(
    "--store",
    metavar="URL",
    default="keysentry-fleet.db",
    show_default=True,
    help="The datastore: a SQLite path or a postgresql:// URL.",
)
@format_option(["text", "json", "sarif", "html"], "Report format.")
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the report to FILE instead of stdout.",
)
@click.option("--since", metavar="DATE", help="Only what the store first saw on or after DATE.")
def fleet_report(store: str, fmt: str, output: Path | None, since: str | None) -> int:
    """Report the keys in the datastore: live ones first, with where each was committed."""
    from keysentry.commands import fleet

    return fleet.report(store, fmt, output, since)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; every error ends as one line on stderr (usage errors as click shows them),
    each line scrubbed of keys and with control characters escaped (`safety.say`)."""
    _RUN["debug"] = bool(os.environ.get("KEYSENTRY_DEBUG"))
    args = files_as_files(sys.argv[1:] if argv is None else list(argv))
    return guarded(lambda: _click_main(args), lambda: _RUN["debug"])


def _click_main(args: list[str]) -> int:
    """The click group on `args`, its own exits and usage errors turned into exit codes."""
    import io

    from keysentry.safety import say

    try:
        return int(cli.main(args=args, prog_name="keysentry", standalone_mode=False) or 0)
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.ClickException as exc:
        shown = io.StringIO()
        exc.show(file=shown)
        for line in shown.getvalue().splitlines():
            say(line)
        return int(ExitCode.ERROR)
    except click.Abort:
        raise KeyboardInterrupt from None

"""The `keysentry` command line: options here, each command's body in `commands/`.

Every error a user can cause ends as one line on stderr and exit code 2, never a traceback;
no message ever holds a key.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import click

from keysentry import __version__
from keysentry.errors import ExitCode, KeysentryError
from keysentry.scanner.report import FORMATS


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="keysentry")
def cli() -> None:
    """OpenAI API key hygiene: find leaked keys, and keep them out of code."""


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=str))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(list(FORMATS)),
    default="text",
    show_default=True,
    help="Report format.",
)
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
    help="Fingerprints and path patterns to ignore [default: .keysentryignore].",
)
@click.option("--no-gitignore", is_flag=True, help="Also scan files that .gitignore excludes.")
@click.option(
    "--max-file-size",
    metavar="SIZE",
    help="Skip (and report) files larger than SIZE, e.g. 10M [default: 100M].",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Config file [default: keysentry.toml or pyproject.toml here].",
)
@click.option("--quiet", "-q", is_flag=True, help="No summary or skip notes on stderr.")
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
@click.option("--since", metavar="REV", help="Scan the commits after REV up to HEAD.")
@click.option(
    "--range",
    "spans",
    metavar="A..B",
    multiple=True,
    help="Scan the commits in A..B (an all-zeros A is a new branch); repeatable.",
)
@click.option(
    "--allow-shallow",
    is_flag=True,
    help="Scan a shallow clone anyway: history before its cut-off is not scanned.",
)
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
    type=click.Choice(["any", "live"]),
    default="any",
    show_default=True,
    help="With --verify: fail only on live keys.",
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

    Exit codes: 0 nothing found, 1 keys found, 2 usage or input error, 3 a key found is live
    (--verify), 4 none is live but one could not be verified (--fail-on live).
    """
    from keysentry.commands.scan import ScanOptions, run

    return run(list(paths), ScanOptions.from_click(options))


def _pre_push_option(help: str) -> Callable[[Callable[..., int]], Callable[..., int]]:
    return click.option("--pre-push", "hook", flag_value="pre-push", default="pre-commit",
                        help=help)  # fmt: skip


@cli.command("install-hook")
@click.argument("path", default=".", type=click.Path(file_okay=False, path_type=str))
@_pre_push_option("Install the pre-push hook (scans the pushed commits) instead.")
def install_hook(path: str, hook: str) -> int:
    """Install a plain git hook (pre-commit by default) in the repository at PATH."""
    from keysentry.commands import hooks

    print(f"keysentry: {hooks.install(path, hook)}")
    return 0


@cli.command("uninstall-hook")
@click.argument("path", default=".", type=click.Path(file_okay=False, path_type=str))
@_pre_push_option("Remove the pre-push hook instead.")
def uninstall_hook(path: str, hook: str) -> int:
    """Remove keysentry's git hook and restore the hook it chained, if any."""
    from keysentry.commands import hooks

    print(f"keysentry: {hooks.uninstall(path, hook)}")
    return 0


@cli.command("pre-push")
@click.argument("path", default=".", type=click.Path(file_okay=False, path_type=str))
@click.option("--format", "fmt", type=click.Choice(list(FORMATS)), default="text")
@click.option("--allow-shallow", is_flag=True, help="Scan a shallow clone anyway.")
def pre_push(path: str, fmt: str, allow_shallow: bool) -> int:
    """Scan the commits a push sends (for pre-commit's pre-push stage and git's pre-push hook).

    Reads the ranges from pre-commit's PRE_COMMIT_FROM_REF/PRE_COMMIT_TO_REF, or from the
    lines git writes to a pre-push hook's standard input.
    """
    import os

    from keysentry.commands import hooks
    from keysentry.commands.scan import ScanOptions, run

    stdin = "" if sys.stdin is None or sys.stdin.isatty() else sys.stdin.read()
    spans = hooks.push_spans(stdin, dict(os.environ))
    if not spans:
        print("keysentry: nothing to push: no commits to scan", file=sys.stderr)
        return 0
    options = ScanOptions(fmt=fmt, spans=tuple(spans), allow_shallow=allow_shallow)
    return run([path], options)


@cli.command()
def action() -> int:
    """Run as the GitHub Actions step (action.yml); configured by its environment."""
    import os

    from keysentry.commands import action as github_action

    return github_action.run(dict(os.environ))


@cli.command("get")
@click.argument("name", default="OPENAI_API_KEY")
@click.option("--env", "env", metavar="ENV", help="The environment [default: $KEYSENTRY_ENV].")
@click.option("--reveal", is_flag=True, help="Print the value itself (for scripts).")
def get_command(name: str, env: str | None, reveal: bool) -> int:
    """Show NAME for an environment, redacted unless --reveal, and where it came from."""
    from keysentry.commands import secrets

    return secrets.get(name, env, reveal)


@cli.command("run", context_settings={"ignore_unknown_options": True})
@click.option("--env", "env", metavar="ENV", help="The environment [default: $KEYSENTRY_ENV].")
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
@click.option("--env", "envs", metavar="ENV", multiple=True, help="Check only ENV (repeatable).")
def env_check(envs: tuple[str, ...]) -> int:
    """Resolve every reference of every environment and report, redacted, which work."""
    from keysentry.commands import secrets

    return secrets.check(list(envs))


@cli.command("verify")
@click.option(
    "--env",
    "envs",
    metavar="ENV",
    multiple=True,
    help="Verify only ENV (repeatable) [default: every environment].",
)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@click.option("--since", metavar="DATE", help="Spend since DATE [default: the 1st of the month].")
@click.option("--base-url", metavar="URL", help="The OpenAI API [default: OPENAI_BASE_URL].")
@click.option("--no-history", is_flag=True, help="Skip the scan of this repository's history.")
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
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--base-url", metavar="URL", help="The OpenAI API [default: OPENAI_BASE_URL].")
def revoke_command(
    project: str | None, admin_key: bool, key_id: str, yes: bool, base_url: str | None
) -> int:
    """Revoke a key with the Admin API, by the call its owner needs (after confirmation).

    A user's project key is deleted; a service account's key can only be revoked by deleting
    its service account, with every key it holds (the prompt says so); an admin key
    (--admin) is deleted with the admin-key call.
    """
    from keysentry.commands import verify
    from keysentry.verify.client import translated

    return translated(lambda: verify.revoke(project, key_id, admin_key, yes, base_url))


@cli.group("migrate")
def migrate_group() -> None:
    """Move keys out of code and .env files into secret stores, and between stores."""


@migrate_group.command("plan")
@click.argument("path", default=".", type=click.Path(file_okay=False, path_type=str))
@click.option("--env", "env", metavar="ENV", help="The environment of keys whose file names none.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
def migrate_plan(path: str, env: str | None, fmt: str) -> int:
    """Show, redacted, where each key in PATH would go and how its source would change."""
    from keysentry.commands import migrate

    return migrate.plan(path, env, fmt)


@migrate_group.command("apply")
@click.argument("path", default=".", type=click.Path(file_okay=False, path_type=str))
@click.option("--env", "env", metavar="ENV", help="The environment of keys whose file names none.")
@click.option("--overwrite", is_flag=True, help="Replace a different value already stored.")
def migrate_apply(path: str, env: str | None, overwrite: bool) -> int:
    """Store each key, read it back, then rewrite the sources (journaled)."""
    from keysentry.commands import migrate

    return migrate.apply(path, env, overwrite)


@migrate_group.command("resume")
@click.argument("path", default=".", type=click.Path(file_okay=False, path_type=str))
def migrate_resume(path: str) -> int:
    """Finish an interrupted migrate apply."""
    from keysentry.commands import migrate

    return migrate.resume(path)


@migrate_group.command("rollback")
@click.argument("path", default=".", type=click.Path(file_okay=False, path_type=str))
def migrate_rollback(path: str) -> int:
    """Put the sources back as they were before migrate apply (keys from their stores)."""
    from keysentry.commands import migrate

    return migrate.rollback(path)


@migrate_group.command("copy")
@click.option("--from", "source", metavar="REF", help="The secret to copy.")
@click.option("--to", "destination", metavar="REF", help="Where to copy it.")
@click.option("--env", "env", metavar="ENV", help="Copy every name of ENV ...")
@click.option("--to-provider", metavar="SCHEME", help="... to this store ([migrate.templates]).")
@click.option("--overwrite", is_flag=True, help="Replace a different value already stored.")
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
@click.argument(
    "sources", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path)
)
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
    """Add the keys another scanner accepted to a keysentry baseline: a .gitleaksignore, a
    .betterleaksignore, a gitleaks or betterleaks JSON report, or a detect-secrets
    .secrets.baseline. Says which entries cannot be mapped, and why.

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
@click.option("--store", metavar="URL", default="keysentry-fleet.db", show_default=True)
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json", "sarif", "html"]), default="text"
)
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--since", metavar="DATE", help="Only what the store first saw on or after DATE.")
def fleet_report(store: str, fmt: str, output: Path | None, since: str | None) -> int:
    """Report the keys in the datastore: live ones first, with where each was committed."""
    from keysentry.commands import fleet

    return fleet.report(store, fmt, output, since)



def main(argv: list[str] | None = None) -> int:
    """Run the CLI; every error ends as one line on stderr (usage errors as click shows them),
    each line scrubbed of keys and with control characters escaped (`safety.say`)."""
    import io

    from keysentry.safety import say

    try:
        code = cli.main(args=argv, prog_name="keysentry", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.ClickException as exc:
        shown = io.StringIO()
        exc.show(file=shown)
        for line in shown.getvalue().splitlines():
            say(line)
        return int(ExitCode.ERROR)
    except (click.Abort, KeyboardInterrupt):
        say("keysentry: interrupted")
        return int(ExitCode.INTERRUPTED)
    except KeysentryError as exc:
        say(f"keysentry: error: {exc}")
        return int(exc.exit_code)
    except BrokenPipeError:
        sys.stderr.close()  # the reader went away (`| head`); nothing left to say
        return int(ExitCode.ERROR)
    except Exception as exc:  # a bug: still one line, and scrubbed of anything key-shaped
        say(f"keysentry: internal error: {type(exc).__name__}: {exc}")
        return int(ExitCode.ERROR)
    return int(code or 0)

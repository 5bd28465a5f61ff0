"""`migrate apply`, `resume`, `rollback` and `copy`: move keys without ever losing one.

Order, each step recorded in a journal (`.keysentry/migrate/journal.json`) before the next:
1. the journal: every item (fingerprints, destinations; never a key) and, per file, a
   template of its current text with each key replaced by a marker;
2. per key: store it (create, or a new version; the same value is a no-op; another value is
   refused unless `overwrite`), then read it back and compare;
3. per file, only once all its keys are stored and verified: rewrite it atomically (temp file,
   fsync, rename; mode, encoding and line endings kept);
4. `.env*` files and `.keysentry/` into `.gitignore`; the environments' references into the
   config (edited with tomlkit: comments and layout kept, the result checked with tomllib).
   Before either file is first changed, its original is copied into the journal directory.

A crash leaves either a file untouched (its keys still in it) or rewritten (its keys verified
in their store): `resume` finishes; `rollback` puts the sources back from the templates and the
store, and `.gitignore` and the config back from their copies (unless changed since). An apply
that fails before it changed a file in the tree (a refused store, a read-back mismatch) leaves
no journal: nothing needs resuming. Stored secrets are never deleted.

Paths in the journal are relative to the migrated directory, and a relative `dotenv://`
destination is a file under it, so every command works the same from any working directory.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from keysentry import journal
from keysentry.atomic import read_text_as_is, write_atomically
from keysentry.errors import ConfigError, InputError, SecretConflict
from keysentry.migrate.plan import Item, Plan
from keysentry.migrate.rewrite import markers, restore, rewrite
from keysentry.providers.base import SecretRef, parse_ref
from keysentry.secret import Secret

JOURNAL_DIR = Path(".keysentry") / "migrate"
JOURNAL = JOURNAL_DIR / "journal.json"
CRASH_AFTER = "KEYSENTRY_MIGRATE_CRASH_AFTER"  # tests: die right after recording this step


class Journal(journal.Journal):
    crash_variable = CRASH_AFTER

    def __init__(self, root: Path) -> None:
        super().__init__(root / JOURNAL, {"version": 1, "items": [], "files": {}})
        self.root = root

    @classmethod
    def load(cls, root: Path) -> Journal | None:
        journal = cls(root)
        data = cls.read(journal.path)
        if data is None:
            return None
        journal.data = data
        return journal


Report = Callable[[str], None]


def apply(
    root: Path,
    plan: Plan,
    *,
    env: str | None,
    overwrite: bool,
    report: Report,
    config_path: Path | None,
) -> Journal:
    if plan.conflicts:
        raise SecretConflict("the plan has conflicts: " + "; ".join(plan.conflicts))
    refuse_if_interrupted(root)
    journal = Journal(root)
    journal.data["items"] = [
        {
            "path": i.path,
            "env": i.env,
            "name": i.name,
            "destination": i.destination,
            "fingerprint": i.fingerprint,
            "action": i.action,
        }
        for i in plan.items
    ]
    journal.data["overwrite"] = overwrite
    journal.data["env"] = env
    # Where a relative dotenv:// destination lives: beside the config that maps it, where the
    # loader reads it from (else the migrated directory, where the config will be written).
    base = config_path.parent if config_path is not None else root
    journal.data["base"] = os.path.relpath(base.resolve(), root.resolve())
    for path in sorted({i.path for i in plan.items if i.action != "manual"}):
        text = read_text_as_is(root / path)
        template = rewrite(text, [i for i in plan.items if i.path == path]).template
        name = hashlib.sha256(path.encode()).hexdigest()[:16] + ".template"
        (root / JOURNAL_DIR).mkdir(parents=True, exist_ok=True)
        write_atomically(root / JOURNAL_DIR / name, template.encode("utf-8"))
        journal.data["files"][path] = name
    journal.record("planned")
    try:
        _finish(root, journal, plan.items, report, config_path)
    except Exception:
        if not _changed_the_tree(journal):
            _discard(root, journal)  # stores may hold the keys; no source needs recovering
        raise
    return journal


def _changed_the_tree(journal: Journal) -> bool:
    steps = journal.data["steps"]
    edited = any(step.startswith(("rewritten ", "gitignored", "configured")) for step in steps)
    return edited or bool(journal.data.get("originals"))


def _discard(root: Path, journal: Journal) -> None:
    journal.path.unlink(missing_ok=True)
    for name in [*journal.data["files"].values(), *_backups(journal)]:
        (root / JOURNAL_DIR / name).unlink(missing_ok=True)
    for directory in (root / JOURNAL_DIR, root / JOURNAL_DIR.parent):
        try:
            directory.rmdir()
        except OSError:
            break  # not empty: something else lives there


def _backups(journal: Journal) -> list[str]:
    return [name for name in journal.data.get("originals", {}).values() if name]


def refuse_if_interrupted(root: Path) -> None:
    existing = Journal.load(root)
    if existing is not None and not existing.data["done"]:
        raise InputError(
            f"an interrupted migration is in {existing.path}: run "
            "`keysentry migrate resume` or `keysentry migrate rollback`"
        )


def resume(root: Path, plan: Plan, *, report: Report, config_path: Path | None) -> Journal:
    """Finish an interrupted apply: the keys of files not yet rewritten are still in them
    (`plan`), the others are verified in their stores."""
    journal = Journal.load(root)
    if journal is None or journal.data["done"]:
        raise InputError("no interrupted migration to resume")
    _finish(root, journal, plan.items, report, config_path)
    return journal


def _finish(
    root: Path, journal: Journal, items: list[Item], report: Report, config_path: Path | None
) -> None:
    from keysentry.providers import provider_for

    overwrite = bool(journal.data.get("overwrite"))
    for item in {(i.destination, i.fingerprint): i for i in items}.values():
        stored, verified = (
            f"stored {item.destination} {item.fingerprint}",
            f"verified {item.destination} {item.fingerprint}",
        )
        ref = located(parse_ref(item.destination), root, journal)
        provider = provider_for(ref.scheme)
        if not journal.has(stored):
            result = provider.put(
                ref,
                item.secret.reveal(),
                overwrite=overwrite,
                tags={"managed-by": "keysentry", "environment": item.env},
            )
            report(
                f"stored {item.secret.redacted} at {item.destination}"
                + ("" if result.changed else " (already there)")
            )
            journal.record(stored)
        if not journal.has(verified):
            if provider.get(ref).secret != item.secret:
                raise SecretConflict(
                    f"{item.destination}: reading it back gave another value; nothing was rewritten"
                )
            journal.record(verified)
    for path in sorted(journal.data["files"]):
        if journal.has(f"rewritten {path}"):
            continue
        file_items = [i for i in items if i.path == path]
        if not file_items:  # its keys were already moved: rewritten before the crash
            journal.record(f"rewritten {path}")
            continue
        new = rewrite(read_text_as_is(root / path), file_items).text
        write_atomically(root / path, new.encode("utf-8"))
        report(f"rewrote {path}")
        journal.record(f"rewritten {path}")
    if not journal.has("gitignored"):
        _ignore_secrets(root, journal)
        journal.record("gitignored")
    if not journal.has("configured"):
        _configure(root, journal, config_path)
        journal.record("configured")
    journal.data["done"] = True
    journal.save()


def rollback(root: Path, report: Report) -> None:
    """Put every rewritten source back as it was, its keys read from their stores, and
    `.gitignore` and the config as they were before the migration."""
    from keysentry.providers import provider_for

    journal = Journal.load(root)
    if journal is None:
        raise InputError(f"no migration to roll back in {root / JOURNAL}")
    keys: dict[str, str] = {}
    for item in journal.data["items"]:
        if item["fingerprint"] not in keys and journal.has(
            f"verified {item['destination']} {item['fingerprint']}"
        ):
            ref = located(parse_ref(item["destination"]), root, journal)
            keys[item["fingerprint"]] = provider_for(ref.scheme).get(ref).secret.reveal()
    for path, name in sorted(journal.data["files"].items()):
        if not journal.has(f"rewritten {path}"):
            continue  # untouched: its keys are still in it
        template = read_text_as_is(root / JOURNAL_DIR / name)
        missing = markers(template) - set(keys)
        if missing:
            raise InputError(f"{path}: cannot restore, keys not in their stores: {missing}")
        write_atomically(root / path, restore(template, keys).encode("utf-8"))
        report(f"restored {path}")
    _restore_originals(root, journal, report)
    _discard(root, journal)


def _restore_originals(root: Path, journal: Journal, report: Report) -> None:
    written: Mapping[str, str] = journal.data.get("written", {})
    for path, name in sorted(journal.data.get("originals", {}).items()):
        target = root / path
        current = target.read_bytes() if target.exists() else None
        if current is not None and path in written and _digest(current) != written[path]:
            report(f"left {path} as it is: it changed after the migration")
            continue
        if name is None:
            target.unlink(missing_ok=True)
            report(f"removed {path}")
        else:
            write_atomically(target, (root / JOURNAL_DIR / name).read_bytes())
            report(f"restored {path}")


def located(ref: SecretRef, root: Path, journal: Journal) -> SecretRef:
    """A relative `dotenv://` file is beside the config, wherever we run from."""
    if ref.scheme != "dotenv" or os.path.isabs(ref.location):
        return ref
    return ref._replace(location=os.path.join(root, journal.data.get("base", "."), ref.location))


def copy(source: str, destination: str, *, overwrite: bool, report: Report) -> None:
    """Copy one secret between stores, and read it back."""
    from keysentry.providers import provider_for

    from_ref, to_ref = parse_ref(source, "--from"), parse_ref(destination, "--to")
    secret: Secret = provider_for(from_ref.scheme).get(from_ref).secret
    target = provider_for(to_ref.scheme)
    result = target.put(
        to_ref, secret.reveal(), tags={"managed-by": "keysentry"}, overwrite=overwrite
    )
    if target.get(to_ref).secret != secret:
        raise SecretConflict(f"{destination}: reading it back gave another value")
    report(
        f"copied {secret.redacted} from {source} to {destination}"
        + ("" if result.changed else " (already there)")
    )


def _ignore_secrets(root: Path, journal: Journal) -> None:
    """`.env` / `.env.*` (the files keys were in) and `.keysentry/` (the journal) ignored."""
    names = {Path(i["path"]).name for i in journal.data["items"]}
    wanted = [".env"] if ".env" in names else []
    wanted += [".env.*"] if any(n.startswith(".env.") for n in names) else []
    wanted.append(".keysentry/")
    wanted += _dotenv_destinations(root, journal)
    gitignore = root / ".gitignore"
    text = read_text_as_is(gitignore) if gitignore.exists() else ""
    lines = text.splitlines()
    missing = [p for p in wanted if p not in lines and "/" + p not in lines]
    if missing:
        newline = "\r\n" if "\r\n" in text else "\n"
        ending = newline if text and not text.endswith(("\n", "\r")) else ""
        added = newline.join(["# secrets stay out of git (keysentry migrate)", *missing])
        _edit(root, journal, gitignore, (text + ending + added + newline).encode("utf-8"))


def _dotenv_destinations(root: Path, journal: Journal) -> list[str]:
    """The .env files keys were moved into under `root`, as anchored .gitignore patterns."""
    patterns = []
    for item in journal.data["items"]:
        ref = located(parse_ref(item["destination"]), root, journal)
        if ref.scheme == "dotenv":
            where = _journal_path(Path(ref.location), root)
            if not os.path.isabs(where) and "\n" not in where:
                patterns.append("/" + where)
    return sorted(set(patterns))


def _edit(root: Path, journal: Journal, path: Path, data: bytes) -> None:
    """Write `path`, its original first copied into the journal (once) for rollback."""
    key = _journal_path(path, root)
    originals = journal.data.setdefault("originals", {})
    if key not in originals:
        name = None
        if path.exists():
            name = "original-" + hashlib.sha256(key.encode()).hexdigest()[:16]
            write_atomically(root / JOURNAL_DIR / name, path.read_bytes())
        originals[key] = name
    journal.data.setdefault("written", {})[key] = _digest(data)
    journal.save()
    write_atomically(path, data)


def _journal_path(path: Path, root: Path) -> str:
    """`path` relative to `root` where it is under it (the journal moves with the tree)."""
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path.resolve())


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _configure(root: Path, journal: Journal, config_path: Path | None) -> None:
    """Map each moved name in its environment, unless the config already maps it."""
    from keysentry.config import load_config
    from keysentry.loader import environments

    path = config_path or root / "keysentry.toml"
    config = load_config(path) if path.exists() else None
    known = environments(config) if config else {}
    additions: dict[str, dict[str, str]] = {}
    for item in journal.data["items"]:
        if item["name"] not in known.get(item["env"], {}):
            additions.setdefault(item["env"], {})[item["name"]] = item["destination"]
    if not additions:
        return
    text = read_text_as_is(path) if path.exists() else ""
    _edit(root, journal, path, _with_environments(path, text, additions).encode("utf-8"))


def _with_environments(path: Path, text: str, additions: dict[str, dict[str, str]]) -> str:
    """`text` with each NAME = "reference" added to its `[environments.<env>]` table, by
    tomlkit (comments, order and quoting kept), and proven by parsing the result."""
    import tomlkit
    from tomlkit.items import InlineTable

    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on Python 3.10 only
        import tomli as tomllib

    document = tomlkit.parse(text)
    base: Any = document
    prefix: tuple[str, ...] = ()
    if path.name == "pyproject.toml":
        base, prefix = document["tool"]["keysentry"], ("tool", "keysentry")
    environments = base.get("environments")
    if environments is None:
        environments = tomlkit.table(is_super_table=True)
        base["environments"] = environments
    for env, names in sorted(additions.items()):
        table = environments.get(env)
        if table is None:
            inline = isinstance(environments, InlineTable)
            table = tomlkit.inline_table() if inline else tomlkit.table()
            environments[env] = table
        for name, ref in sorted(names.items()):
            table[name] = ref
    new = tomlkit.dumps(document)
    if "\r\n" in text:  # tomlkit writes what it adds with \n: keep the file's line endings
        new = new.replace("\r\n", "\n").replace("\n", "\r\n")
    expected: Any = tomllib.loads(text)
    table = expected
    for key in prefix:
        table = table.setdefault(key, {})
    for env, names in additions.items():
        table.setdefault("environments", {}).setdefault(env, {}).update(names)
    if tomllib.loads(new) != expected:  # nothing dropped, nothing duplicated, all added
        raise ConfigError(
            f"{path}: could not add the references to [environments] without "
            "changing something else: add them by hand"
        )
    return new

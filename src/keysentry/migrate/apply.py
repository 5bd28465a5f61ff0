"""`migrate apply`, `resume`, `rollback` and `copy`: move keys without ever losing one.

Order, each step recorded in a journal (`.keysentry/migrate/journal.json`) before the next:
1. the journal: every item (fingerprints, destinations; never a key) and, per file, a
   template of its current text with each key replaced by a marker;
2. per key: store it (create, or a new version; the same value is a no-op; another value is
   refused unless `overwrite`), then read it back and compare;
3. per file, only once all its keys are stored and verified: rewrite it atomically (temp file,
   fsync, rename; mode, encoding and line endings kept);
4. `.env*` files into `.gitignore`; the environments' references into the config.

A crash leaves either a file untouched (its keys still in it) or rewritten (its keys verified
in their store): `resume` finishes; `rollback` puts the sources back from the templates and the
store. Stored secrets are never deleted.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from keysentry.atomic import read_text_as_is, write_atomically
from keysentry.errors import InputError, SecretConflict
from keysentry.migrate.plan import Item, Plan
from keysentry.migrate.rewrite import markers, restore, rewrite
from keysentry.providers.base import parse_ref
from keysentry.secret import Secret

JOURNAL_DIR = Path(".keysentry") / "migrate"
JOURNAL = JOURNAL_DIR / "journal.json"
CRASH_AFTER = "KEYSENTRY_MIGRATE_CRASH_AFTER"  # tests: die right after recording this step


class Journal:
    def __init__(self, root: Path) -> None:
        self.path = root / JOURNAL
        self.root = root
        self.data: dict[str, Any] = {"version": 1, "items": [], "files": {}, "steps": [],
                                     "done": False}  # fmt: skip

    @classmethod
    def load(cls, root: Path) -> Journal | None:
        journal = cls(root)
        try:
            journal.data = json.loads(journal.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise InputError(f"{journal.path}: unreadable journal: {exc}") from None
        return journal

    def has(self, step: str) -> bool:
        return step in self.data["steps"]

    def record(self, step: str) -> None:
        if not self.has(step):
            self.data["steps"].append(step)
        self.save()
        crash = os.environ.get(CRASH_AFTER)
        if crash and step.startswith(crash):
            os._exit(137)  # as a kill -9 would, for the crash tests

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(self.path, json.dumps(self.data, indent=2).encode())


Report = Callable[[str], None]


def apply(root: Path, plan: Plan, *, env: str | None, overwrite: bool, report: Report,
          config_path: Path | None) -> Journal:  # fmt: skip
    if plan.conflicts:
        raise SecretConflict("the plan has conflicts: " + "; ".join(plan.conflicts))
    refuse_if_interrupted(root)
    journal = Journal(root)
    journal.data["items"] = [
        {"path": i.path, "env": i.env, "name": i.name, "destination": i.destination,
         "fingerprint": i.fingerprint, "action": i.action}
        for i in plan.items
    ]  # fmt: skip
    journal.data["overwrite"] = overwrite
    journal.data["env"] = env
    for path in sorted({i.path for i in plan.items if i.action != "manual"}):
        text = read_text_as_is(root / path)
        template = rewrite(text, [i for i in plan.items if i.path == path]).template
        name = hashlib.sha256(path.encode()).hexdigest()[:16] + ".template"
        (root / JOURNAL_DIR).mkdir(parents=True, exist_ok=True)
        write_atomically(root / JOURNAL_DIR / name, template.encode("utf-8"))
        journal.data["files"][path] = name
    journal.record("planned")
    _finish(root, journal, plan.items, report, config_path)
    return journal


def refuse_if_interrupted(root: Path) -> None:
    existing = Journal.load(root)
    if existing is not None and not existing.data["done"]:
        raise InputError(f"an interrupted migration is in {existing.path}: run "
                         "`keysentry migrate resume` or `keysentry migrate rollback`")  # fmt: skip


def resume(root: Path, plan: Plan, *, report: Report, config_path: Path | None) -> Journal:
    """Finish an interrupted apply: the keys of files not yet rewritten are still in them
    (`plan`), the others are verified in their stores."""
    journal = Journal.load(root)
    if journal is None or journal.data["done"]:
        raise InputError("no interrupted migration to resume")
    _finish(root, journal, plan.items, report, config_path)
    return journal


def _finish(root: Path, journal: Journal, items: list[Item], report: Report,
            config_path: Path | None) -> None:  # fmt: skip
    from keysentry.providers import provider_for

    overwrite = bool(journal.data.get("overwrite"))
    for item in {(i.destination, i.fingerprint): i for i in items}.values():
        stored, verified = f"stored {item.destination} {item.fingerprint}", \
            f"verified {item.destination} {item.fingerprint}"  # fmt: skip
        ref = parse_ref(item.destination)
        provider = provider_for(ref.scheme)
        if not journal.has(stored):
            result = provider.put(
                ref,
                item.secret.reveal(),
                overwrite=overwrite,
                tags={"managed-by": "keysentry", "environment": item.env},
            )
            report(f"stored {item.secret.redacted} at {item.destination}"
                   + ("" if result.changed else " (already there)"))  # fmt: skip
            journal.record(stored)
        if not journal.has(verified):
            if provider.get(ref).secret != item.secret:
                raise SecretConflict(f"{item.destination}: reading it back gave another value; "
                                     "nothing was rewritten")  # fmt: skip
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
        _ignore_env_files(root, journal)
        journal.record("gitignored")
    if not journal.has("configured"):
        _configure(root, journal, config_path)
        journal.record("configured")
    journal.data["done"] = True
    journal.save()


def rollback(root: Path, report: Report) -> None:
    """Put every rewritten source back as it was, its keys read from their stores."""
    from keysentry.providers import provider_for

    journal = Journal.load(root)
    if journal is None:
        raise InputError("no migration to roll back")
    keys: dict[str, str] = {}
    for item in journal.data["items"]:
        if item["fingerprint"] not in keys and journal.has(
            f"verified {item['destination']} {item['fingerprint']}"
        ):
            ref = parse_ref(item["destination"])
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
    journal.path.unlink()
    for name in journal.data["files"].values():
        (root / JOURNAL_DIR / name).unlink(missing_ok=True)


def copy(source: str, destination: str, *, overwrite: bool, report: Report) -> None:
    """Copy one secret between stores, and read it back."""
    from keysentry.providers import provider_for

    from_ref, to_ref = parse_ref(source, "--from"), parse_ref(destination, "--to")
    secret: Secret = provider_for(from_ref.scheme).get(from_ref).secret
    target = provider_for(to_ref.scheme)
    result = target.put(to_ref, secret.reveal(), tags={"managed-by": "keysentry"},
                        overwrite=overwrite)  # fmt: skip
    if target.get(to_ref).secret != secret:
        raise SecretConflict(f"{destination}: reading it back gave another value")
    report(f"copied {secret.redacted} from {source} to {destination}"
           + ("" if result.changed else " (already there)"))  # fmt: skip


def _ignore_env_files(root: Path, journal: Journal) -> None:
    names = {Path(i["path"]).name for i in journal.data["items"]}
    wanted = [".env"] if ".env" in names else []
    wanted += [".env.*"] if any(n.startswith(".env.") for n in names) else []
    gitignore = root / ".gitignore"
    lines = gitignore.read_text(encoding="utf-8").splitlines() if gitignore.exists() else []
    missing = [p for p in wanted if p not in lines]
    if missing:
        text = "\n".join([*lines, "# secrets stay out of git (keysentry migrate)", *missing])
        write_atomically(gitignore, (text + "\n").encode())


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
    if not additions or path.name == "pyproject.toml":
        return
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    for env, names in sorted(additions.items()):
        block = "".join(f'{name} = "{ref}"\n' for name, ref in sorted(names.items()))
        header = f"[environments.{env}]"
        if header in text:
            text = text.replace(header + "\n", header + "\n" + block, 1)
        else:
            text += ("" if not text or text.endswith("\n") else "\n") + f"\n{header}\n{block}"
    write_atomically(path, text.encode("utf-8"))

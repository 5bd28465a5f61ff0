"""`keysentry baseline import`: bring the accepted findings of another scanner into a keysentry
baseline, so that a team switching tools is not blocked by keys it already triaged.

The other tools key their entries by location or by a plain hash of the secret, keysentry by a
keyed fingerprint of the key; so each entry is mapped by finding the key it points at:

- `.gitleaksignore`: `commit:file:rule:line` (or `file:rule:line` for a directory scan). The
  key is read back from that blob (or file) at that line.
- `.betterleaksignore`: value fingerprints, the SHA-256 of each secret. They name no place, so
  they are matched against every key keysentry finds under the root (its history, in a git
  repository).
- a gitleaks JSON report used as a baseline (`RuleID`, `File`, `Commit`, `StartLine`, `Secret`)
  or a betterleaks 2 report (`findings[]` with `rule_id`, `location`, `attributes["git.sha"]`,
  `match.value`, `match.fingerprint`): the secret itself when the report was not redacted,
  else the place, else the SHA-256.
- a detect-secrets `.secrets.baseline`: `hashed_secret` is the SHA-1 of the secret; it is
  matched against the SHA-1 of every key in the named file (line numbers are optional there:
  `--slim` drops them).

What cannot be mapped is said, entry by entry: another vendor's rule, a blob or file that is
gone, a line that holds no OpenAI key. Nothing here ever prints or stores a key.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from keysentry.errors import ExitCode, InputError
from keysentry.safety import say
from keysentry.scanner.findings import Blob, Finding, findings_in

if TYPE_CHECKING:
    from keysentry.scanner.git.repo import Repo


class Entry(NamedTuple):
    """One accepted finding of another tool: where it points, as far as that tool said."""

    label: str  # how the entry is named in messages: its line or fingerprint in the source
    path: str | None
    commit: str | None = None
    line: int | None = None
    secret: str | None = None  # the key itself, when an unredacted report holds it
    digest: tuple[str, str] | None = None  # (hashlib algorithm, hex) of the secret
    rule: str | None = None


class Outcome(NamedTuple):
    found: list[Finding]
    unmapped: list[tuple[str, str]]  # (entry label, why)


# gitleaks' and betterleaks' OpenAI rule, and the generic rules that catch keys too.
_OPENAI_RULES = ("openai-api-key", "generic-api-key")
_DETECT_SECRETS_TYPES = ("OpenAI Token", "Secret Keyword")


def entries_of(path: Path) -> tuple[str, list[Entry]]:
    """The format of `path` and its entries; an InputError for a file of no known format."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8"
        raise InputError(f"cannot read {path}: {reason}") from None
    stripped = text.lstrip()
    if stripped.startswith(("{", "[")):
        try:
            document = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path} is not JSON: {exc.msg} at line {exc.lineno}") from None
        if isinstance(document, dict) and isinstance(document.get("results"), dict):
            return "detect-secrets baseline", list(_detect_secrets_entries(document["results"]))
        if isinstance(document, dict) and isinstance(document.get("findings"), list):
            return "betterleaks report", list(_betterleaks_report_entries(document["findings"]))
        if isinstance(document, list) and all(isinstance(d, dict) for d in document):
            return "gitleaks report", list(_gitleaks_report_entries(document))
        raise InputError(
            f"{path}: not a detect-secrets baseline (an object with 'results'), a betterleaks "
            "report (an object with 'findings') nor a gitleaks report (a list of findings)"
        )
    return "ignore file", list(_ignore_file_entries(text))


def _detect_secrets_entries(results: dict[str, Any]) -> Iterator[Entry]:
    for filename, secrets in sorted(results.items()):
        for secret in secrets if isinstance(secrets, list) else []:
            if not isinstance(secret, dict):
                continue
            line = secret.get("line_number")
            hashed = str(secret.get("hashed_secret", ""))
            yield Entry(
                label=f"{filename} {secret.get('type', '?')} {hashed[:8]}",
                path=str(filename),
                line=line if isinstance(line, int) else None,
                digest=("sha1", hashed.lower()),
                rule=str(secret.get("type", "")),
            )


def _gitleaks_report_entries(findings: list[dict[str, Any]]) -> Iterator[Entry]:
    for finding in findings:
        secret = finding.get("Secret")
        line = finding.get("StartLine")
        yield Entry(
            label=str(finding.get("Fingerprint") or finding.get("File") or "?"),
            path=str(finding["File"]) if finding.get("File") else None,
            commit=str(finding["Commit"]) if finding.get("Commit") else None,
            line=line if isinstance(line, int) else None,
            secret=secret if isinstance(secret, str) and secret != "REDACTED" else None,
            rule=str(finding.get("RuleID", "")),
        )


def _betterleaks_report_entries(findings: list[Any]) -> Iterator[Entry]:
    for finding in findings:
        if not isinstance(finding, dict):
            continue
        match, location, attributes = (
            _table(finding, k) for k in ("match", "location", "attributes")
        )
        commit = attributes.get("git.sha")
        value, digest, line = (
            match.get("value"),
            match.get("fingerprint"),
            location.get("start_line"),
        )
        yield Entry(
            label=str(digest or location.get("path") or "?")[:16],
            path=str(location["path"]) if location.get("path") else None,
            commit=str(commit) if commit else None,
            line=line if isinstance(line, int) else None,
            secret=value if isinstance(value, str) and value != "REDACTED" else None,
            digest=("sha256", digest.lower()) if isinstance(digest, str) else None,
            rule=str(finding.get("rule_id", "")),
        )


def _table(document: dict[str, Any], name: str) -> dict[str, Any]:
    value = document.get(name)
    return value if isinstance(value, dict) else {}


def _ignore_file_entries(text: str) -> Iterator[Entry]:
    """`.gitleaksignore` lines (`[commit:]file:rule:line`) and `.betterleaksignore` lines
    (SHA-256 value fingerprints), in any mix."""
    for number, raw in enumerate(text.splitlines(), 1):
        entry = raw.split("#", 1)[0].strip()
        if not entry:
            continue
        label = f"line {number}"
        if len(entry) == 64 and _is_hex(entry):
            yield Entry(label=label, path=None, digest=("sha256", entry.lower()))
            continue
        parts = entry.rsplit(":", 2)  # the file may hold colons; rule and line never do
        if len(parts) != 3 or not parts[2].isdigit():
            yield Entry(label=label, path=None)
            continue
        where, rule, line = parts
        commit, sep, path = where.partition(":")
        is_commit = bool(sep) and len(commit) in (40, 64) and _is_hex(commit)
        yield Entry(
            label=label,
            path=path if is_commit else where,
            commit=commit if is_commit else None,
            line=int(line),
            rule=rule,
        )


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text.lower())


def map_entries(entries: list[Entry], root: Path) -> Outcome:
    """The keysentry findings the entries point at, and why the others could not be mapped.
    Paths are relative to `root` (the repository or directory the other tool scanned)."""
    found: list[Finding] = []
    unmapped: list[tuple[str, str]] = []
    repo = _repository(root)
    everywhere: list[Finding] | None = None  # every key under root, for entries with no place
    for entry in entries:
        if entry.rule and not _is_openai_rule(entry.rule):
            unmapped.append((entry.label, f"rule {entry.rule} is not an OpenAI key rule"))
            continue
        if entry.secret is not None:
            keys = findings_in(Blob(entry.path or "<report>", entry.secret.encode()), False)
            if keys:
                found += keys
                continue
        if entry.path is None or (entry.commit is None and entry.line is None and entry.digest):
            if entry.digest is None:
                unmapped.append((entry.label, "not an entry keysentry can read"))
                continue
            if everywhere is None:
                everywhere = _every_key(root, repo)
            matched = _with_digest(everywhere, entry.digest)
            where = f"under {root}"
        else:
            content, why = _content(root, repo, entry)
            if content is None:
                unmapped.append((entry.label, why))
                continue
            candidates = findings_in(Blob(entry.path, content), inline_allow=False)
            if entry.digest is not None:
                matched = _with_digest(candidates, entry.digest)
            else:
                matched = [f for f in candidates if f.line == entry.line]
            where = f"at {entry.path}:{entry.line}" if entry.line else f"in {entry.path}"
        if matched:
            found += matched
        else:
            unmapped.append((entry.label, f"no OpenAI key {where} matches it"))
    return Outcome(found, unmapped)


def _with_digest(findings: list[Finding], digest: tuple[str, str]) -> list[Finding]:
    import hashlib

    algorithm, hexdigest = digest
    return [
        f
        for f in findings
        if hashlib.new(algorithm, f.secret.reveal().encode(), usedforsecurity=False).hexdigest()
        == hexdigest
    ]


def _every_key(root: Path, repo: Repo | None) -> list[Finding]:
    """Every key keysentry finds under `root`: in its whole history when it is a repository
    with commits, else in its files."""
    from keysentry.scanner.pipeline import Suppression, scan_files
    from keysentry.scanner.sources.files import FileSource

    if repo is not None and repo.has_commits():
        from keysentry.scanner.git.scans import history_keys

        return history_keys(str(root), all_objects=True) or []
    source = FileSource([str(root)], use_gitignore=False, max_file_size=100 << 20)
    return scan_files(source, Suppression(inline_allow=False)).unsuppressed


def _is_openai_rule(rule: str) -> bool:
    known = rule in _OPENAI_RULES or rule in _DETECT_SECRETS_TYPES
    return known or "openai" in rule.lower() or "high entropy" in rule.lower()


def _repository(root: Path) -> Repo | None:
    from keysentry.scanner.git.repo import open_repo
    from keysentry.scanner.git.run import GitError

    try:
        return open_repo(str(root))
    except GitError:
        return None


def _content(root: Path, repo: Repo | None, entry: Entry) -> tuple[bytes | None, str]:
    """The bytes the entry points at: a blob of a commit, else the file under `root`."""
    assert entry.path is not None
    if entry.commit is not None:
        if repo is None:
            return None, f"{root} is not a git repository, so commit {entry.commit[:12]} is gone"
        from keysentry.scanner.git.run import GitError

        try:
            return repo.git("cat-file", "blob", f"{entry.commit}:{entry.path}"), ""
        except GitError:
            return None, f"{entry.commit[:12]}:{entry.path} is not in this repository"
    try:
        return (root / entry.path).read_bytes(), ""
    except OSError as exc:
        return None, f"cannot read {entry.path}: {exc.strerror or exc}"


def import_baselines(sources: list[Path], baseline: Path, root: Path) -> int:
    """Add what each source accepted to `baseline` (created if missing); say what could not be
    mapped. Exit 0 when every OpenAI entry was mapped, 1 when some could not be."""
    from keysentry.scanner.suppress import load_baseline_entries, write_baseline_entries

    entries = load_baseline_entries(baseline) if baseline.exists() else {}
    before = len(entries)
    missed = 0
    for source in sources:
        fmt, read = entries_of(source)
        outcome = map_entries(read, root)
        for finding in outcome.found:
            entries[finding.fingerprint] = {
                "kind": finding.kind.value,
                "redacted": finding.redacted,
            }
        mapped = len({f.fingerprint for f in outcome.found})
        say(
            f"keysentry: {source} ({fmt}): {len(read)} entries, "
            f"{mapped} keys mapped, {len(outcome.unmapped)} not mapped"
        )
        for label, why in outcome.unmapped:  # the other tool's file names: anyone's text
            say(f"keysentry:   not mapped: {label}: {why}")
        missed += sum(1 for _, why in outcome.unmapped if "not an OpenAI key rule" not in why)
    write_baseline_entries(baseline, entries)
    say(f"keysentry: {baseline}: {len(entries) - before} fingerprints added, {len(entries)} in all")
    return int(ExitCode.FINDINGS if missed else ExitCode.CLEAN)

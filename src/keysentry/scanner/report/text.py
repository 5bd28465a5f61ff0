"""The human report: one line per finding, `path:line:column: what`.

Names, refs, authors and remote text are attacker-controlled: every line is built with them
passed through `escape_control`, so a file named with a newline cannot forge a finding line,
an ANSI sequence in a commit author never reaches the terminal, and a name that is not UTF-8
prints as `\\xNN` escapes instead of failing a strict UTF-8 stream.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from keysentry.safety import escape_control
from keysentry.scanner.report import shown

if TYPE_CHECKING:
    from keysentry.scanner.findings import Finding
    from keysentry.scanner.pipeline import ScanResult

_BOLD, _RED, _YELLOW, _DIM, _RESET = "\033[1m", "\033[31m", "\033[33m", "\033[2m", "\033[0m"


def _where(finding: Finding, show_secrets: bool) -> str:
    path = escape_control(shown(finding.path, show_secrets))
    if finding.binary:
        return f"{path}@{finding.offset}"
    return f"{path}:{finding.line}:{finding.column}"


def format_finding(finding: Finding, show_secrets: bool, color: bool) -> str:
    from keysentry.scanner.keys import Confidence  # here: a clean report needs no key anatomy

    value = finding.secret.reveal() if show_secrets else finding.redacted
    notes = [finding.kind.value]
    if finding.confidence is Confidence.LOW:
        notes.append("low confidence: unusual length")
    if finding.encoding:
        notes.append("+".join(finding.encoding) + "-encoded")
    where, title = _where(finding, show_secrets), finding.kind.label
    line = f"{where}: {title} {value} ({', '.join(notes)}) fingerprint {finding.fingerprint}"
    if not color:
        return line
    paint = _RED if finding.confidence is Confidence.HIGH else _YELLOW
    return (
        f"{_BOLD}{where}{_RESET}: {paint}{title}{_RESET} {value} "
        f"{_DIM}({', '.join(notes)}) fingerprint {finding.fingerprint}{_RESET}"
    )


def timeline(git: dict[str, Any]) -> str:
    """One line of a finding's git provenance: who introduced it, and where it still is."""
    if not git.get("reachable", True):
        return f"in unreachable blob {git['blob'][:12]} (no commit reaches it)"
    first = git["introduced"]
    parts = [
        f"introduced in {first['commit'][:12]} by {first['author']} <{first['email']}> "
        f"on {first['date'][:10]}"
    ]
    if "at_head" not in git:  # a range scan knows only the introducing commit
        return parts[0]
    removed = git["removed"]
    parts.append(f"removed in {removed['commit'][:12]}" if removed else "never removed")
    parts.append("still at HEAD" if git["at_head"] else "not at HEAD")
    if git["in_working_tree"]:
        parts.append("in the working tree")
    refs = [r.removeprefix("refs/heads/").removeprefix("refs/") for r in git["refs"]]
    parts.append(f"reachable from {', '.join(refs)}" if refs else "reachable from no ref")
    parts.append(f"{git['commits']} commit{'s' * (git['commits'] != 1)}")
    if len(git["paths"]) > 1:
        parts.append(f"{len(git['paths'])} paths")
    return "; ".join(parts)


def image_line(image: dict[str, Any]) -> str:
    """One line of a finding's place in a container image: its layer and build step, and
    whether a later layer deleted it (it is still in the image)."""
    if "layer" in image:
        where = f"image layer {image['layer']} {image['digest'][:19]}"
    else:
        where = f"image config {image['config'][:19]} {image.get('field', '')}".rstrip()
    if "step" in image:
        where += f" (build step {image['step']}: {image['created_by']})"
    if image.get("deleted_in_layer"):
        where += f"; deleted in layer {image['deleted_in_layer']}, still in the image"
    return where


def verified(info: dict[str, Any]) -> str:
    """One line of a finding's verification: live or not, and how to revoke a live key."""
    line = f"verified {info['status']}: {info['detail']}"
    if "revoke_command" in info:
        where = f"project {info['project_id']}, " if info.get("project_id") else ""
        line += f"; {where}key {info['key_id']}; revoke with "
        line += f"`{info['revoke_command']}` ({info['revoke']})"
        if info.get("revoke_also_removes"):
            line += f", which also deletes {info['revoke_also_removes']}"
    return line


def render(result: ScanResult, show_secrets: bool, color: bool) -> str:
    lines = []
    for finding in result.findings:
        lines.append(format_finding(finding, show_secrets, color))
        provenance = shown(finding.provenance, show_secrets)
        git = provenance.get("git")
        if git:
            lines.append("    " + escape_control(timeline(git)))
        image = provenance.get("image")
        if image:
            lines.append("    " + escape_control(image_line(image)))
        verification = provenance.get("verification")
        if verification:
            lines.append("    " + escape_control(verified(verification)))
    return "".join(line + "\n" for line in lines)

"""Reports from the fleet's datastore: text, JSON, SARIF (one run per repository) and a
single-file HTML page.

Everything here reads the store, which holds no key: a report can show a key's redacted form
and fingerprint, never the key. Text that came from repositories (paths, authors, refs) was
scrubbed and escaped before it was stored, and is HTML-escaped again here: a hostile path
cannot add markup or script to the page.
"""

from __future__ import annotations

import datetime as dt
import html
import json
from typing import Any

from keysentry import __version__
from keysentry.errors import InputError
from keysentry.fleet.store import Store

FORMATS = ("text", "json", "sarif", "html")
# Live keys first: they are the ones to act on now.
VERDICT_ORDER = ("live", "live-restricted", "unknown", "mismatched-project", None, "invalid")
VERDICT_LABEL = {
    "live": "Live",
    "live-restricted": "Live (restricted)",
    "unknown": "Unknown: the API did not say",
    "mismatched-project": "Another project's",
    None: "Not verified",
    "invalid": "Invalid (revoked or never valid)",
}
LIVE = ("live", "live-restricted")


def parse_since(text: str | None) -> str | None:
    """`--since DATE` (YYYY-MM-DD, or a full ISO time) as the store's time form."""
    if not text:
        return None
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise InputError(f"--since takes a date such as 2026-11-01, got {text!r}") from None
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def gather(store: Store, since: str | None) -> dict[str, Any]:
    """The report's data: each key with its occurrences, live keys first."""
    by_key: dict[str, dict[str, Any]] = {}
    for row in store.exposures(since):
        entry = by_key.setdefault(
            row["fingerprint"],
            {
                "fingerprint": row["fingerprint"],
                "kind": row["kind"],
                "redacted": row["redacted"],
                "verdict": row["verdict"],
                "detail": row["detail"],
                "project": row["project"],
                "owner": row["owner"],
                "key_id": row["key_id"],
                "revoke_command": row["revoke_command"],
                "occurrences": [],
            },
        )
        entry["occurrences"].append(
            {
                "repository": row["repository"],
                "repository_url": row["repository_url"],
                "path": row["path"],
                "line": row["line"],
                "introduced": {
                    "commit": row["introduced_commit"],
                    "author": row["introduced_author"],
                    "date": row["introduced_date"],
                },
                "removed": {"commit": row["removed_commit"], "date": row["removed_date"]}
                if row["removed_commit"]
                else None,
                "at_head": row["at_head"],
                "refs": row["refs"],
                "commits": row["commits"],
                "in_history": row["in_history"],
                "first_seen": row["first_seen"],
            }
        )
    keys = sorted(
        by_key.values(),
        key=lambda k: (
            VERDICT_ORDER.index(k["verdict"]) if k["verdict"] in VERDICT_ORDER else 2,
            min(o["introduced"]["date"] or "" for o in k["occurrences"]),
            k["fingerprint"],
        ),
    )
    return {
        "generated_at": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "since": since,
        "keys": keys,
        "failed_repositories": store.failures(),
    }


def render(data: dict[str, Any], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(data, indent=2) + "\n"
    if fmt == "sarif":
        return render_sarif(data)
    if fmt == "html":
        return render_html(data)
    return render_text(data)


def rotate_advice(key: dict[str, Any]) -> str:
    """The command that revokes a live key when the Admin API placed it, else what to do."""
    if key.get("revoke_command"):
        return str(key["revoke_command"])
    return (
        "rotate: create a replacement key, deploy it, then revoke "
        f"{key['redacted']} (set OPENAI_ADMIN_KEY for the exact `keysentry revoke` command)"
    )


def render_text(data: dict[str, Any]) -> str:
    lines = []
    for key in data["keys"]:
        verdict = key["verdict"] or "not verified"
        repos = sorted({o["repository"] for o in key["occurrences"]})
        lines.append(
            f"{key['redacted']}  {key['kind']}  {verdict}  fingerprint {key['fingerprint']}  "
            f"in {len(repos)} repositor{'y' if len(repos) == 1 else 'ies'}"
        )
        if key["verdict"] in LIVE:
            lines.append(f"  revoke: {rotate_advice(key)}")
        for o in key["occurrences"]:
            intro = o["introduced"]
            since = f" since {intro['commit'][:12]} {intro['date']}" if intro["commit"] else ""
            gone = " (removed)" if o["removed"] else ""
            lines.append(f"  {o['repository']}: {o['path']}:{o['line']}{since}{gone}")
    for failed in data["failed_repositories"]:
        lines.append(f"failed: {failed['name']}: {failed['error']}")
    count = len(data["keys"])
    live = sum(k["verdict"] in LIVE for k in data["keys"])
    lines.append(f"{count} key{'s' * (count != 1)}, {live} live")
    return "\n".join(lines) + "\n"


def render_sarif(data: dict[str, Any]) -> str:
    """SARIF 2.1.0 with one run per repository (each repository is its own source root)."""
    from keysentry.scanner.keys import KeyKind
    from keysentry.scanner.report import sarif

    runs: dict[str, list[dict[str, Any]]] = {}
    urls: dict[str, str] = {}
    for key in data["keys"]:
        kind = KeyKind(key["kind"])
        for o in key["occurrences"]:
            urls[o["repository"]] = o["repository_url"]
            runs.setdefault(o["repository"], []).append(
                {
                    "ruleId": kind.rule,
                    "ruleIndex": sarif.RULES.index(kind),
                    "level": "error",
                    "message": {"text": f"{kind.label} {key['redacted']} found."},
                    "locations": [
                        {
                            "physicalLocation": {
                                "artifactLocation": sarif.artifact(o["path"]),
                                "region": {"startLine": o["line"]},
                            }
                        }
                    ],
                    "partialFingerprints": {"keysentry/v1": key["fingerprint"]},
                    "properties": {
                        "redacted": key["redacted"],
                        "verdict": key["verdict"],
                        "introduced": o["introduced"],
                        "removed": o["removed"],
                        "refs": o["refs"],
                    },
                }
            )
    document = {
        "$schema": sarif.SCHEMA_URI,
        "version": "2.1.0",
        "runs": [
            {
                "tool": sarif.tool(),
                "originalUriBaseIds": {"%SRCROOT%": {"description": {"text": name}}},
                "versionControlProvenance": [{"repositoryUri": urls[name]}],
                "results": results,
                "columnKind": "unicodeCodePoints",
            }
            for name, results in sorted(runs.items())
        ],
    }
    return json.dumps(document, indent=2) + "\n"


# -- HTML ----------------------------------------------------------------------------------------

_CSS = """
body{font:15px/1.45 system-ui,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
header{background:#1d2330;color:#fff;padding:20px 32px}header h1{margin:0 0 4px;font-size:22px}
main{padding:16px 32px 48px;max-width:1200px}section{margin:28px 0}
h2{font-size:18px;border-bottom:2px solid #d8dce3;padding-bottom:4px}
.tiles{display:flex;gap:12px;flex-wrap:wrap}.tile{background:#fff;border-radius:8px;
padding:10px 16px;min-width:120px;box-shadow:0 1px 2px #0002}.tile b{display:block;font-size:24px}
.key{background:#fff;border-radius:8px;padding:12px 16px;margin:10px 0;box-shadow:0 1px 2px #0002;
border-left:6px solid #98a1b3}.v-live,.v-live-restricted{border-left-color:#d22}
.v-invalid{border-left-color:#3a3}.v-unknown{border-left-color:#e90}
code{background:#eef0f4;padding:1px 5px;border-radius:4px;font-size:13px}
.cmd{display:block;padding:6px 10px;margin:6px 0;background:#2b1111;color:#fdd}
table{border-collapse:collapse;width:100%;margin-top:6px}td,th{text-align:left;padding:3px 8px;
border-top:1px solid #e4e7ec;font-size:13px;vertical-align:top}.badge{font-size:12px;
padding:1px 8px;border-radius:10px;background:#dde;margin-left:8px}
.b-live,.b-live-restricted{background:#d22;color:#fff}.b-invalid{background:#3a3;color:#fff}
.b-unknown{background:#e90}svg text{font-size:11px;fill:#555}
"""
_COLOURS = {"live": "#d22", "live-restricted": "#d22", "invalid": "#3a3", "unknown": "#e90"}


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _slug(verdict: str | None) -> str:
    return verdict or "unverified"


def render_html(data: dict[str, Any]) -> str:
    """One self-contained page: no script, no external resource."""
    keys = data["keys"]
    live = [k for k in keys if k["verdict"] in LIVE]
    repos = {o["repository"] for k in keys for o in k["occurrences"]}
    since = f" · new since {_e(data['since'][:10])}" if data["since"] else ""
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; "
        "style-src 'unsafe-inline'\">",
        "<title>keysentry fleet report</title>",
        f"<style>{_CSS}</style></head><body>",
        "<header><h1>keysentry fleet report</h1>",
        f"<div>generated {_e(data['generated_at'])}{since} · keysentry {_e(__version__)}</div>",
        "</header><main>",
        "<section id='summary'><div class='tiles'>",
        f"<div class='tile'><b>{len(keys)}</b>keys</div>",
        f"<div class='tile'><b>{len(live)}</b>live</div>",
        f"<div class='tile'><b>{len(repos)}</b>repositories with keys</div>",
        f"<div class='tile'><b>{len(data['failed_repositories'])}</b>repositories failed</div>",
        "</div></section>",
    ]
    if live:
        parts.append("<section id='live'><h2>Live keys: revoke or rotate now</h2>")
        parts += [_live_card(k) for k in live]
        parts.append("</section>")
    parts.append(_timeline(keys))
    parts.append("<section id='keys'><h2>Keys by verdict</h2>")
    for verdict in VERDICT_ORDER:
        group = [k for k in keys if k["verdict"] == verdict]
        if group:
            parts.append(
                f"<h3 class='verdict' data-verdict='{_slug(verdict)}'>"
                f"{_e(VERDICT_LABEL[verdict])} ({len(group)})</h3>"
            )
            parts += [_key_card(k) for k in group]
    if not keys:
        parts.append("<p>No key was found.</p>")
    parts.append("</section>")
    if data["failed_repositories"]:
        parts.append("<section id='failed'><h2>Repositories that could not be scanned</h2><ul>")
        parts += [
            f"<li><b>{_e(f['name'])}</b>: {_e(f['error'])}</li>"
            for f in data["failed_repositories"]
        ]
        parts.append("</ul></section>")
    parts.append("</main></body></html>\n")
    return "".join(parts)


def _live_card(key: dict[str, Any]) -> str:
    repos = ", ".join(sorted({_e(o["repository"]) for o in key["occurrences"]}))
    owner = f" · owner {_e(key['owner'])}" if key["owner"] else ""
    project = f" · project {_e(key['project'])}" if key["project"] else ""
    return (
        f"<div class='key live-key v-{_slug(key['verdict'])}'>"
        f"<code>{_e(key['redacted'])}</code>{project}{owner} · in {repos}"
        f"<code class='cmd'>{_e(rotate_advice(key))}</code></div>"
    )


def _key_card(key: dict[str, Any]) -> str:
    verdict = _slug(key["verdict"])
    rows = "".join(
        "<tr>"
        f"<td class='repo'>{_e(o['repository'])}</td>"
        f"<td><code>{_e(o['path'])}:{_e(o['line'])}</code></td>"
        f"<td class='commit'>{_e((o['introduced']['commit'] or '')[:12])}</td>"
        f"<td>{_e((o['introduced']['date'] or '')[:10])}</td>"
        f"<td>{_e(o['introduced']['author'])}</td>"
        f"<td>{'removed ' + _e((o['removed']['date'] or '')[:10]) if o['removed'] else 'present'}"
        f"{'' if o['in_history'] else ' (rewritten out of history)'}</td>"
        "</tr>"
        for o in key["occurrences"]
    )
    detail = f"<div>{_e(key['detail'])}</div>" if key["detail"] else ""
    return (
        f"<div class='key v-{verdict}' data-fingerprint='{_e(key['fingerprint'])}'>"
        f"<code class='redacted'>{_e(key['redacted'])}</code>"
        f"<span class='badge b-{verdict}'>{_e(VERDICT_LABEL[key['verdict']])}</span>"
        f" {_e(key['kind'])} · fingerprint {_e(key['fingerprint'])}{detail}"
        "<table><tr><th>repository</th><th>where</th><th>introduced in</th><th>on</th>"
        f"<th>by</th><th>now</th></tr>{rows}</table></div>"
    )


def _timeline(keys: list[dict[str, Any]]) -> str:
    """Each exposure (a key introduced in a repository) as a dot on a time axis."""
    points = []
    for key in keys:
        for o in key["occurrences"]:
            when = _date(o["introduced"]["date"])
            if when is not None:
                points.append((when, key, o))
    if not points:
        return "<section id='timeline'><h2>Timeline of exposures</h2><p>None dated.</p></section>"
    start, end = min(p[0] for p in points), max(p[0] for p in points)
    span = max((end - start).total_seconds(), 86400.0)
    width, left, right = 1000, 40, 40
    marks = []
    lanes: dict[int, int] = {}
    for when, key, o in sorted(points, key=lambda p: p[0]):
        x = left + (width - left - right) * (when - start).total_seconds() / span
        lane = lanes.setdefault(round(x / 8), 0)
        lanes[round(x / 8)] += 1
        colour = _COLOURS.get(key["verdict"] or "", "#98a1b3")
        label = f"{key['redacted']} in {o['repository']}:{o['path']} on {when:%Y-%m-%d}"
        marks.append(
            f"<circle class='exposure' cx='{x:.1f}' cy='{70 - 12 * min(lane, 4)}' r='5' "
            f"fill='{colour}'><title>{_e(label)}</title></circle>"
        )
    axis = (
        f"<line x1='{left}' y1='80' x2='{width - right}' y2='80' stroke='#98a1b3'/>"
        f"<text x='{left}' y='96'>{start:%Y-%m-%d}</text>"
        f"<text x='{width - right}' y='96' text-anchor='end'>{end:%Y-%m-%d}</text>"
    )
    return (
        "<section id='timeline'><h2>Timeline of exposures</h2>"
        f"<p>{len(points)} exposures introduced between {start:%Y-%m-%d} and {end:%Y-%m-%d}</p>"
        f"<svg viewBox='0 0 {width} 104' width='100%' role='img' "
        f"aria-label='timeline of exposures'>{axis}{''.join(marks)}</svg></section>"
    )


def _date(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment.astimezone(dt.timezone.utc) if moment.tzinfo else moment

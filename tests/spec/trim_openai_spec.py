"""Make tests/spec/openai-openapi.json: the paths keysentry calls, cut from OpenAI's spec.

The published document (`openapi.json` in github.com/openai/openai-openapi) is 3.4 MB; the
tests need a few paths and the components they reference. This script keeps whole path items
(every method of each path below, so the endpoints the rotation work adds are already there)
and every component they reference, transitively, byte-for-byte as upstream wrote them.
Nothing else is changed. Re-run it on a newer upstream copy and update README.md beside it:

    git clone https://github.com/openai/openai-openapi /tmp/openai-openapi
    python tests/spec/trim_openai_spec.py /tmp/openai-openapi/openapi.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

# Every path keysentry calls (verify, scan --verify, revoke), the rotation work will, or the
# runtime guard's tests drive through the SDK.
PATHS = (
    "/models",
    "/organization/admin_api_keys",
    "/organization/admin_api_keys/{key_id}",
    "/organization/projects",
    "/organization/projects/{project_id}",
    "/organization/projects/{project_id}/api_keys",
    "/organization/projects/{project_id}/api_keys/{api_key_id}",
    "/organization/projects/{project_id}/service_accounts",
    "/organization/projects/{project_id}/service_accounts/{service_account_id}",
    "/organization/projects/{project_id}/service_accounts/{service_account_id}/api_keys",
    "/organization/projects/{project_id}/spend_limit",
    "/organization/costs",
    "/organization/usage/completions",
    # What the runtime guard's tests send through openai_client() (issue 15).
    "/chat/completions",
    "/responses",
)
OUT = Path(__file__).with_name("openai-openapi.json")


def references(node: Any) -> set[str]:
    """Every local `$ref` target ("#/components/...") anywhere under node."""
    found: set[str] = set()
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/"):
            found.add(ref)
        for value in node.values():
            found |= references(value)
    elif isinstance(node, list):
        for value in node:
            found |= references(value)
    return found


def resolve(document: dict[str, Any], ref: str) -> Any:
    node: Any = document
    for part in ref.removeprefix("#/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def trim(document: dict[str, Any]) -> dict[str, Any]:
    paths = {path: document["paths"][path] for path in PATHS}
    pending = references(paths) | references(document.get("security", []))
    kept: set[str] = set()
    while pending:
        ref = pending.pop()
        if ref not in kept:
            kept.add(ref)
            pending |= references(resolve(document, ref))
    components: dict[str, dict[str, Any]] = {}
    for ref in sorted(kept):
        if not ref.startswith("#/components/"):
            raise SystemExit(f"a reference outside components: {ref}")
        kind, name = ref.removeprefix("#/components/").split("/", 1)
        components.setdefault(kind, {})[name] = resolve(document, ref)
    schemes = document["components"].get("securitySchemes", {})
    components["securitySchemes"] = schemes
    keys = ("openapi", "info", "servers", "security")
    return {
        **{k: document[k] for k in keys if k in document},
        "paths": paths,
        "components": components,
    }


def main() -> None:
    source = Path(sys.argv[1])
    trimmed = trim(json.loads(source.read_text(encoding="utf-8")))
    OUT.write_text(json.dumps(trimmed, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(
        f"{OUT}: {len(trimmed['paths'])} paths, "
        f"{sum(len(v) for v in trimmed['components'].values())} components"
    )


if __name__ == "__main__":
    main()

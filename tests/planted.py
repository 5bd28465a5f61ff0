"""A tree with a key of every format, in every encoding, for end-to-end tests."""

from __future__ import annotations

import base64
import random
from pathlib import Path

from keygen import Planted, every_format


def plant_tree(root: Path, rng: random.Random) -> list[Planted]:
    """Write one file per key and encoding under `root`; returns every key planted."""
    planted = every_format(rng)
    root.mkdir(parents=True, exist_ok=True)
    lines = []
    for i, p in enumerate(planted):
        raw = p.key.encode()
        (root / f"plain_{i}.py").write_text(f'OPENAI_API_KEY = "{p.key}"\n')
        (root / f"secret_{i}.yaml").write_text(
            "apiVersion: v1\nkind: Secret\ndata:\n"
            f"  OPENAI_API_KEY: {base64.b64encode(raw).decode()}\n"
        )
        (root / f"url_{i}.txt").write_text(
            "https://api.example/?k=" + "".join(f"%{c:02X}" for c in raw) + "\n"
        )
        (root / f"hex_{i}.dat").write_text(raw.hex() + "\n")
        (root / f"utf16_{i}.txt").write_bytes(f"key={p.key}\r\n".encode("utf-16"))
        (root / f"bin_{i}.bin").write_bytes(b"\0\1\2" + raw + b"\0")
        escaped = "".join(f"\\u{c:04x}" for c in raw)
        lines.append(f'"k{i}": "{escaped}"')
    (root / "escaped.json").write_text("{" + ",\n".join(lines) + "}\n")
    return planted

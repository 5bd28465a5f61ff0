"""A synthetic git history, built deterministically from a seed with `git fast-import`.

Thousands of commits of real text (the standard library's sources, sliced), several branches
(some merged, some not), a tag, and keys planted the way they leak: added then deleted on main,
only on an unmerged branch, only in a tag's history, base64-encoded, and still at HEAD.
"""

from __future__ import annotations

import base64
import random
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from common import real_text_files
from keygen import every_format


@dataclass
class Planted:
    """What the benchmark expects keysentry to find: (key, path) pairs."""

    pairs: set[tuple[str, str]] = field(default_factory=set)


class _Stream:
    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.mark = 0
        self.clock = 1_700_000_000

    def blob(self, data: bytes) -> int:
        self.mark += 1
        self.parts.append(b"blob\nmark :%d\ndata %d\n" % (self.mark, len(data)) + data + b"\n")
        return self.mark

    def commit(
        self,
        ref: str,
        parent: int | None,
        merge: int | None,
        changes: list[tuple[str, int | None]],
        message: str,
    ) -> int:
        self.mark += 1
        self.clock += 600
        who = b"Bench Author <bench@example.com> %d +0000" % self.clock
        head = b"commit %s\nmark :%d\nauthor %s\ncommitter %s\n" % (
            ref.encode(),
            self.mark,
            who,
            who,
        )
        text = message.encode()
        lines = [head + b"data %d\n%s\n" % (len(text), text)]
        if parent is not None:
            lines.append(b"from :%d\n" % parent)
        if merge is not None:
            lines.append(b"merge :%d\n" % merge)
        for path, blob in changes:
            lines.append(
                b"M 100644 :%d %s\n" % (blob, path.encode()) if blob else b"D %s\n" % path.encode()
            )
        self.parts.append(b"".join(lines) + b"\n")
        return self.mark

    def tag(self, name: str, commit: int) -> None:
        self.parts.append(b"reset refs/tags/%s\nfrom :%d\n\n" % (name.encode(), commit))


def build(path: Path, seed: int = 20261128, commits: int = 2000) -> Planted:
    rng = random.Random(seed)
    corpus = [p.read_bytes() for p in real_text_files()]
    paths = [f"src/module_{i:03d}.py" for i in range(400)] + [
        f"docs/page_{i:03d}.rst" for i in range(200)
    ]
    keys = every_format(rng) + every_format(rng)
    planted = Planted()
    stream = _Stream()

    def text(n: int) -> bytes:
        source = rng.choice(corpus)
        size = rng.randint(2_000, 26_000)
        start = rng.randrange(max(1, len(source) - size))
        return b"# revision %d\n" % n + source[start : start + size]

    def work(ref: str, parent: int | None, n: int, extra: list[tuple[str, int | None]]) -> int:
        changes: list[tuple[str, int | None]] = [
            (p, stream.blob(text(n))) for p in rng.sample(paths, 5)
        ]
        return stream.commit(ref, parent, None, changes + extra, f"change {n}")

    tip = None
    key_index = 0
    branches: list[tuple[str, int]] = []
    for n in range(commits):
        extra: list[tuple[str, int | None]] = []
        if n % 150 == 75 and key_index < len(keys):
            key = keys[key_index].key
            key_index += 1
            secret_path = f"config/leak_{n}.py"
            extra.append((secret_path, stream.blob(b"OPENAI_API_KEY = '%s'\n" % key.encode())))
            planted.pairs.add((key, secret_path))
        if n % 150 == 80 and n > 80:
            extra.append((f"config/leak_{n - 5}.py", None))  # deleted five commits later
        tip = work("refs/heads/main", tip, n, extra)
        if n % 400 == 200:
            # A side branch of 40 commits; every other one is merged back.
            name = f"refs/heads/feature-{n}"
            side = tip
            for m in range(40):
                side_extra: list[tuple[str, int | None]] = []
                if m == 20 and key_index < len(keys):
                    key = keys[key_index].key
                    key_index += 1
                    encoded = base64.b64encode(key.encode())
                    side_path = f"deploy/secret_{n}.yaml"
                    side_extra.append(
                        (side_path, stream.blob(b"data:\n  OPENAI_API_KEY: %s\n" % encoded))
                    )
                    planted.pairs.add((key, side_path))
                side = work(name, side, 10_000 + n * 100 + m, side_extra)
            branches.append((name, side))
            if (n // 400) % 2 == 0:
                tip = stream.commit("refs/heads/main", tip, side, [], f"merge {name}")
        if n == commits // 2:
            stream.tag("v1.0", tip)
    while key_index < len(keys):  # the rest stay at HEAD
        key = keys[key_index].key
        key_index += 1
        final = f"settings/local_{key_index}.env"
        tip = stream.commit(
            "refs/heads/main",
            tip,
            None,
            [(final, stream.blob(b"OPENAI_API_KEY=%s\n" % key.encode()))],
            "local settings",
        )
        planted.pairs.add((key, final))
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True)
    subprocess.run(
        ["git", "-C", str(path), "fast-import", "--quiet"], input=b"".join(stream.parts), check=True
    )
    subprocess.run(["git", "-C", str(path), "checkout", "-q", "-f", "main"], check=True)
    return planted

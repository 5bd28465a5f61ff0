"""A journal of steps, shared by `migrate` and `rotate`: what has been done, so that a crash
at any point can be finished (resume) or undone (rollback).

The journal is a JSON document replaced atomically after every step (never half-written). It
holds names, fingerprints, ids and references, never a key. Each command names an environment
variable that makes the process die right after recording a given step (`os._exit`, as a kill
-9 would), so its tests can crash it at every step and prove that resume and rollback recover.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from keysentry.atomic import write_atomically
from keysentry.errors import InputError


class Journal:
    crash_variable = ""  # tests: the variable naming the step after which to die

    def __init__(self, path: Path, data: dict[str, Any]) -> None:
        self.path = path
        self.data: dict[str, Any] = {"steps": [], "done": False, **data}

    @staticmethod
    def read(path: Path) -> dict[str, Any] | None:
        """The journal document at `path`; None when there is none."""
        try:
            data: Any = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise InputError(f"{path}: unreadable journal: {exc}") from None
        if not isinstance(data, dict) or not isinstance(data.get("steps"), list):
            raise InputError(f"{path}: unreadable journal: not a keysentry journal")
        return data

    def has(self, step: str) -> bool:
        return step in self.data["steps"]

    def record(self, step: str) -> None:
        if not self.has(step):
            self.data["steps"].append(step)
        self.save()
        crash = os.environ.get(self.crash_variable) if self.crash_variable else None
        if crash and step.startswith(crash):
            os._exit(137)  # as a kill -9 would, for the crash tests

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(self.path, json.dumps(self.data, indent=2).encode())

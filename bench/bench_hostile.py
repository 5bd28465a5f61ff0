"""Hostile input: files built to make a detector slow, timed against plain text of the same size.

    python bench/bench_hostile.py [--size-mb 16] [--rounds 5] [--samples 3] [--only NAME]

Each file repeats what costs a detector work per occurrence: the marker and each of its
encoded forms (every needle keysentry searches for), nested encodings, wrapped base64 whose
lines split the encoded marker, prefixes without a key, and one long line. Each is timed three
ways, round after round with the order rotated: keysentry's detector in this process
(`search(bytes)`, CPU seconds), the `keysentry scan` command, and betterleaks (OpenAI rule) on
the same file. Prints a Markdown table of medians: detector throughput, and each command's wall
time as a ratio to its own time on plain text of the same size.

The detector is timed `--samples` times a round, and its throughput is given as the median of
all those timings with their 10th and 90th percentiles. This machine's CPU runs at down to about
half its speed in bursts that last from a fraction of a second to minutes: a fixed pure-Python
loop, timed before each round's detector timings, says how far it moved during the run (the
last line printed).
"""

from __future__ import annotations

import argparse
import base64
import itertools
import random
import statistics
import string
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from common import Runs, betterleaks_command, keysentry, real_text_files, time_once
from keysentry.scanner.detect import search
from keysentry.scanner.keys import MARKER

M = MARKER
b64 = base64.b64encode
# Key-shaped but rejected (a placeholder): each one costs the detector a full key check.
NEAR_MISS = b"sk-proj-" + b"a" * 40 + M + b"b" * 40
ESCAPED_NEAR_MISS = NEAR_MISS.replace(b"-", b"\\u002d")


def repeated(unit: bytes, size: int) -> bytes:
    return (unit * (size // len(unit) + 1))[:size]


def wrapped(data: bytes, width: int) -> bytes:
    return b"\n".join(data[i : i + width] for i in range(0, len(data), width))


def lines_of(data: bytes, widths: tuple[int, ...]) -> bytes:
    """`data` on lines of each width in turn."""
    lines: list[bytes] = []
    at = 0
    for width in itertools.cycle(widths):
        if at >= len(data):
            return b"\n".join(lines)
        lines.append(data[at : at + width])
        at += width
    raise AssertionError  # the cycle never ends


def near_misses(size: int) -> bytes:
    """`sk-`, 21 random letters and digits, the marker, 20 more, one a line: key-shaped,
    never a key (a key's halves are as long as each other)."""
    rng = random.Random(0)
    alphabet = string.ascii_letters + string.digits
    halves = ("".join(rng.choices(alphabet, k=41)) for _ in range(size // 53))
    return "".join(f"sk-{h[:21]}{M.decode()}{h[21:]}\n" for h in halves).encode()


def cases(size: int) -> dict[str, Callable[[], bytes]]:
    """Each hostile file by name, built on demand (the largest are 50 MB)."""
    text = b"".join(p.read_bytes() for p in real_text_files()[:4000])
    return {
        "plain text (the baseline)": lambda: repeated(text, size),
        "marker every 8 bytes": lambda: repeated(M, size),
        "marker every 9 bytes": lambda: repeated(M + b" ", size),
        "12 markers per 98-byte run": lambda: repeated(b"-" + M * 12 + b" ", size),
        "sk- + marker, one run": lambda: repeated(b"sk-" + M, size),
        "10 M sk- prefixes": lambda: repeated(b"sk-", 30_000_000),
        "percent needle %54%33%42%6c": lambda: repeated(b"%54%33%42%6c", size),
        "percent marker with %73%6B%2D": lambda: repeated(b"%73%6B%2D%54%33%42%6c", size),
        "\\x54\\x33\\x42\\x6c": lambda: repeated(b"\\x54\\x33\\x42\\x6c", size),
        "\\u0054\\u0033\\u0042\\u006c": lambda: repeated(b"\\u0054\\u0033\\u0042\\u006c", size),
        "&#84;&#51;&#66;&#108;": lambda: repeated(b"&#84;&#51;&#66;&#108;", size),
        "&#x54;&#x33;&#x42;&#x6c;": lambda: repeated(b"&#x54;&#x33;&#x42;&#x6c;", size),
        "sk\\u002dproj\\u002d + marker": lambda: repeated(b"sk\\u002dproj\\u002d" + M, size),
        "base64 needle": lambda: repeated(b64(M)[:10], size),
        "base64-of-base64 needle": lambda: repeated(b64(b64(M))[:13], size),
        "base64 of markers": lambda: b64(repeated(M, size * 3 // 4)),
        "base64 of markers, wrapped at 76": lambda: wrapped(b64(repeated(M, size * 3 // 4)), 76),
        "base64 of base64 of markers": lambda: b64(b64(repeated(M, size * 9 // 16))),
        "base64 of markers, wrapped at 75": lambda: wrapped(b64(repeated(M, size * 3 // 4)), 75),
        "base64 of markers with / and +, wrapped at 76": lambda: wrapped(
            b64(repeated(M + b"?>", size * 3 // 4)), 76
        ),
        "base64 of base64 of markers, wrapped at 76": lambda: wrapped(
            b64(b64(repeated(M, size * 9 // 16))), 76
        ),
        "base64 of base64 of markers, wrapped at 80": lambda: wrapped(
            b64(b64(repeated(M, size * 9 // 16))), 80
        ),
        "base64 of markers, lines of 76 to 79": lambda: lines_of(
            b64(repeated(M, size * 3 // 4)), (76, 77, 78, 79)
        ),
        "base64 marker, one per short field": lambda: repeated(b'"' + b64(M * 6) + b'",', size),
        "base64 needle every 4 KB among 1-character lines": lambda: repeated(
            b"x\n" * 2000 + b64(M * 6) + b"\n", size
        ),
        "near-miss keys, one a line": lambda: repeated(NEAR_MISS + b"\n", size),
        "near-miss keys in base64, one a line": lambda: repeated(b64(NEAR_MISS)[:-1] + b"\n", size),
        "split encoded marker every line": lambda: repeated(b64(M)[:5] + b"\n", size),
        # Found by an adversarial review: padding ends each line's run, random halves pass
        # the placeholder test, UTF-16 after a high byte is read at both parities.
        "base64 of markers with padding, one a line": lambda: repeated(
            b64(b"x" * 39 + M) + b"\n", size
        ),
        "near-miss keys with random unequal halves, one a line": lambda: near_misses(size),
        "UTF-16 sk\\u002d + marker after a high byte": lambda: repeated(
            b"\xe9" + "sk\\u002dT3BlbkFJ ".encode("utf-16-le"), size
        ),
        # Built by the review of the escape decoders: escapes of several kinds in one window,
        # a `%` that starts no escape, HTML references (read one token at a time).
        "sk\\u002d + marker beside a lone %": lambda: repeated(b"sk\\u002d" + M + b" 100% ", size),
        "sk\\u002d + marker beside %41 and \\n": lambda: repeated(
            b"sk\\u002d" + M + b" %41\\n", size
        ),
        "UTF-16 sk\\u002d + marker beside a lone %, after a high byte": lambda: repeated(
            b"\xe9" + "sk\\u002dT3BlbkFJ % ".encode("utf-16-le"), size
        ),
        "sk&#45; + marker": lambda: repeated(b"sk&#45;" + M + b" ", size),
        "&#115;&#107;&#45; + escaped marker": lambda: repeated(
            b"&#115;&#107;&#45;&#84;&#51;&#66;&#108; ", size
        ),
        # Built by the review of the gate that decodes an escaped window only if it holds a
        # run as long as a key: key-shaped near-misses (placeholder halves), escaped, so that
        # every window must be decoded; in UTF-16 strings in binary data, between bytes no key
        # is written with (two of four readings are read) or beside a letter (all four).
        "escaped near-miss keys": lambda: repeated(ESCAPED_NEAR_MISS + b" ", size),
        "escaped near-miss keys beside a lone %": lambda: repeated(
            ESCAPED_NEAR_MISS + b" 100% ", size
        ),
        "HTML-escaped near-miss keys, every character": lambda: repeated(
            b"".join(b"&#%d;" % c for c in NEAR_MISS) + b" ", size
        ),
        "UTF-16 escaped near-miss keys after a high byte": lambda: repeated(
            b"\xe9" + (ESCAPED_NEAR_MISS + b" ").decode().encode("utf-16-le"), size
        ),
        "UTF-16 escaped near-miss keys beside a lone %, after a high byte": lambda: repeated(
            b"\xe9" + (ESCAPED_NEAR_MISS + b" % ").decode().encode("utf-16-le"), size
        ),
        "UTF-16 escaped near-miss keys, a letter between": lambda: repeated(
            b"a" + ESCAPED_NEAR_MISS.decode().encode("utf-16-le"), size
        ),
        "UTF-16 escaped near-miss keys beside a lone %, a letter between": lambda: repeated(
            b"a" + (ESCAPED_NEAR_MISS + b" % b").decode().encode("utf-16-le"), size
        ),
        "hex needle": lambda: repeated(M.hex().encode(), size),
        "UTF-16 marker": lambda: repeated(M.decode().encode("utf-16-le"), size),
        "50 MB single line": lambda: repeated(b"var a=1;", 50_000_000),
        "256 KB percent needle": lambda: repeated(b"%54%33%42%6c", 256 * 1024),
    }


def spread(values: list[float]) -> tuple[float, float, float]:
    """The median of `values`, and their 10th and 90th percentiles."""
    ordered = sorted(values)
    tenth = len(ordered) // 10
    return statistics.median(ordered), ordered[tenth], ordered[-1 - tenth]


def reference_seconds() -> float:
    """CPU time of a fixed pure-Python loop: what the machine's speed was at that moment."""
    started = time.process_time()
    total = 0
    for number in range(2_000_000):
        total += number & 7
    return time.process_time() - started


def detector_seconds(data: bytes) -> float:
    started = time.process_time()
    detection = search(data)
    assert detection.matches == [] and detection.incomplete is None
    return time.process_time() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size-mb", type=float, default=16)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--samples", type=int, default=3, help="detector timings a round")
    parser.add_argument("--only", help="run only the cases whose name holds this")
    args = parser.parse_args()
    size = int(args.size_mb * 1e6)
    work = Path(tempfile.mkdtemp(prefix="keysentry-hostile-"))
    scan = keysentry()
    print(
        f"Files of {args.size_mb:g} MB unless named; medians of {args.rounds} rounds, "
        f"{args.samples} detector timings a round (10th-90th percentiles in brackets).\n"
    )
    print(
        "| file | detector MB/s (CPU) | keysentry scan (s) | betterleaks fs (s) | "
        "keysentry / plain | betterleaks / plain | keysentry / betterleaks |"
    )
    print("|---|---|---|---|---|---|---|")
    base: tuple[float, float] | None = None
    reference: list[float] = []
    for name, build in cases(size).items():
        if args.only and args.only not in name and base is not None:
            continue
        data = build()
        path = work / "hostile.txt"
        path.write_bytes(data)
        runs = {"keysentry": Runs(), "betterleaks": Runs()}
        commands = {
            "keysentry": [*scan, "scan", "-q", str(path)],
            "betterleaks": betterleaks_command("fs", str(path)),
        }
        detector: list[float] = []
        for round_ in range(args.rounds):
            order = ["detector", "keysentry", "betterleaks"]
            for tool in order[round_ % 3 :] + order[: round_ % 3]:
                if tool == "detector":
                    reference.append(reference_seconds())
                    detector += [detector_seconds(data) for _ in range(args.samples)]
                else:
                    time_once(commands[tool], runs[tool])
        median, low, high = spread([len(data) / 1e6 / seconds for seconds in detector])
        mb_s = f"{median:,.0f} [{low:,.0f}-{high:,.0f}]"
        ours, theirs = runs["keysentry"].median_wall, runs["betterleaks"].median_wall
        if base is None:
            base = (ours, theirs)
        print(
            f"| {name} ({len(data) / 1e6:.1f} MB) | {mb_s} | {ours:.3f} | {theirs:.3f} | "
            f"{ours / base[0]:.2f}x | {theirs / base[1]:.2f}x | {ours / theirs:.2f}x |",
            flush=True,
        )
        path.unlink()
    median, low, high = spread([seconds * 1000 for seconds in reference])
    print(
        f"\nA fixed pure-Python loop (2 M additions), timed before each round's detector "
        f"timings: median {median:.0f} ms [{low:.0f}-{high:.0f}], "
        f"{min(reference) * 1000:.0f}-{max(reference) * 1000:.0f} ms in all."
    )
    print(f"\nkeysentry: {' '.join(scan)} scan -q FILE", file=sys.stderr)


if __name__ == "__main__":
    main()

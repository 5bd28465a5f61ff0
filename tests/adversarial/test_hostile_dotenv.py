"""A .env file read through `dotenv://` may be an attacker's (it sits in the repository): its
`${…}` expansion gives what python-dotenv gives, in linear time."""

from __future__ import annotations

import io
import os
import random
import time

import pytest
from dotenv import dotenv_values
from hypothesis import given, settings
from hypothesis import strategies as st

from keysentry.providers.dotenv import parse

_PIECES = ["${", "}", ":", ":-", "-", "$", "{", "A", "B", "HOME_X", "x", " ", "'", '"', "\\"]


def reference(text: str) -> dict[str, str]:
    values = dotenv_values(stream=io.StringIO(text))
    return {k: v for k, v in values.items() if v is not None}


@settings(max_examples=300, deadline=None, database=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["A", "B", "C"]), st.lists(st.sampled_from(_PIECES))),
        max_size=6,
    )
)
def test_expansion_reads_what_python_dotenv_reads(lines: list[tuple[str, list[str]]]) -> None:
    text = "".join(f"{name}={''.join(pieces)}\n" for name, pieces in lines)
    assert parse(text) == reference(text)


def test_expansion_from_the_environment_and_defaults_reads_what_python_dotenv_reads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FROM_ENV", "outside")
    rng = random.Random(7)
    for _ in range(200):
        value = "".join(
            rng.choice([*_PIECES, "FROM_ENV", "${FROM_ENV}", "${A:-d}"]) for _ in range(8)
        )
        text = f"A=first\nB={value}\nA=second${{A}}\n"
        assert parse(text) == reference(text), text


@pytest.mark.parametrize("unit", ["${", "${A:-", "${:", "$${", "${A}", "}${"])
def test_a_hostile_value_costs_linear_time(unit: str) -> None:
    """python-dotenv's own expansion takes 40 s on 80 KB of `${`: ten times the text must cost
    about ten times as much here, never a hundred."""

    def seconds(size: int) -> float:
        text = "B=" + unit * (size // len(unit)) + "\n" + "C=${B}\n" * 100
        best = float("inf")
        for _ in range(3):  # the best of three: one slow run on a loaded machine is noise
            started = time.perf_counter()
            parse(text)
            best = min(best, time.perf_counter() - started)
        return best

    small, large = seconds(20_000), seconds(200_000)
    assert large < 40 * max(small, 5e-3), (unit, small, large)  # 5 ms: below it, noise
    assert os.environ.get("B") is None  # nothing leaked into the process environment

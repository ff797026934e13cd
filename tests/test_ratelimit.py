"""The in-memory moving window: what it allows, when it says to come back, and that idle keys go."""

from __future__ import annotations

import pytest
from limits import parse

from sessionward import ratelimit
from sessionward.ratelimit import LocalWindows


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    now = [1000.0]
    monkeypatch.setattr(ratelimit.time, "monotonic", lambda: now[0])
    return now


def test_a_window_allows_its_amount_then_says_when_the_oldest_hit_leaves(clock: list[float]) -> None:
    windows, item = LocalWindows(), parse("3/minute")
    assert [windows.hit(item, "k") for _ in range(3)] == [None, None, None]
    clock[0] += 20
    assert windows.hit(item, "k") == pytest.approx(40)  # the first hit leaves the window 60 s after it came
    assert windows.hit(item, "other") is None  # keys are counted apart
    clock[0] += 40
    assert windows.hit(item, "k") is None  # the moving window: one hit has left, one more fits


def test_idle_keys_are_dropped_once_a_minute(clock: list[float]) -> None:
    windows, item = LocalWindows(), parse("1/second")
    for key in range(100):
        windows.hit(item, str(key))
    clock[0] += 61
    windows.hit(item, "new")
    assert list(windows._hits) == [item.key_for("new")]

"""Waiting for a condition, never for luck: the one polling helper of the suite."""

from __future__ import annotations

import time
from collections.abc import Callable


def until(predicate: Callable[[], object], timeout: float = 30, interval: float = 0.2) -> bool:
    """Whether ``predicate`` came true within ``timeout`` seconds, asked every ``interval``;
    asked once more at the end, so a condition met while the last pause ran still counts."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return bool(predicate())
        time.sleep(interval)
    return True

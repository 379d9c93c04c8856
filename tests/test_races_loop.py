"""The one loop for a write that lost its record (copy_ops.aio.races), table-driven."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from copy_ops.aio.races import retried
from copy_ops.core.errors import Busy, PreconditionFailed, StorageUnavailable
from devkit.worker import run


def losing(times: int) -> tuple[list[int], Callable[[], Awaitable[str]]]:
    calls: list[int] = []

    async def attempt() -> str:
        calls.append(1)
        if len(calls) <= times:
            raise PreconditionFailed("another writer first")
        return "won"

    return calls, attempt


@pytest.mark.parametrize(("losses", "attempts", "calls"), [(0, 3, 1), (1, 3, 2), (2, 3, 3)])
def test_an_attempt_is_repeated_while_it_loses(losses: int, attempts: int, calls: int) -> None:
    made, attempt = losing(losses)
    assert run(retried(attempt, attempts, "busy")) == "won"
    assert len(made) == calls


def test_losing_every_time_is_busy_or_the_fallback() -> None:
    made, attempt = losing(10)
    with pytest.raises(Busy) as busy:
        run(retried(attempt, 3, "op 1 is busy"))
    assert (busy.value.code, busy.value.detail, len(made)) == ("Busy", "op 1 is busy", 3)
    assert run(retried(attempt, 2, "", otherwise=lambda: "raced")) == "raced"


def test_any_other_error_is_not_retried() -> None:
    calls: list[int] = []

    async def attempt() -> str:
        calls.append(1)
        raise StorageUnavailable("down")

    with pytest.raises(StorageUnavailable):
        run(retried(attempt, 5, "busy"))
    assert len(calls) == 1

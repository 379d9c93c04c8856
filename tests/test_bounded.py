"""Concurrency bounded by asyncio (copy_ops.aio.bounded): outcomes counted, the submitter held
back while it is full, never more at once than the bound, a task's error raised as itself,
results in the items' order. Conditions are awaited (events), never timed."""

from __future__ import annotations

import asyncio
from functools import partial

import pytest

from copy_ops.aio.bounded import Bounded, bounded_map
from devkit.worker import run


async def parity(number: int) -> str:
    await asyncio.sleep(0)
    return "even" if number % 2 == 0 else "odd"


def test_every_outcome_is_counted() -> None:
    async def scenario() -> Bounded:
        async with Bounded(4) as work:
            for index in range(200):
                await work.submit(partial(parity, index))
        return work

    work = run(scenario())
    assert work.outcomes == {"even": 100, "odd": 100} and work.submitted == 200


@pytest.mark.parametrize("bound", [1, 3, 8])
def test_never_more_at_once_than_the_bound_and_the_submitter_waits_while_full(bound: int) -> None:
    async def scenario() -> tuple[int, list[int]]:
        running = most = 0
        gates = [asyncio.Event() for _ in range(bound + 1)]
        submitted: list[int] = []

        async def gated(gate: asyncio.Event) -> str:
            nonlocal running, most
            running += 1
            most = max(most, running)
            await gate.wait()
            running -= 1
            return "done"

        async with Bounded(bound) as work:
            for gate in gates[:bound]:
                await work.submit(partial(gated, gate))
                submitted.append(work.submitted)
            late = asyncio.create_task(work.submit(partial(gated, gates[bound])))
            for _ in range(5):
                await asyncio.sleep(0)
            assert not late.done() and work.submitted == bound  # full: the submitter waits
            gates[0].set()
            await late  # a task that ended gave its slot back
            for gate in gates[1:]:
                gate.set()
        assert work.outcomes == {"done": bound + 1}
        return most, submitted

    most, submitted = run(scenario())
    assert most == bound and submitted == list(range(1, bound + 1))


def test_a_tasks_error_is_raised_as_itself_and_the_rest_are_cancelled() -> None:
    cancelled: list[bool] = []

    async def broken() -> str:
        raise RuntimeError("storage adapter bug")

    async def waiting() -> str:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(True)
            raise
        return "never"

    async def scenario() -> None:
        async with Bounded(4) as work:
            await work.submit(waiting)
            await work.submit(broken)

    with pytest.raises(RuntimeError, match="storage adapter bug"):
        run(scenario())
    assert cancelled == [True]


def test_bounded_map_keeps_the_order_and_the_bound() -> None:
    running = most = 0

    async def slow_square(number: int) -> int:
        nonlocal running, most
        running += 1
        most = max(most, running)
        for _ in range(number % 3 + 1):  # ends out of order
            await asyncio.sleep(0)
        running -= 1
        return number * number

    assert run(bounded_map(slow_square, list(range(50)), 5)) == [n * n for n in range(50)]
    assert most == 5
    assert run(bounded_map(slow_square, [], 5)) == []

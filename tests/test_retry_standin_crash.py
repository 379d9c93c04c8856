"""A next attempt cut short between its steps (issue 32), through the stand-in: the attempt
recorded (``retried``) and the host dying before its Copy Blob is sent, or after; its Copy
Blob sent and its answer lost; two instances' sweeps running the same attempt at once. Each
time one copy is started for the attempt, never two, and the copy lands.

The source is a public blob of the partner's account (tests/support/retries.py); the first
attempt is made to fail by the stand-in (``fail_next``), as Azure fails a copy."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import pytest

from copy_ops.app_service import AppService
from copy_ops.background.sweep import sweep
from copy_ops.copies.model import BlobRef, CopyObservation, Operation, State
from copy_ops.copies.phases import Event, Phase
from copy_ops.core.settings import Settings
from devkit import PendingCopyProxy
from devkit.worker import run
from tests.conftest import Blobs, open_storage
from tests.support.retries import DATA, Public, begin, due, stored


@pytest.fixture
def public(proxy: PendingCopyProxy) -> Public:
    return Public(proxy)


class HostDied(Exception):
    """Not a storage error: the process running the attempt is gone."""


class Hands:
    """An instance's storage seen through a test's hands: Copy Blob's send dies before or
    after it reaches storage, or a read of the destination waits on something else first."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.die: str | None = None  # "before" or "after" the next Copy Blob reaches storage
        self.after_observe: Callable[[], Awaitable[object]] | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def start_copy(self, *args: Any, **kwargs: Any) -> Any:
        when, self.die = self.die, None
        if when == "before":
            raise HostDied("the host died before its Copy Blob was sent")
        started = await self._inner.start_copy(*args, **kwargs)
        if when == "after":
            raise HostDied("the host died before its Copy Blob's answer was recorded")
        return started

    async def observe_copy(self, ref: BlobRef) -> CopyObservation | None:
        seen: CopyObservation | None = await self._inner.observe_copy(ref)
        then, self.after_observe = self.after_observe, None
        if then is not None:
            await then()
        return seen


def instance(settings: Settings) -> tuple[AppService, Hands]:
    hands = Hands(open_storage(settings))
    service = AppService(settings, hands)  # the same methods, through the test's hands
    return service, hands


def waiting(service: AppService, blobs: Blobs, public: Public, proxy: PendingCopyProxy) -> Operation:
    """A copy whose first attempt Azure ended failed, waiting for its next one."""
    proxy.fail_next(after_bytes=1000)
    op = begin(service, public.put("a.bin", DATA), blobs.dst, retry={"attempts": 3, "backoff_seconds": 30})
    run(sweep(service, due(service, op)))
    assert stored(service, op).phase is Phase.RETRYING
    proxy.pending_copies = True  # the next attempt's copy runs in the background, as on Azure
    return op


def copies_started(proxy: PendingCopyProxy, blobs: Blobs) -> int:
    return proxy.started[f"/devstoreaccount1/{blobs.dst}/a.bin"]


def lands(service: AppService, blobs: Blobs, proxy: PendingCopyProxy, op: Operation, now: datetime) -> None:
    current = stored(service, op)
    assert (current.phase, current.attempt) == (Phase.COPYING, 2), current
    assert proxy.log.counts["abort_copy"] == 0
    proxy.finish(blobs.dst, "a.bin")
    run(sweep(service, max(now, due(service, op))))
    done = stored(service, op)
    assert (done.state, done.attempt, len(done.failed_attempts)) == (State.SUCCEEDED, 2, 1), done
    assert blobs.read(blobs.dst, "a.bin") == DATA


@pytest.mark.parametrize("when", ["before", "after"])
def test_an_attempt_recorded_whose_host_died_around_its_send_is_sent_or_adopted_by_the_sweep_after_the_grace(
    settings: Settings, blobs: Blobs, public: Public, proxy: PendingCopyProxy, when: str
) -> None:
    service, hands = instance(settings)
    op = waiting(service, blobs, public, proxy)
    hands.die = when
    at = due(service, op)
    with pytest.raises(HostDied):
        run(service.process_due(op.id, at))
    cut = stored(service, op)
    assert (cut.phase, cut.attempt, cut.history[-1].event) == (Phase.RETRYING, 2, Event.RETRIED)
    assert copies_started(proxy, blobs) == (2 if when == "after" else 1)
    assert cut.next_check_at is not None and cut.next_check_at >= at + timedelta(seconds=settings.start_grace_seconds)
    run(sweep(service, cut.next_check_at - timedelta(seconds=1)))
    assert stored(service, op) == cut  # not before the grace: its send may still land
    run(sweep(service, cut.next_check_at))
    assert copies_started(proxy, blobs) == 2  # sent once, by whichever got there
    lands(service, blobs, proxy, op, cut.next_check_at)


def test_an_attempts_copy_blob_whose_answer_was_lost_is_adopted_not_sent_twice(
    service: AppService, blobs: Blobs, public: Public, proxy: PendingCopyProxy
) -> None:
    op = waiting(service, blobs, public, proxy)
    proxy.inject("copy_blob", mode="lost_response", times=1)
    at = due(service, op)
    run(sweep(service, at))
    assert copies_started(proxy, blobs) == 2  # the SDK sent it again: met by our own copy
    current = stored(service, op)
    assert proxy.copy_state(blobs.dst, "a.bin").copy_id == current.copy_id  # type: ignore[union-attr]
    lands(service, blobs, proxy, op, at)


def test_two_sweeps_running_one_attempt_at_once_start_one_copy(
    settings: Settings, blobs: Blobs, public: Public, proxy: PendingCopyProxy
) -> None:
    """Instance A reads the destination (the leftover) and, before it goes on, instance B runs
    the whole attempt: A's record write loses to B's, and A sends nothing."""
    a, hands = instance(settings)
    b, _ = instance(settings)
    op = waiting(a, blobs, public, proxy)
    at = due(a, op)
    hands.after_observe = lambda: b.process_due(op.id, at)
    run(asyncio.wait_for(sweep(a, at), 60))
    assert copies_started(proxy, blobs) == 2
    assert proxy.log.counts["copy_blob"] == 2  # the first attempt's and B's: A sent none
    assert proxy.copy_state(blobs.dst, "a.bin").copy_id == stored(a, op).copy_id  # type: ignore[union-attr]
    run(sweep(b, at + timedelta(seconds=1)))
    assert copies_started(proxy, blobs) == 2
    lands(a, blobs, proxy, op, at)

"""The blob index lags (Find Blobs by Tags is eventually consistent), and the sweep must not
care: deadlines are still enforced within deadline + one sweep interval + the lag, a
ghost result costs one read and nothing worse, no record is corrupted, nothing is 5xx.

The proxy's switch makes Azurite's index lag as Azure's can (tests/support/index_lag.py)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from copy_ops.app_service import AppService
from copy_ops.background.sweep import sweep
from copy_ops.copies.model import AbortReason, State
from copy_ops.copies.records import Ledger
from copy_ops.edges import runtime
from devkit import PendingCopyProxy
from devkit.app import payload, request
from devkit.index_lag import LaggingIndex, matches, parse_query
from devkit.worker import collected, run
from tests.conftest import Blobs, Handlers
from tests.support.partner import Partner
from tests.support.requests import start

# -- the lagging index itself, on a clock of our own --------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def answer(*blobs: tuple[str, str]) -> bytes:
    items = "".join(
        f"<Blob><Name>{name}</Name><ContainerName>{container}</ContainerName><Tags><TagSet>"
        "<Tag><Key>due</Key><Value>2026</Value></Tag></TagSet></Tags></Blob>"
        for container, name in blobs
    )
    return f"<?xml version='1.0'?><EnumerationResults><Blobs>{items}</Blobs><NextMarker/></EnumerationResults>".encode()


def names_in(xml: bytes) -> list[str]:
    from xml.etree import ElementTree as ET

    return [element.findtext("Name") or "" for element in ET.fromstring(xml).iter("Blob")]


QUERY = "\"due\" <= '2027'"


def test_a_lagging_index_hides_new_writes_and_shows_ghosts() -> None:
    clock = Clock()
    index = LaggingIndex(clock)
    index.lag = 5
    index.record("c", "old", {"due": "2026"})
    index.record("c", "gone", {"due": "2026"})
    index.record("c", "retagged", {"due": "2026"})
    clock.now += 10  # all three indexed
    index.record("c", "new", {"due": "2026"})
    index.record("c", "gone", None)
    index.record("c", "retagged", {"state": "succeeded"})
    # Azurite (current) says: old and new match; gone and retagged do not.
    lagging = names_in(index.rewrite(answer(("c", "old"), ("c", "new")), QUERY, first_page=True))
    assert sorted(lagging) == ["gone", "old", "retagged"]
    clock.now += 6  # the lag has passed: the index is current again
    assert sorted(names_in(index.rewrite(answer(("c", "old"), ("c", "new")), QUERY, first_page=True))) == [
        "new",
        "old",
    ]


def test_a_frozen_index_answers_as_of_the_moment_it_froze() -> None:
    clock = Clock()
    index = LaggingIndex(clock)
    index.record("c", "gone", {"due": "2026"})
    clock.now += 1
    index.freeze()
    clock.now += 1000
    index.record("c", "gone", None)
    index.record("c", "new", {"due": "2026"})
    assert names_in(index.rewrite(answer(("c", "new")), QUERY, first_page=True)) == ["gone"]


def test_no_lag_changes_nothing() -> None:
    index = LaggingIndex(Clock())
    index.record("c", "new", {"due": "2026"})
    given = answer(("c", "new"))
    assert index.rewrite(given, QUERY, first_page=True) == given


@pytest.mark.parametrize(
    ("query", "tags", "container", "expected"),
    [
        ("\"due\" <= '2026-11-24T03:00:00Z'", {"due": "2026-11-24T02:59:59Z"}, "c", True),
        ("\"due\" <= '2026-11-24T03:00:00Z'", {"due": "2026-11-24T03:00:01Z"}, "c", False),
        ("\"state\" = 'pending' AND \"job\" = 'j1'", {"state": "pending", "job": "j1"}, "c", True),
        ("\"state\" = 'pending' AND \"job\" = 'j1'", {"state": "pending"}, "c", False),
        ("@container = 'c' AND \"a\" > 'b'", {"a": "c"}, "c", True),
        ("@container = 'c' AND \"a\" > 'b'", {"a": "c"}, "d", False),
    ],
)
def test_tag_queries(query: str, tags: dict[str, str], container: str, expected: bool) -> None:
    assert matches(parse_query(query), container, tags) is expected


# -- the sweep, on the wire, with the index lagging -------------------------------------

LAG = 2.0
INTERVAL = 0.5


def utc_now() -> datetime:
    return datetime.now(UTC)


def test_deadlines_hold_within_interval_plus_lag(
    service: AppService, blobs: Blobs, partner: Partner, proxy: PendingCopyProxy
) -> None:
    partner.put("a.bin", b"x" * 1000)
    proxy.pending_copies = True
    proxy.index.lag = LAG
    ops = [
        start(service, partner.body(blobs.dst, dest_name=f"{i}.bin", timeout_seconds=1 + i % 3), utc_now())
        for i in range(6)
    ]
    sweeps: list[datetime] = []
    give_up = time.monotonic() + 30
    while time.monotonic() < give_up:
        now = utc_now()
        summary = run(sweep(service, now))
        assert summary.outcomes["error"] == 0 and not summary.failed
        sweeps.append(now)
        if all(run(service.ledger.get(o.operation.id)).is_final for o in ops):
            break
        time.sleep(INTERVAL)
    lateness = []
    for outcome in ops:
        final = run(service.ledger.get(outcome.operation.id))
        assert (final.state, final.abort_reason) == (State.ABORTED, AbortReason.DEADLINE)
        assert final.finished_at is not None and final.finished_at >= final.terms.deadline
        # The record (due <= deadline) was written before the deadline; the index shows it
        # by deadline + lag; the first sweep from then on finds and aborts it.
        due_by = final.terms.deadline + timedelta(seconds=LAG)
        eligible = [moment for moment in sweeps if moment >= due_by]
        if eligible:
            assert final.finished_at <= eligible[0], (final.finished_at, eligible[0])
        assert proxy.copy_state(blobs.dst, final.destination.blob).status == "aborted"  # type: ignore[union-attr]
        lateness.append((final.finished_at - final.terms.deadline).total_seconds())
    # The lag was in effect: some abort waited for the index, past sweeps that ran after its deadline.
    assert max(lateness) >= LAG / 2, lateness


def test_a_ghost_costs_one_read(service: AppService, blobs: Blobs, partner: Partner, proxy: PendingCopyProxy) -> None:
    """A deleted record, and a re-tagged one, still returned by the index: one read each."""
    partner.put("a.bin", b"x")
    proxy.pending_copies = True
    now = utc_now()
    gone = start(service, partner.body(blobs.dst, dest_name="gone.bin", timeout_seconds=60), now).operation
    done = start(service, partner.body(blobs.dst, dest_name="done.bin", timeout_seconds=60), now).operation
    due_then = now + timedelta(seconds=30)
    assert {gone.id, done.id} <= set(run(collected(service.ledger.due(due_then))))
    proxy.index.freeze()  # from here on, the index shows what it shows now
    run(service.ledger.delete(gone.id))
    proxy.finish(blobs.dst, "done.bin")
    assert run(service.get(done.id, now)).state is State.SUCCEEDED  # re-tagged: no longer due
    proxy.log.counts.clear()
    summary = run(sweep(service, due_then))
    assert summary.outcomes == {"vanished": 1, "not_due": 1}
    assert dict(proxy.log.counts) == {"find_by_tags": 1, "get_blob": 2}
    assert run(service.ledger.get(done.id)).state is State.SUCCEEDED  # untouched


def test_the_api_answers_while_the_index_lags(
    handlers: Handlers, blobs: Blobs, partner: Partner, proxy: PendingCopyProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    partner.put("a.bin", b"x")
    proxy.pending_copies = True
    proxy.index.lag = 30
    body = partner.body(blobs.dst, engine="async")  # Copy Blob: pending (auto picks blocks here)
    started = payload(handlers["start_copy"](request("POST", "copies", body)))
    op_id = started["id"]
    for name, method, route in (
        ("get_copy", "GET", f"copies/{op_id}"),
        ("list_copies", "GET", "copies"),
        ("abort_copy", "POST", f"copies/{op_id}/abort"),
        ("get_copy", "GET", f"copies/{op_id}"),
    ):
        response = handlers[name](request(method, route, route_params={"id": op_id}))
        assert response.status_code == 200, response.get_body()
    ledger = Ledger(runtime.built().storage, f"ledger-{blobs.src[-10:]}")
    record = run(ledger.get(op_id))
    assert (record.state, record.abort_reason) == (State.ABORTED, AbortReason.REQUESTED)

"""Storage requests per operation, counted at the proxy, beside the derived lower bounds."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from bench.harness import T0, Harness, after, start_copy
from copy_ops.background.sweep import sweep
from devkit.worker import run as awaited

CHECKS = 4
DEADLINE_SECONDS = 600


def run(harness: Harness, not_due: int) -> None:
    print("\n== cost: storage requests per operation ==")
    src, dst = harness.containers()
    partner = harness.partner(src)
    service = harness.service()
    awaited(service.storage.ensure_container(service.settings.ledger_container))

    # On for (a) too: a copy within the account ends at once whatever the switch says, as on Azure.
    harness.proxy.configure(pending=True)
    own = {"source": {"container": src, "blob": "a.bin"}, "destination": {"container": dst, "blob": "now.bin"}}
    instant = _counted(harness, lambda: start_copy(service, {**own, "timeout_seconds": DEADLINE_SECONDS}, T0))
    print(
        f"(a) a copy that completes at once: {instant} requests; lower bound 3 (write-ahead record, Copy Blob, outcome)"
    )

    operation_id = ""

    def start_pending() -> None:
        nonlocal operation_id
        operation_id = start_copy(service, partner.body(dst, "late.bin", DEADLINE_SECONDS), T0)

    started = _counted(harness, start_pending)
    checked = 0
    for _ in range(CHECKS):
        # When the sweep would next look (read outside the count: a sweep does not ask).
        moment = awaited(service.ledger.get(operation_id)).next_check_at
        assert moment is not None
        checked += _counted(harness, partial(awaited, sweep(service, moment)))
    aborted = _counted(harness, lambda: awaited(sweep(service, after(DEADLINE_SECONDS))))
    state = awaited(service.ledger.get(operation_id)).state.value
    total = started + checked + aborted
    bound = 3 + 4 * CHECKS + 4
    print(
        f"(b) a copy aborted at its deadline after k={CHECKS} checks ({state}): {total} requests = "
        f"start {started} + checks {checked} ({checked / CHECKS:g} each) + abort {aborted}"
    )
    print(
        f"    lower bound 3 + 4k + 4 = {bound}: start as (a); a check = find due + read record (its ETag) "
        "+ destination properties + record the next check; the abort = find due + read record + Abort Copy "
        "+ record the outcome. The find is one per sweep, shared by every operation due in it."
    )

    crowded = harness.service()
    src, dst = harness.containers()
    harness.start_many(crowded, src, dst, not_due, timeout=3600, prefix="later")
    # Started last and a second later, so its record is the newest and sorts first: Azurite
    # filters only the first 5000 records of a tag query (docs/performance.md).
    due_id = start_copy(crowded, harness.partner(src).body(dst, "due.bin", 1), after(1))
    with_crowd = _counted(harness, lambda: awaited(sweep(crowded, after(3))))
    crowd_state = awaited(crowded.ledger.get(due_id)).state.value

    alone = harness.service()
    src, dst = harness.containers()
    start_copy(alone, harness.partner(src).body(dst, "due.bin", 1), after(1))
    by_itself = _counted(harness, lambda: awaited(sweep(alone, after(3))))
    print(
        f"a sweep with 1 due ({crowd_state}) and {not_due} not-due operations: {with_crowd} requests; "
        f"the same sweep with the 1 due alone: {by_itself} requests"
    )


def _counted(harness: Harness, action: Callable[[], object]) -> int:
    before = harness.requests()
    action()
    return harness.requests() - before

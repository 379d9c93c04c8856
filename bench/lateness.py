"""Lateness of deadline aborts while the blob index lags: deadline to abort, measured.

A sweep every ``interval`` seconds on the wall clock (as the timer runs it), the
proxy's blob index ``lag`` seconds behind, and after each sweep a few new pending
copies (from the partner's account: bench/partner.py) with a one-second deadline: the
worst case, since a record written just before its deadline is the one the lagging
index hides longest (a record rewritten later keeps its earlier, already-due tags
visible). An operation's lateness is counted up to the end of the sweep that aborted it
(an upper bound: the abort happened during that sweep).
"""

from __future__ import annotations

import statistics
import time
from collections import Counter
from datetime import UTC, datetime

from bench.harness import Harness, start_copy
from copy_ops.background.sweep import sweep
from copy_ops.copies.model import State
from devkit.worker import run as awaited

ROUNDS = 10
PER_ROUND = 4


def run(harness: Harness, interval: float = 2.0, lag: float = 3.0) -> None:
    print(f"\n== lateness of deadline aborts: a sweep every {interval:g} s, blob index {lag:g} s behind ==")
    harness.restart()
    src, dst = harness.containers()
    partner = harness.partner(src)
    service = harness.service()
    harness.proxy.configure(pending=True, index_lag=lag)
    ids: list[str] = []
    ended_by: dict[str, datetime] = {}
    durations = []
    while len(ids) < ROUNDS * PER_ROUND or len(ended_by) < len(ids):
        began = time.monotonic()
        awaited(sweep(service, datetime.now(UTC)))
        durations.append(time.monotonic() - began)
        finished = datetime.now(UTC)
        for operation_id in ids:
            if operation_id not in ended_by and awaited(service.ledger.get(operation_id)).is_final:
                ended_by[operation_id] = finished
        if len(ids) < ROUNDS * PER_ROUND:
            for _ in range(PER_ROUND):
                body = partner.body(dst, f"late/{len(ids)}.bin", 1)
                ids.append(start_copy(service, body, datetime.now(UTC)))
        time.sleep(max(0.0, interval - (time.monotonic() - began)))
    records = [awaited(service.ledger.get(i)) for i in ids]
    # A copy that ended any other way than by its deadline's abort has no lateness to measure.
    assert all(record.state is State.ABORTED for record in records), Counter(r.state.value for r in records)
    lateness = sorted((ended_by[record.id] - record.terms.deadline).total_seconds() for record in records)
    bound = interval + lag + max(durations)
    print(
        f"{len(ids)} copies, each started 1 s before its deadline: lateness min {lateness[0]:.2f} s, "
        f"median {statistics.median(lateness):.2f} s, p95 {lateness[int(len(lateness) * 0.95) - 1]:.2f} s, "
        f"max {lateness[-1]:.2f} s; bound (interval + lag + longest sweep) {bound:.2f} s"
    )
    harness.proxy.configure(index_lag=0.0)
    harness.close_services()

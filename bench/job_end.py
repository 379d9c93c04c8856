"""python -m bench.job_end [--jobs 20] [--items 3]: how soon a job ends after its last item
(issue 18), through the development host (``python -m devhost``, its own queue trigger,
no sweep), on Azurite behind the latency-adding proxy.

Each job's items stay pending (the proxy answers Copy Blob from another account as pending:
their sources are the partner's, bench/partner.py); then each item is aborted on request,
one after the other, and the job is read until it has ended. The figure is the job's
``finished_at`` less its last item's ``finished_at`` (both written by the host's clock),
p50 and max over the jobs; beside it, the storage requests that ending cost by kind, per
job (the watch's tag query and message, and the look at the job).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.before_after import post, settings_file
from bench.harness import Harness
from bench.partner import ENGINE
from bench.sweep_host import NEVER, _Host

FINAL = {"succeeded", "failed", "aborted"}


def get(host: _Host, route: str) -> Any:
    with urllib.request.urlopen(f"http://127.0.0.1:{host.port}/api/{route}", timeout=60) as answer:
        return json.loads(answer.read())


def until(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"{what} after {timeout} s")


def stamp(view: Any) -> datetime:
    return datetime.fromisoformat(str(view["finished_at"]).replace("Z", "+00:00"))


def run(harness: Harness, jobs: int, items: int) -> None:
    src, dst = harness.containers()
    partner = harness.partner(src)
    for index in range(items):
        partner.put(f"set/{index}.bin", b"x" * 100)
    scratch = Path(tempfile.mkdtemp(prefix="bench-job-end-"))
    ledger, queue = f"bench-{uuid.uuid4().hex[:10]}", f"work-{uuid.uuid4().hex[:10]}"
    host = _Host(settings_file(scratch, harness, ledger, 1000, queue))
    assert NEVER  # the sweep never runs on its own: only the items' ends end the jobs
    delays: list[float] = []
    # As a client sees it: from the last abort's answer to the first read of the job ended
    # (read every 50 ms); the records' stamps above are to the second.
    seen: list[float] = []
    costs: Counter[str] = Counter()
    try:
        host.warm()
        harness.proxy.configure(pending=True)
        for number in range(jobs):
            body = {
                "source": partner.listing("set/"),
                "destination": {"container": dst, "prefix": f"j{number}/"},
                "timeout_seconds": 3600,
                "engine": ENGINE,
            }
            status, job = post(host, "jobs", body)
            assert status == 202, (status, job)
            route = f"jobs/{job['id']}"

            def started(route: str = route) -> bool:
                view = get(host, route)
                counts = view.get("counts") or {}
                return bool(view["state"] == "running" and counts.get("pending") == items)

            until(started, "the job's items are not all pending")
            ids = [str(item["id"]) for item in get(host, f"{route}/items?limit=100")["items"]]
            before = harness.counts()
            ended = [post(host, f"copies/{item}/abort", {})[1] for item in ids]
            last = time.perf_counter()

            def over(route: str = route) -> bool:
                return bool(get(host, route)["state"] in FINAL)

            until(over, "the job has not ended")
            seen.append(time.perf_counter() - last)
            view = get(host, route)
            costs += harness.counts() - before
            delays.append((stamp(view) - max(stamp(item) for item in ended)).total_seconds())
    finally:
        host.stop()
    print(f"\n== a job's end after its last item (issue 18): {jobs} jobs of {items} items, development host ==")
    print(f"last item's end to the job's end, as recorded (to the second): max {max(delays):.0f} s")
    print(f"...as a client sees it (read every 50 ms): p50 {statistics.median(seen):.2f} s, max {max(seen):.2f} s")
    per_job = ", ".join(f"{kind} {count / jobs:.1f}" for kind, count in sorted(costs.items()))
    print(f"storage requests per job while its {items} items were aborted and it ended: {per_job}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.job_end", description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--items", type=int, default=3)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    args = parser.parse_args(argv)
    with Harness(latency=args.latency_ms / 1000) as harness:
        print(harness.describe())
        run(harness, args.jobs, args.items)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

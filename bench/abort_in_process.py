"""python -m bench.abort_in_process [--size N] [--rounds 2]: issue 17's second figure, the
sweep's CPU per deadline abort in process (the app's service called directly on one
event loop, as the worker would, no host around it) beside the obvious peer, a bare loop
of the async SDK doing the same three requests (``bench/bare_abort.py``, its own process).

Each round runs the host then the peer, each on N overdue copies of its own, each on an
empty Azurite on disk behind the latency-adding proxy. The host's figure is the CPU of the loop's
thread over its sweep (``time.thread_time``); the service is built, and the SDK imported,
before the clock starts, as the peer imports it before its own.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from pathlib import Path

from bench.before_after import bare_loop, fresh
from bench.harness import Harness, after
from copy_ops.background.sweep import sweep
from devkit.worker import run as awaited


def host_cpu_per_abort(harness: Harness, size: int, scratch: Path) -> float:
    src, dst = fresh(harness, scratch)
    ledger = f"bench-{uuid.uuid4().hex[:10]}"
    service = harness.service(COPY_LEDGER_CONTAINER=ledger, COPY_FANOUT_THRESHOLD=str(size * 10))
    harness.start_many(service, src, dst, size, timeout=1, prefix=f"p{uuid.uuid4().hex[:6]}")

    async def measured() -> float:
        began = time.thread_time()
        summary = await sweep(service, after(3600))
        assert sum(summary.outcomes.values()) == size, summary
        return time.thread_time() - began

    try:
        return awaited(measured()) * 1000 / size
    finally:
        harness.close_services()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.abort_in_process", description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    args = parser.parse_args(argv)
    scratch = Path(tempfile.mkdtemp(prefix="bench-in-process-"))
    with Harness(latency=args.latency_ms / 1000) as harness:
        print(harness.describe())
        print(f"\n== CPU per deadline abort, in process, N = {args.size:,} (lower bound: 3 requests an abort) ==")
        for round_ in range(1, args.rounds + 1):
            host = host_cpu_per_abort(harness, args.size, scratch)
            peer = bare_loop(harness, args.size, scratch)
            print(f"round {round_}: host {host:.2f} ms, peer {peer:.2f} ms, host/peer {host / peer:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

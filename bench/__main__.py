"""python -m bench [--quick]: copy-ops' benchmarks. Prints figures; asserts nothing.

Runs against Azurite (started here) behind the pending-copy proxy, which adds a
latency to every storage request (default 20 ms, a realistic Azure round trip) so
that concurrency counts as it would in Azure, and counts the requests.

  sweep throughput   N overdue pending copies, at the configured concurrency and at 1
  cost               storage requests per operation, beside the derived lower bounds
  not-due cost       a sweep with 1 due and 10,000 not-due operations
  cold start         importing function_app in a fresh interpreter vs the SDK floor
  start latency      POST /api/copies through the handler, p50/p95, requests per start
  lateness           deadline to abort, a sweep every 2 s, the blob index 3 s behind
  sweep via host     N overdue copies aborted by the sweep fired in the development host,
                     Azurite on disk: inline, fanned out, and with two host processes
  listing            50 pending listed from a ledger of 100,000 records and of 100
  jobs               a prefix job of 10,000 blobs: time to every item started, requests
                     per item by kind, one status call
"""

from __future__ import annotations

import argparse
import sys

from bench import cold_start, cost, jobs, lateness, listing, start_latency, sweep_host, throughput
from bench.harness import Harness


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--latency-ms", type=float, default=20.0, help="added to every storage request (default 20)")
    parser.add_argument("--quick", action="store_true", help="smaller N, for a fast look (not for the record)")
    parser.add_argument(
        "--concurrency",
        type=lambda text: tuple(int(part) for part in text.split(",")),
        default=(16, 32, 64),
        help="sweep concurrencies to measure, comma-separated (default 16,32,64)",
    )
    parser.add_argument(
        "--only",
        choices=["throughput", "cost", "cold-start", "start-latency", "lateness", "sweep-host", "jobs", "listing"],
        help="run one benchmark",
    )
    args = parser.parse_args(argv)
    sizes = (200, 1000) if args.quick else (1000, 10000)
    with Harness(latency=args.latency_ms / 1000) as harness:
        print(harness.describe())
        if args.only in (None, "cold-start"):
            cold_start.run()
        if args.only in (None, "start-latency"):
            start_latency.run(harness, samples=100 if args.quick else 300)
        if args.only in (None, "cost"):
            cost.run(harness, not_due=sizes[1])
        if args.only in (None, "lateness"):
            lateness.run(harness)
        if args.only in (None, "throughput"):
            throughput.run(harness, sizes, args.concurrency)
        if args.only in (None, "sweep-host"):
            sweep_host.run(harness, sizes[1])
        if args.only in (None, "jobs"):
            jobs.run(harness, sizes[1])
        if args.only in (None, "listing"):
            listing.run(harness, sizes[1] * 10)
    return 0


if __name__ == "__main__":
    sys.exit(main())

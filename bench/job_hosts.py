"""python -m bench.job_hosts [--size N] [--latency-ms MS] [--before REV]: one prefix job of N
blobs (10,000 by default) started through the development host, on one host process and on
two side by side, and on one host of the code before (REV, default: the last commit before
issue 20), in one run: the time from the POST to every item started, storage requests per
item (blob and queue, the hosts' polling of an empty queue included), and each host's share.

Each host is ``python -m devhost`` with the project's host.json (queue batches of 16, as the
Functions host takes them), on one Azurite behind the latency-adding proxy (its own
process). Items start when the hosts' own log lines (``job_batch ... started=K``) account
for all N: nothing polls storage. The copies are within one account (they finish at once),
so a start is the three requests of its lower bound.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import urllib.request
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from bench.before_after import STARTED, tree_at
from bench.harness import ROOT, Harness
from bench.sweep_host import NEVER, _Host

BEFORE = "229b9f0"


class _JobHost(_Host):
    """A development host whose log lines are counted as items started."""

    def __init__(self, settings: Path, root: Path = ROOT) -> None:
        self.started = 0
        self.pages: list[float] = []  # when each page's line came
        super().__init__(settings, root)

    def _read(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            self.lines.append(line)
            if "job_page " in line:
                self.pages.append(time.perf_counter())
            found = STARTED.search(line)
            if found:
                self.started += int(found.group(1))
                self.last_at = time.perf_counter()


@dataclass
class Outcome:
    seconds: float
    started: list[int]
    requests: Counter[str]
    cpu: list[float]
    listed: float  # seconds from the POST to the last page's line


def measure(harness: Harness, size: int, hosts: int, root: Path = ROOT) -> Outcome:
    harness.restart()
    src, dst = harness.containers()
    container = harness.direct.get_container_client(src)
    with ThreadPoolExecutor(32) as pool:
        list(pool.map(lambda index: container.upload_blob(f"drop/{index:06}.bin", b"x" * 1024), range(size)))
    harness.proxy.configure(pending=False)
    with tempfile.TemporaryDirectory(prefix="bench-jobs-") as folder:
        values = {
            "FUNCTIONS_WORKER_RUNTIME": "python",
            "AzureWebJobsStorage": harness.connection_string,
            "COPY_STORAGE": harness.connection_string,
            "COPY_LEDGER_CONTAINER": f"bench-{uuid.uuid4().hex[:10]}",
            "COPY_WORK_QUEUE": f"work-{uuid.uuid4().hex[:10]}",
            "COPY_ALLOWED_SOURCE_HOSTS": "127.0.0.1:*",
            "COPY_SWEEP_SCHEDULE": NEVER,
            "COPY_SWEEP_CONCURRENCY": "32",
        }
        settings = Path(folder) / "local.settings.json"
        settings.write_text(json.dumps({"IsEncrypted": False, "Values": values}))
        started = [_JobHost(settings, root) for _ in range(hosts)]
        try:
            for host in started:
                host.warm()
            cpu_before = [host.cpu() for host in started]
            before = harness.counts()
            began = time.perf_counter()
            body = {"source": {"container": src, "prefix": "drop/"}, "destination": {"container": dst}}
            request = urllib.request.Request(
                f"http://127.0.0.1:{started[0].port}/api/jobs",
                data=json.dumps({**body, "timeout_seconds": 3600}).encode(),
                headers={"Content-Type": "application/json"},
                method="POST",
            )
            with urllib.request.urlopen(request, timeout=60) as answer:
                assert answer.status == 202, answer.status
            while sum(host.started for host in started) < size and time.perf_counter() - began < 900:
                time.sleep(0.05)
            finished = max(host.last_at for host in started)
            requests = harness.counts() - before
            cpu = [host.cpu() - was for host, was in zip(started, cpu_before, strict=True)]
        finally:
            for host in started:
                host.stop()
            harness.close_services()
    last_page = max((at for host in started for at in host.pages), default=began)
    return Outcome(finished - began, [host.started for host in started], requests, cpu, last_page - began)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.job_hosts", description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=10_000)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--before", default=BEFORE, help="the code before, for one host beside (default %(default)s)")
    args = parser.parse_args(argv)
    with Harness(latency=args.latency_ms / 1000) as harness, tempfile.TemporaryDirectory() as folder:
        print(harness.describe())
        print(f"\n== one prefix job of {args.size:,} blobs: from the POST to every item started ==")
        before = tree_at(args.before, Path(folder))
        outcomes = {
            f"before ({args.before}), 1 host": measure(harness, args.size, 1, before),
            "now, 1 host": measure(harness, args.size, 1),
            "now, 2 hosts": measure(harness, args.size, 2),
        }
        for label, outcome in outcomes.items():
            total = outcome.requests.total()
            rate = sum(outcome.started) / outcome.seconds if outcome.seconds else 0.0
            print(
                f"{label:<24} {outcome.seconds:6.1f} s  {rate:6.1f} items/s  "
                f"shares {outcome.started}  host CPU {[round(c, 1) for c in outcome.cpu]} s  "
                f"{total / args.size:.3f} requests/item (lower bound 3); last page listed at {outcome.listed:.1f} s"
            )
            kinds = ", ".join(f"{kind} {count / args.size:.4f}" for kind, count in outcome.requests.most_common())
            print(f"    per item: {kinds}")
        old, one, two = outcomes.values()
        print(
            f"two hosts against one: {one.seconds / two.seconds:.2f}x as fast; one host now against before: "
            f"{old.seconds / one.seconds:.2f}x"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

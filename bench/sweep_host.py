"""N overdue pending copies aborted as the timer runs it: the sweep fired in the
development host (``POST /admin/functions/sweep``), Azurite persisting to disk, inline
(a fan-out threshold above N) and fanned out (the default threshold; the host's queue
trigger settles the batches), with one and with two host processes.

The clock stops when the host's own log lines (the sweep's summary and each work
message's outcome) account for every operation aborted: nothing polls storage.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from bench.harness import ROOT, Harness
from devkit import free_port, wait_for_port

# A schedule that does not fire while we measure: the sweep runs when we ask.
NEVER = "0 0 0 1 1 *"
ABORTED = re.compile(r"\b(?:sweep_summary|work_done)\b.*?\baborted=(\d+)")


@dataclass
class Outcome:
    seconds: float
    aborted: int
    requests: Counter[str]
    host_cpu: float
    proxy_cpu: float
    azurite_cpu: float


def run(harness: Harness, size: int) -> None:
    print(f"\n== {size:,} overdue copies aborted through the development host (Azurite on disk) ==")
    for label, threshold, hosts in (
        ("inline, 1 host", size * 10, 1),
        ("fanned out, 1 host", 1000, 1),
        ("fanned out, 2 hosts", 1000, 2),
    ):
        outcome = _measure(harness, size, threshold, hosts)
        rate = outcome.aborted / outcome.seconds if outcome.seconds else 0.0
        print(
            f"{label:<20} {outcome.seconds:6.1f} s, {rate:6.1f} aborted/s ({outcome.aborted:,} of {size:,}); "
            f"{outcome.requests.total() / size:.2f} requests each; "
            f"CPU per item: host {outcome.host_cpu * 1000 / size:.2f} ms, "
            f"proxy {outcome.proxy_cpu * 1000 / size:.2f} ms, Azurite {outcome.azurite_cpu * 1000 / size:.2f} ms"
        )
        kinds = ", ".join(f"{kind} {count / size:.3f}" for kind, count in outcome.requests.most_common())
        print(f"    per item: {kinds}")


def _measure(harness: Harness, size: int, threshold: int, hosts: int) -> Outcome:
    with tempfile.TemporaryDirectory(prefix="bench-azurite-") as disk:
        harness.restart(location=Path(disk))
        src, dst = harness.containers()
        ledger = f"bench-{uuid.uuid4().hex[:10]}"
        service = harness.service(COPY_LEDGER_CONTAINER=ledger)
        # Started with a deadline a second after T0, long past by the time the sweep runs.
        harness.start_many(service, src, dst, size, timeout=1)
        values = {
            "FUNCTIONS_WORKER_RUNTIME": "python",
            "AzureWebJobsStorage": harness.connection_string,
            "COPY_STORAGE": harness.connection_string,
            "COPY_LEDGER_CONTAINER": ledger,
            "COPY_ALLOWED_SOURCE_HOSTS": "127.0.0.1:*",
            "COPY_SWEEP_SCHEDULE": NEVER,
            "COPY_FANOUT_THRESHOLD": str(threshold),
            "COPY_SWEEP_CONCURRENCY": "32",
        }
        settings = Path(disk) / "local.settings.json"
        settings.write_text(json.dumps({"IsEncrypted": False, "Values": values}))
        started = [_Host(settings) for _ in range(hosts)]
        try:
            before = harness.counts()
            cpu_before = sum(host.cpu() for host in started)
            helpers_before = harness.helper_cpu_seconds()
            began = time.perf_counter()
            started[0].fire_sweep()
            finished = _wait_for(started, size, began)
            if sum(host.aborted for host in started) < size:
                # Say what the hosts said, rather than a figure that means nothing.
                for host in started:
                    print("".join(host.lines[-15:]), file=sys.stderr)
            requests = harness.counts() - before
            cpu = sum(host.cpu() for host in started) - cpu_before
            proxy, azurite = (b - a for a, b in zip(helpers_before, harness.helper_cpu_seconds(), strict=True))
        finally:
            for host in started:
                host.stop()
            harness.close_services()
        return Outcome(finished - began, sum(host.aborted for host in started), requests, cpu, proxy, azurite)


def _wait_for(hosts: list[_Host], size: int, began: float, limit: float = 300) -> float:
    """When the hosts' logs account for ``size`` aborted operations (or the limit passed)."""
    while time.perf_counter() - began < limit:
        if sum(host.aborted for host in hosts) >= size:
            return max(host.last_at for host in hosts)
        time.sleep(0.05)
    return time.perf_counter()


class _Host:
    """``python -m devhost`` in a process of its own; its log is read as it comes."""

    def __init__(self, settings: Path, root: Path = ROOT) -> None:
        self.port = free_port()
        self.aborted = 0
        self.last_at = 0.0
        self.lines: list[str] = []
        # The most threads the process had at once, sampled every 20 ms (Linux /proc).
        self.most_threads = 0
        self._process = subprocess.Popen(
            [sys.executable, "-m", "devhost", "--port", str(self.port), "--settings", str(settings)],
            cwd=root,
            env={**os.environ, "PYTHONPATH": str(root)},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._count_threads, daemon=True).start()
        wait_for_port(self.port, 60, self._process)
        self._wait_until_loaded(60)

    def _wait_until_loaded(self, timeout: float) -> None:
        """The host listens at once and answers 503 (with Retry-After) while it loads the app."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/", timeout=5):
                    return
            except urllib.error.HTTPError as answer:
                if answer.code != 503:
                    return  # served by the app's routes (a 404 for /): loaded
            time.sleep(0.1)
        raise RuntimeError(f"the host still loads the app after {timeout} s")

    def _read(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            self.lines.append(line)
            found = ABORTED.search(line)
            if found:
                self.aborted += int(found.group(1))
                self.last_at = time.perf_counter()

    def _count_threads(self) -> None:
        status = Path(f"/proc/{self._process.pid}/status")
        while self._process.poll() is None:
            try:
                line = next(line for line in status.read_text().splitlines() if line.startswith("Threads:"))
                self.most_threads = max(self.most_threads, int(line.split()[1]))
            except (OSError, StopIteration, ValueError):
                return
            time.sleep(0.02)

    def warm(self) -> None:
        """Build the app's service before a clock starts (one read of the ledger): its
        imports and clients are a cold start's cost, not an abort's; the peer's loop
        likewise imports the SDK before its clock starts."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/api/copies?limit=1", timeout=60) as answer:
            assert answer.status == 200, answer.status

    def fire_sweep(self) -> None:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/admin/functions/sweep", data=b'{"input": ""}', method="POST"
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert answer.status == 202, answer.status

    def cpu(self) -> float:
        from bench.harness import process_cpu_seconds

        return process_cpu_seconds(self._process.pid)

    def stop(self) -> None:
        self._process.terminate()
        try:
            self._process.wait(20)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(10)

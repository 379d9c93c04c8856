"""python -m bench.before_after [--before REV] [--size N]: issue 17's figures, the code
before the async redesign and the code now, side by side in one run, through the
development host (``python -m devhost`` of each tree, on one Azurite behind the
latency-adding proxy), beside the obvious peer: a bare loop of the async SDK doing the
three requests of an abort (``bench/bare_abort.py``) in its own process.

For each tree: start latency (POST /api/copies, copies that finish at once), the host's
CPU per job item started (a prefix job of N blobs), the host's CPU per deadline abort
(N overdue copies, the sweep settling them itself), and the most threads the host
process had alive during a fanned-out sweep of N (its batches settled by its own queue
trigger). The development host's own machinery (its HTTP server, timer and queue-trigger
threads, which stand for the real host's gRPC stream) is the same in both trees.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

from bench.harness import ROOT, Harness
from bench.sweep_host import NEVER, _Host, _wait_for

# The code before the async redesign (issue 17): its last commit.
BEFORE = "5424c86"
# Items started, from a host's log: a batch's line now, a page's line in the code before
# (its pages started their items); a page's line now only lists them.
STARTED = re.compile(r"\bjob_(?:batch|page)\b.*?\bstarted=(\d+)")


@dataclass
class Figures:
    p50_ms: float = 0.0
    item_cpu_ms: float = 0.0
    abort_cpu_ms: float = 0.0
    abort_seconds: float = 0.0
    fanned_cpu_ms: float = 0.0
    most_threads: int = 0


def tree_at(rev: str, into: Path) -> Path:
    """The project as it was at ``rev``: its files, unpacked (no worktree is registered)."""
    archive = subprocess.run(["git", "archive", rev], cwd=ROOT, capture_output=True, check=True).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def settings_file(folder: Path, harness: Harness, ledger: str, threshold: int, queue: str, **extra: str) -> Path:
    values = {
        "FUNCTIONS_WORKER_RUNTIME": "python",
        "AzureWebJobsStorage": harness.connection_string,
        "COPY_STORAGE": harness.connection_string,
        "COPY_LEDGER_CONTAINER": ledger,
        "COPY_WORK_QUEUE": queue,
        "COPY_ALLOWED_SOURCE_HOSTS": "127.0.0.1:*",
        "COPY_SWEEP_SCHEDULE": NEVER,
        "COPY_FANOUT_THRESHOLD": str(threshold),
        "COPY_SWEEP_CONCURRENCY": "32",
        **extra,
    }
    path = folder / f"settings-{uuid.uuid4().hex[:8]}.json"
    path.write_text(json.dumps({"IsEncrypted": False, "Values": values}))
    return path


def post(host: _Host, route: str, body: object) -> tuple[int, dict[str, object]]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{host.port}/api/{route}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read() or b"{}")


def fresh(harness: Harness, scratch: Path) -> tuple[str, str]:
    """An empty Azurite on disk (Azurite in memory slows as it fills: every phase starts
    empty, so the order of the trees biases nothing), and a source and destination."""
    harness.restart(location=Path(tempfile.mkdtemp(prefix="azurite-", dir=scratch)))
    return harness.containers()


def measure(root: Path, harness: Harness, size: int, scratch: Path) -> Figures:
    figures = Figures()
    src, dst = fresh(harness, scratch)
    # Start latency and a job: one host, the queue trigger taking the job's pages.
    ledger, queue = f"bench-{uuid.uuid4().hex[:10]}", f"work-{uuid.uuid4().hex[:10]}"
    host = _Host(settings_file(scratch, harness, ledger, 1_000_000, queue), root)
    try:
        harness.proxy.configure(pending=False)
        body = {"source": {"container": src, "blob": "a.bin"}, "timeout_seconds": 600}
        status, answer = post(host, "copies", {**body, "destination": {"container": dst, "blob": "warm.bin"}})
        assert status == 201, (status, answer, "".join(host.lines[-20:]))
        timings = []
        for index in range(200):
            began = time.perf_counter()
            status, _ = post(host, "copies", {**body, "destination": {"container": dst, "blob": f"l/{index}.bin"}})
            timings.append(time.perf_counter() - began)
            assert status == 201, status
        figures.p50_ms = statistics.median(timings) * 1000
        container = harness.direct.get_container_client(src)
        with ThreadPoolExecutor(32) as pool:  # set-up, not a figure
            list(pool.map(lambda index: container.upload_blob(f"drop/{index:06}.bin", b"x"), range(size)))
        cpu = host.cpu()
        job = {"source": {"container": src, "prefix": "drop/"}, "destination": {"container": dst, "prefix": "j/"}}
        status, _ = post(host, "jobs", {**job, "timeout_seconds": 3600})
        assert status == 202, status
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            if sum(int(found.group(1)) for line in list(host.lines) if (found := STARTED.search(line))) >= size:
                break
            time.sleep(0.1)
        figures.item_cpu_ms = (host.cpu() - cpu) * 1000 / size
    finally:
        host.stop()
    # The sweep, inline, then fanned out: N overdue copies each.
    for threshold in (size * 10, 1000):
        src, dst = fresh(harness, scratch)
        ledger, queue = f"bench-{uuid.uuid4().hex[:10]}", f"work-{uuid.uuid4().hex[:10]}"
        service = harness.service(COPY_LEDGER_CONTAINER=ledger)
        harness.start_many(service, src, dst, size, timeout=1, prefix=f"s{uuid.uuid4().hex[:6]}")
        host = _Host(settings_file(scratch, harness, ledger, threshold, queue), root)
        try:
            host.warm()
            cpu, began = host.cpu(), time.perf_counter()
            host.fire_sweep()
            finished = _wait_for([host], size, began)
            assert host.aborted >= size, "".join(host.lines[-10:])
            spent = (host.cpu() - cpu) * 1000 / size
            if threshold > size:
                figures.abort_cpu_ms, figures.abort_seconds = spent, finished - began
            else:
                figures.fanned_cpu_ms, figures.most_threads = spent, host.most_threads
        finally:
            host.stop()
            harness.close_services()
    return figures


def bare_loop(harness: Harness, size: int, scratch: Path) -> float:
    """CPU per abort of the bare async SDK loop, over N overdue copies of its own."""
    src, dst = fresh(harness, scratch)
    ledger = f"bench-{uuid.uuid4().hex[:10]}"
    service = harness.service(COPY_LEDGER_CONTAINER=ledger)
    harness.start_many(service, src, dst, size, timeout=1, prefix=f"b{uuid.uuid4().hex[:6]}")
    harness.close_services()
    names = [blob.name for blob in harness.direct.get_container_client(ledger).list_blobs(name_starts_with="ops/")]
    result = subprocess.run(
        [sys.executable, "-m", "bench.bare_abort", harness.connection_string, ledger],
        cwd=ROOT,
        input="\n".join(names),
        capture_output=True,
        text=True,
        check=True,
    )
    answer = json.loads(result.stdout)
    assert answer["aborted"] == size, answer
    return float(answer["cpu_seconds"]) * 1000 / size


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.before_after", description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", default=BEFORE, help=f"the commit to compare with (default {BEFORE})")
    parser.add_argument("--size", type=int, default=10_000, help="copies aborted and job items (default 10,000)")
    parser.add_argument("--latency-ms", type=float, default=20.0, help="added to every storage request")
    args = parser.parse_args(argv)
    with (
        tempfile.TemporaryDirectory(prefix="bench-before-") as scratch,
        Harness(latency=args.latency_ms / 1000) as harness,
    ):
        before = tree_at(args.before, Path(scratch) / "before")
        print(harness.describe())
        print(f"\n== issue 17, before ({args.before}) and now, N = {args.size:,}, through the development host ==")
        rows = {}
        for label, root in (("before", before), ("now", ROOT)):
            rows[label] = measure(root, harness, args.size, Path(scratch))
        peer = bare_loop(harness, args.size, Path(scratch))
        print(f"{'':28} {'before':>10} {'now':>10} {'now/before':>11}")
        for name, unit, field in (
            ("start latency p50", "ms", "p50_ms"),
            ("CPU per job item started", "ms", "item_cpu_ms"),
            ("CPU per deadline abort", "ms", "abort_cpu_ms"),
            ("sweep of N, inline", "s", "abort_seconds"),
            ("CPU per abort, fanned out", "ms", "fanned_cpu_ms"),
            ("most threads, fanned out", "", "most_threads"),
        ):
            old, new = getattr(rows["before"], field), getattr(rows["now"], field)
            ratio = f"{new / old:.2f}x" if old else "-"
            print(f"{name + (' (' + unit + ')' if unit else ''):28} {old:>10.2f} {new:>10.2f} {ratio:>11}")
        print(
            f"the peer, a bare async SDK loop (3 requests an abort, 32 at once), CPU per abort: {peer:.2f} ms; "
            f"the host per abort against it: before {rows['before'].abort_cpu_ms / peer:.2f}x, "
            f"now {rows['now'].abort_cpu_ms / peer:.2f}x (lower bound: 3 requests an abort)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

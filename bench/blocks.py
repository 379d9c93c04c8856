"""python -m bench.blocks [--mib 1024] [--cap-mib 4] [--deadline 60]: the block engine (issue 19).

Through the development host (``python -m devhost``: its HTTP routes, its queue trigger,
its timer every second), on Azurite behind the proxy (its own process) at 20 ms a request,
each Put Block/Blob From URL reading its source at ``--cap-mib`` MiB/s (a bandwidth cap per
connection), side by side in one run:

1. one blob of ``--mib`` MiB copied by the block engine with 1, 8 and 32 blocks in flight
   (``COPY_BLOCKS_IN_FLIGHT``): wall time from the POST to the state read as succeeded, its
   ratio to the ideal (size / (in flight x cap), the cap's own bound), the storage requests
   by kind (lower bound: blocks + 1 commit), and the host's CPU per GiB;
2. the same blob on Copy Blob (``engine: async``), the proxy moving it at the cap's rate (one
   stream, as Azure's copy between accounts), with a deadline of ``--deadline`` s; and on
   ``auto``, which takes the block engine from the start for another account's blob
   (``copy_ops.copies.engines.engine_for``): when each finishes or is aborted.

The source is in the partner's account, named by URL with a SAS (bench/partner.py): only a
copy from another account is paced, as only such a copy runs in the background on Azure.
Each copy's bytes are checked against the source's at the end.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from bench.before_after import post, settings_file
from bench.harness import Harness
from bench.job_end import get
from bench.sweep_host import _Host

MIB = 1024 * 1024
GIB = 1024 * MIB
BLOCK = 8 * MIB
FINAL = {"succeeded", "failed", "aborted"}
EVERY_SECOND = "* * * * * *"
ENGINE_KINDS = ("get_properties", "put_block_from_url", "put_blob_from_url", "put_blocklist", "abort_copy", "copy_blob")


def follow(host: _Host, operation_id: str, timeout: float) -> tuple[dict[str, Any], float, float | None]:
    """Wait for the operation's end in the host's log (no request of ours, so the host's CPU
    is the copy's): its view then, when it ended and when it was escalated (seconds from now)."""
    began = time.monotonic()
    switched = None
    seen = 0
    while time.monotonic() - began < timeout:
        lines = host.lines[seen:]
        seen += len(lines)
        for line in lines:
            if switched is None and f"copy_escalated op={operation_id}" in line:
                switched = time.monotonic() - began
            if f"copy_finished op={operation_id}" in line:
                ended = time.monotonic() - began
                return get(host, f"copies/{operation_id}"), ended, switched
        time.sleep(0.02)
    raise AssertionError(f"operation {operation_id} not ended after {timeout} s")


def new_host(harness: Harness, scratch: Path, **settings: str) -> _Host:
    """A development host of its own ledger and work queue, with these settings too."""
    ledger, queue = f"bench-{uuid.uuid4().hex[:10]}", f"work-{uuid.uuid4().hex[:10]}"
    return _Host(settings_file(scratch, harness, ledger, 1000, queue, **settings))


def digest(harness: Harness, container: str, name: str) -> str:
    stream = harness.direct.get_blob_client(container, name).download_blob(max_concurrency=4)
    hashed = hashlib.sha256()
    for chunk in stream.chunks():
        hashed.update(chunk)
    return hashed.hexdigest()


def run(harness: Harness, size: int, cap: float, deadline: int, in_flights: list[int], engines: bool) -> None:
    print(harness.describe())
    blocks = -(-size // BLOCK)
    print(f"blob: {size / MIB:.0f} MiB ({blocks} blocks of 8 MiB); cap {cap / MIB:.1f} MiB/s per connection")
    src, dst = harness.containers()
    data = os.urandom(size)
    source_digest = hashlib.sha256(data).hexdigest()
    source = harness.partner(src).put("big.bin", data, max_concurrency=8)
    del data
    harness.proxy.configure(source_rate=cap, pace=cap)
    scratch = Path(tempfile.mkdtemp(prefix="bench-blocks-"))

    print(
        "\n| engine | in flight | wall (s) | ideal (s) | wall / ideal | requests | the engine's "
        "| host CPU/GiB (s) | proxy + Azurite CPU (s) |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for in_flight in in_flights:
        host = new_host(harness, scratch, COPY_BLOCKS_IN_FLIGHT=str(in_flight))
        try:
            host.warm()
            before, cpu, helpers = harness.counts(), host.cpu(), sum(harness.helper_cpu_seconds())
            body = {
                "source": source,
                "destination": {"container": dst, "blob": f"big-{in_flight}.bin"},
                "engine": "blocks",
                "timeout_seconds": 3600,
            }
            status, started = post(host, "copies", body)
            assert status in (201, 202), started
            view, wall, _ = follow(host, str(started["id"]), 3600)
            used = host.cpu() - cpu
            helped = sum(harness.helper_cpu_seconds()) - helpers
            counts = harness.counts() - before
        finally:
            host.stop()
        assert view["state"] == "succeeded", view
        assert digest(harness, dst, f"big-{in_flight}.bin") == source_digest
        ideal = size / (min(in_flight, blocks) * cap)
        sent = sum(counts[kind] for kind in ENGINE_KINDS)
        print(
            f"| blocks | {in_flight} | {wall:.1f} | {ideal:.1f} | {wall / ideal:.2f} | {sum(counts.values())} "
            f"| {sent} (lower bound {blocks + 1}) | {used / (size / GIB):.2f} | {helped:.1f} |"
        )
        print(f"  <!-- by kind: {dict(sorted(counts.items()))} -->")

    if not engines:
        return
    print(f"\nThe same blob under a {deadline} s deadline (the proxy moves Copy Blob at {cap / MIB:.1f} MiB/s):\n")
    print("| engine | outcome | ended after (s) | switched to blocks after (s) | requests |")
    print("| --- | --- | --- | --- | --- |")
    for engine in ("async", "auto"):
        host = new_host(
            harness,
            scratch,
            COPY_SWEEP_SCHEDULE=EVERY_SECOND,
            COPY_FIRST_CHECK_SECONDS="1",
            COPY_MAX_CHECK_INTERVAL_SECONDS="2",
        )
        try:
            host.warm()
            before = harness.counts()
            body = {
                "source": source,
                "destination": {"container": dst, "blob": f"big-{engine}.bin"},
                "engine": engine,
                "timeout_seconds": deadline,
                "on_abort": "delete",
            }
            status, started = post(host, "copies", body)
            assert status == 202, started
            view, wall, switched = follow(host, str(started["id"]), deadline * 3)
            spent: Counter[str] = harness.counts() - before
        finally:
            host.stop()
        outcome = view["state"] + (f" ({view['abort_reason']})" if view.get("abort_reason") else "")
        if view["state"] == "succeeded":
            assert digest(harness, dst, f"big-{engine}.bin") == source_digest
        shown = f"{switched:.1f}" if switched is not None else "-"
        print(f"| {engine} | {outcome} | {wall:.1f} | {shown} | {sum(spent.values())} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mib", type=int, default=1024, help="the blob's size in MiB")
    parser.add_argument("--cap-mib", type=float, default=4.0, help="MiB/s each source read may take")
    parser.add_argument("--deadline", type=int, default=60, help="the async and auto copies' deadline, s")
    parser.add_argument("--in-flight", default="1,8,32", help="the blocks in flight to measure, comma-separated")
    parser.add_argument("--no-engines", action="store_true", help="skip the async and auto runs")
    args = parser.parse_args()
    in_flights = [int(item) for item in args.in_flight.split(",")]
    with Harness(latency=0.020) as harness:
        run(harness, args.mib * MIB, args.cap_mib * MIB, args.deadline, in_flights, not args.no_engines)


if __name__ == "__main__":
    main()

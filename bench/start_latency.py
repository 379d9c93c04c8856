"""Start latency: POST /api/copies through the handler, for copies that finish at once."""

from __future__ import annotations

import os
import statistics
import time
from unittest import mock

from bench.harness import Harness
from copy_ops.edges import runtime
from devkit.app import functions, load_function_app, request
from devkit.worker import run as awaited


def run(harness: Harness, samples: int) -> None:
    print("\n== start latency: POST /api/copies through the handler (copies that finish at once) ==")
    src, dst = harness.containers()
    settings = {
        "COPY_STORAGE": harness.proxy.connection_string,
        "COPY_LEDGER_CONTAINER": f"bench-http-{src[-8:]}",
        "COPY_ALLOWED_SOURCE_HOSTS": "127.0.0.1:*",
    }
    # Given back after: a development host started later (bench/sweep_host.py) takes the
    # environment over its settings file, and these name a proxy that will be gone by then.
    with mock.patch.dict(os.environ, settings):
        try:
            _measure(harness, src, dst, samples)
        finally:
            awaited(runtime.reset())


def _measure(harness: Harness, src: str, dst: str, samples: int) -> None:
    start_copy = functions(load_function_app())["start_copy"]
    harness.proxy.configure(pending=False)
    # The first request creates the ledger container; it is not what a user waits for.
    start_copy(request("POST", "copies", _body(src, dst, -1)))
    timings = []
    before = harness.requests()
    for index in range(samples):
        began = time.perf_counter()
        response = start_copy(request("POST", "copies", _body(src, dst, index)))
        timings.append(time.perf_counter() - began)
        assert response.status_code == 201, response.get_body()
    per_start = (harness.requests() - before) / samples
    quantiles = statistics.quantiles(timings, n=20)
    print(
        f"{samples} starts: p50 {statistics.median(timings) * 1000:.1f} ms, p95 {quantiles[18] * 1000:.1f} ms, "
        f"{per_start:.1f} storage requests per start"
    )


def _body(src: str, dst: str, index: int) -> dict[str, object]:
    return {"source": {"container": src, "blob": "a.bin"}, "destination": {"container": dst, "blob": f"s/{index}.bin"}}

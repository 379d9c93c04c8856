"""Sweep throughput: N overdue pending copies, swept at several concurrencies and at 1."""

from __future__ import annotations

import time

from bench.harness import Harness, after
from copy_ops.background.sweep import SweepSummary, sweep
from devkit.worker import run as awaited

TIMEOUT = 60
# Concurrency 1 is measured over a sample: at 20 ms a request, sweeping 10,000
# copies one at a time would take minutes to say what a few hundred say.
SERIAL_SAMPLE = 300


def run(harness: Harness, sizes: tuple[int, ...], levels: tuple[int, ...]) -> None:
    print("\n== sweep throughput: overdue pending copies, each aborted ==")
    serial, _ = _measure(harness, SERIAL_SAMPLE, 1)
    serial_rate = serial.outcomes["aborted"] / serial.seconds
    print(f"concurrency  1: {serial_rate:7.1f} ops/s over {serial.outcomes['aborted']} operations")
    for size in sizes:
        for level in levels:
            summary, cpu = _measure(harness, size, level)
            rate = summary.outcomes["aborted"] / summary.seconds
            sweep_ms, proxy_ms, azurite_ms = (seconds * 1000 / size for seconds in cpu)
            print(
                f"N={size:>6} concurrency {level:>3}: {summary.seconds:6.2f} s, {rate:7.1f} ops/s, "
                f"{rate / serial_rate:5.1f}x concurrency 1 (aborted {summary.outcomes['aborted']}, "
                f"left over {summary.left_over}); CPU per op: sweep {sweep_ms:.1f} ms, "
                f"proxy {proxy_ms:.1f} ms, Azurite {azurite_ms:.1f} ms"
            )


def _measure(harness: Harness, size: int, level: int) -> tuple[SweepSummary, tuple[float, float, float]]:
    """The sweep's summary, and the CPU seconds it cost the sweep, the proxy and Azurite."""
    harness.restart()
    src, dst = harness.containers()
    # The sweep alone, as the timer runs it inline: no fan-out within N (bench/sweep_host.py
    # measures the fanned-out path through the development host).
    service = harness.service(level, COPY_FANOUT_THRESHOLD=str(size * 10))
    harness.start_many(service, src, dst, size, TIMEOUT)
    own_before, helpers_before = time.process_time(), harness.helper_cpu_seconds()
    summary = awaited(sweep(service, after(TIMEOUT + 1)))
    own = time.process_time() - own_before
    proxy, azurite = (now - then for now, then in zip(harness.helper_cpu_seconds(), helpers_before, strict=True))
    harness.close_services()
    return summary, (own, proxy, azurite)

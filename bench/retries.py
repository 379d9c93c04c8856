"""python -m bench.retries [--before REV] [--size N] [--rounds R]: issue 32's figures, the
code before retries and the code now, side by side in one run.

Retries must cost nothing on a copy that succeeds at its first attempt. For each tree (the
code before, ``BEFORE``, unpacked from git; the code now), a process of its own runs
``bench/retry_side.py`` with that tree first on its path, against this process's Azurite
(emptied before each side, on disk) behind the latency-adding proxy, which counts the
requests. Each side measures the requests of a copy that succeeds at its first attempt (a
copy within the account; an async copy from another account, its start and its sweep
checks until it ends; the block engine's whole copy), and the CPU per start and per
deadline abort of the service on its event loop's thread. The sides take turns, the
first of each round alternating, so that neither always runs on a cooler machine.

Then, in the code now, what one retried attempt costs: an async copy whose first attempt
Azure ends ``failed`` (the copy service's 500: a cause that may pass), tried again.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from bench import retry_side
from bench.before_after import tree_at
from bench.harness import ROOT, Harness
from bench.retry_side import BLOCKS, CHECKS

# The code before retries: the parent of d6f0193, the commit that added them.
BEFORE = "50cf32e"
SIDE = Path(retry_side.__file__).resolve()


def side(root: Path, harness: Harness, size: int) -> dict[str, Any]:
    """The figures of the code in ``root``, measured in a process of its own."""
    args = [
        f"--azurite-port={harness.azurite.port}",
        f"--proxy-port={harness.proxy.port}",
        f"--queue-proxy-port={harness.queue_proxy.port}",
        f"--size={size}",
        f"--latency-ms={harness.latency * 1000}",
    ]
    script = (
        f"import runpy, sys; sys.path.insert(0, {str(root)!r}); sys.argv = ['retry_side', *{args!r}]; "
        f"runpy.run_path({str(SIDE)!r}, run_name='__main__')"
    )
    ran = subprocess.run([sys.executable, "-c", script], cwd=root, capture_output=True, text=True, check=False)
    if ran.returncode != 0:
        raise RuntimeError(f"the side of {root} failed:\n{ran.stderr[-3000:]}")
    figures: dict[str, Any] = json.loads(ran.stdout.splitlines()[-1])
    imported = Path(figures["copy_ops"]).resolve()
    assert imported.is_relative_to(root.resolve()), (root, imported)  # the tree's code, not another's
    return figures


# Each copy of a side's figures: its key, what it is, and the least it can cost.
ROWS = (
    ("instant", "a copy within the account, ended at once", "3 (write-ahead record, Copy Blob, outcome)"),
    (
        "async",
        f"async from another account, k={CHECKS} checks, then succeeded",
        f"3 + 4k + 4 = {3 + 4 * CHECKS + 4} (the start as above; a check, and the end: find due, "
        "read record, destination properties, record)",
    ),
    (
        "blocks",
        f"the block engine, {BLOCKS} blocks, the whole copy",
        f"{BLOCKS + 1} ({BLOCKS} Put Block From URL, the commit)",
    ),
)


def requests(copy: dict[str, Any]) -> Counter[str]:
    """A copy's requests by kind, from a side's figures."""
    return Counter(copy["kinds"])


def count_rows(before: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """The requests of a copy that succeeds at its first attempt, before and now, beside
    their lower bounds (the lines docs/performance.md quotes, and tests/test_bench.py checks)."""
    return [
        f"{label:<54} {requests(before[key]).total():>6} {requests(now[key]).total():>6}   lower bound {bound}"
        for key, label, bound in ROWS
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.retries", description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", default=BEFORE, help=f"the commit to compare with (default {BEFORE})")
    parser.add_argument("--size", type=int, default=1000, help="starts and deadline aborts a side (default 1,000)")
    parser.add_argument("--rounds", type=int, default=2, help="turns of both sides (default 2)")
    parser.add_argument("--latency-ms", type=float, default=20.0, help="added to every storage request")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-retries-") as scratch, Harness(args.latency_ms / 1000) as harness:
        trees = {"before": tree_at(args.before, Path(scratch) / "before"), "now": ROOT}
        print(harness.describe())
        print(f"\n== retries (issue 32): before ({args.before}) and now, side by side, N = {args.size:,} ==")
        runs: dict[str, list[dict[str, Any]]] = {"before": [], "now": []}
        for round_ in range(args.rounds):
            for label in ("before", "now") if round_ % 2 == 0 else ("now", "before"):
                harness.restart(location=Path(tempfile.mkdtemp(prefix="azurite-", dir=scratch)))
                runs[label].append(side(trees[label], harness, args.size))
        before, now = runs["before"][0], runs["now"][0]
        print(f"{'requests per copy that succeeds at its first attempt':<54} {'before':>6} {'now':>6}")
        for row in count_rows(before, now):
            print(row)
        for key, _, _ in ROWS:
            same = all(requests(run[key]) == requests(now[key]) for run in runs["before"] + runs["now"])
            kinds = ", ".join(f"{kind} {count}" for kind, count in sorted(requests(now[key]).items()))
            print(f"    {key}, now: {kinds}; the same, kind by kind, in every run of both: {same}")
        print(f"{'CPU of the loop thread (ms)':<28} {'before':>8} {'now':>8} {'now/before':>11}")
        for name, field in (("per start", "start_cpu_ms"), ("per deadline abort", "abort_cpu_ms")):
            for index, (old, new) in enumerate(zip(runs["before"], runs["now"], strict=True)):
                label = f"{name}, round {index + 1}"
                print(f"{label:<28} {old[field]:>8.2f} {new[field]:>8.2f} {new[field] / old[field]:>10.2f}x")
            mean_old = statistics.mean(run[field] for run in runs["before"])
            mean_new = statistics.mean(run[field] for run in runs["now"])
            print(f"{name + ', mean':<28} {mean_old:>8.2f} {mean_new:>8.2f} {mean_new / mean_old:>10.2f}x")
        harness.restart()
        for line in retry_rows(retry_side.retried_copy(harness)):
            print(line)
    return 0


def retry_rows(figures: dict[str, Any]) -> list[str]:
    """What one retried attempt of an async copy costs (the code now), beside its lower bound."""
    total = figures["start"] + figures["failed"] + figures["attempt"] + figures["end"]
    return [
        f"a retried attempt (async, the sweep at its moment): {figures['attempt']} requests; lower bound 6 "
        "(find due, read record, destination properties: the leftover's ETag and owner, record the attempt, "
        "Copy Blob replacing the leftover, record its copy id)",
        f"    the copy, {figures['attempts']} attempts: {total} requests = start {figures['start']} + the check "
        f"that finds it failed {figures['failed']} + the attempt {figures['attempt']} + the check that finds "
        f"it ended {figures['end']}",
    ]


if __name__ == "__main__":
    sys.exit(main())

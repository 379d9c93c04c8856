"""Cold start: importing function_app in a fresh interpreter, beside the SDK imports alone."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNS = 10
FLOOR = "import azure.functions, azure.storage.blob"
APP = "import function_app"
# What the first request pays before its first storage call: the SDK, its async
# transport and the client are built on first use, not at import.
FIRST_USE = "import asyncio, function_app; from copy_ops.edges import runtime; asyncio.run(runtime.service())"


def _median_seconds(statement: str) -> float:
    env = {**os.environ, "AzureWebJobsStorage": "UseDevelopmentStorage=true"}
    times = []
    for _ in range(RUNS):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", statement], cwd=ROOT, env=env, check=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def run() -> None:
    print("\n== cold start (fresh interpreter, median of 10, interpreter start included) ==")
    bare = _median_seconds("pass")
    floor = _median_seconds(FLOOR)
    app = _median_seconds(APP)
    first_use = _median_seconds(FIRST_USE)
    print(f"python -c pass:             {bare * 1000:7.1f} ms")
    print(f"{FLOOR}: {floor * 1000:7.1f} ms (the floor)")
    print(f"{APP}:       {app * 1000:7.1f} ms  = {app / floor:.2f}x the floor (target at most 1.3x)")
    print(f"... and build the storage client: {first_use * 1000:7.1f} ms  = {first_use / floor:.2f}x the floor")

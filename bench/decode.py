"""python -m bench.decode [--before DIR]: what decoding a work message costs, beside its floor.

Each message every instance takes is decoded before anything else (copy_ops.work.messages):
the figure is the time per message, beside ``json.loads`` of the same text (the least any
decoding costs: the text must be parsed), for the largest message of each kind the app
sends and for hostile ones (issue 28: a stage message of 7,000 copies of ``0-49999``
took 13.5 s of the event loop before decoding was bounded). Pure CPU: no storage.

``--before DIR``: a checkout of the code before (``git worktree add DIR 58f61fd``), timed in
the same run, a process of its own, on the largest messages (not the hostile ones: the
stage message alone would take minutes).

The seal's check (copy_ops.work.seal, before decoding) is timed beside: the app's own
messages sealed, the hostile ones as a forger sends them (unsealed).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import timeit
from collections.abc import Callable

from copy_ops.copies.model import ManifestEntry
from copy_ops.core.errors import InvalidRequest
from copy_ops.work import messages
from copy_ops.work.messages import Batch, Chunk, Settle, Stage, encode
from copy_ops.work.seal import seal_of, sealed

ID = "8204487433000-86a941c4-0123456789abcdef"
KEY = bytes(range(32))
LARGEST = {
    "settle, 200 ids": encode(Settle(tuple(f"{ID}-{index}" for index in range(200)))),
    "batch, 200 names": encode(
        Batch(ID, 3, 1, tuple(f"drop/2026-12-06/part-{index:05d}.parquet" for index in range(200)), (10**9,) * 200)
    ),
    "stage, 64 blocks in 32 ranges": encode(Stage(ID, ",".join(f"{i * 4}-{i * 4 + 1}" for i in range(32)), "sv=x")),
    "chunk, 200 entries": encode(
        Chunk(ID, 0, tuple(ManifestEntry(f"https://p.example.net/c/{i}.bin", f"{i}.bin") for i in range(200)))
    ),
}
HOSTILE = {
    "stage, 7,000 x 0-49999": '{"v":1,"kind":"stage","op":"x","blocks":"' + ",".join(["0-49999"] * 7000) + '"}',
    "settle, 10,000 ids": json.dumps({"v": 1, "kind": "settle", "ids": ["x"] * 10000}),
}


def per_message(call: Callable[[str], object], text: str, rounds: int) -> float:
    def once() -> None:
        with contextlib.suppress(InvalidRequest):
            call(text)

    return min(timeit.repeat(once, number=rounds, repeat=5)) / rounds


def figures(names: list[str]) -> dict[str, float]:
    """Seconds per message of ``decode``, for the named messages, in this process."""
    texts = {**LARGEST, **HOSTILE}
    return {name: per_message(messages.decode, texts[name], 200) for name in names}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.decode")
    parser.add_argument("--before", help="a checkout of the code before, timed beside today's")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)  # the before's own run
    args = parser.parse_args(argv)
    if args.json:
        print(json.dumps(figures(list(LARGEST))))
        return
    before: dict[str, float] = {}
    if args.before:
        # This file, run with the checkout before first on the path: its copy_ops is timed.
        script = (
            f"import runpy, sys; sys.path.insert(0, {args.before!r}); sys.argv = ['decode', '--json']; "
            f"runpy.run_path({__file__!r}, run_name='__main__')"
        )
        ran = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
        before = json.loads(ran.stdout)
    print(f"{'message':32} {'bytes':>7} {'seal':>7} {'decode':>9} {'json.loads':>10} {'ratio':>6} {'before':>9}")
    for name, text in {**LARGEST, **HOSTILE}.items():
        seal = per_message(lambda t: seal_of(KEY, t), sealed(KEY, text) if name in LARGEST else text, 200)
        decoded = per_message(messages.decode, text, 200)
        floor = per_message(json.loads, text, 200)
        then = f"{before[name] * 1e6:>7.0f}us" if name in before else f"{'':>9}"
        print(
            f"{name:32} {len(text):>7} {seal * 1e6:>5.0f}us {decoded * 1e6:>7.0f}us {floor * 1e6:>8.0f}us"
            f" {decoded / floor:>6.2f} {then}"
        )


if __name__ == "__main__":
    main()

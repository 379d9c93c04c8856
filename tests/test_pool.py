"""The bounded pool: outcomes counted, the submitter held back when it is full, a
work's error raised again to the submitter."""

from __future__ import annotations

import threading
from functools import partial

import pytest

from copy_ops.pool import Pool, parallel_map

WAIT = 10.0


def _parity(number: int) -> str:
    return "even" if number % 2 == 0 else "odd"


def _passed(gate: threading.Event) -> str:
    return "done" if gate.wait(WAIT) else "timed out"


def test_every_outcome_is_counted() -> None:
    pool = Pool(4, "test")
    for index in range(200):
        pool.submit(partial(_parity, index))
    assert pool.finish() == {"even": 100, "odd": 100}
    assert pool.submitted == 200


def test_a_full_pool_holds_the_submitter_until_a_work_ends() -> None:
    pool = Pool(1, "test")  # one thread, one more queued behind it
    gates = [threading.Event() for _ in range(3)]
    for gate in gates[:2]:
        pool.submit(partial(_passed, gate))
    third_submitted = threading.Event()

    def submit_third() -> None:
        pool.submit(partial(_passed, gates[2]))
        third_submitted.set()

    submitter = threading.Thread(target=submit_third)
    submitter.start()
    assert pool.submitted == 2
    assert not third_submitted.is_set()  # both slots are taken: it cannot have gone in
    gates[0].set()
    assert third_submitted.wait(WAIT), "a work that ended did not give its slot back"
    submitter.join(WAIT)
    for gate in gates[1:]:
        gate.set()
    assert pool.finish() == {"done": 3}


def test_an_error_in_a_work_reaches_the_submitter() -> None:
    pool = Pool(2, "test")

    def broken() -> str:
        raise RuntimeError("storage adapter bug")

    pool.submit(lambda: "ok")
    pool.submit(broken)
    with pytest.raises(RuntimeError, match="storage adapter bug"):
        pool.finish()


def test_parallel_map_keeps_the_order() -> None:
    assert parallel_map(lambda n: n * n, list(range(50)), 8, "test") == [n * n for n in range(50)]
    assert parallel_map(lambda n: n, [], 8, "test") == []

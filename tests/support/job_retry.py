"""The in-memory world of a job's retry (issue 32): a job of three blobs under ``src/in/`` to
``dst/out/``, its items settled by hand, its checks asked, and the retry called as the HTTP
adapter calls the service (tests/test_job_retry.py, tests/test_job_retry_attacks.py)."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from copy_ops.app_service import AppService
from copy_ops.background.dispatch import do_work
from copy_ops.copies.model import BlobRef, ListQuery, Operation, State
from copy_ops.core.callers import KEY_CALLER, Caller
from copy_ops.core.errors import Conflict
from copy_ops.core.settings import Settings
from copy_ops.jobs.model import Job, JobState
from copy_ops.jobs.request import parse_job_request
from copy_ops.jobs.rerun_request import parse_retry_request
from devkit.worker import run
from tests.support.memory import MemoryQueue, MemoryStorage

T0 = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
SETTINGS_ENV = {"COPY_STORAGE": "UseDevelopmentStorage=true", "COPY_ENGINE": "async"}
SETTINGS = Settings.from_env(SETTINGS_ENV)
SERVER_FAULT = '500 InternalServerError "Copy failed."'
GONE = "404 BlobNotFound The specified blob does not exist."
NAMES = ("a.bin", "b.bin", "c.bin")


class World:
    def __init__(self, settings: Settings = SETTINGS) -> None:
        self.storage, self.queue = MemoryStorage(), MemoryQueue()
        self.storage.pending = True
        for name in NAMES:
            self.storage.put(BlobRef("src", f"in/{name}"), b"x" * 100)
        self.settings = settings
        self.service = AppService(settings, self.storage, self.queue)

    def start(self, caller: Caller = KEY_CALLER, **fields: Any) -> Job:
        body = {
            "source": {"container": "src", "prefix": "in/"},
            "destination": {"container": "dst", "prefix": "out/"},
            "timeout_seconds": 3600,
            **fields,
        }
        job = run(self.service.jobs.start(parse_job_request(body, self.settings, T0), T0, caller=caller)).job
        self.drain(T0)
        return job

    def drain(self, now: datetime) -> Counter[str]:
        kinds: Counter[str] = Counter()
        for _ in range(50):
            messages = self.queue.take()
            if not messages:
                return kinds
            for text in messages:
                kinds[run(do_work(self.service, text, now))[0]] += 1
        raise AssertionError("the queue never drained")

    def items(self, job_id: str) -> dict[str, Operation]:
        page = run(self.service.jobs.items(job_id, ListQuery(None, 50, None)))
        return {op.destination.blob: op for op in page.items}

    def settle(self, op: Operation, now: datetime) -> Operation:
        run(self.service.process_due(op.id, now))
        return run(self.service.ledger.get(op.id))

    def end(self, job_id: str, now: datetime) -> Job:
        self.drain(now)
        run(self.service.jobs.check(job_id, now, asked=True))
        return run(self.service.jobs.get(job_id, now))

    def retry(
        self, job_id: str, now: datetime, body: Any = None, key: str | None = None, caller: Caller = KEY_CALLER
    ) -> Job:
        ask = parse_retry_request(body, job_id, self.settings, now)
        outcome = run(self.service.jobs.reruns.retry(job_id, ask, now, key, caller=caller))
        self.drain(now)
        return outcome.job


def report(world: World, job_id: str) -> dict[str, dict[str, Any]]:
    lines = run(world.service.jobs.report(job_id)).lines.decode().splitlines()
    return {json.loads(line)["destination"]["blob"]: json.loads(line) for line in lines}


def a_failed_job(world: World, caller: Caller = KEY_CALLER) -> tuple[Job, datetime]:
    """A job whose a.bin failed for good (its failed blob left on the destination), the rest copied."""
    job = world.start(caller, retry={"attempts": 1})
    items = world.items(job.id)
    world.storage.fail(BlobRef("dst", "out/a.bin"), GONE)
    for name in ("b.bin", "c.bin"):
        world.storage.finish(BlobRef("dst", f"out/{name}"))
    now = T0 + timedelta(seconds=30)
    with pytest.raises(Conflict, match="still running"):
        world.retry(job.id, now, caller=caller)  # not ended yet
    for op in items.values():
        world.settle(op, now)
    ended = world.end(job.id, now)
    assert (ended.state, ended.counts.of(State.FAILED), ended.counts.retried) == (JobState.FAILED, 1, 0)
    return ended, now

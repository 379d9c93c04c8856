"""A job's attempts and its retry (issue 32, item 5): each item's attempts in the report and
the ended job's ``retried``; ``POST /api/jobs/{id}/retry`` as the service runs it: the first
job's failed items as a new manifest job linked to the first, over their leftovers, and the
409s. In memory (copy_ops/jobs/reruns.py); the request's checks are pure."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from copy_ops.copies.model import BlobRef, ErrorCode, State
from copy_ops.core.callers import Caller, KnownBy
from copy_ops.core.errors import Conflict, InvalidRequest, NotFound
from copy_ops.core.settings import Settings
from copy_ops.jobs.model import JobState
from copy_ops.jobs.rerun_request import parse_retry_request
from copy_ops.jobs.views import job_view
from devkit.worker import run
from tests.support.job_retry import GONE, NAMES, SERVER_FAULT, SETTINGS, SETTINGS_ENV, T0, World, a_failed_job, report


def test_a_report_line_says_each_items_attempts_and_the_ended_job_counts_the_retried() -> None:
    world = World()
    job = world.start(retry={"attempts": 2, "backoff_seconds": 0})
    assert job_view(run(world.service.jobs.get(job.id, T0)))["counts"]["retried"] is None  # not known while it runs
    items = world.items(job.id)
    first = BlobRef("dst", "out/a.bin")
    world.storage.fail(first, SERVER_FAULT)  # may pass: a second attempt
    now = T0 + timedelta(seconds=20)
    waiting = world.settle(items["out/a.bin"], now)
    assert waiting.state is State.PENDING and len(waiting.failed_attempts) == 1
    again = world.settle(waiting, now + timedelta(seconds=30))
    assert again.attempt == 2
    for name in NAMES:
        world.storage.finish(BlobRef("dst", f"out/{name}"))
    later = now + timedelta(seconds=60)
    for op in world.items(job.id).values():
        world.settle(op, later)
    ended = world.end(job.id, later)
    assert ended.state is JobState.SUCCEEDED, ended
    assert job_view(ended)["counts"]["retried"] == 1
    lines = report(world, job.id)
    assert (lines["out/a.bin"]["attempt"], lines["out/a.bin"]["attempts"]) == (2, 2)
    assert [(a["number"], a["error"], a["message"]) for a in lines["out/a.bin"]["failed_attempts"]] == [
        (1, "copy_failed", SERVER_FAULT)
    ]
    assert (lines["out/b.bin"]["attempt"], lines["out/b.bin"]["failed_attempts"]) == (1, [])


def test_a_retry_runs_the_failed_items_again_as_a_new_job_over_their_leftovers() -> None:
    world = World()
    first, now = a_failed_job(world)
    leftover = world.storage.blobs[BlobRef("dst", "out/a.bin")]
    assert leftover.metadata["copyops_operation"] == world.items(first.id)["out/a.bin"].id  # ours, failed
    retry = world.retry(first.id, now, {"timeout_seconds": 600, "retry": {"attempts": 3}}, key="again")
    assert (retry.retry_of, retry.manifest_size, retry.terms.retry_attempts) == (first.id, 1, 3)
    assert retry.terms.deadline == now + timedelta(seconds=600) and not retry.terms.overwrite
    shown = run(world.service.jobs.get(first.id, now))
    assert job_view(shown)["retried_by"] == retry.id and job_view(retry)["retry_of"] == first.id
    # The same key again: the same retry, nothing started twice.
    assert world.retry(first.id, now, {"timeout_seconds": 600, "retry": {"attempts": 3}}, key="again").id == retry.id
    # Its one item is a new operation, started over the first item's leftover (not refused
    # as "destination exists"), and copies it.
    (item,) = world.items(retry.id).values()
    assert item.id.startswith(retry.id) and item.state is State.PENDING and item.copy_id is not None, item
    world.storage.finish(BlobRef("dst", "out/a.bin"))
    copied = world.settle(item, now + timedelta(seconds=60))
    assert copied.state is State.SUCCEEDED, copied
    done = world.end(retry.id, now + timedelta(seconds=60))
    assert (done.state, done.counts.of(State.SUCCEEDED)) == (JobState.SUCCEEDED, 1)
    assert world.storage.blobs[BlobRef("dst", "out/a.bin")].data == b"x" * 100
    with pytest.raises(Conflict, match="nothing failed"):
        world.retry(retry.id, now + timedelta(seconds=20))


def test_a_retry_never_replaces_a_blob_that_is_not_the_failed_items_leftover() -> None:
    world = World()
    first, now = a_failed_job(world)
    world.storage.put(BlobRef("dst", "out/a.bin"), b"someone else's")  # written since
    retry = world.retry(first.id, now)
    (item,) = world.items(retry.id).values()
    assert item.state is State.FAILED and item.error is not None and item.error.code is ErrorCode.START_REFUSED
    assert world.storage.blobs[BlobRef("dst", "out/a.bin")].data == b"someone else's"


def test_another_callers_job_and_an_unknown_job_are_not_found() -> None:
    world = World()
    first, now = a_failed_job(world)
    stranger = Caller(KnownBy.ENTRA, object_id="0f0f0f0f-0000-0000-0000-000000000001", name="someone")
    ask = parse_retry_request(None, first.id, SETTINGS, now)
    with pytest.raises(NotFound):
        run(world.service.jobs.reruns.retry(first.id, ask, now, None, caller=stranger))
    with pytest.raises(NotFound):
        world.retry("8203450000000-0a0a0a0a", now)


def test_aborted_items_are_retried_only_when_asked() -> None:
    world = World()
    job = world.start()
    run(world.service.jobs.abort(job.id, T0))
    now = T0 + timedelta(seconds=30)
    for _ in range(3):
        world.drain(now)
        run(world.service.jobs.check(job.id, now, asked=True))
        now += timedelta(seconds=5)
    ended = run(world.service.jobs.get(job.id, now))
    assert (ended.state, ended.counts.of(State.ABORTED)) == (JobState.ABORTED, 3), ended
    with pytest.raises(Conflict, match="nothing failed"):
        world.retry(job.id, now)
    retry = world.retry(job.id, now, {"include_aborted": True})
    assert (retry.retry_of, retry.manifest_size) == (job.id, 3)
    # Each aborted copy's leftover (kept: on_abort keep) is replaced, not refused.
    assert {op.state for op in world.items(retry.id).values()} == {State.PENDING}


def test_more_failed_items_than_one_job_takes_are_refused() -> None:
    world = World(Settings.from_env({**SETTINGS_ENV, "COPY_JOB_MANIFEST_MAX": "2"}))
    job = world.start(retry={"attempts": 1})
    for name in NAMES:
        world.storage.fail(BlobRef("dst", f"out/{name}"), GONE)
    now = T0 + timedelta(seconds=30)
    for op in world.items(job.id).values():
        world.settle(op, now)
    assert world.end(job.id, now).counts.of(State.FAILED) == 3
    with pytest.raises(Conflict, match="COPY_JOB_MANIFEST_MAX") as refused:
        world.retry(job.id, now)
    assert refused.value.code == "TooManyFailed"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ([], "body"),
        ({"timeout": 60}, "timeout"),
        ({"deadline": "tomorrow"}, "deadline"),
        ({"timeout_seconds": 60, "deadline": "2026-11-24T03:00:00Z"}, "deadline"),
        ({"retry": {"attempts": 0}}, "retry.attempts"),
        ({"retry": {"backoff_seconds": -1}}, "retry.backoff_seconds"),
        ({"retry": 3}, "retry"),
        ({"include_aborted": "yes"}, "include_aborted"),
        ({"sas": 7}, "sas"),
    ],
)
def test_bad_input_is_400_naming_the_field(body: Any, field: str) -> None:
    with pytest.raises(InvalidRequest) as raised:
        parse_retry_request(body, "8203450000000-0a0a0a0a", SETTINGS, T0)
    assert field in [error.field for error in raised.value.errors], raised.value.errors

"""Attacks on a job's retry (``POST /api/jobs/{id}/retry``, issue 32), each found by review and
failing on the code before its fix (or, where said, holding what was judged fine): the
request's ``sas`` taken only as a query string, so that nothing a header or a URL would carry
differently reaches an item's Copy Blob; a retry of a retry over the first job's leftover."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from functools import wraps
from importlib import resources
from inspect import iscoroutinefunction
from typing import Any

import pytest

from copy_ops.app_service import AppService
from copy_ops.copies.model import BlobRef, ErrorCode, State
from copy_ops.core.callers import Caller, KnownBy
from copy_ops.core.errors import Conflict, Forbidden, InvalidRequest
from copy_ops.core.settings import Settings
from copy_ops.jobs.model import Job, JobState
from copy_ops.jobs.rerun_request import SAS_QUERY, parse_retry_request
from devkit.worker import run
from tests.support.job_retry import GONE, SERVER_FAULT, SETTINGS_ENV, World, a_failed_job, report
from tests.support.memory import MemoryStorage

JOB = "8203450000000-0a0a0a0a"
T0 = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
SETTINGS = Settings.from_env({"COPY_STORAGE": "UseDevelopmentStorage=true"})


@pytest.mark.parametrize(
    "sas",
    [
        None,  # the schema's string: a null is refused as a null retry is
        "sv=2024-11-04\nsig=abc",  # a newline: a header the item's Copy Blob would carry
        "sv=2024-11-04&sig=ab\tc",
        "sv=2024-11-04&sig=é",  # not URL-encoded
        "sv=2024-11-04?sig=abc",  # a second query inside the first
        "??sv=2024-11-04&sig=abc",
        "&",
        "sv=2024-11-04&&sig=abc",
        "sig",  # no value: not a query of name=value pairs
        "=abc",
    ],
)
def test_a_sas_that_is_not_one_query_string_is_400_naming_sas(sas: Any) -> None:
    with pytest.raises(InvalidRequest) as raised:
        parse_retry_request({"sas": sas}, JOB, SETTINGS, T0)
    assert [error.field for error in raised.value.errors] == ["sas"]


@pytest.mark.parametrize("sas", ["sv=2024-11-04&sig=a%2Bb%3D", "?sv=2024-11-04&se=2026-11-24T03%3A00%3A00Z&sig=x"])
def test_a_sas_query_string_is_taken_without_its_question_mark(sas: str) -> None:
    assert parse_retry_request({"sas": sas}, JOB, SETTINGS, T0).sas == sas.removeprefix("?")


def test_the_api_document_takes_the_sas_the_parser_takes() -> None:
    document = json.loads(resources.files("copy_ops").joinpath("openapi.json").read_text())
    pattern = document["components"]["schemas"]["JobRetryRequest"]["properties"]["sas"]["pattern"]
    assert pattern == f"^{SAS_QUERY.pattern}$"


def test_a_retry_of_a_retry_replaces_the_first_jobs_leftover_its_item_never_wrote_over() -> None:
    # The first job's a.bin failed, its failed blob left; the retry's a.bin failed before
    # writing anything (its source gone a moment): the blob there is still the first job's.
    world = World()
    first, now = a_failed_job(world)
    source, leftover = BlobRef("src", "in/a.bin"), BlobRef("dst", "out/a.bin")
    data = world.storage.blobs.pop(source)
    retry = world.retry(first.id, now)
    (item,) = world.items(retry.id).values()
    assert item.state is State.FAILED and item.error is not None and item.error.code is ErrorCode.START_REFUSED
    assert world.end(retry.id, now).state is JobState.FAILED
    world.storage.blobs[source] = data
    # The retry of the retry replaces that leftover (its owner is an item of the job the
    # first retry retried) rather than failing as "the destination exists" for good.
    again = world.retry(retry.id, now)
    assert again.lineage == (first.id, retry.id)
    (item,) = world.items(again.id).values()
    assert item.state is State.PENDING and item.copy_id is not None, item
    world.storage.finish(leftover)
    assert world.settle(item, now + timedelta(seconds=60)).state is State.SUCCEEDED
    assert world.storage.blobs[leftover].data == b"x" * 100


def test_a_second_retry_of_one_job_never_writes_over_the_first_retrys_copy() -> None:
    world = World()
    first, now = a_failed_job(world)
    retry = world.retry(first.id, now)
    (item,) = world.items(retry.id).values()
    destination = BlobRef("dst", "out/a.bin")
    world.storage.finish(destination)
    later = now + timedelta(seconds=60)
    assert world.settle(item, later).state is State.SUCCEEDED
    assert world.end(retry.id, later).state is JobState.SUCCEEDED
    written = world.storage.blobs[destination].etag
    # The first job still lists a.bin failed: a second retry of it is started, but its item
    # finds the blob the first retry wrote (not the first job's leftover) and is refused.
    second = world.retry(first.id, later)
    (again,) = world.items(second.id).values()
    assert again.error is not None and again.error.code is ErrorCode.START_REFUSED, again
    assert world.storage.blobs[destination].etag == written


def test_a_retrys_lineage_is_kept_and_a_retry_recorded_before_it_names_the_job_it_retried() -> None:
    world = World()
    first, now = a_failed_job(world)
    retry = world.retry(first.id, now)
    again = dataclasses.replace(retry, lineage=("8203450000000-0a0a0a0a", first.id))
    assert Job.from_json(again.to_json()) == again
    before = json.loads(retry.to_json())
    del before["lineage"]  # as a retry recorded before the lineage was
    assert Job.from_json(json.dumps(before).encode()).lineage == (first.id,)
    assert "lineage" not in json.loads(first.to_json())  # no retry: written as before


TEAM = "f08bbbea-b793-4a36-a5fc-136c18d8aa8f"
ALICE = Caller(KnownBy.ENTRA, object_id="14a87ffa-0801-49bf-a515-3d259a2a9f8f", groups=frozenset({TEAM}))


def policy(read_prefix: str) -> Settings:
    """A policy that lets ALICE read ``src/{read_prefix}`` and write ``dst/out/``."""
    rule = {"name": "team", "group": TEAM, "read": [{"container": "src", "prefix": read_prefix}]}
    rules = [{**rule, "write": [{"container": "dst", "prefix": "out/"}]}]
    return Settings.from_env({**SETTINGS_ENV, "COPY_POLICY": json.dumps({"rules": rules})})


def counted(storage: MemoryStorage) -> list[str]:
    """Every storage request made from now on, by name, in order."""
    made: list[str] = []
    for name in dir(storage):
        method = getattr(storage, name)
        if not name.startswith("_") and iscoroutinefunction(method):

            def counting(method: Any = method, name: str = name) -> Any:
                @wraps(method)
                async def call(*args: Any, **kwargs: Any) -> Any:
                    made.append(name)
                    return await method(*args, **kwargs)

                return call

            setattr(storage, name, counting())
    return made


def test_a_caller_the_policy_no_longer_lets_read_the_sources_is_refused_before_any_item_is_read() -> None:
    world = World(policy("in/"))
    first, now = a_failed_job(world, ALICE)
    narrowed = policy("other/")  # the policy changed since the first job
    service = AppService(narrowed, world.storage, world.queue)
    made = counted(world.storage)
    ask = parse_retry_request(None, first.id, narrowed, now)
    with pytest.raises(Forbidden, match="source"):
        run(service.jobs.reruns.retry(first.id, ask, now, None, caller=ALICE))
    assert made == ["read_document"]  # the job's record: whose it is; no item, no listing
    # Under the policy as it was, the same caller's retry starts.
    assert world.retry(first.id, now, caller=ALICE).retry_of == first.id


def test_a_sas_for_a_job_that_read_no_source_with_one_is_400_naming_sas_before_any_item_is_read() -> None:
    world = World()
    first, now = a_failed_job(world)  # its sources: the app's own blobs, read by its identity
    made = counted(world.storage)
    with pytest.raises(InvalidRequest) as raised:
        world.retry(first.id, now, {"sas": "sv=2024-11-04&sig=abc"})
    assert [(error.field, error.message) for error in raised.value.errors] == [
        ("sas", "is not wanted: the job read none of the sources with a SAS")
    ]
    assert made == ["read_document"]  # the job's record alone: nothing started, no item read


def test_a_retry_while_the_jobs_latest_retry_runs_is_409_but_its_replay_is_answered() -> None:
    world = World()
    first, now = a_failed_job(world)
    body = {"timeout_seconds": 600}
    running = world.retry(first.id, now, body, key="once")
    # A second retry now would run the same items to the same destinations beside it (a
    # block engine's two plans, an overwrite of its copy): refused, naming the running one.
    for again in ({}, body):
        with pytest.raises(Conflict, match=running.id) as refused:
            world.retry(first.id, now, again)
        assert refused.value.code == "RetryRunning"
    assert world.retry(first.id, now, body, key="once").id == running.id  # its replay: the same job
    (item,) = world.items(running.id).values()
    world.storage.finish(BlobRef("dst", "out/a.bin"))
    world.settle(item, now + timedelta(seconds=60))
    assert world.end(running.id, now + timedelta(seconds=60)).state is JobState.SUCCEEDED
    # Once it ended, the first job may be retried again (its own items still say failed).
    assert world.retry(first.id, now + timedelta(seconds=60)).retry_of == first.id


def test_a_job_whose_failed_items_records_are_gone_says_so_rather_than_nothing_failed() -> None:
    world = World()
    first, now = a_failed_job(world)
    item = world.items(first.id)["out/a.bin"]
    # The lifecycle rule deletes final records by age; the job's own record, written again
    # when a retry links to it, may outlive its items'.
    run(world.storage.delete_document(world.settings.ledger_container, f"ops/{item.id}.json"))
    with pytest.raises(Conflict, match="records are gone") as refused:
        world.retry(first.id, now)
    assert refused.value.code == "NothingFailed"


def test_a_reports_attempts_for_items_tried_once_retried_to_success_and_failed_after_three() -> None:
    # Judged fine, held: the last attempt's failure is the item's error, not in failed_attempts.
    world = World()
    job = world.start(retry={"attempts": 3, "backoff_seconds": 0})
    failing, now = BlobRef("dst", "out/a.bin"), T0 + timedelta(seconds=20)
    world.storage.fail(failing, SERVER_FAULT)
    world.storage.fail(BlobRef("dst", "out/c.bin"), SERVER_FAULT)  # once: its second attempt copies
    world.storage.finish(BlobRef("dst", "out/b.bin"))
    for op in world.items(job.id).values():
        world.settle(op, now)  # the first attempts ended: a.bin and c.bin failed, b.bin copied
    for _ in range(6):  # each round: every item's record read, its next attempt's copy ended
        for op in world.items(job.id).values():
            if op.state is State.PENDING and op.copy_id is not None and op.destination == failing:
                world.storage.fail(failing, SERVER_FAULT)
            elif op.state is State.PENDING and op.copy_id is not None:
                world.storage.finish(op.destination)
            world.settle(op, now)
        world.drain(now)
        now += timedelta(seconds=30)
    ended = world.end(job.id, now)
    assert (ended.state, ended.counts.retried) == (JobState.FAILED, 2), ended
    lines = {name: report(world, job.id)[f"out/{name}"] for name in ("a.bin", "b.bin", "c.bin")}
    shown = {
        name: (line["state"], line["attempt"], [a["number"] for a in line["failed_attempts"]])
        for name, line in lines.items()
    }
    assert shown == {
        "a.bin": ("failed", 3, [1, 2]),
        "b.bin": ("succeeded", 1, []),
        "c.bin": ("succeeded", 2, [1]),
    }
    assert (lines["a.bin"]["error"], lines["a.bin"]["message"]) == ("copy_failed", SERVER_FAULT)


def test_a_retry_naming_one_field_of_retry_takes_the_other_from_the_first_job() -> None:
    # The CLI's --backoff-seconds alone ("default: the job's" for --attempts) sent only that
    # field, and the item's attempts became COPY_RETRY_ATTEMPTS rather than the first job's.
    world = World()
    first, now = a_failed_job(world)  # one attempt an item, the first wait the settings' 30 s
    assert (first.terms.retry_attempts, SETTINGS.retry_attempts) == (1, 3)
    retry = world.retry(first.id, now, {"retry": {"backoff_seconds": 5}})
    assert (retry.terms.retry_attempts, retry.terms.retry_backoff_seconds) == (1, 5.0)


def test_a_retry_meets_the_allowed_hosts_and_destination_containers_as_they_are_now() -> None:
    # The first job's request was checked against them; a retry's items, built from its
    # records rather than parsed, went out whatever the settings had become since.
    partner = "https://data.example.com/public/a.bin"
    hosts = {**SETTINGS_ENV, "COPY_ALLOWED_SOURCE_HOSTS": "data.example.com:*"}
    world = World(Settings.from_env(hosts))
    job = world.start(source={"blobs": [f"{partner}?sv=1&sig=x"]}, retry={"attempts": 1})
    (item,) = world.items(job.id).values()
    world.storage.fail(item.destination, GONE)
    now = T0 + timedelta(seconds=30)
    world.settle(item, now)
    assert world.end(job.id, now).state is JobState.FAILED
    for narrowed, field in (
        ({**hosts, "COPY_ALLOWED_SOURCE_HOSTS": "elsewhere.example.com:*"}, "source.blobs[0]"),
        ({**hosts, "COPY_ALLOWED_DESTINATION_CONTAINERS": "landing-*"}, "destination.container"),
    ):
        settings = Settings.from_env(narrowed)
        service = AppService(settings, world.storage, world.queue)
        ask = parse_retry_request({"sas": "sv=2&sig=y"}, job.id, settings, now)
        with pytest.raises(Forbidden) as refused:
            run(service.jobs.reruns.retry(job.id, ask, now))
        assert [error.field for error in refused.value.errors] == [field]
    assert world.retry(job.id, now, {"sas": "sv=2&sig=y"}).manifest_size == 1  # as they were: it starts

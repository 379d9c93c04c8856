"""Ownership on the in-memory fakes (copy_ops.copies.owners): operations and jobs carry their
caller; a caller reads, lists and aborts only its own, and another's is 404 exactly as an
unknown id; an admin (Copies.Admin, a key's holder) sees every one; a caller's list costs its
page; the history says who asked for a move, the events whose the record is. The same through
the development host with real tokens: tests/test_ownership_http.py."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import json
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from copy_ops.app_service import AppService
from copy_ops.background.dispatch import do_work
from copy_ops.background.sweep import sweep
from copy_ops.copies.model import BlobRef, ListQuery, Operation, State
from copy_ops.copies.owners import Owner, owner_of, owner_query, sees
from copy_ops.copies.read import list_query
from copy_ops.copies.records import record_tags
from copy_ops.copies.request import parse_copy_request
from copy_ops.copies.views import operation_view
from copy_ops.core.callers import KEY_CALLER, Caller, KnownBy
from copy_ops.core.errors import InvalidRequest, NotFound
from copy_ops.core.settings import Settings
from copy_ops.jobs.model import Job, JobState
from copy_ops.jobs.records import job_tags
from copy_ops.jobs.request import parse_job_request
from copy_ops.observability.events import Event
from devkit.index_lag import matches, parse_query
from devkit.issuer import CALLERS, NamedCaller
from devkit.worker import run
from tests.support.memory import MemoryQueue, MemoryStorage

T0 = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
SETTINGS = Settings.from_env(
    {"COPY_STORAGE": "UseDevelopmentStorage=true", "COPY_ENGINE": "async", "COPY_JOB_PAGE_SIZE": "10"}
)


def entra(named: NamedCaller) -> Caller:
    """A named caller of the development kit's issuer, as App Service Authentication passes it."""
    return Caller(KnownBy.ENTRA, named.object_id, None, named.display, frozenset(named.roles), frozenset(named.groups))


ALICE, BOB, CAROL = (entra(CALLERS[name]) for name in ("alice", "bob", "carol"))


class Counted(MemoryStorage):
    """The memory storage, counting each request the app makes of it, by its port's name."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: Counter[str] = Counter()

    def __getattribute__(self, name: str) -> Any:
        found = super().__getattribute__(name)
        if name.startswith("_") or not inspect.iscoroutinefunction(found):
            return found
        calls = super().__getattribute__("calls")

        async def counted(*args: Any, **kwargs: Any) -> Any:
            calls[name] += 1
            return await found(*args, **kwargs)

        return counted


class Heard:
    """An event target that takes every event."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    async def announce(self, events: Sequence[Event]) -> None:
        self.events.extend(events)


class World:
    def __init__(self) -> None:
        self.storage = Counted()
        self.storage.pending = True  # copies stay pending until a test ends them
        self.queue = MemoryQueue()
        self.heard = Heard()
        self.service = AppService(SETTINGS, self.storage, self.queue, announcer=self.heard)

    def copy(self, caller: Caller, name: str, now: datetime = T0, key: str | None = None, **fields: Any) -> Operation:
        self.storage.put(BlobRef("src", name), b"x")
        body = {"source": {"container": "src", "blob": name}, "destination": {"container": "dst", "blob": name}}
        request = parse_copy_request({**body, **fields}, SETTINGS, now)
        return run(self.service.start(request, now, key, caller=caller)).operation

    def job(self, caller: Caller, blobs: int = 3) -> Job:
        for index in range(blobs):
            self.storage.put(BlobRef("src", f"in/{index}.bin"), b"x")
        body = {
            "source": {"container": "src", "prefix": "in/"},
            "destination": {"container": "dst", "prefix": "out/"},
            "timeout_seconds": 600,
        }
        job = run(self.service.jobs.start(parse_job_request(body, SETTINGS, T0), T0, caller=caller)).job
        self.deliver()
        return job

    def deliver(self, now: datetime = T0) -> None:
        for _ in range(100):
            messages = self.queue.take()
            if not messages:
                return
            for text in messages:
                run(do_work(self.service, text, now))

    def listed(self, caller: Caller, state: State | None = None) -> list[str]:
        return [op.id for op in run(self.service.list(ListQuery(state, 100, None), caller=caller)).items]


def unknown_like(known_id: str) -> str:
    """An id of the same shape that no record has."""
    return known_id[:-8] + ("0" * 8 if not known_id.endswith("0" * 8) else "1" * 8)


def said(error: NotFound, record_id: str) -> tuple[str, str, str | None]:
    return error.title, error.detail.replace(record_id, "ID"), error.code


def refused(call: Any, record_id: str) -> tuple[str, str, str | None]:
    with pytest.raises(NotFound) as caught:
        run(call)
    return said(caught.value, record_id)


# -- a copy is its caller's -------------------------------------------------------------------


def test_a_copy_carries_its_caller_and_another_caller_finds_nothing_there() -> None:
    world = World()
    op = world.copy(ALICE, "a.bin")
    assert op.caller == Owner(ALICE.object_id or "", "Alice")
    assert record_tags(op)["caller"] == ALICE.object_id
    nowhere = unknown_like(op.id)
    unknown = refused(world.service.get(nowhere, T0, caller=BOB), nowhere)
    # Bob is told what an id that names nothing tells him, for a read and an abort alike.
    assert refused(world.service.get(op.id, T0, caller=BOB), op.id) == unknown
    assert refused(world.service.abort(op.id, T0, caller=BOB), op.id) == unknown
    assert refused(world.service.abort(nowhere, T0, caller=BOB), nowhere) == unknown
    # Nothing was asked of the copy, and its record is as alice left it.
    assert world.storage.aborts == [] and run(world.service.ledger.get(op.id)).abort_requested_at is None
    for caller in (ALICE, CAROL, KEY_CALLER):
        assert run(world.service.get(op.id, T0, caller=caller)).id == op.id


def test_a_read_of_another_callers_copy_looks_at_nothing_but_its_record() -> None:
    world = World()
    op = world.copy(ALICE, "a.bin")
    world.storage.finish(op.destination)  # a read by alice would see it ended, and record it
    before = Counter(world.storage.calls)
    with pytest.raises(NotFound):
        run(world.service.get(op.id, T0 + timedelta(seconds=5), caller=BOB))
    assert Counter(world.storage.calls) - before == {"read_document": 1}
    assert run(world.service.ledger.get(op.id)).state is State.PENDING


def test_ownership_costs_no_request_on_a_start_or_a_read() -> None:
    """Issue 31: the caller's check is computed from the request and the record."""
    spent = []
    for caller in (KEY_CALLER, ALICE):
        world = World()
        world.copy(caller, "warm.bin", key="warm")  # the ledger's container, made once
        before = Counter(world.storage.calls)
        op = world.copy(caller, "a.bin", key="k")
        run(world.service.get(op.id, T0 + timedelta(seconds=1), caller=caller))
        spent.append(Counter(world.storage.calls) - before)
    assert spent[0] == spent[1] and spent[0]["read_document"] >= 1


def test_a_key_holders_copy_names_nobody_and_only_admins_see_it() -> None:
    world = World()
    op = world.copy(KEY_CALLER, "a.bin")
    assert op.caller is None and "caller" not in record_tags(op)
    assert all(move.by is None for move in op.history)
    for caller in (ALICE, BOB):
        with pytest.raises(NotFound):
            run(world.service.get(op.id, T0, caller=caller))
        assert world.listed(caller) == []
    assert world.listed(CAROL) == [op.id] == world.listed(KEY_CALLER)


def test_a_record_written_before_callers_were_recorded_is_seen_by_admins_alone() -> None:
    world = World()
    op = world.copy(ALICE, "a.bin")
    stored = json.loads(op.to_json())
    del stored["caller"]  # as the version before wrote it
    before = Operation.from_json(json.dumps(stored).encode())
    assert before.caller is None
    run(world.service.ledger.delete(op.id))
    run(world.service.ledger.create(before, T0))
    with pytest.raises(NotFound):
        run(world.service.get(op.id, T0, caller=ALICE))
    assert world.listed(ALICE) == [] and world.listed(CAROL) == [op.id]


def test_each_caller_lists_its_own_and_an_admin_every_one() -> None:
    world = World()
    mine = [world.copy(ALICE, f"a{index}.bin", T0 + timedelta(seconds=index)).id for index in range(3)]
    theirs = [world.copy(BOB, f"b{index}.bin", T0 + timedelta(seconds=3 + index)).id for index in range(2)]
    keyed = world.copy(KEY_CALLER, "k.bin", T0 + timedelta(seconds=6)).id
    run(world.service.abort(mine[0], T0 + timedelta(seconds=10), caller=ALICE))
    assert world.listed(ALICE) == sorted(mine) and world.listed(BOB) == sorted(theirs)
    assert world.listed(ALICE, State.PENDING) == sorted(mine[1:])
    assert world.listed(ALICE, State.ABORTED) == [mine[0]] and world.listed(BOB, State.ABORTED) == []
    assert world.listed(CAROL) == sorted([*mine, *theirs, keyed]) == world.listed(KEY_CALLER)
    assert world.listed(CAROL, State.ABORTED) == [mine[0]]


def test_a_callers_page_costs_its_page_whatever_others_hold() -> None:
    world = World()
    for index in range(40):
        world.copy(BOB, f"b{index}.bin", T0 + timedelta(seconds=index))
    mine = [world.copy(ALICE, f"a{index}.bin", T0 - timedelta(seconds=10 + index)).id for index in range(3)]
    run(world.service.list(ListQuery(None, 1, None), caller=ALICE))  # the tokens' key, made once per process
    for state in (State.PENDING, None):
        before = Counter(world.storage.calls)
        page = run(world.service.list(ListQuery(state, 2, None), caller=ALICE))
        # One tag query and the page's two records: nothing of bob's forty is read.
        assert Counter(world.storage.calls) - before == {"find_tagged": 1, "read_document": 2}
        assert [op.id for op in page.items] == mine[:2] and page.continuation
        rest = run(world.service.list(ListQuery(state, 2, page.continuation), caller=ALICE))
        assert [op.id for op in rest.items] == mine[2:] and rest.continuation is None


def test_a_record_is_shown_to_its_caller_only_as_the_record_itself_says() -> None:
    """The index is a list of candidates: a record the version before rewrote (it writes no
    caller, and with it no tag) may still be named by the index's lagging `caller` tag."""
    world = World()
    op = world.copy(ALICE, "a.bin")
    document = world.storage.containers[SETTINGS.ledger_container][world.service.ledger.record_name(op.id)]
    stored = json.loads(document.data)
    del stored["caller"]
    document.data = json.dumps(stored).encode()  # its tags as they were: the index lags
    assert document.tags["caller"] == ALICE.object_id
    assert world.listed(ALICE) == [] == world.listed(ALICE, State.PENDING)
    assert world.listed(CAROL) == [op.id]


def test_a_callers_jobs_page_costs_its_page_whatever_others_hold() -> None:
    world = World()
    mine = world.job(BOB, blobs=0)
    theirs = []
    for index in range(5):
        body = {"source": {"container": "src", "prefix": f"{index}/"}, "destination": {"container": "dst"}}
        later = T0 + timedelta(seconds=1 + index)
        theirs.append(run(world.service.jobs.start(parse_job_request(body, SETTINGS, later), later, caller=ALICE)))
    run(world.service.jobs.list(1, None, caller=BOB))  # the continuation tokens' key, read once per process
    before = Counter(world.storage.calls)
    page = run(world.service.jobs.list(2, None, caller=BOB))
    # One tag query and bob's one job: none of alice's five newer ones is read.
    assert Counter(world.storage.calls) - before == {"find_tagged": 1, "read_document": 1}
    assert [job.id for job in page.items] == [mine.id] and page.continuation is None
    assert len(run(world.service.jobs.list(10, None, caller=ALICE)).items) == len(theirs)


def test_a_callers_continuation_does_not_page_another_listing() -> None:
    world = World()
    for index in range(3):
        world.copy(ALICE, f"a{index}.bin", T0 + timedelta(seconds=index))
    page = run(world.service.list(ListQuery(None, 1, None), caller=ALICE))
    assert page.continuation
    with pytest.raises(InvalidRequest, match="continuation"):
        run(world.service.list(ListQuery(None, 1, page.continuation), caller=BOB))


def test_each_callers_idempotency_keys_are_its_own() -> None:
    world = World()
    world.storage.pending = False  # each copy ends at once: the same body again starts anew
    first = world.copy(ALICE, "a.bin", key="nightly", overwrite=True)
    other = world.copy(BOB, "a.bin", key="nightly", overwrite=True)
    assert other.id != first.id and other.caller is not None and other.caller.id == BOB.object_id
    assert world.copy(ALICE, "a.bin", key="nightly", overwrite=True).id == first.id


# -- who asked for a move -------------------------------------------------------------------


def test_the_history_says_who_started_and_who_aborted_and_the_sweep_is_nobody() -> None:
    world = World()
    op = world.copy(ALICE, "a.bin")
    assert [(move.event.value, move.by) for move in op.history] == [("started", ALICE.object_id)]
    aborted = run(world.service.abort(op.id, T0 + timedelta(seconds=1), caller=CAROL))
    assert [(move.event.value, move.by) for move in aborted.history] == [
        ("started", ALICE.object_id),
        ("abort_requested", CAROL.object_id),
        ("finished", None),
    ]
    assert aborted.caller == op.caller  # an admin's abort leaves it alice's
    shown = operation_view(aborted, None)
    assert shown["caller"] == {"id": ALICE.object_id, "name": "Alice"}
    assert [move.get("by") for move in shown["history"]] == [ALICE.object_id, CAROL.object_id, None]


def test_the_block_engines_plan_is_by_its_caller() -> None:
    world = World()
    op = world.copy(ALICE, "a.bin", engine="blocks")
    assert op.history[0].event.value == "planned" and op.history[0].by == ALICE.object_id


def test_an_old_move_without_by_reads_as_by_nobody() -> None:
    world = World()
    op = world.copy(ALICE, "a.bin")
    stored = json.loads(op.to_json())
    for move in stored["history"]:
        move.pop("by")
    assert Operation.from_json(json.dumps(stored).encode()).history[0].by is None


# -- a job and its items are its caller's ---------------------------------------------------


def test_a_job_and_its_items_are_its_callers_and_nobody_elses() -> None:
    world = World()
    job = world.job(ALICE)
    assert job.caller == Owner(ALICE.object_id or "", "Alice") and job_tags(job)["caller"] == ALICE.object_id
    items = run(world.service.jobs.items(job.id, ListQuery(None, 100, None), caller=ALICE)).items
    assert len(items) == 3 and {item.caller for item in items} == {job.caller}
    # An item's start is the job's batches', not a request: by nobody.
    assert all(move.by is None for item in items for move in item.history)
    nowhere = unknown_like(job.id)
    unknown = refused(world.service.jobs.get(nowhere, T0, caller=BOB), nowhere)
    jobs = world.service.jobs
    for call in (
        jobs.get(job.id, T0, caller=BOB),
        jobs.items(job.id, ListQuery(None, 100, None), caller=BOB),
        jobs.items(job.id, ListQuery(State.PENDING, 100, None), caller=BOB),
        jobs.report(job.id, caller=BOB),
        jobs.abort(job.id, T0, caller=BOB),
    ):
        assert refused(call, job.id) == unknown
    for item in items:
        with pytest.raises(NotFound):
            run(world.service.get(item.id, T0, caller=BOB))
    assert run(jobs.list(100, None, caller=BOB)).items == [] and world.listed(BOB) == []
    assert [seen.id for seen in run(jobs.list(100, None, caller=ALICE)).items] == [job.id]
    # The items are alice's copies too (never her job's record, which is tagged with her as well).
    assert world.listed(ALICE) == sorted(item.id for item in items) == world.listed(CAROL)
    assert [seen.id for seen in run(jobs.list(100, None, caller=CAROL)).items] == [job.id]
    assert run(jobs.get(job.id, T0, caller=CAROL)).id == job.id
    assert run(jobs.get(job.id, T0)).abort_requested_at is None  # bob's abort asked nothing


def test_a_jobs_abort_says_who_asked_and_its_items_abort_as_nobody() -> None:
    world = World()
    job = world.job(ALICE)
    aborted = run(world.service.jobs.abort(job.id, T0 + timedelta(seconds=1), caller=ALICE))
    assert [(move.event.value, move.by) for move in aborted.history] == [
        ("listing_done", None),
        ("abort_requested", ALICE.object_id),
    ]
    world.deliver(T0 + timedelta(seconds=1))
    ended = run(world.service.jobs.get(job.id, T0 + timedelta(seconds=2), caller=ALICE))
    assert ended.state is JobState.ABORTED and ended.caller == job.caller
    items = run(world.service.jobs.items(job.id, ListQuery(None, 100, None), caller=ALICE)).items
    assert all(move.by is None for item in items for move in item.history)
    assert [seen.id for seen in run(world.service.jobs.list(10, None, caller=ALICE)).items] == [job.id]


def test_each_callers_job_keys_are_its_own() -> None:
    world = World()
    body = {"source": {"container": "src", "prefix": "in/"}, "destination": {"container": "dst", "prefix": "o/"}}
    request = parse_job_request(body, SETTINGS, T0)
    first = run(world.service.jobs.start(request, T0, "k", caller=ALICE))
    other = run(world.service.jobs.start(request, T0, "k", caller=BOB))
    again = run(world.service.jobs.start(request, T0, "k", caller=ALICE))
    assert other.job.id != first.job.id and not other.replayed
    assert again.replayed and again.job.id == first.job.id


# -- events ---------------------------------------------------------------------------------


def test_the_events_carry_whose_record_ended() -> None:
    world = World()
    op = world.copy(ALICE, "a.bin")
    job = world.job(BOB)
    run(world.service.abort(op.id, T0 + timedelta(seconds=1), caller=ALICE))
    run(world.service.jobs.abort(job.id, T0 + timedelta(seconds=1), caller=BOB))
    world.deliver(T0 + timedelta(seconds=1))
    for step in range(3):
        run(sweep(world.service, T0 + timedelta(minutes=2 + step)))
        world.deliver(T0 + timedelta(minutes=2 + step))
    by_subject = {event.subject: event.data for event in world.heard.events}
    copy = by_subject[f"copies/{op.id}"]
    assert copy["caller"] == {"id": ALICE.object_id, "name": "Alice"}
    assert copy["history"][1] == {**copy["history"][1], "event": "abort_requested", "by": ALICE.object_id}
    assert by_subject[f"jobs/{job.id}"]["caller"] == {"id": BOB.object_id, "name": "Bob"}
    # A name only as the token gave it; nothing else of the caller (no roles, no groups).
    assert all(set(data["caller"]) == {"id", "name"} for data in by_subject.values())


# -- the index: what a caller's listing asks for is what it may see ---------------------------


@functools.cache
def an_operation() -> Operation:
    return World().copy(ALICE, "a.bin")


@functools.cache
def a_job() -> Job:
    return World().job(ALICE, blobs=0)


OBJECT_IDS = st.uuids().map(str)
ANY_NAME = st.none() | st.text(max_size=300)
# Azure's blob index tags: a value of letters, digits, space, + - . / : = _, at most 256 characters.
TAG_VALUE = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 +-./:=_")


def caller_with(object_id: str, name: str | None, admin: bool) -> Caller:
    roles = frozenset({"Copies.Admin"} if admin else {"Copies.Read"})
    return Caller(KnownBy.ENTRA, object_id, None, name, roles)


@given(OBJECT_IDS, ANY_NAME, st.sampled_from(State))
def test_a_record_is_tagged_with_its_callers_object_id_alone(object_id: str, name: str | None, state: State) -> None:
    op = dataclasses.replace(an_operation(), state=state, caller=owner_of(caller_with(object_id, name, False)))
    job = dataclasses.replace(a_job(), caller=op.caller)
    for tags in (record_tags(op), job_tags(job)):
        # Azure keeps ten tags a blob at most; the name is in no tag, whatever it holds.
        assert tags["caller"] == object_id and len(tags) <= 10
        assert all(set(value) <= TAG_VALUE and len(value) <= 256 for value in tags.values())
    assert Operation.from_json(op.to_json()).caller == op.caller == Owner(object_id, name)
    assert Job.from_json(job.to_json()).caller == op.caller


@given(
    OBJECT_IDS,
    st.none() | OBJECT_IDS,
    ANY_NAME,
    st.booleans(),
    st.sampled_from(State),
    st.none() | st.sampled_from(State),
)
def test_a_listing_asks_the_index_for_exactly_what_its_caller_may_see(
    owner_id: str, other_id: str | None, name: str | None, admin: bool, state: State, asked: State | None
) -> None:
    """The asker is the owner itself (no other id), or another caller; an admin, or not."""
    asker_id = other_id or owner_id
    owner, asker = caller_with(owner_id, name, False), caller_with(asker_id, None, admin)
    op = dataclasses.replace(an_operation(), state=state, caller=owner_of(owner))
    assert sees(asker, op.caller) is (admin or owner_id == asker_id)
    query = list_query(asker, asked)
    in_state = asked is None or asked is state
    if query is None:
        assert admin and asked is None
        return
    # The index (as the development kit's stand-in and the memory storage answer it: an AND of tags).
    found = matches(parse_query(query), "ledger", record_tags(op))
    assert found is (in_state and sees(asker, op.caller))
    # A job's record is never a copy's candidate, whoever owns it.
    job = dataclasses.replace(a_job(), caller=op.caller)
    assert not matches(parse_query(query), "ledger", job_tags(job))


def test_a_caller_who_is_no_admin_without_an_object_id_is_never_listed_for() -> None:
    with pytest.raises(ValueError, match="object id"):
        owner_query(Caller(KnownBy.ENTRA))
    assert owner_query(CAROL) is None and owner_query(KEY_CALLER) is None
    assert owner_of(KEY_CALLER) is None and owner_of(CAROL) == Owner(CAROL.object_id or "", "Carol")

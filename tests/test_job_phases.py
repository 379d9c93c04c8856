"""A job's machine, driven by its one table (copy_ops/jobs/phases.py), as an operation's is
(tests/test_phases.py): every row is made to happen by the function of jobs/moves.py that
makes its move, from a job in its phase; every move the table does not hold is refused;
every phase is reachable and ends; the docs' diagram and table are the table's. Then jobs
run to their end on the in-memory fakes keep a phase their fields agree with and the
history of their moves, in the writes they made before phases (no request more), and job
records written before phases were stored read in their phase and settle to their end."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from copy_ops.app_service import AppService
from copy_ops.background.dispatch import do_work
from copy_ops.copies.model import BlobRef, Terms
from copy_ops.core.errors import NotFound, StorageUnavailable
from copy_ops.core.settings import Settings
from copy_ops.jobs import moves, progress
from copy_ops.jobs.model import Enumeration, Job, JobState, Listing, PrefixSource, _phase_before_phases
from copy_ops.jobs.phases import MACHINE, TRANSITIONS, JobEvent, JobPhase
from copy_ops.jobs.records import JobLedger, job_tags
from copy_ops.jobs.request import parse_job_request
from copy_ops.jobs.views import job_view
from copy_ops.observability.events import Event
from devkit.worker import run
from tests.support import machines
from tests.support.memory import MemoryQueue, MemoryStorage

ROOT = Path(__file__).resolve().parents[1]
T0 = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
SETTINGS = Settings.from_env(
    {
        "COPY_STORAGE": "UseDevelopmentStorage=true",
        "COPY_SWEEP_CONCURRENCY": "4",
        "COPY_JOB_PAGE_SIZE": "10",
        # Reports of more than 100 items in parts (the least the setting takes).
        "COPY_JOB_REPORT_PART": "100",
        "COPY_ENGINE": "async",
    }
)


def in_phase(phase: JobPhase) -> Job:
    """A job in ``phase``, with every field any move reads set (its listing not done, so
    that a listing's end is a move from any phase)."""
    return Job(
        id="8204514400000-0a0a0a0a",
        state=JobState.SUCCEEDED if phase is JobPhase.ENDED else JobState.RUNNING,
        source=PrefixSource(Listing.OWN, "src", "in/", "http://127.0.0.1/devstoreaccount1/src"),
        manifest_size=0,
        destination_container="dst",
        destination_prefix="out/",
        terms=Terms(T0 + timedelta(minutes=10)),
        created_at=T0,
        fingerprint="f",
        enumeration=Enumeration(page=1, marker="in/10", items=10, batches=1, progressed_at=T0),
        phase=phase,
    )


# The function that makes each event's move: the only callers of the table.
EMITTERS: dict[JobEvent, Callable[[Job], Job]] = {
    JobEvent.ABORT_REQUESTED: lambda job: moves.abort_requested(job, T0),
    JobEvent.LISTING_DONE: lambda job: moves.checkpoint_moved(
        job, progress.page_done(job.enumeration, 5, None, T0, "attempt"), T0
    ),
    JobEvent.LISTING_STOPPED: lambda job: moves.checkpoint_moved(
        job, progress.stopped(job.enumeration, "the source could not be listed", None, T0), T0
    ),
    JobEvent.STOPPED: lambda job: moves.stopped_by_check(job, "the job was aborted", T0),
    JobEvent.BATCHES_DONE: lambda job: moves.batches_done(job, job.enumeration, T0),
    JobEvent.ITEMS_ENDED: lambda job: moves.reporting(job, JobState.SUCCEEDED, 1, T0, T0 + timedelta(minutes=2)),
    JobEvent.FINISHED: lambda job: moves.finished(job, JobState.SUCCEEDED, "reports/j.jsonl", T0, owed=True),
    JobEvent.ANNOUNCED: lambda job: moves.announced(job, T0),
}


def test_every_event_has_the_function_that_makes_its_move() -> None:
    assert set(EMITTERS) == set(JobEvent)


@pytest.mark.parametrize("row", machines.rows(MACHINE), ids=str)
def test_each_row_of_the_table_is_what_its_function_does(row: tuple[JobPhase, JobEvent]) -> None:
    machines.made(MACHINE, EMITTERS, in_phase, T0, row)


@pytest.mark.parametrize(("phase", "event"), machines.illegal(MACHINE), ids=str)
def test_a_move_the_table_does_not_hold_is_refused(phase: JobPhase, event: JobEvent) -> None:
    machines.refused(EMITTERS, in_phase, phase, event)


def test_a_page_that_is_not_the_last_moves_no_phase() -> None:
    job = in_phase(JobPhase.ENUMERATING)
    listed = moves.checkpoint_moved(job, progress.page_done(job.enumeration, 10, "in/20", T0, "attempt"), T0)
    assert (listed.phase, listed.history, listed.enumeration.page) == (JobPhase.ENUMERATING, (), 2)


def test_every_phase_is_reached_from_the_start_and_leads_to_the_end() -> None:
    machines.reached_and_ending(MACHINE)
    # Every live phase can be aborted; a job whose end is decided cannot.
    aborted = {phase for phase, event in TRANSITIONS if event is JobEvent.ABORT_REQUESTED}
    assert aborted == {JobPhase.ENUMERATING, JobPhase.RUNNING, JobPhase.STOPPING}


def test_the_docs_show_the_table_itself() -> None:
    machines.shown(MACHINE, ROOT / "docs" / "machines" / "job.md")


def test_the_api_document_names_every_phase_and_event() -> None:
    document = json.loads((ROOT / "copy_ops" / "openapi.json").read_text(encoding="utf-8"))
    job = document["components"]["schemas"]["Job"]["properties"]
    assert job["phase"]["enum"] == [phase.value for phase in JobPhase]
    assert job["history"]["items"]["properties"]["event"]["enum"] == [event.value for event in JobEvent]


def test_the_view_shows_the_phase_and_the_history_and_the_record_keeps_them() -> None:
    job = moves.stopped_by_check(moves.abort_requested(in_phase(JobPhase.ENUMERATING), T0), "the job was aborted", T0)
    view = job_view(job)
    assert view["phase"] == "stopping"
    assert view["history"] == [
        {"at": "2026-11-24T02:00:00.000000Z", "phase": "enumerating", "event": "abort_requested"},
        {"at": "2026-11-24T02:00:00.000000Z", "phase": "stopping", "event": "stopped", "reason": "the job was aborted"},
    ]
    assert Job.from_json(job.to_json()) == job


# -- jobs run to their end, on the in-memory fakes -------------------------------------------


class Targets:
    """An event target that refuses the first ``refusals`` deliveries, then takes them."""

    def __init__(self, refusals: int = 0) -> None:
        self.refusals = refusals
        self.events: list[Event] = []

    async def announce(self, events: Sequence[Event]) -> None:
        if self.refusals:
            self.refusals -= 1
            raise StorageUnavailable("the target is away", code="ServerBusy")
        self.events += events


class World:
    """Storage and a queue in memory; every write of a job record seen, and every request
    the job makes of storage and the queue counted by kind."""

    def __init__(self, blobs: int = 25, targets: Targets | None = None) -> None:
        self.storage = MemoryStorage()
        self.storage.pending = False
        self.queue = MemoryQueue()
        self.targets = targets or Targets()
        self.service = AppService(SETTINGS, self.storage, self.queue, self.targets)
        for i in range(blobs):
            self.storage.put(BlobRef("src", f"in/{i:03d}.bin"), b"x" * 3)
        self.written: list[bytes] = []
        self.requests: Counter[str] = Counter()
        self._watch()

    def _watch(self) -> None:
        for kind in ("create_document", "replace_document", "read_document", "put_document", "list_names"):
            self._count(kind)
        self._count("find_tagged")
        self._count("send", on=self.queue)

    def _count(self, kind: str, on: object = None) -> None:
        target = on if on is not None else self.storage
        real = getattr(target, kind)

        async def counted(*args: Any, **kwargs: Any) -> Any:
            name = str(args[1]) if kind.endswith("_document") and len(args) > 1 else ""
            self.requests[f"{kind}:{name.split('/', 1)[0]}" if name else kind] += 1
            if kind in ("create_document", "replace_document") and name.startswith("jobs/"):
                self.written.append(args[2])
            return await real(*args, **kwargs)

        setattr(target, kind, counted)

    def start(self, body: dict[str, object], now: datetime = T0) -> Job:
        return run(self.service.jobs.start(parse_job_request(body, SETTINGS, now), now)).job

    def deliver(self, now: datetime = T0, rounds: int = 100) -> None:
        for _ in range(rounds):
            messages = self.queue.take()
            if not messages:
                return
            for text in messages:
                run(do_work(self.service, text, now))

    def settle(self, job_id: str, now: datetime, rounds: int = 12) -> Job:
        """Checked and its messages delivered, time moving on, until it ended and owes nothing."""
        for _ in range(rounds):
            run(self.service.jobs.check(job_id, now, asked=True))
            self.deliver(now)
            job = run(self.service.jobs.records.read(job_id)).job
            if job.is_final and not job.announce_owed:
                return job
            now += progress.IN_FLIGHT
        raise AssertionError(f"job {job_id} did not end: {job}")

    def job(self, job_id: str) -> Job:
        return run(self.service.jobs.records.read(job_id)).job


def prefix_job(**fields: object) -> dict[str, object]:
    return {
        "source": {"container": "src", "prefix": "in/"},
        "destination": {"container": "dst", "prefix": "out/"},
        "timeout_seconds": 600,
        **fields,
    }


def events_of(job: Job) -> list[str]:
    return [move.event.value for move in job.history]


# The job record's requests (create, read, replace) in each run below, as the code before
# phases made them: the same runs counted the same way on 31d18eb. Each move is written in
# a write the job made anyway, so a phase and its history cost no request.
JOB_RECORD_REQUESTS_BEFORE_PHASES = {
    "listed whole": {"create_document:jobs": 1, "read_document:jobs": 13, "replace_document:jobs": 8},
    "aborted": {"create_document:jobs": 1, "read_document:jobs": 8, "replace_document:jobs": 8},
    "in parts": {"create_document:jobs": 1, "read_document:jobs": 66, "replace_document:jobs": 33},
    "refused": {"create_document:jobs": 1, "read_document:jobs": 5, "replace_document:jobs": 3},
}


def agreed_at_no_cost(world: World, run_name: str) -> None:
    """Each record written agrees with its fields, and the job record's requests were those
    of the same run before phases."""
    agree(world)
    record = {kind: count for kind, count in world.requests.items() if kind.endswith(":jobs")}
    assert record == JOB_RECORD_REQUESTS_BEFORE_PHASES[run_name]


def agree(world: World) -> None:
    """Every job record written says the phase its fields tell (as a record before phases
    is read): the phase moved with the fields, in the same write."""
    for raw in world.written:
        data = json.loads(raw)
        assert data["phase"] == _phase_before_phases(data), data


def test_a_job_listed_whole_runs_and_ends_and_its_event_is_announced() -> None:
    world = World(25)
    job = world.start(prefix_job())
    world.deliver()
    ended = world.settle(job.id, T0 + timedelta(seconds=20))
    assert (ended.state, ended.phase) == (JobState.SUCCEEDED, JobPhase.ENDED)
    assert events_of(ended) == ["listing_done", "finished", "announced"]
    assert [move.reason for move in ended.history[:2]] == ["25 items found", "succeeded: 25 items, 25 succeeded"]
    agreed_at_no_cost(world, "listed whole")


def test_an_abort_while_enumerating_stops_the_job_and_its_history_says_so() -> None:
    world = World(25)
    world.storage.pending = True
    job = world.start(prefix_job())
    [first_page] = world.queue.take()
    run(do_work(world.service, first_page, T0))  # a batch handed out, the next page queued
    world.queue.take()  # neither delivered yet
    run(world.service.jobs.abort(job.id, T0 + timedelta(seconds=1)))
    ended = world.settle(job.id, T0 + timedelta(seconds=2))
    assert (ended.state, ended.phase) == (JobState.ABORTED, JobPhase.ENDED)
    assert events_of(ended) == ["abort_requested", "stopped", "finished", "announced"]
    assert ended.history[1].reason == "the job was aborted"
    agreed_at_no_cost(world, "aborted")


def test_a_report_in_parts_is_a_phase_of_its_own() -> None:
    world = World(150)
    job = world.start(prefix_job())
    world.deliver()
    ended = world.settle(job.id, T0 + timedelta(seconds=20))
    assert events_of(ended) == ["listing_done", "items_ended", "finished", "announced"]
    assert ended.history[1].reason == "succeeded: the report in 16 parts"
    agreed_at_no_cost(world, "in parts")


def test_a_listing_refused_ends_the_listing_early_and_the_job_fails() -> None:
    world = World(3)

    async def refused(*args: object) -> None:
        raise NotFound("no container nosuch", code="ContainerNotFound")

    world.storage.list_source = refused  # type: ignore[method-assign,assignment]
    job = world.start(prefix_job())
    world.deliver()
    ended = world.settle(job.id, T0 + timedelta(seconds=20))
    assert (ended.state, events_of(ended)) == (JobState.FAILED, ["listing_stopped", "finished", "announced"])
    assert "could not be listed" in (ended.history[0].reason or "")
    agreed_at_no_cost(world, "refused")


def test_an_event_refused_stays_owed_with_no_line_until_a_target_takes_it() -> None:
    world = World(3, Targets(refusals=100))
    job = world.start(prefix_job())
    world.deliver()  # the listing's end asks for a check: the job ends, its event refused
    owed = world.job(job.id)
    assert (owed.announce_owed, events_of(owed)) == (True, ["listing_done", "finished"])
    world.targets.refusals = 0
    ended = world.settle(job.id, T0 + timedelta(minutes=1))
    assert events_of(ended)[-1] == "announced" and len(world.targets.events) == 1


# -- job records written before phases were stored -------------------------------------------

BEFORE = sorted((ROOT / "tests" / "data" / "jobs-before-phases").glob("*.json"))
PHASE_BEFORE = {
    "prefix-started": JobPhase.ENUMERATING,
    "prefix-listing": JobPhase.ENUMERATING,
    "manifest-started": JobPhase.ENUMERATING,
    "enumerating-abort-requested": JobPhase.ENUMERATING,
    "running": JobPhase.RUNNING,
    "running-abort-requested": JobPhase.RUNNING,
    "running-listing-refused": JobPhase.RUNNING,
    "stopping-aborted": JobPhase.STOPPING,
    "stopping-deadline": JobPhase.STOPPING,
    "closing-report-owed": JobPhase.REPORTING,
    "ended-event-owed": JobPhase.ENDED,
    "ended-succeeded": JobPhase.ENDED,
    "ended-aborted": JobPhase.ENDED,
}


def test_every_job_record_written_before_phases_is_kept() -> None:
    assert {path.stem for path in BEFORE} == set(PHASE_BEFORE)


@pytest.mark.parametrize("path", BEFORE, ids=lambda path: path.stem)
def test_a_job_record_written_before_phases_reads_in_its_phase_and_settles(path: Path) -> None:
    raw = path.read_bytes()
    assert b'"phase"' not in raw and b'"history"' not in raw
    job = Job.from_json(raw)
    assert (job.phase, job.history) == (PHASE_BEFORE[path.stem], ())
    assert Job.from_json(job.to_json()) == job  # written again, the phase is stored
    # Settled as the sweep would, past its deadline: whatever it was doing, it ends.
    world = World(0)
    container = SETTINGS.ledger_container
    run(world.storage.ensure_container(container))
    run(world.storage.create_document(container, JobLedger.record_name(job.id), raw, job_tags(job)))
    world.written.clear()
    ended = world.settle(job.id, job.terms.deadline + timedelta(minutes=5))
    assert (ended.is_final, ended.phase, ended.announce_owed) == (True, JobPhase.ENDED, False)
    # Its moves from here: its end (if it had not ended), and its event (if it owed one).
    expected = ["finished", "announced"] if job.phase is not JobPhase.ENDED else ["announced"] * job.announce_owed
    assert events_of(ended)[-len(expected) or len(ended.history) :] == expected
    agree(world)


def test_a_new_job_starts_enumerating_with_no_history() -> None:
    world = World(3)
    job = world.start(prefix_job())
    assert (job.phase, job.history) == (MACHINE.first, ())

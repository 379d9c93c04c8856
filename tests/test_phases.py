"""An operation's machine, driven by its one table (copy_ops/copies/phases.py): every row is
made to happen by the lifecycle function that emits its event, from a record in its phase;
every move the table does not hold is refused; every phase is reachable and ends; the docs'
diagram and table are the table's; records written before phases were stored read and end.
Pure: no storage (the records are settled on the in-memory fake, as tests/test_service_logic.py)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from copy_ops.app_service import AppService
from copy_ops.copies import block_lifecycle as rules
from copy_ops.copies import blocks, lifecycle, retry
from copy_ops.copies.lifecycle import Timing
from copy_ops.copies.model import (
    AbortReason,
    BlobRef,
    BlockState,
    Engine,
    ErrorCode,
    Operation,
    OperationError,
    SourceFacts,
    State,
    Terms,
)
from copy_ops.copies.phases import HISTORY_KEPT, MACHINE, TRANSITIONS, Event, Move, Phase
from copy_ops.core.settings import Settings
from devkit.worker import run
from tests.support import machines
from tests.support.memory import MemoryQueue, MemoryStorage

ROOT = Path(__file__).resolve().parents[1]
T0 = datetime(2026, 12, 6, 5, 0, tzinfo=UTC)
TIMING = Timing(timedelta(seconds=300), timedelta(seconds=15), timedelta(seconds=300))
SETTINGS = Settings.from_env({"COPY_STORAGE": "UseDevelopmentStorage=true"})
FACTS = SourceFacts(size=3 * blocks.BLOCK_SIZE, etag='"src"', content={}, metadata={})


def in_phase(phase: Phase) -> Operation:
    """A record in ``phase``, with every field any move reads set."""
    return Operation(
        id="8203468800000-0a0a0a0a",
        state=State.ABORTED if phase is Phase.ENDED else State.PENDING,
        source="https://partner.example.net/c/a.bin",
        destination=BlobRef("dst", "b.bin"),
        terms=Terms(T0 + timedelta(hours=1), engine=Engine.BLOCKS),
        created_at=T0,
        copy_id="c0ffee00-0000-4000-8000-000000000001",
        source_size=FACTS.size,
        blocks=BlockState(source_etag='"src"', staged="0-2", commit_sent_at=T0, condition_etag='"leftover"'),
        phase=phase,
    )


def with_retries(op: Operation) -> Operation:
    return dataclasses.replace(op, terms=dataclasses.replace(op.terms, retry_attempts=3))


NOT_STARTED = OperationError(ErrorCode.NOT_STARTED, "the copy was never started")


# The lifecycle function that emits each event: the only callers of next_phase.
EMITTERS: dict[Event, Callable[[Operation], Operation | None]] = {
    Event.STARTED: lambda op: lifecycle.adopted(op, "c0ffee00-0000-4000-8000-000000000002", T0),
    Event.ESCALATED: lambda op: rules.escalating(op, T0),
    Event.LEFTOVER_FOUND: lambda op: rules.leftover_found(op, '"leftover"', T0),
    Event.ABORT_REQUESTED: lambda op: lifecycle.request_abort(op, T0),
    Event.PLANNED: lambda op: rules.planned(op, FACTS, T0),
    Event.COMMIT_SENT: lambda op: rules.sending_commit(op, T0),
    Event.COMMIT_MISSED: lambda op: rules.restaging(op, frozenset({0}), T0),
    Event.ATTEMPT_FAILED: lambda op: retry.retrying(with_retries(op), NOT_STARTED, T0, TIMING.start_grace),
    Event.RETRIED: lambda op: retry.retried(op, T0, TIMING.start_grace),
    Event.FINISHED: lambda op: lifecycle.finish(op, State.ABORTED, T0, TIMING, abort_reason=AbortReason.REQUESTED),
}


def test_every_event_has_the_function_that_emits_it() -> None:
    assert set(EMITTERS) == set(Event)


@pytest.mark.parametrize("row", machines.rows(MACHINE), ids=str)
def test_each_row_of_the_table_is_what_its_function_does(row: tuple[Phase, Event]) -> None:
    machines.made(MACHINE, EMITTERS, in_phase, T0, row)


@pytest.mark.parametrize(("phase", "event"), machines.illegal(MACHINE), ids=str)
def test_a_move_the_table_does_not_hold_is_refused(phase: Phase, event: Event) -> None:
    machines.refused(EMITTERS, in_phase, phase, event)


def test_every_phase_is_reached_from_the_record_and_leads_to_the_end() -> None:
    machines.reached_and_ending(MACHINE)
    assert all((phase, Event.FINISHED) in TRANSITIONS for phase in Phase if phase is not Phase.ENDED)
    assert not [move for move in TRANSITIONS if move[0] is Phase.ENDED]


def test_the_docs_show_the_table_itself() -> None:
    machines.shown(MACHINE, ROOT / "docs" / "machines" / "copy.md")


def test_the_api_document_names_every_phase() -> None:
    document = json.loads((ROOT / "copy_ops" / "openapi.json").read_text(encoding="utf-8"))
    assert document["components"]["schemas"]["Operation"]["properties"]["phase"]["enum"] == [p.value for p in Phase]


BEFORE = sorted((ROOT / "tests" / "data" / "records-before-phases").glob("*.json"))
PHASE_BEFORE = {
    "async-recorded": Phase.RECORDED,
    "async-copying": Phase.COPYING,
    "async-abort-requested": Phase.COPYING,
    "escalating": Phase.ESCALATING,
    "escalated-planning": Phase.PLANNING,
    "escalated-staging": Phase.STAGING,
    "blocks-recorded": Phase.RECORDED,
    "blocks-staging": Phase.STAGING,
    "blocks-committing": Phase.COMMITTING,
    "blocks-one-request": Phase.COMMITTING,
    "ended-aborted": Phase.ENDED,
    "ended-succeeded-blocks": Phase.ENDED,
}


@pytest.mark.parametrize("path", BEFORE, ids=lambda path: path.stem)
def test_a_record_written_before_phases_reads_in_its_phase_and_moves_on(path: Path) -> None:
    raw = path.read_bytes()
    assert b'"phase"' not in raw
    op = Operation.from_json(raw)
    assert op.phase is PHASE_BEFORE[path.stem]
    assert Operation.from_json(op.to_json()) == op  # written again, the phase is stored
    # Settled as the sweep would, past its deadline: whatever it was doing, it ends.
    service = AppService(SETTINGS, MemoryStorage(), MemoryQueue())
    run(service.ledger.create(op, T0))
    later = op.terms.deadline + timedelta(minutes=5)
    for _ in range(3):
        run(service.process_due(op.id, later))
        later += timedelta(minutes=5)
    ended = run(service.ledger.get(op.id))
    assert (ended.is_final, ended.phase) == (True, Phase.ENDED), ended


def test_every_record_written_before_phases_is_kept() -> None:
    assert {path.stem for path in BEFORE} == set(PHASE_BEFORE)


def test_a_new_record_starts_recorded() -> None:
    fresh = dataclasses.replace(in_phase(Phase.RECORDED), copy_id=None)
    assert fresh.phase is Phase.RECORDED


def test_the_history_keeps_the_latest_moves_and_says_why_a_copy_ended() -> None:
    op = in_phase(Phase.STAGING)
    for _ in range(HISTORY_KEPT + 5):
        op = rules.sending_commit(op, T0)  # staging, then committing again and again
    assert len(op.history) == HISTORY_KEPT and all(move.event is Event.COMMIT_SENT for move in op.history)
    ended = lifecycle.finish(op, State.ABORTED, T0, TIMING, abort_reason=AbortReason.DEADLINE)
    assert len(ended.history) == HISTORY_KEPT
    assert ended.history[-1] == Move(T0, Phase.ENDED, Event.FINISHED, "aborted: deadline")
    assert Operation.from_json(dataclasses.replace(ended, updated_at=T0).to_json()).history == ended.history

"""Where an operation is in its machine: its phase, the events that move it, and the one
table of every move. Pure.

One operation, one phase, stored on its record: a copy by Copy Blob (``recorded`` then
``copying``), the block engine (``recorded`` or ``planning``, then ``staging``, then
``committing``), and the escalation between them (``copying`` to ``escalating`` to
``planning``); every one of them ends in ``ended`` (its final state, and the cleanup that
state still owes, are the record's own fields). :func:`next_phase` is the only way a phase
changes (a wall in tests/test_walls.py): a move the table does not hold is a bug, raised,
never written. An abort asked for is no phase: it is a request on the record, carried out
by the machine's own next move (``ended``). docs/machines/copy.md is generated from
:data:`TRANSITIONS` (``scripts/machines.py``; a test keeps the two the same).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from copy_ops.core.times import format_time, parse_time


class Phase(StrEnum):
    # The write-ahead record: nothing of its copy is known to have started.
    RECORDED = "recorded"
    # Copy Blob started, its copy pending on the destination (the async engine).
    COPYING = "copying"
    # An async copy of ``auto`` handed to the block engine: its Copy Blob being aborted,
    # what it left on the destination not known yet.
    ESCALATING = "escalating"
    # Escalated, its leftover known (the blob the commit will replace): no plan yet.
    PLANNING = "planning"
    # The source pinned by its ETag, the plan made: blocks handed out and staged.
    STAGING = "staging"
    # The commit (Put Block List, or the one Put Blob From URL) sent: it lands within its
    # grace, or never.
    COMMITTING = "committing"
    # A final state recorded (``state``); the cleanup it owes is on the record.
    ENDED = "ended"


class Event(StrEnum):
    # An abort asked for (on request, or a job's): no move of its own, a line of the
    # history; the machine's next move carries it out.
    ABORT_REQUESTED = "abort_requested"
    # Copy Blob answered pending (or the sweep found our copy on the destination).
    STARTED = "started"
    # ``auto``'s share of the time gone with the copy still pending: handed to the blocks.
    ESCALATED = "escalated"
    # The escalated copy stopped; its leftover on the destination recorded.
    LEFTOVER_FOUND = "leftover_found"
    # The source read and pinned, its blocks planned.
    PLANNED = "planned"
    # A commit recorded as sent (again, after one that never landed).
    COMMIT_SENT = "commit_sent"
    # A commit refused for blocks the destination lost: those blocks staged again.
    COMMIT_MISSED = "commit_missed"
    # A final state recorded: succeeded, failed or aborted.
    FINISHED = "finished"


_LIVE = (Phase.RECORDED, Phase.COPYING, Phase.ESCALATING, Phase.PLANNING, Phase.STAGING, Phase.COMMITTING)

# (phase, event) -> the phase it moves to, and why the move is made (the table's last
# column in the docs).
TRANSITIONS: dict[tuple[Phase, Event], tuple[Phase, str]] = {
    (Phase.RECORDED, Event.STARTED): (Phase.COPYING, "Copy Blob answered pending; its copy id recorded"),
    (Phase.COPYING, Event.ESCALATED): (Phase.ESCALATING, "auto: still pending at its share of the time"),
    (Phase.ESCALATING, Event.LEFTOVER_FOUND): (Phase.PLANNING, "the async copy aborted; its leftover recorded"),
    (Phase.RECORDED, Event.PLANNED): (Phase.STAGING, "the block engine's start: source pinned, blocks planned"),
    (Phase.PLANNING, Event.PLANNED): (Phase.STAGING, "the escalated copy's plan made"),
    (Phase.STAGING, Event.COMMIT_SENT): (Phase.COMMITTING, "every block staged (or the one request sent)"),
    (Phase.COMMITTING, Event.COMMIT_SENT): (Phase.COMMITTING, "a commit that never landed, sent again in time"),
    (Phase.COMMITTING, Event.COMMIT_MISSED): (Phase.STAGING, "blocks the destination lost, staged again"),
    **{(phase, Event.FINISHED): (Phase.ENDED, "a final state recorded") for phase in _LIVE},
    **{(phase, Event.ABORT_REQUESTED): (phase, "an abort asked for; the next move carries it out") for phase in _LIVE},
}
# The moves a record keeps (its history), the latest ones: a copy moves through at most
# seven, an abort asked for and a commit sent again add one each.
HISTORY_KEPT = 16


class IllegalTransition(AssertionError):
    """A move the table does not hold: a bug in the code that asked for it."""


def next_phase(phase: Phase, event: Event) -> Phase:
    """The phase ``event`` moves ``phase`` to; :class:`IllegalTransition` if none."""
    try:
        return TRANSITIONS[phase, event][0]
    except KeyError:
        raise IllegalTransition(f"no move from {phase} on {event}") from None


@dataclass(frozen=True)
class Move:
    """One line of a record's history: when, the phase it moved to, on what, and why."""

    at: datetime
    phase: Phase
    event: Event
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"at": format_time(self.at, exact=True), "phase": self.phase.value, "event": self.event.value} | (
            {"reason": self.reason} if self.reason else {}
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Move:
        return cls(parse_time(data["at"]), Phase(data["phase"]), Event(data["event"]), data.get("reason"))


def moved(
    phase: Phase, history: tuple[Move, ...], event: Event, at: datetime, reason: str | None = None
) -> dict[str, Any]:
    """A record's fields once it moves on ``event`` at ``at``: its next phase (the table's),
    and its history with the move, the latest :data:`HISTORY_KEPT` kept."""
    to = next_phase(phase, event)
    return {"phase": to, "history": (*history, Move(at, to, event, reason))[-HISTORY_KEPT:]}


def mermaid() -> str:
    """The state diagram of :data:`TRANSITIONS` (Mermaid, as GitHub renders it)."""
    lines = ["stateDiagram-v2", f"    [*] --> {Phase.RECORDED}"]
    lines += [f"    {phase} --> {to}: {event}" for (phase, event), (to, _) in TRANSITIONS.items()]
    lines.append(f"    {Phase.ENDED} --> [*]")
    return "\n".join(lines)


def table() -> str:
    """:data:`TRANSITIONS` as a Markdown table."""
    rows = ["| phase | event | next phase | when |", "| --- | --- | --- | --- |"]
    rows += [f"| `{phase}` | `{event}` | `{to}` | {why} |" for (phase, event), (to, why) in TRANSITIONS.items()]
    return "\n".join(rows)

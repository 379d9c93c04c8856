"""Where an operation is in its machine: its phase, the events that move it, and the one
table of every move. Pure: the enums and the table alone (the machine that reads the
table, generic over its enums, is :mod:`copy_ops.core.machines`).

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

from enum import StrEnum

from copy_ops.core.machines import IllegalTransition, Machine, Move

__all__ = ["HISTORY_KEPT", "MACHINE", "TRANSITIONS", "Event", "IllegalTransition", "Move", "Phase"]
__all__ += ["mermaid", "moved", "next_phase", "table"]


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
    # An attempt failed for a cause that may pass; the next waits for its backoff (the failed
    # attempt's copy id kept: its leftover is ours). The next attempt's send starts here too.
    RETRYING = "retrying"
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
    # An attempt failed for a cause that may pass, with room for another (copy_ops.copies.retry).
    ATTEMPT_FAILED = "attempt_failed"
    # The next attempt recorded, before its Copy Blob or its plan is sent.
    RETRIED = "retried"
    # A final state recorded: succeeded, failed or aborted.
    FINISHED = "finished"


_LIVE = (
    Phase.RECORDED,
    Phase.COPYING,
    Phase.ESCALATING,
    Phase.PLANNING,
    Phase.STAGING,
    Phase.COMMITTING,
    Phase.RETRYING,
)
# The phases an attempt can fail in: not started, Copy Blob's copy failed, the blocks kept
# failing; and a retry's own send (retrying again). auto's escalation is no attempt.
_ATTEMPTING = (Phase.RECORDED, Phase.COPYING, Phase.STAGING, Phase.RETRYING)

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
    **{(phase, Event.ATTEMPT_FAILED): (Phase.RETRYING, "an attempt failed; another has room") for phase in _ATTEMPTING},
    (Phase.RETRYING, Event.RETRIED): (Phase.RETRYING, "its backoff over: the next attempt recorded"),
    (Phase.RETRYING, Event.STARTED): (Phase.COPYING, "the next attempt's Copy Blob answered pending"),
    (Phase.RETRYING, Event.PLANNED): (Phase.STAGING, "the next attempt's plan: the blocks staged kept"),
    **{(phase, Event.FINISHED): (Phase.ENDED, "a final state recorded") for phase in _LIVE},
    **{(phase, Event.ABORT_REQUESTED): (phase, "an abort asked for; the next move carries it out") for phase in _LIVE},
}
# The moves a record keeps (its history), the latest ones: a copy moves through at most
# seven, an abort asked for and a commit sent again add one each, and each attempt after
# the first about four (copy_ops.copies.retry.MOST_ATTEMPTS of them at most).
HISTORY_KEPT = 48


# The one machine of an operation's moves; the names below are its functions, as every
# module and test calls them.
MACHINE = Machine(Phase, Event, Phase.RECORDED, Phase.ENDED, TRANSITIONS, HISTORY_KEPT)
next_phase = MACHINE.next_phase
moved = MACHINE.moved
mermaid = MACHINE.mermaid
table = MACHINE.table

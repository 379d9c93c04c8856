"""Where a job is in its machine: its phase, the events that move it, and the one table of
every move. Pure: the enums and the table alone (the machine that reads the table is
:mod:`copy_ops.core.machines`; the functions that make each move, :mod:`copy_ops.jobs.moves`).

A job lists its source (or starts its manifest's chunks), runs until every item it found
has ended, writes its report, and ends. Its phase is stored on its record beside what the
API shows (``state``: enumerating, running, then the final state) and the checkpoint's own
fields, and changes only by :data:`MACHINE` (a wall in tests/test_walls.py): a move the
table does not hold is a bug, raised, never written. An abort asked for is no phase: the
job's next check carries it out. The final state's event an ended job still owes is a flag
on the record (``announce_owed``), not a phase; its sending is a line of the history. A page
listed moves no phase (a job lists thousands): the checkpoint says how far the listing is.
docs/machines/job.md is generated from :data:`TRANSITIONS` (``scripts/machines.py``).
"""

from __future__ import annotations

from enum import StrEnum

from copy_ops.core.machines import Machine


class JobPhase(StrEnum):
    # Its source listed page by page (or its manifest's chunks started): items handed out.
    ENUMERATING = "enumerating"
    # Every item it will have is found (listed to its end, or the listing stopped early):
    # its check waits for the batches out, then for every item to end.
    RUNNING = "running"
    # Stopped by its check (an abort, the deadline): no item starts any more; it ends once
    # the batches under way are done (at most a minute), with the items it has.
    STOPPING = "stopping"
    # Every item ended, the final state decided: the report written in parts on the work
    # queue, the final state recorded once every part is.
    REPORTING = "reporting"
    # A final state recorded (``state``), with its report; the event it owes is a flag.
    ENDED = "ended"


class JobEvent(StrEnum):
    # An abort asked for: no move of its own, a line of the history; the next check stops
    # the job and aborts its pending items.
    ABORT_REQUESTED = "abort_requested"
    # The last page listed, or the last manifest chunk started.
    LISTING_DONE = "listing_done"
    # The listing ended before the end of its source: refused, an abort or the deadline met
    # by a page, or what it needs lost (a manifest chunk's message, the caller's SAS).
    LISTING_STOPPED = "listing_stopped"
    # Its check met an abort or the deadline with the listing unfinished or batches out.
    STOPPED = "stopped"
    # Every batch of a stopped job listed whole is done or stopped: it ends once the blob
    # index has caught up, not a minute after its stop.
    BATCHES_DONE = "batches_done"
    # Every item ended, with more of them than one report part holds: the parts sent.
    ITEMS_ENDED = "items_ended"
    # The final state recorded, its report written whole.
    FINISHED = "finished"
    # The final state's event taken by a target.
    ANNOUNCED = "announced"


# The phases of a job whose end is decided (its report being written, or ended): it starts
# no item, and an abort asked for is answered with that end.
DECIDED = (JobPhase.REPORTING, JobPhase.ENDED)

_LISTED = (JobPhase.RUNNING, JobPhase.STOPPING)
_LIVE = (JobPhase.ENUMERATING, *_LISTED)
_P, _E = JobPhase, JobEvent

# (phase, event) -> the phase it moves to, and why the move is made (the table's last
# column in the docs).
TRANSITIONS: dict[tuple[JobPhase, JobEvent], tuple[JobPhase, str]] = {
    (_P.ENUMERATING, _E.LISTING_DONE): (_P.RUNNING, "every page listed, or every chunk started"),
    (_P.ENUMERATING, _E.LISTING_STOPPED): (_P.RUNNING, "the listing ended early: the job is the items it found"),
    (_P.ENUMERATING, _E.STOPPED): (_P.STOPPING, "an abort or the deadline: no item starts any more"),
    (_P.RUNNING, _E.STOPPED): (_P.STOPPING, "an abort or the deadline, with batches out or cut"),
    (_P.STOPPING, _E.BATCHES_DONE): (_P.STOPPING, "no batch under way: it ends once the index caught up"),
    **{(phase, _E.ITEMS_ENDED): (_P.REPORTING, "every item ended: the report written in parts") for phase in _LISTED},
    **{(phase, _E.FINISHED): (_P.ENDED, "every item ended: the report written, the state final") for phase in _LISTED},
    (_P.REPORTING, _E.FINISHED): (_P.ENDED, "every part of the report written: the state final"),
    (_P.ENDED, _E.ANNOUNCED): (_P.ENDED, "the final state's event taken by a target"),
    **{(phase, _E.ABORT_REQUESTED): (phase, "an abort asked for; the next check carries it out") for phase in _LIVE},
}
# The moves a job keeps (its history), the latest ones: a job moves at most seven times
# (an abort asked for, its listing's end, a stop, its batches done, its report's parts, its
# end, its event), so its history is whole.
HISTORY_KEPT = 16

MACHINE = Machine(JobPhase, JobEvent, JobPhase.ENUMERATING, JobPhase.ENDED, TRANSITIONS, HISTORY_KEPT)

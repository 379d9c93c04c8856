"""A record's machine: its phases, the events that move it, the one table of its moves, the
history it keeps of them, and the table's diagram and Markdown. Pure.

Each record that moves through phases declares its own enums and table, and nothing more:
an operation (:mod:`copy_ops.copies.phases`, docs/machines/copy.md) and a job
(:mod:`copy_ops.jobs.phases`, docs/machines/job.md). :meth:`Machine.next_phase` is the only
way a phase changes (a wall in tests/test_walls.py): a move the table does not hold is a
bug, raised, never written. :meth:`Machine.moved` gives a record's fields once it moved:
its next phase and its history with the move, written in the record's own write.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Generic, TypeVar

from copy_ops.core.times import format_time, parse_time

P = TypeVar("P", bound=StrEnum)
E = TypeVar("E", bound=StrEnum)


class IllegalTransition(AssertionError):
    """A move the table does not hold: a bug in the code that asked for it."""


@dataclass(frozen=True)
class Move(Generic[P, E]):
    """One line of a record's history: when, the phase it moved to, on what, why, and by
    whom: the object id of the caller whose request made the move (a start, an abort asked
    for); None for the moves the app makes on its own (the sweep, the work queue), and for a
    key's holder, whom a key does not name."""

    at: datetime
    phase: P
    event: E
    reason: str | None = None
    by: str | None = None

    def as_dict(self) -> dict[str, Any]:
        shown = {"at": format_time(self.at, exact=True), "phase": self.phase.value, "event": self.event.value}
        if self.reason:
            shown["reason"] = self.reason
        if self.by:
            shown["by"] = self.by
        return shown


@dataclass(frozen=True)
class Machine(Generic[P, E]):
    """A machine's table: (phase, event) -> the phase it moves to, and why the move is made
    (the docs' last column); ``first``, a new record's phase; ``last``, where every record
    ends; ``kept``, how many of its latest moves a record keeps."""

    phases: type[P]
    events: type[E]
    first: P
    last: P
    transitions: Mapping[tuple[P, E], tuple[P, str]]
    kept: int

    def next_phase(self, phase: P, event: E) -> P:
        """The phase ``event`` moves ``phase`` to; :class:`IllegalTransition` if none."""
        try:
            return self.transitions[phase, event][0]
        except KeyError:
            raise IllegalTransition(f"no move from {phase} on {event}") from None

    def moved(
        self,
        phase: P,
        history: tuple[Move[P, E], ...],
        event: E,
        at: datetime,
        reason: str | None = None,
        *,
        by: str | None = None,
    ) -> dict[str, Any]:
        """A record's fields once it moves on ``event`` at ``at`` (``by``: the caller who
        asked for it, if one did): its next phase (the table's), and its history with the
        move, the latest ``kept`` kept."""
        to = self.next_phase(phase, event)
        return {"phase": to, "history": (*history, Move(at, to, event, reason, by))[-self.kept :]}

    def history_of(self, stored: Iterable[Mapping[str, Any]] | None) -> tuple[Move[P, E], ...]:
        """A record's history as it was stored (a record written before it had none; a move
        written before moves named who made them, by nobody)."""
        return tuple(
            Move(
                parse_time(item["at"]),
                self.phases(item["phase"]),
                self.events(item["event"]),
                item.get("reason"),
                item.get("by"),
            )
            for item in stored or ()
        )

    def mermaid(self) -> str:
        """The state diagram of the table (Mermaid, as GitHub renders it)."""
        lines = ["stateDiagram-v2", f"    [*] --> {self.first}"]
        lines += [f"    {phase} --> {to}: {event}" for (phase, event), (to, _) in self.transitions.items()]
        lines.append(f"    {self.last} --> [*]")
        return "\n".join(lines)

    def table(self) -> str:
        """The table in Markdown."""
        rows = ["| phase | event | next phase | when |", "| --- | --- | --- | --- |"]
        rows += [
            f"| `{phase}` | `{event}` | `{to}` | {why} |" for (phase, event), (to, why) in self.transitions.items()
        ]
        return "\n".join(rows)

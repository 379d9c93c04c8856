"""A machine's table driven by its tests, the same way for every machine (an operation's:
tests/test_phases.py; a job's: tests/test_job_phases.py): each row made to happen by the
function that makes its move, every other (phase, event) refused, every phase reached from
the first and leading to the last, and the machine's page showing the table itself."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from copy_ops.core.machines import IllegalTransition, Machine, Move

# A machine's record in a phase (built by the test), and what each event's function makes of it.
InPhase = Callable[[Any], Any]
Emitters = Mapping[Any, Callable[[Any], Any]]


def rows(machine: Machine[Any, Any]) -> list[tuple[Any, Any]]:
    """Every (phase, event) the table holds."""
    return list(machine.transitions)


def illegal(machine: Machine[Any, Any]) -> list[tuple[Any, Any]]:
    """Every (phase, event) the table does not hold."""
    every = [(phase, event) for phase in machine.phases for event in machine.events]
    return [row for row in every if row not in machine.transitions]


def made(machine: Machine[Any, Any], emitters: Emitters, in_phase: InPhase, at: datetime, row: tuple[Any, Any]) -> None:
    """The row's event, made by its function from a record in the row's phase, moves the
    record to the row's next phase and adds that move to its history, at ``at``."""
    phase, event = row
    to = machine.next_phase(phase, event)
    before = in_phase(phase)
    after = emitters[event](before)
    assert after.phase is to
    assert after.history[-1] == Move(at, to, event, after.history[-1].reason)
    assert after.history[:-1] == before.history


def refused(emitters: Emitters, in_phase: InPhase, phase: Any, event: Any) -> None:
    with pytest.raises(IllegalTransition):
        emitters[event](in_phase(phase))


def reached_and_ending(machine: Machine[Any, Any]) -> None:
    """Every phase is reached from the first, and leads to the last, which it never leaves."""
    moves = {(phase, to) for (phase, _), (to, _) in machine.transitions.items()}
    phases = {phase for phase in machine.phases}  # (set() takes no type[Any], for mypy)
    reached, frontier = {machine.first}, [machine.first]
    while frontier:
        here = frontier.pop()
        more = {to for phase, to in moves if phase is here} - reached
        reached |= more
        frontier += more
    assert reached == phases
    ending = {machine.last}
    while more := {phase for phase, to in moves if to in ending} - ending:
        ending |= more
    assert ending == phases, f"no way to {machine.last} from {phases - ending}"
    assert all(to is machine.last for phase, to in moves if phase is machine.last)


def shown(machine: Machine[Any, Any], page: Path) -> None:
    """The page holds the table's diagram and the table itself."""
    text = page.read_text(encoding="utf-8")
    assert f"```mermaid\n{machine.mermaid()}\n```" in text, "run: .venv/bin/python scripts/machines.py"
    assert machine.table() in text, "run: .venv/bin/python scripts/machines.py"

"""The CloudEvent of an operation's final state (pure): its data is the API's view."""

from __future__ import annotations

from copy_ops.copies.model import Operation
from copy_ops.copies.views import operation_view
from copy_ops.observability.events import Event, event_of


def operation_event(op: Operation, destination_url: str | None) -> Event:
    """``copyops.copy.<state>`` for an operation in its final state."""
    assert op.is_final, op.state
    when = op.finished_at or op.updated_at or op.created_at
    return event_of("copy", "copies", op.id, op.state.value, when=when, data=operation_view(op, destination_url))

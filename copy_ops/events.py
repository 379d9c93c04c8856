"""CloudEvents 1.0 for final states, built here (pure); the adapter sends them.

An event's ``id`` is derived from what it announces (the operation or job and its final
state), so every delivery of it, the writer's or a later sweep's, carries the same id
and a consumer deduplicates by it. Its ``data`` is the API's view: no secret.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from copy_ops.model import Operation
from copy_ops.times import format_time
from copy_ops.views import operation_view

SPEC_VERSION = "1.0"
SOURCE = "/copy-ops"
# Event ids are UUIDs in this namespace (uuid5 of what the event announces).
NAMESPACE = uuid.UUID("6f4c1f0e-2b1d-5a7e-9a59-3f1c0c0f0e01")


@dataclass(frozen=True)
class Event:
    id: str
    type: str
    subject: str
    time: str
    data: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        """The event in CloudEvents' structured JSON form."""
        return {
            "specversion": SPEC_VERSION,
            "id": self.id,
            "source": SOURCE,
            "type": self.type,
            "subject": self.subject,
            "time": self.time,
            "datacontenttype": "application/json",
            "data": self.data,
        }

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), separators=(",", ":"), sort_keys=True)


def operation_event(op: Operation, destination_url: str | None) -> Event:
    """``copyops.copy.<state>`` for an operation in its final state."""
    assert op.is_final, op.state
    when = op.finished_at or op.updated_at or op.created_at
    return event_of("copy", "copies", op.id, op.state.value, when=when, data=operation_view(op, destination_url))


def event_of(kind: str, collection: str, ident: str, state: str, *, when: datetime, data: dict[str, Any]) -> Event:
    return Event(
        # What it announces, and only that: every delivery of it carries the same id.
        id=str(uuid.uuid5(NAMESPACE, f"{kind}/{ident}/{state}")),
        type=f"copyops.{kind}.{state}",
        subject=f"{collection}/{ident}",
        time=format_time(when),
        data=data,
    )

"""CloudEvents 1.0 for final states (pure): the event, and its stable id. A copy's event is
built in :mod:`copy_ops.copies.events`, a job's in :mod:`copy_ops.jobs.events`; the
adapter sends them.

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

from copy_ops.core.times import format_time

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


def event_of(kind: str, collection: str, ident: str, state: str, *, when: datetime, data: dict[str, Any]) -> Event:
    return Event(
        # What it announces, and only that: every delivery of it carries the same id.
        id=str(uuid.uuid5(NAMESPACE, f"{kind}/{ident}/{state}")),
        type=f"copyops.{kind}.{state}",
        subject=f"{collection}/{ident}",
        time=format_time(when),
        data=data,
    )

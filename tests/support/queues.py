"""The development host's queue policies (host.json's ``extensions.queues``) for tests."""

from __future__ import annotations

from typing import Any


def host_json(visibility: str, max_dequeue_count: int) -> dict[str, Any]:
    return {
        "version": "2.0",
        "functionTimeout": "00:05:00",
        "extensions": {
            "queues": {
                "maxPollingInterval": "00:00:00.5",
                "visibilityTimeout": visibility,
                "batchSize": 16,
                "maxDequeueCount": max_dequeue_count,
                "messageEncoding": "none",
            }
        },
    }


# Fast: the tests wait for conditions, and these make them come soon. A failed message is
# back after 0.2 s, three times at most.
FAST_QUEUES = host_json("00:00:00.2", 3)
# For a host killed mid-job: a failed message is back after 2 s, up to 20 times, so a batch
# whose items the dead host claimed comes back until their claims (30 s) run out (the
# production host.json: every 10 s, 5 times; the same 40 s and more).
PATIENT_QUEUES = host_json("00:00:02", 20)

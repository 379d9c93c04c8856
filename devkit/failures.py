"""Copies and requests that fail on purpose, as Azure fails them: what a test, a benchmark
or ``make run`` arms before the copies exist, and Azure's own wording for each failure.

**A copy Azure ends ``failed``.** A copy from another account runs in the background and
may end ``failed`` after some of its bytes were copied. The destination then shows
``x-ms-copy-status: failed``, ``x-ms-copy-progress`` with the bytes copied before the
failure, ``x-ms-copy-completion-time`` and ``x-ms-copy-status-description``; it stays an
empty blob (Content-Length 0) that exists, its ETag moved when the copy ended (Copy Blob's
REST reference). :meth:`Failures.arm` makes the next copies from another account end so,
once ``after_bytes`` are copied; the copies after them behave as usual.

``x-ms-copy-status-description`` is ``<status> <code> "<text>"``: the status and error code
of the failure (the source's answer when the source failed, else the copy service's own
500), then the text in quotes. The REST reference's examples (List Blobs and Get Blob
Properties, "Copy errors in Copy Status Description") are the constants below; it warns
that the text may change without a new service version.

**Storage's transient refusals** (ServerBusy, InternalError, OperationTimedOut), worded as
the REST reference's common error codes word them (:data:`MESSAGES`). Which requests answer
so is the proxy's ``inject`` (kinds by :func:`devkit.proxy.classify`, and ``source_read``:
the stand-in's own read of a copy's source).

The facts behind each: tests/data/azure-answers/documented.json; the research and its
addresses: docs/standin.md ("Failing on purpose").
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass


def description(status: int, code: str, text: str) -> str:
    """A copy's ``x-ms-copy-status-description``, as Azure writes it."""
    return f'{status} {code} "{text}"'


# Ended by the copy service: the source failed too often to go on (the REST reference's
# "didn't meet a minimum ratio of attempts to successes"). A server-side cause: may pass.
SOURCE_READS_FAILED = description(500, "OperationCancelled", "The copy failed when reading the source.")
# Ended by the copy service: two weeks passed and the copy had not ended.
TIMED_OUT = description(500, "OperationCancelled", "The copy exceeded the maximum allowed time.")
# Ended by the source's own answer: it is gone (its status and code lead the description).
SOURCE_GONE = description(404, "ResourceNotFound", "Copy failed when reading the source.")

# Storage's transient refusals: status and message of each code (Common REST API error codes;
# OperationTimedOut's as Azure sends it, in AzCopy's logs: the reference has "within the
# permitted time").
MESSAGES = {
    "ServerBusy": "The server is currently unable to receive requests. Please retry your request.",
    "InternalError": "The server encountered an internal error. Please retry the request.",
    "OperationTimedOut": "Operation could not be completed within the specified time.",
}
STATUSES = {"ServerBusy": 503, "InternalError": 500, "OperationTimedOut": 500}


@dataclass(frozen=True)
class CopyFailure:
    """How an armed copy ends: ``failed`` once ``after_bytes`` are copied, so described."""

    after_bytes: int = 0
    description: str = SOURCE_READS_FAILED


class Failures:
    """The copies from another account armed to end ``failed``, in the order they start."""

    def __init__(self) -> None:
        self._armed: deque[CopyFailure] = deque()
        self._lock = threading.Lock()

    def arm(self, times: int = 1, after_bytes: int = 0, description: str = SOURCE_READS_FAILED) -> None:
        if times < 0 or after_bytes < 0:
            raise ValueError("times and after_bytes are counts: 0 or more")
        with self._lock:
            self._armed.extend([CopyFailure(after_bytes, description)] * times)

    def take(self) -> CopyFailure | None:
        """How the copy starting now ends, if it was armed to fail (its arming is used up)."""
        with self._lock:
            return self._armed.popleft() if self._armed else None

    def armed(self) -> int:
        with self._lock:
            return len(self._armed)

    def clear(self) -> None:
        with self._lock:
            self._armed.clear()

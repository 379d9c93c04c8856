"""Azure's answers as test data (tests/data/azure-answers), by fact id.

``FACTS``: what Azure answered in the Azure SDK teams' recordings of real accounts
(recorded.json, the shared start, and recorded-more.json), each with the repository, path and
commit it came from. ``DOCUMENTED``: what Azure's REST reference documents and no recording
holds (documented.json), each with its reference page and the reading of it. ``CALLS``: the
app's requests that meet them (through its storage adapter), and ``answer``: an answer as the
proxy sends it, for tests/test_azure_answers.py and tests/test_retry_standin_answers.py.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from copy_ops.copies.blocks import Block
from copy_ops.copies.model import BlobRef, DestinationCondition
from copy_ops.copies.ports import Commit
from copy_ops.storage import BlobStorage

ANSWERS = Path(__file__).parent.parent / "data" / "azure-answers"


def load(*paths: Path) -> dict[str, dict[str, Any]]:
    facts: dict[str, dict[str, Any]] = {}
    for path in paths:
        for fact in json.loads(path.read_text(encoding="utf-8"))["facts"]:
            assert fact["id"] not in facts, f"{fact['id']} is kept twice"
            facts[fact["id"]] = fact
    return facts


FACTS = load(*sorted(ANSWERS.glob("recorded*.json")))
DOCUMENTED = load(ANSWERS / "documented.json")
assert not FACTS.keys() & DOCUMENTED.keys(), "an answer is either recorded or documented"

COPY_ID = "1c072780-3ed4-446d-83fc-d8f9c875068a"
ETAG = '"0x8DC0000000000AA"'

Call = Callable[[BlobStorage, str, BlobRef], Coroutine[Any, Any, Any]]


def commit() -> Commit:
    return Commit({}, {}, DestinationCondition.ANY, None, time.monotonic() + 60)


CALLS: dict[str, tuple[str, Call]] = {
    "copy_blob": (
        "copy_blob",
        lambda storage, source, ref: storage.start_copy(
            ref, source, None, True, readable_until=datetime.now(UTC) + timedelta(hours=1)
        ),
    ),
    "put_blob_from_url": (
        "put_blob_from_url",
        lambda storage, source, ref: storage.copy_whole(ref, source, ETAG, commit()),
    ),
    "put_block_from_url": (
        "put_block_from_url",
        lambda storage, source, ref: storage.stage_block(ref, source, ETAG, Block(0, 0, 10, "MDAwMDA="), lambda: True),
    ),
    "put_blocklist": ("put_blocklist", lambda storage, source, ref: storage.commit_blocks(ref, ["MDAwMDA="], commit())),
    "abort_copy": ("abort_copy", lambda storage, source, ref: storage.abort_copy(ref, COPY_ID)),
    # The source's lease (``lease_source``), held for the operation's life.
    "acquire_lease": ("put_lease", lambda storage, source, ref: storage.acquire_infinite_lease(ref, str(uuid.uuid4()))),
    "release_lease": ("put_lease", lambda storage, source, ref: storage.release_lease(ref, str(uuid.uuid4()))),
}


# Recorded refusals the app never meets as an answer to the caller, each with why.
NOT_MET = {
    "download_after_abort": "Get Blob of an aborted, empty blob (416): the app never reads a destination's bytes",
    "blob_from_url_wrong_lease": "the app sends no destination lease id (x-ms-lease-id), so never a wrong one",
    "delete_leased_no_lease_id": "the cleanup's delete of a destination its owner leased: deferred to a later "
    "sweep (cleanup_deferred), no caller's answer",
    "queue_put_message_no_queue": "the queue adapter creates the queue and sends again (storage/queues.py)",
}


def answer(fact_id: str) -> tuple[int, list[tuple[str, str]], bytes]:
    response: dict[str, Any] = (FACTS[fact_id] if fact_id in FACTS else DOCUMENTED[fact_id])["response"]
    body = (response.get("body") or "").encode("utf-8")
    headers = [(name, value) for name, value in response["headers"].items() if name.lower() != "content-length"]
    return response["status"], headers, body

"""Reading operations: one with live progress, and pages of them, newest first.

A page in one state, or of a caller's own (copy_ops.copies.owners), costs what the page
costs, not what the ledger holds: the blob index names the candidates (ids sort newest
first, and the index answers in name order), their records are read concurrently, and each
is kept only if the record itself is in that state and the caller's (the index lags and may
name a record that has moved on).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime

from copy_ops.aio.bounded import bounded_map
from copy_ops.copies import lifecycle
from copy_ops.copies.lifecycle import Action, Timing
from copy_ops.copies.model import Engine, ListQuery, Operation, OperationPage, State
from copy_ops.copies.owners import owner_query, sees
from copy_ops.copies.phases import Phase
from copy_ops.copies.ports import BlobCopies
from copy_ops.copies.records import Ledger, Stored
from copy_ops.copies.settle import Settler
from copy_ops.core.callers import Caller
from copy_ops.core.errors import NotFound, PreconditionFailed

# A page of candidates that the index named but whose records have all moved on is
# followed by the next, so that a page is never empty while matches exist further on;
# this many pages at most (each a tag query and its reads), then the caller continues.
MOST_CANDIDATE_PAGES = 20
# Fetches the ids of one page: (limit, continuation) -> (ids, continuation).
PageOfIds = Callable[[int, str | None], Awaitable[tuple[list[str], str | None]]]


# Every operation's record has a state tag, and no job's record has one: a caller's own
# operations, in any state, without its jobs (tagged with their caller too).
ANY_STATE = "\"state\" >= 'a'"


def state_query(state: State) -> str:
    """The tag query that names the operations in ``state`` (values are our enum's)."""
    return f"\"state\" = '{state.value}'"


def list_query(caller: Caller, state: State | None) -> str | None:
    """The tag query of a page of the list: an admin's by state (None: by name, every
    record), anyone else's by its own tag and the state."""
    owned = owner_query(caller)
    if owned is None:
        return state_query(state) if state is not None else None
    return f"{owned} AND {state_query(state) if state is not None else ANY_STATE}"


async def read_page(
    ledger: Ledger, fetch: PageOfIds, query: ListQuery, concurrency: int, caller: Caller
) -> tuple[list[Operation], str | None]:
    """One page of operations: the ids ``fetch`` names, read concurrently, in order; with
    a state, only records in that state; only those ``caller`` sees; and never an empty
    page before the end."""
    token = query.continuation
    for _ in range(MOST_CANDIDATE_PAGES):
        ids, token = await fetch(query.limit, token)
        found = [
            op
            for op in await read_all(ledger, ids, concurrency)
            if (query.state is None or op.state is query.state) and sees(caller, op.caller)
        ]
        # Ids sort newest first; the index answers in name order, but no document promises it.
        found.sort(key=lambda op: op.id)
        if found or token is None:
            return found, token
    return [], token


async def read_all(ledger: Ledger, ids: Sequence[str], concurrency: int) -> list[Operation]:
    """The records of ``ids`` that exist, read at most ``concurrency`` at once, in order."""

    async def read(operation_id: str) -> Operation | None:
        try:
            return await ledger.get(operation_id)
        except NotFound:
            return None  # deleted (retention) since it was listed

    return [op for op in await bounded_map(read, ids, concurrency) if op is not None]


class Reader:
    def __init__(self, ledger: Ledger, copies: BlobCopies, settler: Settler, timing: Timing, concurrency: int) -> None:
        self._ledger = ledger
        self._copies = copies
        self._settler = settler
        self._timing = timing
        self._concurrency = concurrency

    async def get(self, operation_id: str, now: datetime, caller: Caller) -> Operation:
        """The record, with live progress; a copy seen finished is recorded as such. Another
        caller's: :class:`NotFound`, before anything is looked at.

        A GET is safe (RFC 9110): it may record what it observes, but what an ending owes
        (``on_abort``'s delete or restore, the lease, the event) is left on the record, due
        now, for the sweep; a read never deletes, restores or releases anything."""
        stored = await self._ledger.read(operation_id, caller)
        op = stored.op
        if op.is_final or op.copy_id is None or op.terms.engine is Engine.BLOCKS or op.phase is Phase.RETRYING:
            # The block engine's progress is its record's (blocks staged), and a copy waiting
            # for its next attempt has only its failed attempt's copy there: nothing to look at.
            return op
        seen = await self._copies.observe_copy(op.destination)
        if seen is not None and seen.copy_id == op.copy_id and seen.progress is not None:
            op = dataclasses.replace(op, progress=seen.progress)
        decision = lifecycle.decide(op, seen, now, self._timing)
        if decision.action is Action.FINISH:
            try:
                return await self._settler.end(Stored(op, stored.etag), decision, now, clean=False)
            except PreconditionFailed:
                return await self._ledger.get(operation_id)
        return op

    async def list(self, query: ListQuery, caller: Caller) -> OperationPage:
        """Newest first, only what ``caller`` sees. With a state, or for a caller who is no
        admin, the page holds only operations in that state and the caller's own, found by
        the blob index; else, the records by name."""
        tags = list_query(caller, query.state)
        if tags is None:
            fetch: PageOfIds = self._ledger.page
        else:

            async def fetch(limit: int, continuation: str | None) -> tuple[list[str], str | None]:
                return await self._ledger.find_page(tags, limit, continuation)

        items, token = await read_page(self._ledger, fetch, query, self._concurrency, caller)
        return OperationPage(items, token)

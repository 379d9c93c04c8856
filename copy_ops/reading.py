"""Reading operations: one with live progress, and pages of them, newest first."""

from __future__ import annotations

import dataclasses
from datetime import datetime

from copy_ops import lifecycle
from copy_ops.errors import NotFound, PreconditionFailed
from copy_ops.ledger import Ledger, Stored
from copy_ops.lifecycle import Action, Timing
from copy_ops.model import ListQuery, Operation, OperationPage
from copy_ops.ports import Copies
from copy_ops.settling import Settler


class Reader:
    def __init__(self, ledger: Ledger, copies: Copies, settler: Settler, timing: Timing) -> None:
        self._ledger = ledger
        self._copies = copies
        self._settler = settler
        self._timing = timing

    def get(self, operation_id: str, now: datetime) -> Operation:
        """The record, with live progress; a copy seen finished is recorded as such."""
        stored = self._ledger.read(operation_id)
        op = stored.op
        if op.is_final or op.copy_id is None:
            return op
        seen = self._copies.observe_copy(op.destination)
        if seen is not None and seen.copy_id == op.copy_id and seen.progress is not None:
            op = dataclasses.replace(op, progress=seen.progress)
        decision = lifecycle.decide(op, seen, now, self._timing)
        if decision.action is Action.FINISH:
            try:
                return self._settler.finish_and_clean(Stored(op, stored.etag), decision, now)
            except PreconditionFailed:
                return self._ledger.get(operation_id)
        return op

    def list(self, query: ListQuery) -> OperationPage:
        """Newest first. With a state, the page holds only operations in that state."""
        ids, token = self._ledger.page(query.limit, query.continuation)
        items = []
        for operation_id in ids:
            try:
                op = self._ledger.get(operation_id)
            except NotFound:
                continue
            if query.state is None or op.state is query.state:
                items.append(op)
        return OperationPage(items, token)

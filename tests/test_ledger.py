"""The ledger against Azurite: write-ahead records, ETags, the due index, idempotency claims."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from copy_ops.app_service import AppService
from copy_ops.copies.model import BlobRef, Operation, State, Terms
from copy_ops.copies.records import Ledger, new_operation_id
from copy_ops.core.errors import Conflict, NotFound, PreconditionFailed
from devkit.worker import collected, run

T0 = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)


def record(now: datetime, next_check: datetime | None) -> Operation:
    return Operation(
        id=new_operation_id(now),
        state=State.PENDING,
        source="https://a/c/b",
        destination=BlobRef("d", "b"),
        terms=Terms(now + timedelta(hours=1)),
        created_at=now,
        updated_at=now,
        next_check_at=next_check,
    )


@pytest.fixture
def ledger(service: AppService) -> Ledger:
    return service.ledger


def test_a_record_round_trips_and_is_replaced_only_with_its_etag(ledger: Ledger) -> None:
    op = record(T0, T0)
    created = run(ledger.create(op, T0))  # the container is created on first use
    stale = run(ledger.read(op.id))
    saved = run(ledger.save(replace(created.op, state=State.SUCCEEDED), created.etag, T0))
    with pytest.raises(PreconditionFailed):
        run(ledger.save(stale.op, stale.etag, T0))
    assert run(ledger.get(op.id)) == saved.op
    with pytest.raises(Conflict):
        run(ledger.create(op, T0))


def test_updated_at_is_set_by_every_write_and_only_there(ledger: Ledger) -> None:
    created = run(ledger.create(record(T0, T0), T0 + timedelta(seconds=1)))
    assert created.op.updated_at == T0 + timedelta(seconds=1)
    saved = run(ledger.save(created.op, created.etag, T0 + timedelta(seconds=2)))
    assert run(ledger.get(created.op.id)).updated_at == saved.op.updated_at == T0 + timedelta(seconds=2)


@pytest.mark.parametrize("bad_id", ["../x", "nope", "", "1234567890123-zzzzzzzz"])
def test_unknown_or_malformed_ids_are_not_found(ledger: Ledger, bad_id: str) -> None:
    with pytest.raises(NotFound):
        run(ledger.get(bad_id))


def test_due_finds_only_what_is_due(ledger: Ledger) -> None:
    due_now = record(T0, T0 + timedelta(seconds=10))
    due_later = record(T0, T0 + timedelta(minutes=10))
    finished = replace(record(T0, None), state=State.SUCCEEDED)
    stored = [run(ledger.create(op, T0)) for op in (due_now, due_later, finished)]
    assert list(run(collected(ledger.due(T0 + timedelta(seconds=10))))) == [due_now.id]
    assert sorted(run(collected(ledger.due(T0 + timedelta(hours=1))))) == sorted([due_now.id, due_later.id])
    run(ledger.save(replace(due_now, state=State.SUCCEEDED, next_check_at=None), stored[0].etag, T0))
    assert list(run(collected(ledger.due(T0 + timedelta(seconds=10))))) == []


def test_pages_are_newest_first(ledger: Ledger) -> None:
    ids = []
    for minute in range(5):
        op = record(T0 + timedelta(minutes=minute), None)
        run(ledger.create(op, T0))
        ids.append(op.id)
    first, token = run(ledger.page(3, None))
    second, end = run(ledger.page(3, token))
    assert first + second == list(reversed(ids))
    assert token is not None and end is None


def test_an_idempotency_key_binds_to_the_first_operation_and_its_body(ledger: Ledger) -> None:
    assert run(ledger.claim("key-1", "op-a", "body-1")) == "op-a"
    assert run(ledger.claim("key-1", "op-b", "body-1")) == "op-a"
    with pytest.raises(Conflict) as caught:
        run(ledger.claim("key-1", "op-c", "body-2"))
    assert caught.value.code == "IdempotencyKeyReused"

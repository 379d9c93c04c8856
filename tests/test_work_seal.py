"""Work messages sealed by the app (issue 28): a message is acted on only when its seal is the
app's; any change to a sealed message breaks it; a message of the version before seals is
taken only during a rolling deployment's grace. The key's lifecycle against in-memory
documents (the same code runs against Azurite in tests/test_work_refused.py)."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from copy_ops.core.errors import ConfigurationError, NotOurs
from copy_ops.work.keys import WORK_KEY_NAME, SealedQueue, WorkKeys
from copy_ops.work.messages import (
    BATCH,
    MESSAGE_LIMIT_BYTES,
    Abort,
    Batch,
    Check,
    Page,
    ReportPart,
    Settle,
    Stage,
    Work,
    decode,
    encode,
)
from copy_ops.work.seal import Seal, seal_of, sealed
from devkit.worker import run
from tests.support.memory import MemoryDocuments, MemoryQueue

KEY = bytes(range(32))
OTHER = bytes(32)
LEDGER = "ledger"
T0 = datetime(2026, 12, 6, 4, 0, tzinfo=UTC)
JOB = "8203858143000-5b679290"

EVERY_KIND: list[Work] = [
    Settle((JOB,)),
    Abort((f"{JOB}-{'0' * 16}",), JOB),
    Page(JOB, 0, "sig=x"),
    Batch(JOB, 0, 1, ("in/a.bin", 'in/"quoted",mac".bin'), (1, 2), None, "00af"),
    Check(JOB, f"{JOB}-{'0' * 16}"),
    Stage(JOB, "0-63", None),
    ReportPart(JOB, "a"),
]


@pytest.mark.parametrize("work", EVERY_KIND, ids=lambda work: type(work).__name__)
def test_a_sealed_message_is_ours_and_reads_as_before(work: Work) -> None:
    text = sealed(KEY, encode(work))
    assert seal_of(KEY, text) is Seal.OURS
    assert decode(text) == work  # a decoder that knows nothing of seals reads it whole
    assert seal_of(OTHER, text) is Seal.WRONG
    assert seal_of(KEY, encode(work)) is Seal.NONE


def test_the_largest_message_stays_under_azures_limit_sealed() -> None:
    names = tuple(f"in/{'n' * 280}{i:03d}" for i in range(BATCH))
    text = encode(Batch(JOB, 0, 0, names[:190], (1,) * 190, "s" * 1000, "ffff"))
    assert len(text) <= MESSAGE_LIMIT_BYTES
    assert len(sealed(KEY, text).encode()) < 64 * 1024


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_any_change_to_a_sealed_message_breaks_its_seal(data: st.DataObject) -> None:
    text = sealed(KEY, encode(data.draw(st.sampled_from(EVERY_KIND))))
    at = data.draw(st.integers(0, len(text)))
    cut = data.draw(st.integers(0, 3))
    added = data.draw(st.text(max_size=3))
    changed = text[:at] + added + text[at + cut :]
    if changed != text:
        assert seal_of(KEY, changed) is not Seal.OURS


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400))
def test_any_text_is_told_apart_quickly_and_never_taken_for_ours(text: str) -> None:
    for candidate in (text, text + ',"mac":"' + "A" * 22 + '"}', '{"v":1,"mac":"' + text + '"}'):
        assert seal_of(KEY, candidate) is not Seal.OURS


def test_a_seal_costs_one_hmac_whatever_the_message_holds() -> None:
    adversarial = '{"v":1,' + ',"mac":"' * 7000 + '"}'
    began = time.process_time()
    for _ in range(20):
        seal_of(KEY, adversarial)
    assert (time.process_time() - began) / 20 < 0.005


def test_a_sealed_message_is_not_sealed_again() -> None:
    with pytest.raises(ValueError):
        sealed(KEY, sealed(KEY, encode(Check(JOB))))


def keys_on(documents: MemoryDocuments, at: datetime = T0, unsealed_until: datetime | None = None) -> WorkKeys:
    return WorkKeys(documents, LEDGER, unsealed_until, clock=lambda: at)


@pytest.mark.parametrize("ledger_exists", [False, True])
def test_by_default_no_unsealed_message_is_ever_taken(ledger_exists: bool) -> None:
    """A new deployment (the template makes the ledger's container) and an old ledger alike:
    without COPY_WORK_UNSEALED_UNTIL, a message without a seal is never acted on, even one
    that reaches the app before the key exists (it makes the key, and is refused)."""
    documents = MemoryDocuments()
    if ledger_exists:
        run(documents.ensure_container(LEDGER))
    keys = keys_on(documents)
    with pytest.raises(NotOurs) as refused:
        run(keys.check(encode(Check(JOB)), T0 - timedelta(hours=1), T0))
    assert refused.value.code == "Unsealed"
    assert WORK_KEY_NAME in documents.containers[LEDGER]


def test_an_upgrade_takes_unsealed_messages_the_queue_took_in_before_the_time_set() -> None:
    until = T0 + timedelta(minutes=10)
    keys = keys_on(MemoryDocuments(), unsealed_until=until)
    unsealed = encode(Check(JOB))
    run(keys.check(unsealed, until - timedelta(seconds=1), until + timedelta(hours=1)))  # taken in before
    with pytest.raises(NotOurs):
        run(keys.check(unsealed, until, until))
    with pytest.raises(NotOurs):  # when the queue took it in is unknown: now is taken
        run(keys.check(unsealed, None, until))
    # A wrong seal is never taken, whatever the setting.
    with pytest.raises(NotOurs) as refused:
        run(keys.check(sealed(OTHER, unsealed), T0, T0))
    assert refused.value.code == "SealWrong"


@pytest.mark.parametrize("stored", [b"not json", b'{"key": "@@", "made_at": "2026-12-06T00:00:00Z"}', b'{"key": ""}'])
def test_a_work_key_edited_in_the_ledger_is_a_configuration_error_not_a_crash(stored: bytes) -> None:
    documents = MemoryDocuments()
    run(documents.ensure_container(LEDGER))
    run(documents.create_document(LEDGER, WORK_KEY_NAME, stored, {}))
    with pytest.raises(ConfigurationError) as refused:
        run(keys_on(documents).key())
    assert refused.value.code == "WorkKey"


def test_every_instance_seals_with_the_one_key_the_first_made() -> None:
    documents = MemoryDocuments()

    async def race() -> list[bytes]:
        made = await asyncio.gather(*(keys_on(documents, T0 + timedelta(seconds=i)).key() for i in range(8)))
        return [key.key for key in made]

    keys = run(race())
    assert len(set(keys)) == 1 and len(keys[0]) == 32
    queue = MemoryQueue()
    run(SealedQueue(queue, keys_on(documents)).send([encode(Check(JOB))]))
    [text] = queue.take()
    run(keys_on(documents).check(text, None, T0 + timedelta(days=30)))  # another process, much later


def test_instances_agree_again_after_the_key_was_made_anew() -> None:
    """The key deleted while instances run: a new one is made by the next that looks. One
    still holding the old key reads the key again on a message under another (at most once
    a minute) and every five minutes: they agree within minutes, not never."""
    documents = MemoryDocuments()
    clock = [T0]
    running = WorkKeys(documents, LEDGER, clock=lambda: clock[0])
    old = run(running.key())
    run(documents.delete_document(LEDGER, WORK_KEY_NAME))
    newer = run(keys_on(documents, T0 + timedelta(seconds=5)).key())
    assert newer.key != old.key
    message = sealed(newer.key, encode(Check(JOB)))
    clock[0] = T0 + timedelta(seconds=30)
    with pytest.raises(NotOurs):  # its key read 30 s ago: a forger's flood costs no read
        run(running.check(message, None, clock[0]))
    clock[0] = T0 + timedelta(minutes=1)
    run(running.check(message, None, clock[0]))  # read again: the new key
    assert run(running.key()).key == newer.key

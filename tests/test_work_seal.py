"""Work messages sealed by the app (issue 28): a message is acted on only when its seal is the
app's; any change to a sealed message breaks it; a message of the version before seals is
taken only during a rolling deployment's grace. The key's lifecycle against in-memory
documents (the same code runs against Azurite in tests/test_work_refused.py)."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from copy_ops.copies.records import with_container
from copy_ops.core.errors import NotOurs
from copy_ops.work.keys import UNSEALED_GRACE, WORK_KEY_NAME, SealedQueue, WorkKeys
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


def keys_on(documents: MemoryDocuments, at: datetime = T0) -> WorkKeys:
    return WorkKeys(documents, LEDGER, clock=lambda: at)


def test_on_a_new_ledger_no_unsealed_message_is_ever_taken() -> None:
    documents = MemoryDocuments()
    keys = keys_on(documents)
    unsealed = encode(Check(JOB))
    with pytest.raises(NotOurs) as refused:
        run(keys.check(unsealed, T0 - timedelta(seconds=1), T0))
    assert refused.value.code == "Unsealed"
    stored = json.loads(documents.containers[LEDGER][WORK_KEY_NAME].data)
    assert stored["unsealed_until"] is None


def test_a_ledger_this_version_began_takes_no_unsealed_message_either() -> None:
    documents = MemoryDocuments()
    run(with_container(documents, LEDGER, lambda: documents.create_document(LEDGER, "ops/x.json", b"{}", {})))
    with pytest.raises(NotOurs):
        run(keys_on(documents).check(encode(Check(JOB)), T0 - timedelta(hours=1), T0))


def test_on_a_ledger_in_use_unsealed_messages_are_taken_for_the_grace_only() -> None:
    documents = MemoryDocuments()
    run(documents.ensure_container(LEDGER))  # begun by the version before seals: no mark
    keys = keys_on(documents)
    unsealed = encode(Check(JOB))
    run(keys.check(unsealed, T0 - timedelta(hours=1), T0))  # sent before the key: the old version's
    run(keys.check(unsealed, T0 + UNSEALED_GRACE - timedelta(seconds=1), T0 + UNSEALED_GRACE))
    with pytest.raises(NotOurs):
        run(keys.check(unsealed, T0 + UNSEALED_GRACE, T0 + UNSEALED_GRACE))
    with pytest.raises(NotOurs):  # when the queue took it in is unknown: now is taken
        run(keys.check(unsealed, None, T0 + UNSEALED_GRACE))
    # A wrong seal is never taken, grace or not.
    with pytest.raises(NotOurs) as refused:
        run(keys.check(sealed(OTHER, unsealed), T0, T0))
    assert refused.value.code == "SealWrong"


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

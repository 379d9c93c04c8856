"""Work-queue messages: encoded, decoded strictly, batched under Azure's size limit."""

from __future__ import annotations

import json

import pytest

from copy_ops.core.errors import InvalidRequest
from copy_ops.work import messages


@pytest.mark.parametrize(
    "work",
    [
        messages.Settle(("8204461114000-cc5eca4f", "8204461114001-cc5eca4f")),
        messages.Check("8204461114000-cc5eca4f"),
        messages.Check("8204461114000-cc5eca4f", item="8204461114000-cc5eca4f-00ab"),
    ],
)
def test_a_message_round_trips(work: messages.Work) -> None:
    assert messages.decode(messages.encode(work)) == work


def test_a_check_of_an_earlier_version_of_this_format_is_read() -> None:
    assert messages.decode('{"v": 1, "kind": "check", "job": "j"}') == messages.Check("j")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not json",
        "[" * 5000,
        "[]",
        '{"v": 2, "kind": "settle", "ids": ["a"]}',
        '{"v": 1, "kind": "dance"}',
        '{"v": 1, "kind": "settle", "ids": []}',
        '{"v": 1, "kind": "settle", "ids": [1, 2]}',
        '{"v": 1, "kind": "settle", "ids": "abc"}',
        '{"v": 1, "kind": "check", "job": "j", "item": 7}',
    ],
)
def test_anything_else_is_refused_whole(text: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        messages.decode(text)
    assert caught.value.errors[0].field == "message"


def test_batches_hold_at_most_so_many_and_stay_under_the_size_limit() -> None:
    ids = [f"{i:013d}-abcdef01" for i in range(1000)]
    texts = list(messages.batches(ids, messages.Settle, 200))
    assert len(texts) == 5
    assert [item for text in texts for item in json.loads(text)["ids"]] == ids
    # Items so long that a batch of 200 would not fit are split until each fits.
    long_ids = ["x" * 1000 for _ in range(200)]
    split = list(messages.batches(long_ids, messages.Settle, 200))
    assert len(split) > 1 and all(len(text.encode()) <= messages.MESSAGE_LIMIT_BYTES for text in split)
    assert sum(len(json.loads(text)["ids"]) for text in split) == 200


def test_a_stage_message_round_trips_and_one_with_bad_ranges_is_refused_whole() -> None:
    from copy_ops.work.messages import Stage

    work = Stage("8204487433000-86a941c4", "0-63,70", "sv=1&sig=x")
    assert messages.decode(messages.encode(work)) == work
    for blocks in ("0-99999", "x", "3-1", "-1", "1,,a"):
        text = messages.encode(Stage("op", blocks))
        with pytest.raises(InvalidRequest):
            messages.decode(text)

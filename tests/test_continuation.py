"""Continuation tokens (pure): a token goes on only in the listing that made it, under the
key that made it; anything else is a 400 naming ``continuation``."""

from __future__ import annotations

import pytest

from copy_ops.core.continuation import decode_continuation, encode_continuation
from copy_ops.core.errors import InvalidRequest

KEY = b"k" * 32
SCOPE = "names:ops/"
MARKER = "2!92!MDAwMDc2IW9wcy84MjAzODc5MzY5Njg0LWY1NzEyYzQ5Lmpzb24hMDAwMDI4ITk5OTktMTItMzFUMjM6NTk6NTkuOTk5OTk5OVoh"


def test_a_token_goes_on_in_its_own_listing() -> None:
    assert decode_continuation(KEY, SCOPE, encode_continuation(KEY, SCOPE, MARKER)) == MARKER


GENUINE = encode_continuation(KEY, SCOPE, MARKER)


@pytest.mark.parametrize(
    ("key", "scope", "token"),
    [
        (KEY, "names:jobs/", GENUINE),  # another listing
        (KEY, "tags:\"state\" = 'pending'", GENUINE),
        (b"x" * 32, SCOPE, GENUINE),  # another app's key
        (KEY, SCOPE, GENUINE.replace("v2.", "v1.")),
        (KEY, SCOPE, encode_continuation(KEY, SCOPE, MARKER + "x").rsplit(".", 1)[0] + "." + GENUINE.rsplit(".", 1)[1]),
        (KEY, SCOPE, "djE6AA"),  # the old unsigned form, "v1:\0"
        (KEY, SCOPE, "v2..AAAA"),  # an empty marker
        (KEY, SCOPE, "v2.%%%.AAAA"),
        (KEY, SCOPE, ""),
        (KEY, SCOPE, "v2." + "A" * 5000),
    ],
)
def test_any_other_token_is_refused(key: bytes, scope: str, token: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        decode_continuation(key, scope, token)
    assert [error.field for error in refused.value.errors] == ["continuation"]

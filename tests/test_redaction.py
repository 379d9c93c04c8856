from __future__ import annotations

import pytest

from copy_ops.core.redaction import redact, strip_query

SAS = "sv=2024-08-04&ss=b&srt=o&sp=r&se=2026-12-01T00:00:00Z&sig=AbCdEf0123456789%2BxyzSECRET%3D"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (f"https://a.blob.core.windows.net/c/x.bin?{SAS}", "https://a.blob.core.windows.net/c/x.bin"),
        ("https://a.blob.core.windows.net/c/x.bin", "https://a.blob.core.windows.net/c/x.bin"),
        (
            "http://127.0.0.1:10000/devstoreaccount1/c/a%20b.bin?sig=1#frag",
            "http://127.0.0.1:10000/devstoreaccount1/c/a%20b.bin",
        ),
    ],
)
def test_strip_query(url: str, expected: str) -> None:
    assert strip_query(url) == expected


@pytest.mark.parametrize(
    "text",
    [
        f"copy failed for https://a.blob.core.windows.net/c/x.bin?{SAS} (403)",
        "AccountName=a;AccountKey=SECRETSECRET==;EndpointSuffix=core.windows.net",
        "BlobEndpoint=https://a/;SharedAccessSignature=sv=1&sig=SECRET",
        "<Source>https://a/c/b?sv=1&amp;sig=SECRET</Source>",
    ],
)
def test_redact_removes_every_secret(text: str) -> None:
    cleaned = redact(text)
    assert "SECRET" not in cleaned
    assert "sig=Ab" not in cleaned


def test_redact_keeps_ordinary_text() -> None:
    assert redact("The specified blob does not exist.") == "The specified blob does not exist."

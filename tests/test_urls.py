"""Blob URLs taken apart, and which hosts a pattern admits: tables, no storage."""

from __future__ import annotations

import pytest

from copy_ops.core import urls


@pytest.mark.parametrize(
    ("url", "account", "container", "blob"),
    [
        ("https://acct.blob.core.windows.net/c1/a/b.bin?sv=1&sig=x", "acct", "c1", "a/b.bin"),
        ("https://acct-secondary.blob.core.windows.net/c1/b", "acct", "c1", "b"),
        ("http://127.0.0.1:10000/devstoreaccount1/src/a.bin", "devstoreaccount1", "src", "a.bin"),
        ("http://localhost:10000/devstoreaccount1/src/a%20b.bin", "devstoreaccount1", "src", "a b.bin"),
        ("http://[::1]:10000/devstoreaccount1/src/a.bin", "devstoreaccount1", "src", "a.bin"),
    ],
)
def test_blob_urls_are_taken_apart(url: str, account: str, container: str, blob: str) -> None:
    parsed = urls.parse_blob_url(url)
    assert (parsed.account.name, parsed.container, parsed.blob) == (account, container, blob)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://acct.blob.core.windows.net/c/b", "absolute https"),
        ("https:///c/b", "absolute https"),
        ("http://acct.blob.core.windows.net/c/b", "must use https"),
        ("https://user:PASSWORD@acct.blob.core.windows.net/c/b", "user info"),
        ("https://user@acct.blob.core.windows.net/c/b", "user info"),
        ("http://u:p@127.0.0.1:10000/devstoreaccount1/c/b", "user info"),
        ("https://acct.blob.core.windows.net/c/b\n", "URL-encoded"),
        ("https://acct.blob.core.windows.net/c/b c", "URL-encoded"),
        ("https://acct.blob.core.windows.net/c", "container and a blob"),
        ("https://acct.blob.core.windows.net/c/", "container and a blob"),
        ("https://acct.blob.core.windows.net/c/../ledger/ops/x.json", "path"),
        ("https://acct.blob.core.windows.net/c/%2e%2e/ledger/x", "path"),
        ("https://acct.blob.core.windows.net/c/a%5C..%5Cb", "path"),
        ("https://acct.blob.core.windows.net/c//b", "path"),
        ("https://acct.blob.core.windows.net/c/b#frag", "fragment"),
        ("https://acct.blob.core.windows.net:99999/c/b", "port"),
        ("https://acct.blob.core.windows.net:x/c/b", "port"),
        ("https://[::1/c/b", "absolute https"),
    ],
)
def test_unusable_urls_are_refused_with_a_reason(url: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        urls.parse_blob_url(url)


@pytest.mark.parametrize(
    ("url", "patterns", "allowed"),
    [
        ("https://acct.blob.core.windows.net/c/b", ("acct.blob.core.windows.net",), True),
        ("https://acct.blob.core.windows.net:443/c/b", ("acct.blob.core.windows.net",), True),
        # A pattern without a port admits the scheme's default port only.
        ("https://acct.blob.core.windows.net:8443/c/b", ("acct.blob.core.windows.net",), False),
        ("https://acct.blob.core.windows.net:8443/c/b", ("acct.blob.core.windows.net:8443",), True),
        ("https://acct.blob.core.windows.net:8443/c/b", ("acct.blob.core.windows.net:*",), True),
        ("https://acct.blob.core.windows.net/c/b", ("*.blob.core.windows.net",), True),
        ("https://evil.example/c/b", ("*.blob.core.windows.net",), False),
        ("https://acct.blob.core.windows.net.evil.example/c/b", ("*.blob.core.windows.net",), False),
        ("http://127.0.0.1:10000/devstoreaccount1/c/b", ("127.0.0.1",), False),
        ("http://127.0.0.1:10000/devstoreaccount1/c/b", ("127.0.0.1:10000",), True),
        ("http://127.0.0.1:10001/devstoreaccount1/c/b", ("127.0.0.1:10000",), False),
        ("http://127.0.0.1:10001/devstoreaccount1/c/b", ("127.0.0.1:*",), True),
        ("http://[::1]:10000/devstoreaccount1/c/b", ("[::1]:10000",), True),
        ("http://localhost/devstoreaccount1/c/b", ("localhost",), True),
    ],
)
def test_host_patterns(url: str, patterns: tuple[str, ...], allowed: bool) -> None:
    assert urls.host_allowed(urls.parse_blob_url(url), patterns) is allowed


@pytest.mark.parametrize("pattern", ["", "a b", "host:port", "host:1:2", "user@host", "h/x", "[::1"])
def test_malformed_host_patterns_are_refused(pattern: str) -> None:
    with pytest.raises(ValueError, match="host pattern"):
        urls.check_host_pattern(pattern)


@pytest.mark.parametrize(
    ("endpoint", "url", "same"),
    [
        ("https://acct.blob.core.windows.net", "https://acct.blob.core.windows.net/c/b", True),
        ("https://acct.blob.core.windows.net", "https://acct-secondary.blob.core.windows.net/c/b", True),
        ("https://acct.blob.core.windows.net", "https://acct.privatelink.blob.core.windows.net/c/b", True),
        ("https://acct.blob.core.windows.net", "https://other.blob.core.windows.net/c/b", False),
        ("https://acct.blob.core.windows.net", "https://acct.blob.evil.example/c/b", False),
        ("http://127.0.0.1:10000/devstoreaccount1", "http://localhost:10001/devstoreaccount1/c/b", True),
        ("http://127.0.0.1:10000/devstoreaccount1", "http://127.0.0.1:10000/other/c/b", False),
    ],
)
def test_the_same_account_under_its_aliases(endpoint: str, url: str, same: bool) -> None:
    assert urls.parse_blob_url(url).account.is_same(urls.endpoint_account(endpoint)) is same

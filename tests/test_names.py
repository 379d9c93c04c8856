"""The naming rules, as tables and as properties: a name copy-ops accepts reaches the
wire as exactly that container and name, whatever a URL client does to the path."""

from __future__ import annotations

import unicodedata
from urllib.parse import unquote

import pytest
import yarl
from azure.storage.blob import BlobServiceClient
from hypothesis import given, settings
from hypothesis import strategies as st

from copy_ops.core import names

ENDPOINT = "https://acct.blob.core.windows.net"
SERVICE = BlobServiceClient(ENDPOINT)


@pytest.mark.parametrize(
    "name",
    [
        "a.bin",
        "2026/11/a.bin",
        "dir.v2/file",
        "..a",  # dots inside a segment are fine
        "a..b/c",
        "name with spaces.txt",
        "ünïcödé/名前.bin",
        "a?b",  # the SDK escapes ? and #
        "a#b",
        "50%off",
        "a;b/c",
        "x" * 1024,
    ],
)
def test_ordinary_names_are_accepted(name: str) -> None:
    assert names.blob_problem(name) is None


@pytest.mark.parametrize(
    "name",
    [
        "",
        "x" * 1025,
        "../forbidden/precious",
        "a/../../b",
        "a/./b",
        ".",
        "..",
        "...",
        "a/..",
        "a.",
        "v1./x",  # old .NET strips trailing dots from segments
        "/x",
        "a//b",
        "a/",
        "a\\b",
        "..\\x",
        "%2e%2e/x",
        "%2E%2e/x",
        ".%2e/x",
        "%252e%252e/x",  # decoded twice
        "a%2f..%2fb",
        "a%2fb",  # a client that decodes once more sees another path
        "a%5cb",
        "\uff0e\uff0e/x",  # fullwidth full stops: NFKC makes them ..
        "a\uff0fb",  # fullwidth solidus
        "x/..;/y",  # servlet-style path parameters
        "x/..;a/y",
        "a?/../b",
        "..%3F/x",  # a decoded ? cuts the path after ..
        "x/..#y",
        "a\nb",
        "abc\n",
        "a%00b",
        "a%0a",
        "a\u200bb/..",
        "a\u2028b",
    ],
)
def test_names_a_url_client_could_rewrite_are_refused(name: str) -> None:
    assert names.blob_problem(name) is not None


@pytest.mark.parametrize("name", ["abc", "a-b-c", "copy-operations", "a" * 63, "0ab"])
def test_container_names_accepted(name: str) -> None:
    assert names.container_problem(name) is None


@pytest.mark.parametrize("name", ["ab", "a" * 64, "A-b", "a--b", "-ab", "ab-", "dst-a\n", "dst-a\r\n", "a/b", "..", 5])
def test_container_names_refused(name: object) -> None:
    assert names.container_problem(name) is not None


@pytest.mark.parametrize(
    ("prefix", "ok"),
    [("", True), ("exports/", True), ("exports/2026-", True), ("../", False), ("a//", False), ("./a/", False)],
)
def test_prefixes(prefix: str, ok: bool) -> None:
    assert (names.prefix_problem(prefix) is None) is ok


@pytest.mark.parametrize(
    ("path", "normalised"),
    [
        ("/a/b", "/a/b"),
        ("/a/./b", "/a/b"),
        ("/a/../b", "/b"),
        ("/a/b/..", "/a/"),
        ("/..", "/"),
        ("/a/b/.", "/a/b/"),
        ("a/../b", "b"),
    ],
)
def test_remove_dot_segments(path: str, normalised: str) -> None:
    assert names.remove_dot_segments(path) == normalised


@pytest.mark.parametrize(
    ("path", "stable"),
    [
        ("/acct/c/a.bin", True),
        ("/acct/c/../x", False),
        ("/acct/c/%2e%2e/x", False),
        ("/c//x", False),
        ("/c/a%5Cb", False),
    ],
)
def test_path_is_stable(path: str, stable: bool) -> None:
    assert names.path_is_stable(path) is stable


# Names built from the characters that matter to paths, plus a little of everything else.
path_alphabet = st.sampled_from([*"./\\%;?#", "%2e", "%2f", "%5c", "%25", "\uff0e", "\uff0f", ".."])
blob_names = st.lists(path_alphabet | st.text(min_size=1, max_size=3), min_size=1, max_size=8).map("".join)


def sent_path(container: str, blob: str) -> str:
    """The path aiohttp puts on the wire for the SDK's URL of this blob (yarl normalises)."""
    url = SERVICE.get_blob_client(container, blob).url
    return yarl.URL(url).raw_path


@settings(max_examples=2000, deadline=None)
@given(blob_names)
def test_an_accepted_name_reaches_the_wire_unchanged(name: str) -> None:
    if names.blob_problem(name) is not None:
        return
    path = sent_path("dst", name)
    # What storage decodes is exactly the container and name that were validated...
    assert unquote(path) == f"/dst/{name}"
    # ...and no further reading of that path (decoded again, NFKC) escapes the container.
    for reading in (unquote(path), unquote(unquote(path)), unicodedata.normalize("NFKC", unquote(path))):
        assert names.remove_dot_segments(reading.replace("\\", "/")).startswith("/dst/")

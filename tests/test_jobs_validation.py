"""Job-request validation: a table of valid bodies (which source, which listing) and one
of invalid bodies, each naming every field it must report and the status it maps to."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from copy_ops.copies.model import BlobRef, ForeignBlob
from copy_ops.core.errors import CopyOpsError, Forbidden, InvalidRequest
from copy_ops.core.settings import Settings
from copy_ops.jobs.model import Listing
from copy_ops.jobs.request import parse_job_request

NOW = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
ENV = {
    "COPY_STORAGE": "UseDevelopmentStorage=true",
    "COPY_ALLOWED_SOURCE_HOSTS": "*.blob.core.windows.net,127.0.0.1:10000",
    "COPY_ALLOWED_DESTINATION_CONTAINERS": "landing,data-*",
    "COPY_JOB_MANIFEST_MAX": "3",
}
SETTINGS = Settings.from_env(ENV)
IDENTITY = Settings.from_env(
    {**ENV, "COPY_STORAGE": "", "COPY_STORAGE__blobServiceUri": "https://own.blob.core.windows.net"}
)
SAS = "sv=2024-08-04&sr=c&sp=rl&sig=SECRET"
PARTNER = f"https://partner.blob.core.windows.net/exports/2026-11-24/?{SAS}"
DEST = {"container": "landing", "prefix": "partner/"}


def body(source: Any, **fields: Any) -> dict[str, Any]:
    return {"source": source, "destination": DEST, **fields}


@pytest.mark.parametrize(
    ("given", "settings", "check"),
    [
        (
            body({"url": PARTNER}),
            SETTINGS,
            lambda r: (
                r.source.listing is Listing.URL
                and (r.source.container, r.source.prefix) == ("exports", "2026-11-24/")
                and r.source.url == "https://partner.blob.core.windows.net/exports"
                and r.sas == SAS
                and r.source.needs_sas
            ),
        ),
        (
            body({"url": "https://partner.blob.core.windows.net/exports"}),
            SETTINGS,
            lambda r: r.source.listing is Listing.URL and r.source.prefix == "" and r.sas is None,
        ),
        (
            body({"url": "https://partner.blob.core.windows.net/exports/x/"}),
            IDENTITY,
            lambda r: r.source.listing is Listing.IDENTITY and r.source.account == "partner" and r.sas is None,
        ),
        (
            body({"url": f"http://127.0.0.1:10000/devstoreaccount1/data-in/x/?{SAS}"}),
            SETTINGS,
            lambda r: r.source.listing is Listing.OWN and r.sas is None,  # its own credential, not the SAS
        ),
        (body({"container": "data-in"}), SETTINGS, lambda r: r.source.listing is Listing.OWN and r.source.prefix == ""),
        (
            body({"account": "partner", "container": "exports", "prefix": "a/"}),
            IDENTITY,
            lambda r: r.source.listing is Listing.IDENTITY and r.source.account == "partner",
        ),
        (
            body({"blobs": [{"container": "data-in", "blob": "a/x.bin"}, f"{PARTNER[: -len(SAS) - 1]}y.bin?{SAS}"]}),
            SETTINGS,
            lambda r: (
                r.source is None
                and [e.name for e in r.manifest] == ["a/x.bin", "2026-11-24/y.bin"]
                and r.manifest[0].source == BlobRef("data-in", "a/x.bin")
                and SAS in str(r.manifest[1].source)
            ),
        ),
        (
            body({"blobs": [{"account": "partner", "container": "exports", "blob": "z.bin"}]}),
            IDENTITY,
            lambda r: r.manifest[0].source == ForeignBlob("partner", "exports", "z.bin"),
        ),
        (
            {"source": {"container": "data-in"}, "destination": {"container": "data-out"}, "timeout_seconds": 60},
            SETTINGS,
            lambda r: r.destination_prefix == "" and r.terms.deadline == NOW + timedelta(seconds=60),
        ),
        (
            # The same container, the destination beside the source (not inside it).
            {
                "source": {"container": "data-in", "prefix": "in/"},
                "destination": {"container": "data-in", "prefix": "out/"},
            },
            SETTINGS,
            lambda r: r.destination_prefix == "out/",
        ),
    ],
)
def test_valid_job_requests(given: dict[str, Any], settings: Settings, check: Any) -> None:
    assert check(parse_job_request(given, settings, NOW))


@pytest.mark.parametrize(
    ("source_prefix", "destination_prefix"),
    [("in/", "out/"), ("a/", "b/"), ("ab/", "ac/"), ("data/2026/", "copies/2026/"), ("x", "y")],
)
def test_prefixes_apart_in_one_container_are_accepted(source_prefix: str, destination_prefix: str) -> None:
    given = {
        "source": {"container": "data-in", "prefix": source_prefix},
        "destination": {"container": "data-in", "prefix": destination_prefix},
    }
    request = parse_job_request(given, SETTINGS, NOW)
    assert request.destination_prefix == destination_prefix


TOO_MANY = [{"container": "data-in", "blob": f"{i}.bin"} for i in range(4)]


@pytest.mark.parametrize(
    ("given", "settings", "error", "fields"),
    [
        ([], SETTINGS, InvalidRequest, {"body"}),
        ({"destination": DEST}, SETTINGS, InvalidRequest, {"source"}),
        (body({"url": PARTNER}, destination=None), SETTINGS, InvalidRequest, {"destination"}),
        (body({"url": "ftp://x/y"}, zzz=1), SETTINGS, InvalidRequest, {"source.url", "zzz"}),
        (body({"url": PARTNER, "prefix": "a/"}), SETTINGS, InvalidRequest, {"source.prefix"}),
        (body({"url": "https://evil.example.com/c/"}), SETTINGS, Forbidden, {"source.url"}),
        (
            body({"url": "https://partner.blob.core.windows.net/exports/../x/"}),
            SETTINGS,
            InvalidRequest,
            {"source.url"},
        ),
        (
            body({"container": "Bad_Name", "prefix": "a/./b/"}),
            SETTINGS,
            InvalidRequest,
            {"source.container", "source.prefix"},
        ),
        (body({"account": "partner", "container": "exports"}), SETTINGS, InvalidRequest, {"source.account"}),
        (body({"container": "copy-operations"}), SETTINGS, Forbidden, {"source.container"}),
        (body({"blobs": []}), SETTINGS, InvalidRequest, {"source.blobs"}),
        (body({"blobs": TOO_MANY}), SETTINGS, InvalidRequest, {"source.blobs"}),
        (
            body({"blobs": ["not a url", {"container": "data-in"}]}),
            SETTINGS,
            InvalidRequest,
            {"source.blobs[0]", "source.blobs[1].blob"},
        ),
        (
            body({"blobs": [{"container": "data-in", "blob": "a.bin"}, {"container": "data-x", "blob": "a.bin"}]}),
            SETTINGS,
            InvalidRequest,
            {"source.blobs[1]"},
        ),
        (
            {"source": {"container": "data-in"}, "destination": {"container": "data-in", "prefix": "out/"}},
            SETTINGS,
            InvalidRequest,
            {"destination.prefix"},
        ),
        (
            body({"container": "data-in"}, destination={"container": "x", "prefix": "a//b"}),
            SETTINGS,
            InvalidRequest,
            {"destination.container", "destination.prefix"},
        ),
        (
            body({"container": "data-in"}, destination={"container": "elsewhere"}),
            SETTINGS,
            Forbidden,
            {"destination.container"},
        ),
        # Issue 16: a destination prefix that one prefix begins the other's, in one container:
        # the job would list its own copies (source ab/, destination a -> ab/...).
        (
            {
                "source": {"container": "data-in", "prefix": "ab/"},
                "destination": {"container": "data-in", "prefix": "a"},
            },
            SETTINGS,
            InvalidRequest,
            {"destination.prefix"},
        ),
        (
            {"source": {"container": "data-in", "prefix": "d/"}, "destination": {"container": "data-in"}},
            SETTINGS,
            InvalidRequest,
            {"destination.prefix"},
        ),
        # A destination prefix that leaves no room for a name; a manifest entry whose
        # destination (prefix + name) is too long: known at the request, refused there.
        (
            body({"container": "data-in"}, destination={"container": "landing", "prefix": "q/" * 512}),
            SETTINGS,
            InvalidRequest,
            {"destination.prefix"},
        ),
        (
            body(
                {
                    "blobs": [
                        {"container": "data-in", "blob": "ok.bin"},
                        {"container": "data-in", "blob": "L/" + "x" * 300},
                    ]
                },
                destination={"container": "landing", "prefix": "p/" * 400},
            ),
            SETTINGS,
            InvalidRequest,
            {"source.blobs[1]"},
        ),
        (body({"url": PARTNER}, lease_source=True), SETTINGS, InvalidRequest, {"lease_source"}),
        (
            body({"container": "data-in"}, timeout_seconds=0, on_abort="x", metadata={"copyops_x": "1"}),
            SETTINGS,
            InvalidRequest,
            {"timeout_seconds", "on_abort", "metadata.copyops_x"},
        ),
        (
            body({"account": "partner", "container": "exports"}, timeout_seconds=7 * 86400),
            Settings.from_env(
                {
                    **ENV,
                    "COPY_STORAGE": "",
                    "COPY_STORAGE__blobServiceUri": "https://own.blob.core.windows.net",
                    "COPY_MAX_TIMEOUT_SECONDS": "1000000",
                }
            ),
            InvalidRequest,
            {"timeout_seconds"},
        ),
    ],
)
def test_invalid_job_requests_name_every_field(
    given: Any, settings: Settings, error: type[CopyOpsError], fields: set[str]
) -> None:
    with pytest.raises(error) as raised:
        parse_job_request(given, settings, NOW)
    assert {item.field for item in raised.value.errors} == fields
    assert "SECRET" not in raised.value.detail

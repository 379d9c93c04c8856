"""The stand-in's Put Blob From URL and Put Block From URL (devkit/from_url.py), which
Azurite lacks: through the pending-copy proxy, over the real SDK, the source read with the
authorization the request carries, refused as Azure refuses."""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError, ResourceExistsError
from azure.storage.blob import (
    BlobBlock,
    BlobSasPermissions,
    BlobServiceClient,
    ContentSettings,
    generate_blob_sas,
)

from devkit import DEV_ACCOUNT, DEV_KEY, PendingCopyProxy

DATA = bytes(range(256)) * 40  # 10,240 bytes


@pytest.fixture
def through(proxy: PendingCopyProxy) -> BlobServiceClient:
    return BlobServiceClient.from_connection_string(proxy.connection_string)


@pytest.fixture
def boxes(direct: BlobServiceClient) -> Iterator[tuple[str, str]]:
    source, destination = f"from-{uuid.uuid4().hex[:8]}", f"to-{uuid.uuid4().hex[:8]}"
    direct.create_container(source)
    direct.create_container(destination)
    direct.get_blob_client(source, "a.bin").upload_blob(
        DATA, content_settings=ContentSettings(content_type="application/x-parquet", content_language="de")
    )
    yield source, destination
    direct.delete_container(source)
    direct.delete_container(destination)


def sas_url(proxy: PendingCopyProxy, container: str, blob: str) -> str:
    sas = generate_blob_sas(
        DEV_ACCOUNT,
        container,
        blob,
        account_key=DEV_KEY,
        permission=BlobSasPermissions(read=True),
        expiry=datetime.now(UTC) + timedelta(hours=1),
    )
    return f"{proxy.url}/{DEV_ACCOUNT}/{container}/{blob}?{sas}"


def test_put_blob_from_url_reads_the_source_with_its_sas_and_carries_its_content_headers(
    proxy: PendingCopyProxy, through: BlobServiceClient, direct: BlobServiceClient, boxes: tuple[str, str]
) -> None:
    source, destination = boxes
    target = through.get_blob_client(destination, "b.bin")
    target.upload_blob_from_url(sas_url(proxy, source, "a.bin"), metadata={"origin": "partner"})
    landed = direct.get_blob_client(destination, "b.bin")
    assert landed.download_blob().readall() == DATA
    properties = landed.get_blob_properties()
    assert properties.content_settings.content_type == "application/x-parquet"
    assert properties.content_settings.content_language == "de"
    assert properties.metadata == {"origin": "partner"}
    assert proxy.log.counts["put_blob_from_url"] == 1
    # Not overwriting (the SDK's default): an existing destination is refused, left as it was.
    with pytest.raises(ResourceExistsError):
        target.upload_blob_from_url(sas_url(proxy, source, "a.bin"))


def test_put_block_from_url_stages_ranges_that_a_block_list_commits(
    proxy: PendingCopyProxy, through: BlobServiceClient, direct: BlobServiceClient, boxes: tuple[str, str]
) -> None:
    source, destination = boxes
    target = through.get_blob_client(destination, "blocks.bin")
    url, half = sas_url(proxy, source, "a.bin"), len(DATA) // 2
    ids = [base64.b64encode(f"{index:06d}".encode()).decode() for index in range(2)]
    target.stage_block_from_url(ids[0], url, source_offset=0, source_length=half)
    target.stage_block_from_url(ids[1], url, source_offset=half, source_length=len(DATA) - half)
    # Staged, not committed: the destination does not exist yet.
    assert not direct.get_blob_client(destination, "blocks.bin").exists()
    target.commit_block_list([BlobBlock(block_id) for block_id in ids])
    assert direct.get_blob_client(destination, "blocks.bin").download_blob().readall() == DATA
    assert proxy.log.counts["put_block_from_url"] == 2


@pytest.mark.parametrize(
    ("how", "status", "source_status"),
    [
        # A private blob, and nothing to read it with: 401, the source's NoAuthenticationInformation.
        ("no authorization", 401, "401"),
        ("a missing blob", 404, "404"),
        ("a host the stand-in cannot reach", 404, "404"),
        ("another ETag", 412, None),  # SourceConditionNotMet, no source headers
        ("a bearer token that is not one", 400, None),
    ],
)
def test_a_source_that_cannot_be_read_is_refused_as_azure_refuses_it(
    proxy: PendingCopyProxy,
    through: BlobServiceClient,
    direct: BlobServiceClient,
    boxes: tuple[str, str],
    how: str,
    status: int,
    source_status: str | None,
) -> None:
    source, destination = boxes
    target = through.get_blob_client(destination, "b.bin")
    options: dict[str, Any] = {}
    url = sas_url(proxy, source, "a.bin")
    if how == "no authorization":
        url = url.split("?")[0]
    elif how == "a missing blob":
        url = sas_url(proxy, source, "gone.bin")
    elif how == "a host the stand-in cannot reach":
        url = "https://elsewhere.example/exports/a.bin?sv=2025-01-05&sig=x"
    elif how == "another ETag":
        # The SDK's stage_block_from_url has no source conditions: the header goes as such.
        options = {"headers": {"x-ms-source-if-match": '"0x8D000000000000"'}}
    else:
        options = {"source_authorization": "Basic c2VjcmV0"}
    with pytest.raises(HttpResponseError) as refused:
        target.stage_block_from_url("MDAwMDAw", url, source_offset=0, source_length=100, **options)
    answer: Any = refused.value.response
    assert answer is not None
    code = getattr(refused.value, "error_code", None)
    if how == "a bearer token that is not one":
        assert code == "InvalidHeaderValue"
    elif how == "another ETag":
        # Azure's answer (recorded, tests/test_standin_conformance.py); copy-ops reads
        # CannotVerifyCopySource with the source's 412 as the same (service versions before 2023).
        assert (code, answer.status_code) == ("SourceConditionNotMet", 412)
        assert "x-ms-copy-source-status-code" not in answer.headers
    else:
        assert (code, answer.status_code) == ("CannotVerifyCopySource", status)
        assert answer.headers["x-ms-copy-source-status-code"] == source_status
    assert not direct.get_blob_client(destination, "b.bin").exists()


def test_a_source_rate_makes_a_read_take_its_time(
    proxy: PendingCopyProxy, through: BlobServiceClient, boxes: tuple[str, str]
) -> None:
    source, destination = boxes
    proxy.source_rate = len(DATA) / 0.3  # the whole blob in 0.3 s
    began = time.monotonic()
    through.get_blob_client(destination, "slow.bin").upload_blob_from_url(sas_url(proxy, source, "a.bin"))
    assert time.monotonic() - began >= 0.3  # a lower bound: the cap holds the read back

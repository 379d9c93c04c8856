"""The stand-in fails copies on purpose, as Azure fails them (issue 32): a copy from another
account armed to end ``failed`` after some progress (``fail_next``), and what a second Copy
Blob onto its destination meets; a source, a Copy Blob or one block of Put Block From URL
answering a transient refusal a number of times, then working (``inject``); the same armed
over ``/__proxy/`` control requests, as benchmarks and ``make run`` arm them. On Azurite,
over the real SDK (no retries of its own: each answer is read once)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceExistsError
from azure.storage.blob import BlobBlock, BlobClient, BlobServiceClient

from copy_ops.copies.model import BlobRef, CopyStatus
from copy_ops.core.errors import CopyOpsError
from copy_ops.core.settings import Settings
from devkit import CONTROL_PREFIX, PendingCopyProxy, http_call
from devkit.failures import MESSAGES, SOURCE_READS_FAILED, TIMED_OUT
from devkit.pacing import Pacing
from devkit.worker import run
from tests.conftest import open_storage
from tests.support.partner import Partner

DATA = bytes(range(256)) * 32  # 8 KiB
RATE = 1000.0  # bytes a second: a paced copy of DATA takes 8 s, unless a test moves its clock


@pytest.fixture
def client(proxy: PendingCopyProxy) -> BlobServiceClient:
    return BlobServiceClient.from_connection_string(proxy.connection_string, retry_total=0)


@pytest.fixture
def landing(direct: BlobServiceClient) -> str:
    name = f"landing-{uuid.uuid4().hex[:8]}"
    direct.create_container(name)
    return name


@pytest.fixture
def source(proxy: PendingCopyProxy) -> str:
    return Partner(proxy, f"exports-{uuid.uuid4().hex[:8]}").put("big.bin", DATA)


@pytest.fixture
def paced(proxy: PendingCopyProxy) -> Iterator[PendingCopyProxy]:
    proxy.pace(Pacing(rate=RATE), tick=0.05)
    yield proxy
    proxy.pacing = None


def test_an_armed_copy_ends_failed_after_its_progress_as_azure_ends_one(
    proxy: PendingCopyProxy, client: BlobServiceClient, landing: str, source: str
) -> None:
    """No pace, no pending switch: held pending all the same, failed at the next read of
    its properties, with the bytes copied before the failure, a completion time and the
    description as Azure writes it; the destination empty, there, its ETag moved."""
    proxy.fail_next(after_bytes=3000)
    destination = client.get_blob_client(landing, "big.bin")
    started = destination.start_copy_from_url(source, metadata={"k": "v"})
    assert started["copy_status"] == "pending"
    ended = destination.get_blob_properties()
    copy = ended.copy
    assert (copy.status, copy.id, copy.progress) == ("failed", started["copy_id"], f"3000/{len(DATA)}")
    assert (
        copy.status_description
        == SOURCE_READS_FAILED
        == '500 OperationCancelled "The copy failed when reading the source."'
    )
    assert copy.completion_time is not None
    assert ended.size == 0 and ended.metadata == {"k": "v"} and ended.etag != started["etag"]
    assert destination.download_blob().readall() == b""
    assert destination.get_blob_properties().copy.completion_time == copy.completion_time  # written once


def test_only_the_armed_copies_fail_and_the_next_ones_behave_as_usual(
    proxy: PendingCopyProxy, client: BlobServiceClient, landing: str, source: str
) -> None:
    proxy.pending_copies = True
    proxy.fail_next(times=2, description=TIMED_OUT)
    statuses = []
    for name in ("one", "two", "three"):
        blob = client.get_blob_client(landing, name)
        blob.start_copy_from_url(source)
        statuses.append((blob.get_blob_properties().copy.status, blob.get_blob_properties().copy.status_description))
    assert statuses == [("failed", TIMED_OUT), ("failed", TIMED_OUT), ("pending", None)]
    proxy.finish(landing, "three")
    assert client.get_blob_client(landing, "three").download_blob().readall() == DATA


def test_a_paced_copy_fails_once_paced_that_far(
    paced: PendingCopyProxy, client: BlobServiceClient, landing: str, source: str
) -> None:
    paced.fail_next(after_bytes=5000)
    destination = client.get_blob_client(landing, "big.bin")
    destination.start_copy_from_url(source)
    before = destination.get_blob_properties().copy
    assert before.status == "pending" and int(str(before.progress).split("/")[0]) < 5000
    fake = paced.copy_state(landing, "big.bin")
    assert fake is not None and fake.clock is not None
    fake.clock.started -= 6000 / RATE  # past its failure, before its end
    after = destination.get_blob_properties().copy
    assert (after.status, after.progress, after.status_description) == (
        "failed",
        f"5000/{len(DATA)}",
        SOURCE_READS_FAILED,
    )


def said(refused: HttpResponseError) -> tuple[int | None, str, dict[str, str]]:
    """What a refusal said: its status, its error code and its headers (names in lower case)."""
    code = getattr(refused, "error_code", None) or ""  # the storage SDK sets it (an enum)
    headers = getattr(refused.response, "headers", None) or {}
    return refused.status_code, str(getattr(code, "value", code)), {k.lower(): v for k, v in headers.items()}


def _failed(proxy: PendingCopyProxy, client: BlobServiceClient, landing: str, source: str) -> BlobClient:
    proxy.fail_next()
    destination = client.get_blob_client(landing, "big.bin")
    destination.start_copy_from_url(source, requires_sync=False)
    assert destination.get_blob_properties().copy.status == "failed"
    return destination


def test_a_second_copy_onto_a_failed_destination_meets_it_as_azure_does(
    proxy: PendingCopyProxy, client: BlobServiceClient, landing: str, source: str
) -> None:
    """The failed copy left a blob: "only if absent" is refused 409 BlobAlreadyExists, a
    stale ETag 412; If-Match on its own ETag replaces it with a new copy, which succeeds."""
    proxy.pending_copies = True
    destination = _failed(proxy, client, landing, source)
    failed = destination.get_blob_properties()
    with pytest.raises(ResourceExistsError) as absent:
        destination.start_copy_from_url(source, match_condition=MatchConditions.IfMissing)
    assert said(absent.value)[:2] == (409, "BlobAlreadyExists")
    with pytest.raises(HttpResponseError) as stale:
        destination.start_copy_from_url(
            source, etag='"0x8D0000000000000"', match_condition=MatchConditions.IfNotModified
        )
    assert said(stale.value)[:2] == (412, "ConditionNotMet")
    again = destination.start_copy_from_url(source, etag=failed.etag, match_condition=MatchConditions.IfNotModified)
    assert again["copy_status"] == "pending" and again["copy_id"] != failed.copy.id
    proxy.finish(landing, "big.bin")
    done = destination.get_blob_properties()
    assert (done.copy.status, done.copy.id, done.size) == ("success", again["copy_id"], len(DATA))
    assert done.copy.status_description is None
    assert proxy.started[f"/devstoreaccount1/{landing}/big.bin"] == 2


def test_the_apps_storage_sees_the_failure_then_its_second_copy_succeeds(
    settings: Settings, proxy: PendingCopyProxy, landing: str, source: str
) -> None:
    """Through copy-ops' own storage adapter: a copy that must find its destination absent
    fails; a second one "only if absent" is refused (the failed blob is there); one
    that may replace it starts a new copy that succeeds."""
    storage = open_storage(settings)
    proxy.pending_copies = True
    proxy.fail_next(after_bytes=100)
    ref, until = BlobRef(landing, "big.bin"), datetime.now(UTC) + timedelta(hours=1)
    first, status = run(storage.start_copy(ref, source, {}, False, readable_until=until))
    assert status is CopyStatus.PENDING
    seen = run(storage.observe_copy(ref))
    assert seen is not None and (seen.copy_id, seen.status) == (first, CopyStatus.FAILED)
    assert seen.progress is not None and seen.progress.bytes_copied == 100 and seen.status_description
    with pytest.raises(CopyOpsError):
        run(storage.start_copy(ref, source, {}, False, readable_until=until))
    second, status = run(storage.start_copy(ref, source, {}, True, readable_until=until))
    assert second != first and status is CopyStatus.PENDING
    proxy.finish(landing, "big.bin")
    ended = run(storage.observe_copy(ref))
    assert ended is not None and (ended.copy_id, ended.status) == (second, CopyStatus.SUCCESS)


@pytest.mark.parametrize("code", ["ServerBusy", "InternalError", "OperationTimedOut"])
def test_copy_blob_refused_as_storage_refuses_for_a_moment_then_accepted(
    proxy: PendingCopyProxy, client: BlobServiceClient, landing: str, source: str, code: str
) -> None:
    proxy.pending_copies = True
    status = {"ServerBusy": 503, "InternalError": 500, "OperationTimedOut": 500}[code]
    proxy.inject("copy_blob", status=status, code=code, times=2)
    destination = client.get_blob_client(landing, "big.bin")
    for _ in range(2):
        with pytest.raises(HttpResponseError) as refused:
            destination.start_copy_from_url(source)
        assert said(refused.value)[:2] == (status, code)
        assert MESSAGES[code] in str(refused.value.message)
    assert destination.start_copy_from_url(source)["copy_status"] == "pending"


def test_a_busy_source_refuses_copy_blob_and_from_url_then_reads(
    proxy: PendingCopyProxy, client: BlobServiceClient, landing: str, source: str
) -> None:
    """The source's read answers 503 ServerBusy: Copy Blob is refused 500
    CannotVerifyCopySource; Put Blob and Put Block From URL too, with the source's status
    and code in x-ms-copy-source-status-code and -error-code (service version 2024-08-04
    on); the next read works."""
    proxy.pending_copies = True
    proxy.inject("source_read", status=503, code="ServerBusy", times=3, path_contains="/big.bin")
    blob = client.get_blob_client(landing, "big.bin")
    calls: list[Callable[[], object]] = [
        lambda: blob.start_copy_from_url(source),
        lambda: client.get_blob_client(landing, "whole.bin").upload_blob_from_url(source),
        lambda: client.get_blob_client(landing, "staged.bin").stage_block_from_url("MQ==", source),
    ]
    answers = []
    for call in calls:
        with pytest.raises(HttpResponseError) as refused:
            call()
        status, code, headers = said(refused.value)
        answers.append(
            (status, code, headers.get("x-ms-copy-source-status-code"), headers.get("x-ms-copy-source-error-code"))
        )
    assert answers == [
        (500, "CannotVerifyCopySource", None, None),  # Copy Blob's refusal names no source status (recorded)
        (500, "CannotVerifyCopySource", "503", "ServerBusy"),
        (500, "CannotVerifyCopySource", "503", "ServerBusy"),
    ]
    for call in calls:
        call()
    assert client.get_blob_client(landing, "whole.bin").download_blob().readall() == DATA


def test_the_sources_own_properties_answer_503_then_200(
    proxy: PendingCopyProxy, client: BlobServiceClient, source: str
) -> None:
    """The app's read of a source's properties (a HEAD: the code in x-ms-error-code only)."""
    container, name = source.split("?", maxsplit=1)[0].split("/")[-2:]
    proxy.inject("get_properties", status=503, code="ServerBusy", times=1, path_contains=f"/{container}/{name}")
    partner = BlobClient.from_blob_url(source, retry_total=0)
    with pytest.raises(HttpResponseError) as busy:
        partner.get_blob_properties()
    status, _, headers = said(busy.value)
    assert (status, headers.get("x-ms-error-code")) == (503, "ServerBusy")
    assert partner.get_blob_properties().size == len(DATA)


@pytest.mark.parametrize(("block_id", "source_range"), [("Mg==", ""), ("", "bytes=4096-8191")])
def test_one_block_fails_a_number_of_times_while_the_others_stage(
    proxy: PendingCopyProxy, client: BlobServiceClient, landing: str, source: str, block_id: str, source_range: str
) -> None:
    """Put Block From URL of one block (by its id, or by its source range) answers 503
    ServerBusy twice; the blocks before and after it stage; then it stages too."""
    blob = client.get_blob_client(landing, "blocks.bin")
    proxy.inject(
        "put_block_from_url", status=503, code="ServerBusy", times=2, block_id=block_id, source_range=source_range
    )
    outcomes: list[tuple[int, str, int | None]] = []
    for attempt in range(3):
        for index, name in enumerate(("1", "2")):  # sent as "MQ==", "Mg=="
            try:
                blob.stage_block_from_url(name, source, source_offset=index * 4096, source_length=4096)
                outcomes.append((attempt, name, 201))
            except HttpResponseError as exc:
                outcomes.append((attempt, name, exc.status_code))
    assert outcomes == [(0, "1", 201), (0, "2", 503), (1, "1", 201), (1, "2", 503), (2, "1", 201), (2, "2", 201)]


def test_a_blocks_source_read_fails_with_the_sources_busy_answer(
    proxy: PendingCopyProxy, client: BlobServiceClient, landing: str, source: str
) -> None:
    blob = client.get_blob_client(landing, "blocks.bin")
    proxy.inject("source_read", status=503, code="ServerBusy", times=1, block_id="Mg==")
    blob.stage_block_from_url("1", source, source_offset=0, source_length=4096)
    with pytest.raises(HttpResponseError) as refused:
        blob.stage_block_from_url("2", source, source_offset=4096, source_length=4096)
    assert said(refused.value)[:2] == (500, "CannotVerifyCopySource")
    blob.stage_block_from_url("2", source, source_offset=4096, source_length=4096)
    blob.commit_block_list([BlobBlock("1"), BlobBlock("2")])  # encoded as they were staged
    assert blob.download_blob().readall() == DATA


def test_failures_are_armed_over_control_requests(
    proxy: PendingCopyProxy, client: BlobServiceClient, landing: str, source: str
) -> None:
    """As a benchmark or ``make run`` arms them: POST /__proxy/fail-next, /__proxy/inject,
    /__proxy/clear-faults (JSON of the methods' keywords); a field it does not take is 400."""

    def post(command: str, body: dict[str, object]) -> int:
        return http_call(f"{proxy.url}{CONTROL_PREFIX}{command}", "POST", body).status

    assert post("fail-next", {"times": 1, "after_bytes": 10, "description": TIMED_OUT}) == 204
    assert post("inject", {"kind": "copy_blob", "status": 503, "code": "ServerBusy", "times": 1}) == 204
    assert post("inject", {"kind": "copy_blob", "colour": "red"}) == 400
    destination = client.get_blob_client(landing, "big.bin")
    with pytest.raises(HttpResponseError) as busy:
        destination.start_copy_from_url(source)
    assert busy.value.status_code == 503
    destination.start_copy_from_url(source)
    copy = destination.get_blob_properties().copy
    assert (copy.status, copy.progress, copy.status_description) == ("failed", f"10/{len(DATA)}", TIMED_OUT)
    assert post("fail-next", {"times": 1}) == 204
    assert post("clear-faults", {}) == 204
    assert proxy.failures.armed() == 0

"""The local stand-in of Azure (``make run``'s): copies from another account paced as
Azure paces them, copies within one account at once (whatever the container is called,
whatever the tests' switch says), and tag queries answered from an index seeded from what
Azurite already holds. On Azurite, over the real SDK."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from azure.storage.blob import BlobServiceClient

from devkit import DEV_ACCOUNT, PendingCopyProxy, connection_string
from devkit.pacing import Pacing
from tests.support.partner import Partner

SIZE = 2000
RATE = 100.0  # bytes a second: a copy of SIZE takes 20 s, unless a test moves its clock


@pytest.fixture
def standin(azurite_ports: tuple[int, int]) -> Iterator[PendingCopyProxy]:
    proxy = PendingCopyProxy(azurite_ports[0]).start()
    proxy.index.keep_history = False
    proxy.pace(Pacing(rate=RATE), tick=0.05)
    yield proxy
    proxy.pacing = None
    proxy.stop()


def test_a_copy_from_another_account_is_pending_with_progress_then_ends_by_itself(
    standin: PendingCopyProxy, direct: BlobServiceClient
) -> None:
    client = BlobServiceClient.from_connection_string(standin.connection_string)
    landing = f"landing-{uuid.uuid4().hex[:8]}"
    direct.create_container(landing)
    data = bytes(range(250)) * (SIZE // 250)
    source = Partner(standin, f"exports-{uuid.uuid4().hex[:8]}").put("big.bin", data)

    destination = client.get_blob_client(landing, "big.bin")
    started = destination.start_copy_from_url(source)
    assert started["copy_status"] == "pending"
    copy = destination.get_blob_properties().copy
    assert copy.status == "pending" and copy.id == started["copy_id"]
    copied, total = (int(part) for part in str(copy.progress).split("/"))
    assert total == SIZE and 0 <= copied < SIZE

    fake = standin.copy_state(landing, "big.bin")
    assert fake is not None and fake.clock is not None
    fake.clock.started -= SIZE / RATE  # its time is up: the next look finds it ended
    ended = destination.get_blob_properties()
    assert (ended.copy.status, ended.copy.id, ended.copy.progress) == ("success", started["copy_id"], f"{SIZE}/{SIZE}")
    assert destination.download_blob().readall() == data


@pytest.mark.parametrize("container", ["box", "partner"])
@pytest.mark.parametrize("spelt", ["127.0.0.1", "localhost"])
@pytest.mark.parametrize("switch", [False, True], ids=["paced", "paced-and-pending-switch"])
def test_a_copy_within_the_account_ends_at_once(
    standin: PendingCopyProxy, direct: BlobServiceClient, container: str, spelt: str, switch: bool
) -> None:
    """Within one account Azure copies at once: also from a container named ``partner``
    (once the stand-in's stand-in for another account), and with the tests' pending switch on."""
    standin.pending_copies = switch
    client = BlobServiceClient.from_connection_string(standin.connection_string)
    box = f"{container}-{uuid.uuid4().hex[:8]}" if container == "box" else container
    if not direct.get_container_client(box).exists():
        direct.create_container(box)
    name = f"{uuid.uuid4().hex[:8]}.bin"
    direct.get_blob_client(box, name).upload_blob(b"here")
    source = f"http://{spelt}:{standin.port}/{DEV_ACCOUNT}/{box}/{name}"
    started = client.get_blob_client(box, f"copy-{name}").start_copy_from_url(source)
    assert started["copy_status"] == "success"
    assert client.get_blob_client(box, f"copy-{name}").download_blob().readall() == b"here"
    assert standin.copies() == []


def test_the_tests_pending_switch_holds_a_copy_from_another_account_until_it_is_finished(
    proxy: PendingCopyProxy, direct: BlobServiceClient
) -> None:
    """The switch the suite's tests use (no pace): pending until the test finishes it for real."""
    proxy.pending_copies = True
    landing = f"landing-{uuid.uuid4().hex[:8]}"
    direct.create_container(landing)
    source = Partner(proxy, f"exports-{uuid.uuid4().hex[:8]}").put("a.bin", b"partner bytes")
    destination = BlobServiceClient.from_connection_string(proxy.connection_string).get_blob_client(landing, "a.bin")
    assert destination.start_copy_from_url(source)["copy_status"] == "pending"
    fake = proxy.copy_state(landing, "a.bin")
    assert fake is not None and fake.clock is None and destination.get_blob_properties().copy.status == "pending"
    proxy.finish(landing, "a.bin")
    assert destination.get_blob_properties().copy.status == "success"
    assert destination.download_blob().readall() == b"partner bytes"


def test_a_restarted_standin_answers_tag_queries_for_what_azurite_already_holds(
    azurite_ports: tuple[int, int], direct: BlobServiceClient
) -> None:
    box = f"ledger-{uuid.uuid4().hex[:8]}"
    direct.create_container(box)
    # More records than Azurite filters per query (its first maxresults only), made
    # before the stand-in started: it learns them from Azurite.
    for index in range(30):
        tags = {"state": "pending" if index % 3 == 0 else "succeeded"}
        direct.get_blob_client(box, f"ops/{index:03d}.json").upload_blob(b"{}", tags=tags)
    proxy = PendingCopyProxy(azurite_ports[0]).start()
    try:
        proxy.index.keep_history = False
        assert proxy.seed_index() >= 30
        through = BlobServiceClient.from_connection_string(connection_string(proxy.port))
        pages = through.get_container_client(box).find_blobs_by_tags("\"state\" = 'pending'", results_per_page=4)
        found = [blob.name for page in pages.by_page() for blob in page]
        assert found == [f"ops/{index:03d}.json" for index in range(0, 30, 3)]
    finally:
        proxy.stop()

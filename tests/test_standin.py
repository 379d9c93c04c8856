"""The local stand-in of Azure (``make run``'s): copies from another "account" paced as
Azure paces them, copies within the account at once, and tag queries answered from an
index seeded from what Azurite already holds. On Azurite, over the real SDK."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from azure.storage.blob import BlobServiceClient

from devkit import DEV_ACCOUNT, PendingCopyProxy, connection_string
from devkit.pacing import Pacing

SIZE = 2000
RATE = 100.0  # bytes a second: a copy of SIZE takes 20 s, unless a test moves its clock


@pytest.fixture
def standin(azurite_ports: tuple[int, int]) -> Iterator[PendingCopyProxy]:
    proxy = PendingCopyProxy(azurite_ports[0]).start()
    proxy.index.keep_history = False
    proxy.pace(Pacing(rate=RATE, remote_containers=("partner",)), tick=0.05)
    yield proxy
    proxy.pacing = None
    proxy.stop()


def test_a_copy_from_another_account_is_pending_with_progress_then_ends_by_itself(
    standin: PendingCopyProxy, direct: BlobServiceClient
) -> None:
    client = BlobServiceClient.from_connection_string(standin.connection_string)
    partner, landing = "partner", f"landing-{uuid.uuid4().hex[:8]}"
    for name in (partner, landing):
        if not direct.get_container_client(name).exists():
            direct.create_container(name)
    data = bytes(range(250)) * (SIZE // 250)
    direct.get_blob_client(partner, "big.bin").upload_blob(data, overwrite=True)
    source = f"{standin.url}/{DEV_ACCOUNT}/{partner}/big.bin"

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


def test_a_copy_within_the_account_ends_at_once(standin: PendingCopyProxy, direct: BlobServiceClient) -> None:
    client = BlobServiceClient.from_connection_string(standin.connection_string)
    box = f"box-{uuid.uuid4().hex[:8]}"
    direct.create_container(box)
    direct.get_blob_client(box, "a.bin").upload_blob(b"here")
    started = client.get_blob_client(box, "b.bin").start_copy_from_url(f"{standin.url}/{DEV_ACCOUNT}/{box}/a.bin")
    assert started["copy_status"] == "success"
    assert client.get_blob_client(box, "b.bin").download_blob().readall() == b"here"


@pytest.mark.parametrize(
    ("source", "remote"),
    [
        ("http://127.0.0.1:10000/devstoreaccount1/in/a.bin", False),
        ("http://localhost:10000/devstoreaccount1/in/a.bin?sv=x", False),
        ("http://127.0.0.1:10000/devstoreaccount1/partner/a.bin", True),
        ("http://127.0.0.1:10000/otheraccount/in/a.bin", True),
        ("https://elsewhere.example/devstoreaccount1/in/a.bin", True),
        ("http://127.0.0.1:10000/devstoreaccount1/partners/a.bin", False),
    ],
)
def test_which_sources_are_remote(source: str, remote: bool) -> None:
    assert Pacing().is_remote(source, "127.0.0.1:10000", "devstoreaccount1") is remote


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

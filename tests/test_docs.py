"""The documentation's examples run as written (docs/api.md, "Try it locally"), against
the development host on Azurite, set up as `make run` sets it up."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.core.exceptions import ResourceExistsError
from azure.storage.blob import BlobServiceClient

from devkit import PARTNER_ACCOUNT, PARTNER_KEY, PROJECT_ROOT, PendingCopyProxy
from devkit.pacing import Pacing
from tests.support.devhost_process import DevHostProcess

pytestmark = pytest.mark.system


def try_it_block() -> str:
    text = (PROJECT_ROOT / "docs" / "api.md").read_text()
    section = text[text.index("## Try it locally") :]
    match = re.search(r"```sh\n(.*?)```", section, flags=re.DOTALL)
    assert match is not None
    return match.group(1)


@pytest.fixture
def host(proxy: PendingCopyProxy) -> Iterator[DevHostProcess]:
    for name in ("incoming", "backups"):
        with contextlib.suppress(ResourceExistsError):
            proxy.direct.create_container(name)
    proxy.direct.get_blob_client("incoming", "hello.txt").upload_blob(b"hello from copy-ops\n", overwrite=True)
    # As make run seeds it (scripts/run.sh): the partner's account, its public container.
    partner = BlobServiceClient(
        f"http://127.0.0.1:{proxy.azurite_port}/{PARTNER_ACCOUNT}",
        credential={"account_name": PARTNER_ACCOUNT, "account_key": PARTNER_KEY},
    )
    with contextlib.suppress(ResourceExistsError):
        partner.create_container("exports", public_access="blob")
    partner.get_blob_client("exports", "big.bin").upload_blob(b"x" * 65536, overwrite=True)
    # As make run's stand-in, slower: the copy from the partner's account is still pending at its deadline.
    proxy.pace(Pacing(rate=1024))
    started = DevHostProcess(
        env={
            "COPY_STORAGE": proxy.connection_string,
            "COPY_LEDGER_CONTAINER": f"ledger-{uuid.uuid4().hex[:10]}",
            "COPY_SWEEP_SCHEDULE": "0 0 0 1 1 *",
        }
    )
    yield started
    started.stop()


def big_url(proxy: PendingCopyProxy) -> str:
    """The partner's blob as the examples name it, on this test's stand-in (make run's: port 10000)."""
    return f"{proxy.url}/{PARTNER_ACCOUNT}/exports/big.bin"


def test_the_try_it_examples_run_as_written(host: DevHostProcess, proxy: PendingCopyProxy) -> None:
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", try_it_block()],
        env={"PATH": "/usr/bin:/bin:/usr/local/bin", "APP": host.url, "BIG": big_url(proxy), "HOME": "/tmp"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    out = result.stdout
    assert out.count('"state":"succeeded"') >= 2  # the start, and the read
    assert '"items":[' in out
    assert (
        '"field":"source"' in out and '"field":"destination.container"' in out and '"field":"destination.blob"' in out
    )
    assert '"state":"pending"' in out and '"source":"' + big_url(proxy) + '"' in out  # from the partner's account
    assert '"state":"aborted"' in out and '"abort_reason":"deadline"' in out  # ... at its deadline
    job = json.loads(Path("/tmp/copy-ops-job.json").read_text())
    # Ended with its items: every one it found succeeded (tests running beside this one put blobs
    # of their own in the shared account's incoming container, so hello.txt may not be alone).
    counts = job["counts"]
    assert job["state"] == "succeeded" and counts["succeeded"] == counts["items"] >= 1, job
    assert '"destination":{"container":"backups","blob":"job/hello.txt"}' in out  # the job's report

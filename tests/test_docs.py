"""The documentation's examples run as written (docs/api.md, "Try it locally"), against
the development host on Azurite, set up as `make run` sets it up."""

from __future__ import annotations

import contextlib
import re
import subprocess
import uuid
from collections.abc import Iterator

import pytest
from azure.core.exceptions import ResourceExistsError

from devkit import PROJECT_ROOT, PendingCopyProxy
from tests.support.devhost_process import DevHostProcess


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
    started = DevHostProcess(
        env={
            "COPY_STORAGE": proxy.connection_string,
            "COPY_LEDGER_CONTAINER": f"ledger-{uuid.uuid4().hex[:10]}",
            "COPY_SWEEP_SCHEDULE": "0 0 0 1 1 *",
        }
    )
    yield started
    started.stop()


def test_the_try_it_examples_run_as_written(host: DevHostProcess) -> None:
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", try_it_block()],
        env={"PATH": "/usr/bin:/bin:/usr/local/bin", "APP": host.url, "HOME": "/tmp"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.count('"state":"succeeded"') >= 2  # the start, and the read
    assert '"items":[' in out
    assert (
        '"field":"source"' in out and '"field":"destination.container"' in out and '"field":"destination.blob"' in out
    )
    assert out.count('"state":"enumerating"') + out.count('"state":"running"') >= 2  # the job, and its read

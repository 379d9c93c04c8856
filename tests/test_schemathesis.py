"""Schemathesis drives the served OpenAPI document against the running development host:
no 5xx, and every response conforms to the document (status, content type, headers,
body schema), including the stateful runs the document's links allow."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from devkit import PendingCopyProxy
from tests.support.devhost_process import DevHostProcess

pytestmark = pytest.mark.system

CONFIG = Path(__file__).parent / "support" / "schemathesis.toml"


@pytest.fixture(scope="module")
def host(_proxy: PendingCopyProxy) -> Iterator[DevHostProcess]:
    process = DevHostProcess(
        env={
            "COPY_STORAGE": _proxy.connection_string,
            "COPY_LEDGER_CONTAINER": f"ledger-{uuid.uuid4().hex[:10]}",
            "COPY_SWEEP_SCHEDULE": "0 0 0 1 1 *",
            "COPY_ALLOWED_SOURCE_HOSTS": "*",
        }
    )
    yield process
    process.stop()


def test_the_api_conforms_to_its_openapi_document(host: DevHostProcess) -> None:
    cli = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    assert cli, "schemathesis is a dev requirement: run scripts/setup.sh"
    # CI runs one fixed seed; SCHEMATHESIS_SEED replays another (a failing run prints its seed).
    chosen = os.environ.get("SCHEMATHESIS_SEED") or ("20261124" if os.environ.get("CI") else None)
    seed = ["--seed", chosen] if chosen else []
    result = subprocess.run(
        [
            cli,
            "--config-file",
            str(CONFIG),
            "run",
            f"{host.url}/api/openapi.json",
            "--checks",
            "all",
            # Locally, as with `func start`, function keys are not checked (see the config file).
            "--exclude-checks",
            "ignored_auth",
            "--max-examples",
            "40",
            "--request-timeout",
            "30",
            "--no-color",
            *seed,
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=240,
    )
    log = host.log()
    # The host's log carries the traceback behind any 500: show from the first error on.
    errors = log[log.find(" ERROR ") - 30 :][:6000] if " ERROR " in log else ""
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:] + errors
    # Nor did anything fail out of sight: the queue trigger's work on the jobs it started.
    assert not errors, errors

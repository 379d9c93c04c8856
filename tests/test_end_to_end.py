"""End to end over real HTTP: the development host as a subprocess, on Azurite behind the
pending-copy proxy. Copies that finish at once, pending copies, reads, lists, requested
aborts, deadline aborts by the timer on its own schedule and through the admin endpoint."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import datetime

import pytest

from devkit import PROJECT_ROOT as ROOT
from devkit import PendingCopyProxy, Reply
from tests.conftest import Blobs
from tests.support.devhost_process import DevHostProcess
from tests.support.partner import Partner
from tests.support.requests import copy_body

pytestmark = pytest.mark.system

EVERY_SECOND = "* * * * * *"
ONCE_A_YEAR = "0 0 0 1 1 *"


class Env:
    """The test's containers: its own account's, whose copies end at once, and the second
    account's (tests/support/partner.py), whose copies stay pending, as on Azure."""

    def __init__(self, blobs: Blobs, partner: Partner) -> None:
        self.src, self.dst, self.direct, self.partner = blobs.src, blobs.dst, blobs.direct, partner
        for name in ("a.bin", "b.bin", "c.bin", "d.bin"):
            blobs.put(self.src, name, b"payload-" + name.encode())
            partner.put(name, b"payload-" + name.encode())


def host_for(proxy: PendingCopyProxy, schedule: str) -> DevHostProcess:
    return DevHostProcess(
        env={
            "COPY_STORAGE": proxy.connection_string,
            "COPY_LEDGER_CONTAINER": f"ledger-{uuid.uuid4().hex[:10]}",
            "COPY_SWEEP_SCHEDULE": schedule,
            "COPY_FIRST_CHECK_SECONDS": "1",
            "COPY_DEFAULT_TIMEOUT_SECONDS": "222",
            # Copy Blob held pending by the proxy, to its deadline (auto's escalation: test_blocks_engine).
            "COPY_ENGINE": "async",
        },
        # The file's value loses to the environment's; its other values are used.
        local_settings={"COPY_DEFAULT_TIMEOUT_SECONDS": "111", "COPY_ALLOWED_SOURCE_HOSTS": "127.0.0.1:*"},
    )


@pytest.fixture(scope="module")
def ticking(_proxy: PendingCopyProxy) -> Iterator[DevHostProcess]:
    host = host_for(_proxy, EVERY_SECOND)
    yield host
    host.stop()


@pytest.fixture(scope="module")
def manual(_proxy: PendingCopyProxy) -> Iterator[DevHostProcess]:
    host = host_for(_proxy, ONCE_A_YEAR)
    yield host
    host.stop()


@pytest.fixture
def env(blobs: Blobs, partner: Partner) -> Env:
    return Env(blobs, partner)


def state(reply: Reply) -> str:
    return str(reply.json()["state"])


def test_a_copy_that_finishes_at_once(manual: DevHostProcess, env: Env) -> None:
    reply = manual.call("POST", "/api/copies", copy_body(env.src, env.dst))
    assert reply.status == 201, reply.body
    op = reply.json()
    assert reply.headers["Location"] == f"/api/copies/{op['id']}"
    assert op["state"] == "succeeded"
    # The environment's default deadline won over local.settings.json's.
    created, deadline = (datetime.fromisoformat(op[k].replace("Z", "+00:00")) for k in ("created_at", "deadline"))
    assert (deadline - created).total_seconds() == 222
    read = manual.call("GET", reply.headers["Location"])
    assert read.status == 200 and read.json()["id"] == op["id"]
    assert env.direct.get_blob_client(env.dst, "a.bin").download_blob().readall() == b"payload-a.bin"


def test_pending_read_list_and_requested_abort(manual: DevHostProcess, env: Env, proxy: PendingCopyProxy) -> None:
    proxy.pending_copies = True
    started = manual.call("POST", "/api/copies", env.partner.body(env.dst, "b.bin", timeout_seconds=600))
    assert started.status == 202 and int(started.headers["Retry-After"]) >= 1
    location = started.headers["Location"]
    assert state(manual.call("GET", location)) == "pending"
    listed = manual.call("GET", "/api/copies?state=pending&limit=100")
    assert started.json()["id"] in [item["id"] for item in listed.json()["items"]]
    aborted = manual.call("POST", location + "/abort")
    assert aborted.status == 200 and aborted.json()["abort_reason"] == "requested"
    assert env.direct.get_blob_client(env.dst, "b.bin").download_blob().readall() == b""


def test_the_timer_aborts_at_the_deadline_on_its_own(
    ticking: DevHostProcess, env: Env, proxy: PendingCopyProxy
) -> None:
    proxy.pending_copies = True
    started = ticking.call(
        "POST", "/api/copies", env.partner.body(env.dst, "c.bin", timeout_seconds=2, on_abort="delete")
    )
    assert started.status == 202
    final = ticking.wait_for(started.headers["Location"], lambda r: state(r) != "pending")
    assert (final.json()["state"], final.json()["abort_reason"]) == ("aborted", "deadline")
    assert not env.direct.get_blob_client(env.dst, "c.bin").exists()
    assert "sweep_summary" in ticking.log() and "timer function=sweep" in ticking.log()


def test_the_admin_endpoint_runs_the_sweep_now(manual: DevHostProcess, env: Env, proxy: PendingCopyProxy) -> None:
    proxy.pending_copies = True
    started = manual.call("POST", "/api/copies", env.partner.body(env.dst, "d.bin", timeout_seconds=1))
    location = started.headers["Location"]
    time.sleep(1.5)
    assert state(manual.call("GET", location)) == "pending"  # a read never aborts; the yearly timer has not fired
    ran = manual.call("POST", "/admin/functions/sweep", {"input": ""})
    assert ran.status == 202
    final = manual.wait_for(location, lambda r: state(r) != "pending", timeout=10)
    assert (final.json()["state"], final.json()["abort_reason"]) == ("aborted", "deadline")


def test_bad_input_and_idempotent_replay(manual: DevHostProcess, env: Env, proxy: PendingCopyProxy) -> None:
    bad = manual.call("POST", "/api/copies", b'{"source": 5}')
    assert bad.status == 400 and bad.headers["Content-Type"].startswith("application/problem+json")
    assert {e["field"] for e in bad.json()["errors"]} == {"source", "destination"}
    proxy.pending_copies = True
    body = env.partner.body(env.dst, "a.bin", dest_name="replayed.bin", timeout_seconds=600)
    first = manual.call("POST", "/api/copies", body, headers={"Idempotency-Key": env.src})
    again = manual.call("POST", "/api/copies", body, headers={"Idempotency-Key": env.src})
    assert (first.status, again.status) == (202, 200) and first.json()["id"] == again.json()["id"]
    other = manual.call("POST", "/api/copies", {**body, "timeout_seconds": 5}, headers={"Idempotency-Key": env.src})
    assert other.status == 409


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/api/nothing", 404),
        ("GET", "/elsewhere", 404),
        ("DELETE", "/api/copies", 405),
        ("PUT", "/api/copies/x", 405),
        ("POST", "/admin/functions/nope", 404),
        ("POST", "/admin/functions/get_copy", 400),
    ],
)
def test_the_hosts_own_errors(manual: DevHostProcess, method: str, path: str, status: int) -> None:
    reply = manual.call(method, path, b"{}" if method in ("POST", "PUT") else None)
    assert reply.status == status
    assert reply.headers["Content-Type"] == "application/problem+json"
    assert reply.json()["status"] == status and reply.json()["detail"]
    if status == 405:
        assert reply.headers["Allow"]


def test_one_log_line_per_request(manual: DevHostProcess) -> None:
    marker = uuid.uuid4().hex
    manual.call("GET", f"/api/openapi.json?{marker}")
    line = "request method=GET path=/api/openapi.json status=200"
    # The host writes its line after the answer: wait for it, never for luck.
    assert manual.wait_for_log(lambda log: log.count(line) >= 1)


def test_the_demo_shows_a_finish_and_a_deadline_abort() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "devhost.demo"], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # It shuts down cleanly: every storage session closed, no traceback.
    assert "Unclosed" not in result.stdout + result.stderr and "Traceback" not in result.stdout + result.stderr
    assert "GET report.csv: succeeded" in result.stdout
    assert "GET stuck.bin: aborted (0/1048576 bytes), abort_reason=deadline" in result.stdout

"""COPY_POLICY through the development host with real signed tokens, set up as make run sets
it: COPY_AUTH=both, the named callers' policy (devkit.issuer.LOCAL_POLICY). Each caller
copies what its rule lets it and is refused the rest (403 naming the field and the rule);
a job with one manifest entry outside is refused whole; the host's and the app's own
containers are refused to an admin too; and none of these refusals reaches storage (the
proxy's log of every storage request stays as it was). The banner's refusal, through the
CLI, and README's walk-through of the named callers, run as written."""

from __future__ import annotations

import contextlib
import io
import json
import re
import subprocess
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from azure.core.exceptions import ResourceExistsError

from copy_ops_cli.main import main as cli
from devkit import PROJECT_ROOT, PendingCopyProxy
from devkit.issuer import LOCAL_POLICY, LocalIssuer
from tests.support.devhost_process import DevHostProcess

pytestmark = pytest.mark.system

AUDIENCE = "api://copy-ops-tests"


@pytest.fixture(scope="module")
def issuer() -> Iterator[LocalIssuer]:
    with LocalIssuer() as running:
        yield running


@pytest.fixture(scope="module")
def host(issuer: LocalIssuer, _proxy: PendingCopyProxy) -> Iterator[DevHostProcess]:
    for name in ("incoming", "backups"):  # as make run makes them
        with contextlib.suppress(ResourceExistsError):
            _proxy.direct.create_container(name)
    suffix = uuid.uuid4().hex[:10]
    started = DevHostProcess(
        env={
            "COPY_STORAGE": _proxy.connection_string,
            "COPY_LEDGER_CONTAINER": f"ledger-{suffix}",
            "COPY_WORK_QUEUE": f"work-{suffix}",
            "COPY_SWEEP_SCHEDULE": "0 0 0 1 1 *",
            "COPY_AUTH": "both",
            "COPY_POLICY": json.dumps(LOCAL_POLICY),
            "DEVHOST_AUTH_ISSUER": issuer.url,
            "DEVHOST_AUTH_AUDIENCE": AUDIENCE,
        }
    )
    yield started
    started.stop()


@pytest.fixture
def name(_proxy: PendingCopyProxy) -> str:
    """A blob of the test's own in the app's incoming container."""
    made = f"{uuid.uuid4().hex[:10]}.txt"
    _proxy.direct.get_blob_client("incoming", made).upload_blob(b"hello from copy-ops\n")
    return made


def post(host: DevHostProcess, issuer: LocalIssuer, caller: str | None, route: str, body: Any) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {issuer.token(caller, AUDIENCE)}"} if caller else {}
    reply = host.call("POST", f"/api/{route}", body, headers=headers)
    return reply.status, reply.json()


def copy(source: str, destination: str) -> dict[str, Any]:
    (container, _, blob), (into, _, name) = source.partition("/"), destination.partition("/")
    return {"source": {"container": container, "blob": blob}, "destination": {"container": into, "blob": name}}


def refused(answer: tuple[int, Any]) -> tuple[str | None, list[str]]:
    status, problem = answer
    assert status == 403, problem
    assert problem["type"] == "urn:copy-ops:problem:forbidden"
    return problem.get("code"), [item["field"] for item in problem["errors"]]


def test_each_caller_copies_what_its_rule_lets_it(host: DevHostProcess, issuer: LocalIssuer, name: str) -> None:
    status, view = post(host, issuer, "alice", "copies", copy(f"incoming/{name}", f"backups/alice/{name}"))
    assert (status, view["state"]) == (201, "succeeded"), view
    outside = post(host, issuer, "alice", "copies", copy(f"incoming/{name}", f"backups/bob/{name}"))
    assert refused(outside) == ("team-a", ["destination"])
    assert f"devstoreaccount1/backups/bob/{name} is outside what rule team-a let write" in outside[1]["detail"]
    assert refused(post(host, issuer, "bob", "copies", copy(f"incoming/{name}", f"backups/bob/{name}"))) == (
        "team-b",
        ["source"],
    )
    assert post(host, issuer, "carol", "copies", copy(f"incoming/{name}", f"backups/{name}"))[0] == 201
    assert post(host, issuer, None, "copies", copy(f"incoming/{name}", f"backups/k-{name}"))[0] == 201  # a key's


def test_refusals_reach_no_storage_and_a_job_is_refused_whole(
    host: DevHostProcess, issuer: LocalIssuer, proxy: PendingCopyProxy, name: str
) -> None:
    queue = proxy.queue_proxy
    assert queue is not None
    blob_requests, messages = len(proxy.log.paths), queue.log.counts["put_message"]
    entries: list[Any] = [{"container": "incoming", "blob": name}, f"{proxy.url}/partner/exports/big.bin"]
    manifest = {"source": {"blobs": entries}, "destination": {"container": "backups", "prefix": "alice/"}}
    assert refused(post(host, issuer, "alice", "jobs", manifest)) == ("team-a", ["source.blobs[1]"])
    prefix = {"source": {"container": "incoming"}, "destination": {"container": "backups", "prefix": "bob/"}}
    assert refused(post(host, issuer, "bob", "jobs", prefix)) == ("team-b", ["source"])
    assert refused(post(host, issuer, "alice", "copies", copy(f"incoming/{name}", "backups/x"))) == (
        "team-a",
        ["destination"],
    )
    # The Functions host's containers and the app's own: refused to an admin, and to a key's holder.
    for caller in ("carol", None):
        for body, field in (
            (copy("azure-webjobs-secrets/host.json", "backups/host.json"), "source"),
            (copy(f"incoming/{name}", "azure-webjobs-hosts/x"), "destination"),
            (copy(f"incoming/{name}", f"{host.env['COPY_WORK_QUEUE']}-poison/x"), "destination"),
        ):
            assert refused(post(host, issuer, caller, "copies", body)) == ("reserved", [field])
    assert proxy.log.paths[blob_requests:] == []
    assert queue.log.counts["put_message"] == messages
    # The control: the manifest less its entry outside is started, and ends with its item.
    status, job = post(host, issuer, "alice", "jobs", {**manifest, "source": {"blobs": entries[:1]}})
    assert status == 202, job
    ended = host.wait_for(f"/api/jobs/{job['id']}", lambda reply: reply.json()["state"] == "succeeded", timeout=60)
    assert ended.json()["counts"]["succeeded"] == 1, ended.json()
    assert len(proxy.log.paths) > blob_requests


def test_the_banners_refusal_through_the_cli(host: DevHostProcess, issuer: LocalIssuer, name: str) -> None:
    """What make run's banner shows: alice's copy into backups/alice/, bob refused incoming."""

    def run(caller: str, *args: str) -> tuple[int, str]:
        err = io.StringIO()
        token = issuer.token(caller, AUDIENCE)
        return cli(["--url", host.url, "--token", token, *args], stdout=io.StringIO(), stderr=err), err.getvalue()

    assert run("alice", "start", f"incoming/{name}", f"backups/alice/{name}", "--overwrite") == (0, "")
    status, said = run("bob", "start", "incoming/hello.txt", "backups/bob/hello.txt")
    assert status == 1
    assert said == (
        "copy-ops: 403 Not allowed: source: devstoreaccount1/incoming/hello.txt is outside what rule team-b let read\n"
    )


def readme_callers_block() -> str:
    """README's make run walk-through of the named callers (the banner's last lines)."""
    text = (PROJECT_ROOT / "README.md").read_text()
    section = text[text.index("`make run` also has three named callers ready") :]
    match = re.search(r"```sh\n(.*?)```", section, flags=re.DOTALL)
    assert match is not None
    return match.group(1)


def test_the_readmes_walk_through_runs_as_written(
    host: DevHostProcess, issuer: LocalIssuer, _proxy: PendingCopyProxy
) -> None:
    """As a newcomer types it after make run: alice's copy lands, bob is refused, one line."""
    _proxy.direct.get_blob_client("incoming", "hello.txt").upload_blob(b"hello from copy-ops\n", overwrite=True)
    # Where make run's host, its issuer and its audience are (the tools read these).
    env = {
        "PATH": "/usr/bin:/bin:/usr/local/bin",
        "HOME": "/tmp",
        "COPY_OPS_URL": host.url,
        "DEVHOST_AUTH_ISSUER": issuer.url,
        "DEVHOST_AUTH_AUDIENCE": AUDIENCE,
    }
    result = subprocess.run(
        ["bash", "-uo", "pipefail", "-c", readme_callers_block()],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1, result.stdout + result.stderr  # the last command: bob refused
    assert "succeeded" in result.stdout, result.stdout + result.stderr
    assert result.stderr.splitlines() == [
        "copy-ops: 403 Not allowed: source: devstoreaccount1/incoming/hello.txt is outside what rule team-b let read"
    ], result.stderr

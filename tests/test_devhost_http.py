"""The development host as a client meets it: over real sockets, under load, with broken
requests, and at shutdown. Its own errors are problem+json like the app's."""

from __future__ import annotations

import json
import socket
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from devkit import PendingCopyProxy
from tests.support.devhost_process import DevHostProcess

pytestmark = pytest.mark.system


def start_host(proxy: PendingCopyProxy) -> DevHostProcess:
    return DevHostProcess(
        env={
            "COPY_STORAGE": proxy.connection_string,
            "COPY_LEDGER_CONTAINER": f"ledger-{uuid.uuid4().hex[:10]}",
            "COPY_SWEEP_SCHEDULE": "0 0 0 1 1 *",
            "COPY_ALLOWED_SOURCE_HOSTS": "127.0.0.1:*",
        }
    )


@pytest.fixture(scope="module")
def host(_proxy: PendingCopyProxy) -> Iterator[DevHostProcess]:
    started = start_host(_proxy)
    yield started
    started.stop()


def raw_exchange(port: int, data: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send bytes as they are; the status, headers and body of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = sock.recv(65536)
            assert chunk, f"the host closed the connection without an answer: {received!r}"
            received += chunk
        head, _, body = received.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = dict(line.split(": ", 1) for line in lines[1:])
        while len(body) < int(headers.get("Content-Length", "0")):
            body += sock.recv(65536)
        return int(lines[0].split()[1]), headers, body


def assert_problem(status: int, headers: dict[str, str], body: bytes, expected: int) -> None:
    assert status == expected, body
    assert headers["Content-Type"] == "application/problem+json"
    problem = json.loads(body)
    assert problem["status"] == expected and problem["title"] and problem["detail"]


@pytest.mark.parametrize("length", ["abc", "-5", "1e3", "", "\u0661"])
def test_a_content_length_that_is_not_a_size_is_400(host: DevHostProcess, length: str) -> None:
    request = f"POST /api/copies HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n{{}}".encode()
    assert_problem(*raw_exchange(host.port, request), 400)


def test_a_request_line_too_long_is_414_problem(host: DevHostProcess) -> None:
    request = b"GET /api/copies/" + b"x" * 70_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    assert_problem(*raw_exchange(host.port, request), 414)


def test_a_body_over_azures_limit_is_413_without_reading_it(host: DevHostProcess) -> None:
    request = b"POST /api/copies HTTP/1.1\r\nHost: x\r\nContent-Length: 200000000\r\n\r\n{}"
    assert_problem(*raw_exchange(host.port, request), 413)


@pytest.mark.parametrize("line", [b"GET", b"GET /api/copies HTTP/1.1 extra", b"GET /api/copies HTTP/x.y"])
def test_a_malformed_request_line_is_400_problem(host: DevHostProcess, line: bytes) -> None:
    assert_problem(*raw_exchange(host.port, line + b"\r\nHost: x\r\n\r\n"), 400)


def test_two_hundred_clients_connecting_at_once_are_all_taken_and_answered(host: DevHostProcess) -> None:
    """A burst of connections fits the listen backlog: each handshake completes in the
    kernel at once. (With http.server's default backlog of 5, the rest are dropped and
    retried a second later, or reset.)"""
    ready = threading.Barrier(200)

    def one(_: int) -> int:
        ready.wait()
        # Shorter than the kernel's first SYN retry (1 s): only a connection taken at once counts.
        sock = socket.create_connection(("127.0.0.1", host.port), timeout=0.9)
        sock.settimeout(30)
        with sock:
            sock.sendall(b"GET /api/openapi.json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            return int(sock.makefile("rb").readline().split()[1])

    with ThreadPoolExecutor(200) as pool:
        statuses = list(pool.map(one, range(200)))
    assert statuses == [200] * 200


def test_many_concurrent_first_requests_build_one_storage_client_and_stop_cleanly(_proxy: PendingCopyProxy) -> None:
    fresh = start_host(_proxy)
    try:
        with ThreadPoolExecutor(65) as pool:
            statuses = list(pool.map(lambda _: fresh.call("GET", "/api/copies?limit=1").status, range(65)))
        assert statuses == [200] * 65
        log = fresh.terminate()
    finally:
        fresh.stop()
    # One client: no session left behind per racing request, none at shutdown either.
    assert "Unclosed" not in log and "Traceback" not in log, log[-2000:]
    assert "stopping" in log


def test_without_storage_settings_the_app_indexes_and_answers_503_naming_them() -> None:
    bare = DevHostProcess(env={"COPY_SWEEP_SCHEDULE": "0 0 0 1 1 *"})
    try:
        assert bare.wait_for_log(lambda log: "route /api/copies" in log and "timer sweep" in log)
        for method, path in (("GET", "/api/copies"), ("POST", "/api/copies"), ("GET", "/api/copies/x")):
            reply = bare.call(method, path, {} if method == "POST" else None)
            assert reply.status == 503 and reply.headers["Content-Type"].startswith("application/problem+json")
            problem = reply.json()
            assert problem["type"].endswith("configuration-error") and problem["code"] == "COPY_STORAGE"
            assert "AzureWebJobsStorage" in problem["detail"]
        bare.call("POST", "/admin/functions/sweep", {"input": ""})
        # One line per request, and one for the sweep run.
        assert bare.wait_for_log(lambda log: log.count("configuration_error setting=COPY_STORAGE") == 4)
    finally:
        bare.stop()

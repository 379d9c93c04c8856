"""The development host's own parts: route templates, local settings precedence, the
queue trigger's batches."""

from __future__ import annotations

import json
import logging
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path

import azure.functions as func
import pytest

from devhost.host import load_local_settings
from devhost.queues import QueueOptions, QueueTrigger, connection_problem, queue_client
from devhost.routes import Router, template_pattern
from devkit import connection_string
from devkit.inputs import http_request, timer_request
from devkit.worker import shared_worker

WAIT = 20.0


@pytest.mark.parametrize(
    ("template", "path", "params"),
    [
        ("copies", "/copies", {}),
        ("copies", "/copies/", {}),
        ("copies/{id}", "/copies/abc-1", {"id": "abc-1"}),
        ("copies/{id}/abort", "/copies/x/abort", {"id": "x"}),
        ("copies/{id:int}", "/copies/12", {"id": "12"}),
        ("files/{name?}", "/files", {}),
        ("files/{*rest}", "/files/a/b/c", {"rest": "a/b/c"}),
        ("openapi.json", "/openapi.json", {}),
    ],
)
def test_templates_match_and_extract(template: str, path: str, params: dict[str, str]) -> None:
    found = template_pattern(template).fullmatch(path)
    assert found is not None
    assert {k: v for k, v in found.groupdict().items() if v is not None} == params


@pytest.mark.parametrize(
    ("template", "path"),
    [
        ("copies", "/copies/x"),
        ("copies/{id}", "/copies"),
        ("copies/{id}", "/copies/a/b"),
        ("openapi.json", "/openapiXjson"),
    ],
)
def test_templates_do_not_overmatch(template: str, path: str) -> None:
    assert template_pattern(template).fullmatch(path) is None


def test_router_matches_under_its_prefix_only() -> None:
    router = Router("api")
    router.add("copies/{id}", ["GET"], object())
    assert router.resolve("/api/copies/1") is not None
    assert router.resolve("/copies/1") is None
    assert router.resolve("/apix/copies/1") is None


def test_the_environment_takes_precedence_over_local_settings(tmp_path: Path) -> None:
    path = tmp_path / "local.settings.json"
    path.write_text(json.dumps({"Values": {"A": "file", "B": "file"}}))
    environ = {"A": "env"}
    applied = load_local_settings(path, environ)
    assert environ == {"A": "env", "B": "file"} and applied == {"B": "file"}
    assert load_local_settings(tmp_path / "missing.json", environ) == {}


def test_inputs_are_built_by_the_libraries_own_converters() -> None:
    request = http_request(
        "POST", "http://h/api/copies?x=1", {"Content-Type": "application/json", "X-Key": "k"}, {"x": "1"}, {}, b"{}"
    )
    assert (request.method, request.headers["x-key"], request.params["x"], request.get_body()) == (
        "POST",
        "k",
        "1",
        b"{}",
    )
    assert request.get_json() == {}
    now = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
    timer = timer_request(True, None, now)
    assert timer.past_due is True and timer.schedule_status["Next"] == now.isoformat()  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("queues", "expected"),
    [
        ({}, (16, 8)),
        ({"batchSize": 4}, (4, 2)),
        ({"batchSize": 4, "newBatchThreshold": 0}, (4, 0)),
        ({"batchSize": 32, "newBatchThreshold": 10}, (32, 10)),
    ],
)
def test_queue_options_default_the_new_batch_threshold_to_half_a_batch(
    queues: dict[str, int], expected: tuple[int, int]
) -> None:
    options = QueueOptions.from_host_json({"extensions": {"queues": queues}})
    assert (options.batch_size, options.threshold) == expected


def test_a_slow_message_does_not_hold_back_the_next_batch(
    azurite_ports: tuple[int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """As the Functions host: more messages are taken once those still running drop to
    the threshold, not only when a whole batch has ended."""
    monkeypatch.setenv("DEVHOST_TEST_QUEUES", connection_string(azurite_ports[0], queue_port=azurite_ports[1]))
    name = f"devhost-{uuid.uuid4().hex[:10]}"
    sender = queue_client("DEVHOST_TEST_QUEUES", name)
    sender.create_queue()
    slow_running, later_ran = threading.Event(), threading.Event()
    released: list[bool] = []

    def function(message: func.QueueMessage) -> None:
        body = message.get_body()
        if body == b"slow":
            slow_running.set()
            released.append(later_ran.wait(WAIT))
        elif body == b"later":
            later_ran.set()

    options = QueueOptions(max_polling_interval=0.2, batch_size=2, new_batch_threshold=1)
    trigger = QueueTrigger("work", name, "DEVHOST_TEST_QUEUES", function, options, invoke=shared_worker().call)
    stop = threading.Event()
    loop = threading.Thread(target=trigger.loop, args=(stop,))
    sender.send_message("slow")
    sender.send_message("quick")
    loop.start()
    try:
        assert slow_running.wait(WAIT)
        # Sent only now, so only a second take while "slow" still runs can deliver it.
        sender.send_message("later")
        assert later_ran.wait(WAIT), "the next message waited for the slow one"
    finally:
        later_ran.set()
        stop.set()
        loop.join(WAIT)
    assert released == [True]
    sender.delete_queue()


def test_functions_run_as_the_worker_runs_them() -> None:
    """An async function is awaited on the one event loop (every invocation the same loop,
    which the SDK's async clients are bound to); a sync one runs in a pool of the worker's
    size, min(32, cores + 4), with the caller's context."""
    import asyncio
    import contextvars
    import os

    from devkit.worker import POOL_THREADS, Worker

    marker: contextvars.ContextVar[str] = contextvars.ContextVar("marker", default="none")

    async def coroutine() -> tuple[str, int]:
        await asyncio.sleep(0)
        return threading.current_thread().name, id(asyncio.get_running_loop())

    def blocking() -> tuple[str, str]:
        return threading.current_thread().name, marker.get()

    worker = Worker("probe")
    try:
        awaited = {worker.call(coroutine) for _ in range(3)}
        assert len(awaited) == 1 and next(iter(awaited))[0] == "probe-loop", awaited

        async def from_an_invocation() -> tuple[str, str]:
            marker.set("invocation-1")
            result: tuple[str, str] = await worker.invoke(blocking)
            return result

        thread, seen = worker.run(from_an_invocation())
        assert thread.startswith("probe-sync") and seen == "invocation-1"
        assert min(32, (os.cpu_count() or 1) + 4) == POOL_THREADS
    finally:
        worker.stop()


@pytest.mark.parametrize(
    ("environ", "problem"),
    [
        ({"C": "UseDevelopmentStorage=true"}, None),
        ({"C": "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=k;EndpointSuffix=core.windows.net"}, None),
        (
            {"C": "AccountName=a;AccountKey=k;BlobEndpoint=http://127.0.0.1:1/a;QueueEndpoint=http://127.0.0.1:2/a"},
            None,
        ),
        ({"C__queueServiceUri": "https://a.queue.core.windows.net"}, None),
        ({"C": "AccountName=a;AccountKey=k;BlobEndpoint=http://127.0.0.1:1/a"}, "names no QueueEndpoint"),
        ({"C": "BlobEndpoint=https://a.blob.core.windows.net;SharedAccessSignature=sv=x"}, "names no QueueEndpoint"),
        ({}, "no setting C (a connection string) or C__queueServiceUri"),
    ],
)
def test_a_queue_trigger_connection_that_reaches_no_queue_service_is_named(
    environ: dict[str, str], problem: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("C", "C__queueServiceUri"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    found = connection_problem("C")
    assert (found is None) if problem is None else (found is not None and problem in found)


def test_polling_that_fails_is_said_once_and_its_recovery_once(
    azurite_ports: tuple[int, int], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("DEVHOST_TEST_QUEUES", connection_string(azurite_ports[0], queue_port=azurite_ports[1]))
    name = f"devhost-{uuid.uuid4().hex[:10]}"
    options = QueueOptions(max_polling_interval=0.05)
    trigger = QueueTrigger(
        "work", name, "DEVHOST_TEST_QUEUES", lambda message: None, options, invoke=shared_worker().call
    )
    receive, attempts, polled = trigger._receive, [0], threading.Event()

    def unreachable_at_first() -> list[object]:
        # The queue service away for six polls (an emulator restarting), then back.
        attempts[0] += 1
        if attempts[0] > 9:
            polled.set()
        if attempts[0] <= 6:
            raise ConnectionError("[Errno 111] Connection refused")
        return receive()  # type: ignore[return-value]

    trigger._receive = unreachable_at_first  # type: ignore[method-assign,assignment]
    stop = threading.Event()
    loop = threading.Thread(target=trigger.loop, args=(stop,))
    with caplog.at_level(logging.INFO, logger="devhost"):
        loop.start()
        try:
            assert polled.wait(WAIT)
        finally:
            stop.set()
            loop.join(WAIT)
    said = [record.getMessage().split()[0] for record in caplog.records]
    assert said.count("queue_poll_failed") == 1 and said.count("queue_poll_recovered") == 1, said

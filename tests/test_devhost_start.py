"""The development host listens before it loads the app: a client of a host that is still
starting is answered 503 problem+json with Retry-After, never refused or reset; once the
app is loaded it is served as ever; an app that fails to load ends the host, non-zero.

The slow load is a tiny function app written here into a directory of its own, whose
import waits until the test creates a gate file. The host imports ``function_app`` from
its working directory as it always does, so nothing in devhost exists for the tests' sake
(the least intrusive way), and "still loading" lasts exactly until the test says, with no
delay to guess. Against a host that loads before it listens, no port opens and each test
fails."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from devkit import Reply
from tests.support.devhost_process import DevHostProcess

pytestmark = pytest.mark.system

APP = """
import time
from pathlib import Path

import azure.functions as func

here = Path(__file__).parent
while not (here / "open").exists() and not (here / "fail").exists():
    time.sleep(0.02)  # loading, until the test opens the gate
if (here / "fail").exists():
    raise RuntimeError("this app cannot load, as the test asked")

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.route(route="hello", methods=["GET", "POST"])
def hello(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse('{"hello": "world"}', mimetype="application/json")
"""


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    (tmp_path / "function_app.py").write_text(APP)
    return tmp_path


@pytest.fixture
def loading(app_dir: Path) -> Iterator[DevHostProcess]:
    """A host listening, its app held loading at the gate."""
    host = DevHostProcess(env={}, app_dir=app_dir, wait_until_loaded=False)
    yield host
    host.stop()


def assert_loading_answer(reply: Reply) -> None:
    assert reply.status == 503, reply
    assert reply.headers["Content-Type"] == "application/problem+json"
    assert reply.headers["Retry-After"] == "1"
    problem = reply.json()
    assert problem["type"] == "about:blank" and problem["status"] == 503
    assert problem["title"] == "Service Unavailable" and "loading" in problem["detail"]


def test_while_the_app_loads_each_request_is_503_then_served_once_loaded(
    loading: DevHostProcess, app_dir: Path
) -> None:
    # The gate is shut: the app is loading for certain while these are asked.
    for method, path in (("GET", "/api/hello"), ("POST", "/api/hello"), ("GET", "/nowhere")):
        assert_loading_answer(loading.call(method, path, {} if method == "POST" else None))
    assert_loading_answer(loading.call("POST", "/admin/functions/anything", {"input": ""}))
    assert "route /api/hello" not in loading.log()

    (app_dir / "open").touch()
    reply = loading.wait_for("/api/hello", lambda reply: reply.status != 503)
    assert reply.status == 200 and reply.json() == {"hello": "world"}
    assert loading.call("GET", "/nowhere").status == 404
    log = loading.terminate()
    assert loading.wait_for_exit() == 0
    assert "request method=GET path=/api/hello status=503" in log
    assert "route /api/hello" in log and "stopping" in log and "Traceback" not in log


def test_a_host_stopped_while_the_app_loads_stops_cleanly(loading: DevHostProcess) -> None:
    assert_loading_answer(loading.call("GET", "/api/hello"))
    log = loading.terminate()
    assert loading.wait_for_exit() == 0
    assert "stopping" in log and "Traceback" not in log


def test_an_app_that_fails_to_load_ends_the_host_non_zero_with_the_error_logged(
    loading: DevHostProcess, app_dir: Path
) -> None:
    assert_loading_answer(loading.call("GET", "/api/hello"))
    (app_dir / "fail").touch()
    # It exits: it does not stay up answering 503 for ever.
    assert loading.wait_for_exit(30) != 0
    log = loading.log()
    assert "the function app failed to load" in log
    assert "RuntimeError: this app cannot load, as the test asked" in log, log[-2000:]


def test_the_suites_hosts_are_waited_for_until_loaded(app_dir: Path) -> None:
    """DevHostProcess returns once the app is served, so no other test meets the 503."""
    (app_dir / "open").touch()
    host = DevHostProcess(env={}, app_dir=app_dir)
    try:
        reply = host.call("GET", "/api/hello")
        assert reply.status == 200, reply
    finally:
        host.stop()

"""The development host: the function app's HTTP routes and timers, as ``func start`` runs them."""

from __future__ import annotations

import importlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import azure.functions as func

from copy_ops.core.ncrontab import Schedule
from devhost.auth import AppServiceAuth
from devhost.queues import QueueOptions, QueueTrigger, connection_problem
from devhost.routes import Router
from devkit.inputs import http_request, timer_request
from devkit.worker import Worker

logger = logging.getLogger("devhost")
# Azure Functions refuses HTTP requests over 100 MB (the host's maxRequestBodySize).
MAX_REQUEST_BYTES = 100 * 1024 * 1024
# How long a stopping host waits for the queue messages it is running to finish.
DRAIN_SECONDS = 30


def load_local_settings(path: Path, environ: dict[str, str] | None = None) -> dict[str, str]:
    """Put ``Values`` of local.settings.json into the environment; the environment wins."""
    target = os.environ if environ is None else environ
    if not path.exists():
        return {}
    values: dict[str, Any] = json.loads(path.read_text()).get("Values", {})
    applied = {}
    for name, value in values.items():
        if name not in target:
            target[name] = str(value)
            applied[name] = str(value)
    return applied


def read_host_json(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text())) if path.exists() else {}


def route_prefix(host: dict[str, Any]) -> str:
    return str(host.get("extensions", {}).get("http", {}).get("routePrefix", "api"))


class Timer:
    """One timer trigger: fires on its schedule; runs never overlap (as the host's singleton)."""

    def __init__(
        self,
        name: str,
        schedule: Schedule,
        function: Callable[..., Any],
        run_on_startup: bool,
        invoke: Callable[..., Any],
    ) -> None:
        self.name = name
        self._invoke = invoke
        self.schedule = schedule
        self.function = function
        self.run_on_startup = run_on_startup
        self.lock = threading.Lock()
        self.last: datetime | None = None

    def run(self, past_due: bool = False) -> bool:
        """Run now unless a run is in progress. Returns whether it ran."""
        if not self.lock.acquire(blocking=False):
            logger.warning("timer_skipped function=%s reason=still_running", self.name)
            return False
        started = time.monotonic()
        now = datetime.now(UTC)
        try:
            self._invoke(self.function, timer_request(past_due, self.last, self.schedule.next_after(now)))
            self.last = now
            outcome = "ok"
        except Exception:
            logger.exception("timer_failed function=%s", self.name)
            outcome = "error"
        finally:
            self.lock.release()
        logger.info(
            "timer function=%s past_due=%s outcome=%s ms=%.1f",
            self.name,
            past_due,
            outcome,
            (time.monotonic() - started) * 1000,
        )
        return True

    def loop(self, stop: threading.Event) -> None:
        if self.run_on_startup:
            self.run()
        due = self.schedule.next_after(datetime.now(UTC))
        while not stop.wait(max(0.0, (due - datetime.now(UTC)).total_seconds())):
            self.run()
            after = datetime.now(UTC)
            following = self.schedule.next_after(due)
            # A run that overran its next slot makes the next one past due, at once.
            if following <= after:
                self.run(past_due=True)
                following = self.schedule.next_after(datetime.now(UTC))
            due = following


class DevHost:
    def __init__(
        self, app_module: str = "function_app", root: Path | None = None, host_json: Path | None = None
    ) -> None:
        self.root = root or Path.cwd()
        # Every function runs as the worker runs it: async ones on this one event loop,
        # sync ones in a pool of the worker's size.
        self.worker = Worker("functions")
        module = importlib.import_module(app_module)
        self.app: func.FunctionApp = module.app
        host = read_host_json(self.root / (host_json or Path("host.json")))
        self.router = Router(route_prefix(host))
        self.timers: dict[str, Timer] = {}
        self.queues: dict[str, QueueTrigger] = {}
        self.functions: dict[str, Callable[..., Any]] = {}
        for fn in self.app.get_functions():
            name = fn.get_function_name()
            user_function = fn.get_user_function()
            self.functions[name] = user_function
            trigger = fn.get_trigger().get_dict_repr()
            if trigger["type"] == "httpTrigger":
                methods = [str(getattr(m, "value", m)) for m in trigger.get("methods") or ["GET", "POST"]]
                self.router.add(trigger.get("route") or name, methods, user_function)
            elif trigger["type"] == "timerTrigger":
                schedule = Schedule.parse(_resolve(str(trigger["schedule"])))
                startup = bool(trigger.get("runOnStartup"))
                self.timers[name] = Timer(name, schedule, user_function, startup, self.worker.call)
            elif trigger["type"] == "queueTrigger":
                queue, connection = _resolve(str(trigger["queueName"])), str(trigger.get("connection") or "")
                options = QueueOptions.from_host_json(host)
                self.queues[name] = QueueTrigger(
                    name, queue, connection or "AzureWebJobsStorage", user_function, options, invoke=self.worker.call
                )
        self._stop = threading.Event()
        self._server: DevServer | None = None
        self._polling: list[threading.Thread] = []
        # App Service Authentication in front of the app, when COPY_AUTH asks for callers of Entra ID.
        self.auth: AppServiceAuth | None = None

    def serve(self, host: str, port: int) -> DevServer:
        """Bind ``host:port`` and serve this app there (see :meth:`start`)."""
        return self.start(DevServer((host, port)))

    def start(self, server: DevServer) -> DevServer:
        """Start the timers and queue triggers, and have ``server`` (bound already, and
        answering 503 until now) serve this app's routes, behind App Service Authentication
        when COPY_AUTH asks for it (:mod:`devhost.auth`)."""
        self._server = server
        self.auth = AppServiceAuth.from_env(os.environ, server.server_address[1])
        for timer in self.timers.values():
            threading.Thread(target=timer.loop, args=(self._stop,), name=f"timer-{timer.name}", daemon=True).start()
        for trigger in self.queues.values():
            problem = connection_problem(trigger.connection)
            if problem is not None:
                logger.error(
                    "queue_trigger_disabled function=%s setting=%s: %s", trigger.name, trigger.connection, problem
                )
                continue
            name = f"queue-{trigger.name}"
            polling = threading.Thread(target=trigger.loop, args=(self._stop,), name=name, daemon=True)
            polling.start()
            self._polling.append(polling)
        server.host = self
        return server

    def stop(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
        if self.auth is not None:
            self.auth.stop()
        # The messages being run finish first, as the Functions host drains them: each waits
        # on the loop, and once that has stopped it would wait for ever, and hold the process
        # (its pool's threads are joined at exit) until it is killed.
        for polling in self._polling:
            polling.join(DRAIN_SECONDS)
        # The app's connections, closed on the loop they belong to; then the loop.
        from copy_ops.edges import runtime

        try:
            self.worker.run(runtime.close(), timeout=30)
        except Exception:
            logger.exception("host_close_failed")
        self.worker.stop()

    def run_function(self, name: str, body: bytes) -> tuple[int, str]:
        """``POST /admin/functions/{name}``: run a non-HTTP function now, as the host does
        (202); otherwise the status and what is wrong."""
        if name not in self.functions:
            return 404, f"no function named {name!r}"
        if name not in self.timers:
            return 400, f"{name} is an HTTP function: call its route instead"
        try:
            json.loads(body or b"{}")
        except (ValueError, RecursionError):
            return 400, 'the body must be JSON, e.g. {"input": ""}'
        threading.Thread(target=self.timers[name].run, name=f"admin-{name}", daemon=True).start()
        return 202, ""


def _resolve(expression: str) -> str:
    """``%NAME%`` app-setting references, as the host resolves them."""
    if expression.startswith("%") and expression.endswith("%"):
        return os.environ[expression.strip("%")]
    return expression


class DevServer(ThreadingHTTPServer):
    """The host's HTTP server, listening from the moment it is made. Until ``host`` is
    set (the app imported and indexed, which takes a while) every request is answered
    503 with ``Retry-After``: a client polling a host that has just restarted is told to
    come back, not refused or reset."""

    daemon_threads = True
    # http.server's default listen backlog is 5: a burst of clients beyond it sees
    # connections reset. The kernel caps this at net.core.somaxconn.
    request_queue_size = 1024

    def __init__(self, address: tuple[str, int]) -> None:
        self.host: DevHost | None = None
        super().__init__(address, _handler(self))


Answer = tuple[int, dict[str, str], bytes]


def problem_answer(status: int, detail: str, headers: dict[str, str] | None = None) -> Answer:
    """The host's own errors, as RFC 9457 problem+json like the app's."""
    title = HTTPStatus(status).phrase
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    return status, {"Content-Type": "application/problem+json", **(headers or {})}, json.dumps(body).encode()


# The answer to every request while the app loads (a malformed one still gets its own error).
LOADING_DETAIL = "the function app is still loading: retry in a moment"


def _handler(server: DevServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "copy-ops-devhost"
        # Headers and body go out as two writes; with Nagle's algorithm on, the body
        # waits for the client's delayed ACK of the headers: about 40 ms a response.
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            pass  # one line per request is logged below instead

        def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
            # http.server's own refusals (414 URI too long, 400 bad request line, 431...)
            # are HTML by default: answer them as problem+json, and close, as it does.
            self.close_connection = True
            if self.request_version == "HTTP/0.9":
                # A line too broken to name its version: answer with a status line and
                # headers all the same (HTTP/0.9 would send the body alone).
                self.request_version = "HTTP/1.0"
            self._answer(*problem_answer(code, explain or message or HTTPStatus(code).description))

        def _answer(self, status: int, headers: dict[str, str], payload: bytes) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

        def _serve(self) -> None:
            started = time.monotonic()
            parts = urlsplit(self.path)
            length = _content_length(self.headers.get("Content-Length"))
            if length is None:
                # The body's end is unknown, so this connection cannot carry another request.
                self.close_connection = True
                answer = problem_answer(400, "Content-Length must be a whole number of bytes, 0 or more")
            elif length > MAX_REQUEST_BYTES:
                self.close_connection = True
                answer = problem_answer(413, f"the body may be at most {MAX_REQUEST_BYTES} bytes, as in Azure")
            else:
                body = self.rfile.read(length) if length else b""
                answer = self._dispatch(parts.path, parts.query, body)
            self._answer(*answer)
            logger.info(
                "request method=%s path=%s status=%s ms=%.1f",
                self.command,
                parts.path,
                answer[0],
                (time.monotonic() - started) * 1000,
            )

        def _dispatch(self, path: str, query: str, body: bytes) -> Answer:
            host = server.host
            if host is None:
                return problem_answer(503, LOADING_DETAIL, {"Retry-After": "1"})
            headers = dict(self.headers.items())
            refusal = host.auth.admit(headers) if host.auth is not None else None
            if refusal is not None:
                status, challenge, detail = refusal
                return problem_answer(status, detail, {"WWW-Authenticate": challenge})
            if path.startswith("/admin/functions/") and self.command == "POST":
                status, detail = host.run_function(path.rsplit("/", 1)[-1], body)
                return (status, {}, b"") if status == 202 else problem_answer(status, detail)
            found = host.router.resolve(path)
            if found is None:
                return problem_answer(404, f"no function serves {path}")
            route, route_params = found
            handler = route.handlers.get(self.command)
            if handler is None:
                allow = ", ".join(sorted(route.handlers))
                return problem_answer(405, f"{path} answers {allow}", {"Allow": allow})
            request = http_request(
                self.command,
                f"http://{self.headers.get('Host', 'localhost')}{self.path}",
                headers,
                dict(parse_qsl(query, keep_blank_values=True)),
                route_params,
                body,
            )
            try:
                response = host.worker.call(handler, request)
            except Exception:
                logger.exception("function_failed route=%s", route.template)
                return problem_answer(500, "the function failed; see the host's log")
            headers = dict(response.headers.items())
            if response.mimetype:
                charset = f"; charset={response.charset}" if response.charset else ""
                headers["Content-Type"] = f"{response.mimetype}{charset}"
            return response.status_code, headers, response.get_body() or b""

        def __getattr__(self, name: str) -> Any:
            # Every method reaches the router (405 on a known route, 404 elsewhere),
            # where BaseHTTPRequestHandler would answer 501 for any it has no do_X for.
            if name.startswith("do_"):
                return self._serve
            raise AttributeError(name)

    return Handler


def _content_length(text: str | None) -> int | None:
    """The body's length; None when the header is not a whole number of bytes."""
    if text is None:
        return 0
    text = text.strip()
    if not (text.isascii() and text.isdigit()):
        return None
    return int(text)

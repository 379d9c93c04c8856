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
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import azure.functions as func
from azure.functions.timer import TimerRequest

from copy_ops.ncrontab import Schedule
from devhost.routes import Router

logger = logging.getLogger("devhost")


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


def route_prefix(host_json: Path) -> str:
    if not host_json.exists():
        return "api"
    host = json.loads(host_json.read_text())
    return str(host.get("extensions", {}).get("http", {}).get("routePrefix", "api"))


class Timer:
    """One timer trigger: fires on its schedule; runs never overlap (as the host's singleton)."""

    def __init__(self, name: str, schedule: Schedule, function: Callable[..., Any], run_on_startup: bool) -> None:
        self.name = name
        self.schedule = schedule
        self.function = function
        self.run_on_startup = run_on_startup
        self.lock = threading.Lock()

    def run(self, past_due: bool = False) -> bool:
        """Run now unless a run is in progress. Returns whether it ran."""
        if not self.lock.acquire(blocking=False):
            logger.warning("timer_skipped function=%s reason=still_running", self.name)
            return False
        started = time.monotonic()
        try:
            self.function(TimerRequest(past_due=past_due))
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
    def __init__(self, app_module: str = "function_app", root: Path | None = None) -> None:
        self.root = root or Path.cwd()
        module = importlib.import_module(app_module)
        self.app: func.FunctionApp = module.app
        self.router = Router(route_prefix(self.root / "host.json"))
        self.timers: dict[str, Timer] = {}
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
                self.timers[name] = Timer(name, schedule, user_function, bool(trigger.get("runOnStartup")))
        self._stop = threading.Event()
        self._server: ThreadingHTTPServer | None = None

    def serve(self, host: str, port: int) -> ThreadingHTTPServer:
        self._server = ThreadingHTTPServer((host, port), _handler(self))
        self._server.daemon_threads = True
        for timer in self.timers.values():
            threading.Thread(target=timer.loop, args=(self._stop,), name=f"timer-{timer.name}", daemon=True).start()
        return self._server

    def stop(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()

    def run_function(self, name: str, body: bytes) -> tuple[int, dict[str, Any]]:
        """``POST /admin/functions/{name}``: run a non-HTTP function now, as the host does (202)."""
        if name not in self.functions:
            return 404, {"error": f"no function named {name!r}"}
        if name not in self.timers:
            return 400, {"error": f"{name} is an HTTP function: call its route instead"}
        try:
            json.loads(body or b"{}")
        except ValueError:
            return 400, {"error": 'the body must be JSON, e.g. {"input": ""}'}
        threading.Thread(target=self.timers[name].run, name=f"admin-{name}", daemon=True).start()
        return 202, {}


def _resolve(expression: str) -> str:
    """``%NAME%`` app-setting references, as the host resolves them."""
    if expression.startswith("%") and expression.endswith("%"):
        return os.environ[expression.strip("%")]
    return expression


def _handler(host: DevHost) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "copy-ops-devhost"
        # Headers and body go out as two writes; with Nagle's algorithm on, the body
        # waits for the client's delayed ACK of the headers: about 40 ms a response.
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            pass  # one line per request is logged below instead

        def _serve(self) -> None:
            started = time.monotonic()
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            parts = urlsplit(self.path)
            status, headers, payload = self._dispatch(parts.path, parts.query, body)
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)
            logger.info(
                "request method=%s path=%s status=%s ms=%.1f",
                self.command,
                parts.path,
                status,
                (time.monotonic() - started) * 1000,
            )

        def _dispatch(self, path: str, query: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
            if path.startswith("/admin/functions/") and self.command == "POST":
                status, answer = host.run_function(path.rsplit("/", 1)[-1], body)
                return status, {"Content-Type": "application/json"}, json.dumps(answer).encode() if answer else b""
            found = host.router.match(path)
            if found is None:
                return 404, {"Content-Type": "text/plain"}, b"Not Found"
            route, route_params = found
            handler = route.handlers.get(self.command)
            if handler is None:
                allow = ", ".join(sorted(route.handlers))
                return 405, {"Allow": allow, "Content-Type": "text/plain"}, b"Method Not Allowed"
            request = func.HttpRequest(
                method=self.command,
                url=f"http://{self.headers.get('Host', 'localhost')}{self.path}",
                headers=dict(self.headers.items()),
                params=dict(parse_qsl(query, keep_blank_values=True)),
                route_params=route_params,
                body=body,
            )
            try:
                response = handler(request)
            except Exception:
                logger.exception("function_failed route=%s", route.template)
                return 500, {"Content-Type": "text/plain"}, b"Internal Server Error"
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

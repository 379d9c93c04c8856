"""The development host as a subprocess, for end-to-end tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from devkit import PROJECT_ROOT, Reply, free_port, http_call, wait_for_port
from tests.support import tiers
from tests.support.waiting import until


class DevHostProcess:
    """``python -m devhost`` on a free port, started and (unless ``wait_until_loaded`` is
    false) waited for until it serves the app: it listens, answering 503, while it loads.

    ``app_dir`` runs it there (the app is that directory's ``function_app.py``) instead of
    in the project."""

    def __init__(
        self,
        env: dict[str, str],
        local_settings: dict[str, str] | None = None,
        verbose: bool = False,
        host_json: dict[str, Any] | None = None,
        app_dir: Path | None = None,
        wait_until_loaded: bool = True,
    ) -> None:
        tiers.require_system("a development host")
        self.port = free_port()
        self.env = env
        self._dir = tempfile.TemporaryDirectory(prefix="devhost-")
        settings = Path(self._dir.name) / "local.settings.json"
        settings.write_text(json.dumps({"IsEncrypted": False, "Values": local_settings or {}}))
        self.log_path = Path(self._dir.name) / "devhost.log"
        extra = ["--verbose"] if verbose else []
        if host_json is not None:
            custom = Path(self._dir.name) / "host.json"
            custom.write_text(json.dumps(host_json))
            extra += ["--host-json", str(custom)]
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("COPY_", "AzureWebJobs"))}
        if app_dir is not None:
            # Elsewhere than the project, devhost itself is found on the path.
            clean["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), clean.get("PYTHONPATH")]))
        self._process = subprocess.Popen(
            [sys.executable, "-m", "devhost", "--port", str(self.port), "--settings", str(settings), *extra],
            cwd=app_dir or PROJECT_ROOT,
            env={**clean, **env},
            stdout=self.log_path.open("wb"),
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for_port(self.port, 30, self._process)
            if wait_until_loaded:
                self.wait_until_loaded()
        except BaseException:
            self.stop()  # no host left running, nor its directory, by a start that failed
            raise

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_until_loaded(self, timeout: float = 30) -> None:
        """Until the host serves the app: any answer but its own 503 while it loads."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                if not loading(self.call("GET", "/")):
                    return
            except OSError:
                pass  # refused: it exited (said below)
            if self._process.poll() is not None:
                raise RuntimeError(f"the host exited with {self._process.returncode}: {self.log()[-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the host still loads the app after {timeout} s: {self.log()[-2000:]}")
            time.sleep(0.05)

    def wait_for_exit(self, timeout: float = 15) -> int:
        """The host's exit status, once it has exited of itself."""
        return self._process.wait(timeout)

    def log(self) -> str:
        return self.log_path.read_text()

    def wait_for_log(self, predicate: Any, timeout: float = 10) -> bool:
        """Whether the log comes to satisfy ``predicate`` within ``timeout`` seconds."""
        return until(lambda: predicate(self.log()), timeout, interval=0.05)

    def terminate(self) -> str:
        """Stop the host as the platform does (SIGTERM); its whole log."""
        self._process.terminate()
        self._process.wait(15)
        return self.log()

    def stop(self) -> None:
        self._process.terminate()
        try:
            self._process.wait(10)
        except subprocess.TimeoutExpired:
            self._process.kill()
        self._dir.cleanup()

    def call(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> Reply:
        return http_call(self.url + path, method, body, headers)

    def wait_for(self, path: str, predicate: Any, timeout: float = 20) -> Reply:
        """The answer to GET ``path`` once it satisfies ``predicate``, or the last one."""
        last: list[Reply] = []

        def satisfied() -> bool:
            last[:] = [self.call("GET", path)]
            return bool(predicate(last[0]))

        until(satisfied, timeout)
        return last[0]


def loading(reply: Reply) -> bool:
    """Whether this is the host's answer while it loads the app: 503 with Retry-After."""
    return reply.status == 503 and "Retry-After" in reply.headers


@contextmanager
def instances(envs: Sequence[dict[str, str]], host_json: dict[str, Any]) -> Iterator[list[DevHostProcess]]:
    """Development hosts as instances of one app, one for each of ``envs``: all started,
    then each waited for (they load the app at once), and all stopped at the end."""
    started: list[DevHostProcess] = []
    try:
        for env in envs:
            started.append(DevHostProcess(env=env, host_json=host_json, wait_until_loaded=False))
        for host in started:
            host.wait_until_loaded()
        yield started
    finally:
        for host in started:
            host.stop()

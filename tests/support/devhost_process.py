"""The development host as a subprocess, and a tiny HTTP client for end-to-end tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.azurite import ROOT, free_port, wait_for_port


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def http_call(url: str, method: str, body: Any = None, headers: dict[str, str] | None = None) -> Reply:
    """One HTTP request; an error status is a Reply too, not an exception."""
    data = body if isinstance(body, bytes) else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return Reply(response.status, dict(response.headers.items()), response.read())
    except urllib.error.HTTPError as error:
        return Reply(error.code, dict(error.headers.items()), error.read())


class DevHostProcess:
    def __init__(self, env: dict[str, str], local_settings: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self._dir = tempfile.TemporaryDirectory(prefix="devhost-")
        settings = Path(self._dir.name) / "local.settings.json"
        settings.write_text(json.dumps({"IsEncrypted": False, "Values": local_settings or {}}))
        self.log_path = Path(self._dir.name) / "devhost.log"
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("COPY_", "AzureWebJobs"))}
        self._process = subprocess.Popen(
            [sys.executable, "-m", "devhost", "--port", str(self.port), "--settings", str(settings)],
            cwd=ROOT,
            env={**clean, **env},
            stdout=self.log_path.open("wb"),
            stderr=subprocess.STDOUT,
        )
        wait_for_port(self.port, 30, self._process)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text()

    def wait_for_log(self, predicate: Any, timeout: float = 10) -> bool:
        """Whether the log comes to satisfy ``predicate`` within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while not predicate(self.log()):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

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
        deadline = time.monotonic() + timeout
        while True:
            reply = self.call("GET", path)
            if predicate(reply) or time.monotonic() > deadline:
                return reply
            time.sleep(0.2)

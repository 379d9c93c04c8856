"""The development host as a subprocess, for end-to-end tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from devkit import PROJECT_ROOT, Reply, free_port, http_call, wait_for_port


class DevHostProcess:
    def __init__(
        self,
        env: dict[str, str],
        local_settings: dict[str, str] | None = None,
        verbose: bool = False,
        host_json: dict[str, Any] | None = None,
    ) -> None:
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
        self._process = subprocess.Popen(
            [sys.executable, "-m", "devhost", "--port", str(self.port), "--settings", str(settings), *extra],
            cwd=PROJECT_ROOT,
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

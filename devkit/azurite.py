"""Start and stop Azurite (blob service only) from the project's pinned npm install."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from devkit.tls import TlsFiles

PROJECT_ROOT = Path(__file__).resolve().parents[1]
BIN = PROJECT_ROOT / "node_modules" / ".bin"
BINARY = BIN / "azurite-blob"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float, process: subprocess.Popen[Any] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the process exited with {process.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


class Azurite:
    """An Azurite blob service on a free loopback port, in memory (or in ``location``).

    With ``queue`` it serves the queue service too (``queue_port``), as one process.

    With ``tls`` it serves HTTPS with that certificate; with ``oauth`` it also accepts
    bearer tokens (``--oauth basic``, HTTPS only); ``accounts`` (name to key) sets
    ``AZURITE_ACCOUNTS``, several accounts on one Azurite (path-style URLs; see
    :func:`accounts_setting`).
    """

    def __init__(
        self,
        port: int | None = None,
        *,
        tls: TlsFiles | None = None,
        oauth: bool = False,
        accounts: dict[str, str] | None = None,
        queue: bool = False,
        location: Path | None = None,
    ) -> None:
        self.port = port or free_port()
        self.queue_port = free_port() if queue else None
        self.location = location
        self.tls = tls
        self.oauth = oauth
        self.accounts = accounts
        self._process: subprocess.Popen[bytes] | None = None
        self._workdir = tempfile.TemporaryDirectory(prefix="azurite-")

    def start(self) -> Azurite:
        binary = BIN / ("azurite" if self.queue_port else "azurite-blob")
        if not binary.exists():
            raise RuntimeError(f"Azurite is not installed at {binary}: run scripts/setup.sh (it runs npm ci)")
        log = open(Path(self._workdir.name) / "azurite.log", "wb")  # noqa: SIM115 - lives as long as the process
        self._process = subprocess.Popen(
            [
                str(binary),
                "--blobHost",
                "127.0.0.1",
                "--blobPort",
                str(self.port),
                *self._queue_args(),
                # In memory: nothing to clean up, and faster (it refuses --location then);
                # or on disk, as a developer's Azurite runs.
                *(["--location", str(self.location)] if self.location else ["--inMemoryPersistence"]),
                # The SDK's default API version is newer than Azurite knows.
                "--skipApiVersionCheck",
                # Otherwise it stalls on shutdown without a network.
                "--disableTelemetry",
                # No access log: a line per request is CPU taken from the cores the
                # code under test shares with it, and nothing reads it.
                "--silent",
                *self._security_args(),
            ],
            env=self._env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self._workdir.name,
            start_new_session=True,
        )
        wait_for_port(self.port, 60, self._process)
        if self.queue_port:
            wait_for_port(self.queue_port, 60, self._process)
        return self

    def _queue_args(self) -> list[str]:
        if not self.queue_port:
            return []
        # The table service comes with the all-in-one binary: give it a port nobody uses.
        return ["--queueHost", "127.0.0.1", "--queuePort", str(self.queue_port), "--tablePort", str(free_port())]

    def _security_args(self) -> list[str]:
        args = ["--cert", str(self.tls.cert), "--key", str(self.tls.key)] if self.tls else []
        return [*args, "--oauth", "basic"] if self.oauth else args

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        if self.tls:
            # Azurite reads a copy source that carries a SAS over HTTP(S), from itself: Node
            # must trust the test CA for that, as the app does through SSL_CERT_FILE.
            env["NODE_EXTRA_CA_CERTS"] = str(self.tls.ca)
        if self.accounts:
            env["AZURITE_ACCOUNTS"] = accounts_setting(self.accounts)
        return env

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            os.killpg(self._process.pid, signal.SIGTERM)
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self._process.pid, signal.SIGKILL)
                self._process.wait()
        self._workdir.cleanup()

    def __enter__(self) -> Azurite:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def accounts_setting(accounts: dict[str, str] | None = None) -> str:
    """``AZURITE_ACCOUNTS`` for ``accounts`` (name to key; by default the development account
    and the second one, ``partner``, as ``make run`` and the suite run Azurite). It replaces
    Azurite's default account, so the development account is named in it too."""
    from devkit.proxy import DEV_ACCOUNT, DEV_KEY, PARTNER_ACCOUNT, PARTNER_KEY

    chosen = accounts if accounts is not None else {DEV_ACCOUNT: DEV_KEY, PARTNER_ACCOUNT: PARTNER_KEY}
    return ";".join(f"{name}:{key}" for name, key in chosen.items())

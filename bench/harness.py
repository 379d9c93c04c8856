"""What every benchmark needs: Azurite, the latency-adding proxy, and services on it.

The proxy runs as a process of its own: in the benchmark's process it would take
the interpreter lock from the client being measured, which no Azure front end does.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import urllib.request
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

from azure.storage.blob import BlobServiceClient

from bench.partner import ACCOUNTS, Partner
from copy_ops.app_service import AppService
from copy_ops.copies.request import parse_copy_request
from copy_ops.core.settings import Settings
from copy_ops.storage import BlobStorage
from copy_ops.storage.queues import QueueStorage
from devkit import CONTROL_PREFIX, PROJECT_ROOT, Azurite, connection_string
from devkit.worker import run as awaited

ROOT = PROJECT_ROOT
# The benchmarks drive time themselves, from here.
T0 = datetime.now(UTC).replace(microsecond=0)
# The blob each copy copies: small, so that a copy costs its requests, not its bytes.
SMALL = b"x" * 1024


def start_copy(service: AppService, body: dict[str, object], now: datetime) -> str:
    """Start from a request body, parsed as the HTTP adapter parses it; the operation's id."""
    return awaited(service.start(parse_copy_request(body, service.settings, now), now)).operation.id


def after(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def process_cpu_seconds(pid: int | None) -> float:
    """User + system CPU of another process so far (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    # utime and stime are fields 14 and 15 of stat; 12 and 13 after the name.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class ProxyProcess:
    """The pending-copy proxy in a child process, driven through its control requests.
    In front of Azurite's queue service it forwards, delays and counts as it does for blobs."""

    def __init__(self, azurite_port: int, latency: float) -> None:
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "devkit",
                "proxy",
                "--azurite-port",
                str(azurite_port),
                "--latency-ms",
                str(latency * 1000),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line.startswith("listening "):
            self._process.kill()
            raise RuntimeError(f"the pending-copy proxy did not start: {line!r}")
        self.port = int(line.split()[1])
        self.pid = self._process.pid
        self.connection_string = connection_string(self.port)

    def _call(self, method: str, command: str, payload: dict[str, object] | None = None) -> bytes:
        data = json.dumps(payload).encode() if payload is not None else None
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{CONTROL_PREFIX}{command}", data=data, method=method
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return bytes(response.read())

    def configure(
        self,
        *,
        pending: bool | None = None,
        latency: float | None = None,
        index_lag: float | None = None,
        source_rate: float | None = None,
        pace: float | None = None,
    ) -> None:
        """``source_rate``: bytes a second each Put Block/Blob From URL reads its source at (a
        cap per connection); ``pace``: bytes a second a Copy Blob from another "account" moves."""
        config: dict[str, object] = {
            "pending": pending,
            "latency": latency,
            "index_lag": index_lag,
            "source_rate": source_rate,
            "pace": pace,
        }
        self._call("POST", "config", {name: value for name, value in config.items() if value is not None})

    def counts(self) -> Counter[str]:
        return Counter(json.loads(self._call("GET", "counts")))

    def fail_next(self, times: int = 1, after_bytes: int = 0) -> None:
        """The next ``times`` copies from another account end ``failed`` once ``after_bytes``
        are copied, as the copy service ends one for a cause that may pass (devkit/failures.py)."""
        self._call("POST", "fail-next", {"times": times, "after_bytes": after_bytes})

    def stop(self) -> None:
        self._process.terminate()
        self._process.wait(10)


class Harness:
    def __init__(self, latency: float) -> None:
        self.latency = latency
        self.azurite = Azurite(queue=True, accounts=ACCOUNTS)
        self.proxy: ProxyProcess
        self.queue_proxy: ProxyProcess
        self.direct: BlobServiceClient
        self._services: list[AppService] = []

    def __enter__(self) -> Harness:
        self.azurite.start()
        assert self.azurite.queue_port is not None
        self.proxy = ProxyProcess(self.azurite.port, self.latency)
        self.queue_proxy = ProxyProcess(self.azurite.queue_port, self.latency)
        self.direct = BlobServiceClient.from_connection_string(connection_string(self.azurite.port))
        return self

    def __exit__(self, *exc: object) -> None:
        self.close_services()
        self.proxy.stop()
        self.queue_proxy.stop()
        self.azurite.stop()

    def restart(self, location: Path | None = None) -> None:
        """An empty Azurite (in memory, or on disk in ``location``) and new proxies. Azurite
        in memory slows as it fills; each large measurement starts empty, so their order
        biases nothing."""
        self.__exit__()
        self.azurite = Azurite(queue=True, accounts=ACCOUNTS, location=location)
        self.__enter__()

    @property
    def connection_string(self) -> str:
        """The account through the proxies: blobs through one, queues through the other."""
        return connection_string(self.proxy.port, queue_port=self.queue_proxy.port)

    def describe(self) -> str:
        return (
            f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
            f"storage: Azurite behind the pending-copy proxy (its own process), "
            f"+{self.latency * 1000:.0f} ms per request"
        )

    def service(self, concurrency: int | None = None, **env: str) -> AppService:
        values = {
            "COPY_STORAGE": self.connection_string,
            "COPY_LEDGER_CONTAINER": f"bench-{uuid.uuid4().hex[:10]}",
            "COPY_ALLOWED_SOURCE_HOSTS": "127.0.0.1:*",
            **env,
        }
        if concurrency is not None:
            values["COPY_SWEEP_CONCURRENCY"] = str(concurrency)
        settings = Settings.from_env(values)
        storage = awaited(BlobStorage.connect(settings.storage, pool_size=settings.sweep_concurrency))
        work = QueueStorage(settings.storage, settings.work_queue, credential=storage.credential)
        service = AppService(settings, storage, work)
        self._services.append(service)
        return service

    def close_services(self) -> None:
        while self._services:
            awaited(self._services.pop().close())

    def containers(self) -> tuple[str, str]:
        """A source container with one small blob, and an empty destination container."""
        suffix = uuid.uuid4().hex[:8]
        src, dst = f"src-{suffix}", f"dst-{suffix}"
        self.direct.create_container(src)
        self.direct.create_container(dst)
        self.direct.get_blob_client(src, "a.bin").upload_blob(SMALL)
        return src, dst

    def partner(self, container: str) -> Partner:
        """``container`` in the partner's account with one small blob, ``a.bin``, as in the
        app's (:meth:`containers`): the source of the copies that stay pending."""
        partner = Partner(self.azurite.port, self.proxy.port, container)
        partner.put("a.bin", SMALL)
        return partner

    def helper_cpu_seconds(self) -> tuple[float, float]:
        """CPU used so far by the proxy and by Azurite: what Azure's side would spend."""
        return process_cpu_seconds(self.proxy.pid), process_cpu_seconds(self.azurite.pid)

    def counts(self) -> Counter[str]:
        """Storage requests so far by kind, blob and queue."""
        return self.proxy.counts() + self.queue_proxy.counts()

    def requests(self) -> int:
        return sum(self.counts().values())

    def start_many(
        self, service: AppService, src: str, dst: str, count: int, timeout: int, prefix: str = "op"
    ) -> list[str]:
        """Start ``count`` pending copies at T0, quickly: set-up, not a figure. Their source
        is ``src``'s namesake in the partner's account: a copy from another account."""
        partner = self.partner(src)
        self.proxy.configure(pending=True, latency=0.0)

        def start(index: int) -> str:
            return start_copy(service, partner.body(dst, f"{prefix}/{index}.bin", timeout), T0)

        try:
            with ThreadPoolExecutor(16) as pool:
                return list(pool.map(start, range(count)))
        finally:
            self.proxy.configure(latency=self.latency)

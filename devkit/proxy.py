"""A small HTTP proxy in front of Azurite that makes copies pending, as Azure does.

Azurite finishes every copy at once and cannot abort one. Through this proxy, with
``pending_copies`` on, Copy Blob from another account (``partner``, the second account on
the same Azurite) or another host answers ``pending``, as Azure does (one within an account
ends at once, as on Azure): the destination is created at zero length with the new
metadata and the source's content headers (as Azure shows it), and its properties report
the copy as pending until a test calls
:meth:`PendingCopyProxy.finish` (which does the real copy in Azurite) or
:meth:`PendingCopyProxy.fail` (``failed`` as Azure ends a copy: the destination stays
empty, its ETag moves, the description as Azure writes it, :mod:`devkit.failures`);
:meth:`PendingCopyProxy.fail_next` arms the next copies from another account to end so
after some progress, before they exist. A second Copy Blob onto a copy's destination
meets the destination's conditions as a write does (If-None-Match: * refused 409
``BlobAlreadyExists`` where a failed copy left its empty blob, If-Match on its ETag
replaces it). Abort Copy is implemented: the right copy id aborts (the
destination's ETag moves, as on Azure), a wrong one gets 409 ``CopyIdMismatch``, one that
is not a GUID 400 ``InvalidQueryParameterValue``, and a copy that is not pending 409
``NoPendingCopyOperation``. While a copy is pending, writes, snapshots and lease calls on
the destination get 409 ``PendingCopyOperation``. A copy's source is read as storage reads
it: with its SAS; in the same account with the account's authority; in another account or
on another host anonymously, so a private blob there is refused 401
``CannotVerifyCopySource``, as Azure refuses it (tests/test_standin_conformance.py).

It also counts requests by kind (for cost tests and benchmarks) and logs the path
each one addressed, adds latency, makes the blob index lag (:mod:`index_lag`), and
injects faults: a status (503 ServerBusy, 500 InternalError or OperationTimedOut, worded
as Azure words them), a dropped connection (a timeout to the client), a lost response (the
request reaches Azurite, the client sees 503), or a delay; on a kind of request, on one
block of Put Block From URL (by its id or source range), or on the stand-in's own read of
a copy's source (``source_read``: the copy is refused as Azure refuses a source it cannot
read, with the source's status and code where Azure says them).

Tests run it in their own process. Benchmarks run it as a process of its own
(``python -m devkit proxy --azurite-port N``), so that its work
does not share the measured client's interpreter lock; they drive it through
``/__proxy/`` requests (see :data:`CONTROL_PREFIX`).

``make run`` runs it as the local stand-in of Azure (``python -m devkit standin``): tag
queries answered from an index seeded from Azurite at start, and copies from another
"account" paced as Azure paces them (:mod:`devkit.pacing`).
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import re
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit
from xml.sax.saxutils import escape

from azure.storage.blob import BlobServiceClient

from devkit import from_url
from devkit.failures import MESSAGES, SOURCE_READS_FAILED, Failures
from devkit.index_lag import LaggingIndex, parse_query, tags_body, tags_header
from devkit.pacing import Clock, Pacing
from devkit.tls import TlsFiles

DEV_ACCOUNT = "devstoreaccount1"
# Requests under this path are for the proxy itself, never forwarded:
# GET counts (JSON of request counts by kind), POST config (JSON with "pending"
# and/or "latency" in seconds), POST reset (counts to zero); and failures armed before the
# copies exist (JSON of the keywords of the method of that name, FAILING below): POST inject,
# POST fail-next, POST clear-faults.
CONTROL_PREFIX = "/__proxy/"
# How long the proxy's own SAS is valid; it is minted again halfway.
SAS_LIFETIME = timedelta(days=1)
DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
# A second account on the same Azurite (AZURITE_ACCOUNTS, path-style URLs): "another account",
# whose blobs a copy reads as Azure reads another account's (its SAS, or anonymously).
PARTNER_ACCOUNT = "partner"
PARTNER_KEY = "cGFydG5lci1hY2NvdW50LWtleS1mb3ItdGVzdHMtb25seS0wMTIzNDU2Nzg5YWJjZGVm"


def connection_string(port: int, scheme: str = "http", queue_port: int | None = None) -> str:
    queue = f"QueueEndpoint={scheme}://127.0.0.1:{queue_port}/{DEV_ACCOUNT};" if queue_port else ""
    return (
        f"DefaultEndpointsProtocol={scheme};AccountName={DEV_ACCOUNT};AccountKey={DEV_KEY};"
        f"BlobEndpoint={scheme}://127.0.0.1:{port}/{DEV_ACCOUNT};{queue}"
    )


@dataclass
class FakeCopy:
    copy_id: str
    source: str
    metadata: dict[str, str]
    status: str = "pending"
    copied: int = 0
    total: int = 0
    description: str | None = None
    # The source as the copy was asked to read it (with its SAS): what finishing reads.
    read_from: str = ""
    # A paced copy (the stand-in's): its progress moves with time and it ends by itself.
    clock: Clock | None = None
    # The tags the copy was asked to set (x-ms-tags): what finishing writes with the bytes.
    tags: dict[str, str] = field(default_factory=dict)
    # Armed to end failed (devkit.failures): once this many bytes are copied, so described.
    fail_at: int | None = None
    fail_description: str = ""
    # When the copy ended (x-ms-copy-completion-time), as Azure wrote it then.
    ended: str = ""


@dataclass(frozen=True)
class SourceProps:
    """A copy source's properties as storage read them before a copy: the status (200, or
    Azure's for the refusal), the size, and its content headers (names in lower case)."""

    status: int
    size: int = 0
    content: dict[str, str] = field(default_factory=dict)
    code: str = ""
    message: str = ""


@dataclass
class Fault:
    kind: str
    mode: str  # "status", "drop", "lost_response" or "delay"
    status: int = 503
    times: int = 1
    path_contains: str = ""
    # Let this many matching requests through before the fault starts.
    after: int = 0
    # For "delay": how long the request waits before it goes on as usual.
    seconds: float = 0.0
    # For "status": the error code storage answers with.
    code: str = "ServerBusy"
    # For "answer": an answer as Azure gave it (status, headers, body), sent as it is.
    answer: tuple[int, list[tuple[str, str]], bytes] | None = None
    # Only Put Block From URL requests (or their source reads) of this block id (as the
    # client encoded it, percent-decoded) or of this x-ms-source-range ("bytes=0-8388607").
    block_id: str = ""
    source_range: str = ""

    def matches(self, kind: str, path: str, query: dict[str, list[str]], headers: dict[str, str]) -> bool:
        if self.kind != kind or self.times <= 0 or self.path_contains not in path:
            return False
        if self.block_id and query.get("blockid", [""])[0] != self.block_id:
            return False
        return not self.source_range or headers.get("x-ms-source-range") == self.source_range


@dataclass
class RequestLog:
    counts: Counter[str] = field(default_factory=Counter)
    # (kind, method, path as storage received it, percent-decoded), in arrival order
    paths: list[tuple[str, str, str]] = field(default_factory=list)
    # (kind, the x-ms-copy-source header as sent): what a copy was told to read, SAS and all
    sources: list[tuple[str, str]] = field(default_factory=list)
    # (kind, the scheme of x-ms-copy-source-authorization, or "" for none): how a copy's
    # source was authorized (the token itself is never kept, even here).
    source_authorizations: list[tuple[str, str]] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def account_sas(lifetime: timedelta, queue: bool = False) -> str:
    """An account SAS of the development account that allows everything, for ``lifetime``
    (blob service; the queue service too with ``queue``)."""
    from azure.storage.blob import AccountSasPermissions, ResourceTypes, Services, generate_account_sas

    everything = AccountSasPermissions(
        read=True,
        write=True,
        delete=True,
        list=True,
        add=True,
        create=True,
        update=True,
        process=True,
        tag=True,
        filter_by_tags=True,
    )
    return generate_account_sas(
        DEV_ACCOUNT,
        DEV_KEY,
        resource_types=ResourceTypes(service=True, container=True, object=True),
        permission=everything,
        expiry=datetime.now(UTC) + lifetime,
        services=Services(blob=True, queue=queue),
    )


def classify(method: str, path: str, query: dict[str, list[str]], headers: dict[str, str]) -> str:
    """A stable name for the kind of storage request (what the cost figures count)."""
    comp = query.get("comp", [""])[0]
    if path.endswith("/messages") or "/messages/" in path:
        return {"POST": "put_message", "GET": "get_messages", "DELETE": "delete_message", "PUT": "update_message"}.get(
            method, f"{method.lower()}_messages"
        )
    restype = query.get("restype", [""])[0]
    if method == "PUT" and comp == "copy":
        return "abort_copy"
    if from_url.is_from_url(method, query, headers):
        return "put_block_from_url" if comp == "block" else "put_blob_from_url"
    if method == "PUT" and "x-ms-copy-source" in headers and not comp:
        return "copy_blob"
    if comp == "userdelegationkey":
        return "user_delegation_key"
    if comp in ("lease", "snapshot", "tags", "metadata", "block", "blocklist"):
        return f"{method.lower()}_{comp}"
    if comp == "blobs":
        return "find_by_tags"
    if comp == "list":
        return "list_blobs"
    if restype == "container":
        return f"{method.lower()}_container"
    return {"PUT": "put_blob", "HEAD": "get_properties", "GET": "get_blob", "DELETE": "delete_blob"}.get(
        method, method.lower()
    )


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client hanging up mid-response (a pool closing, a dropped-connection fault) is normal here.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class PendingCopyProxy:
    def __init__(self, azurite_port: int, latency: float = 0.0, tls: TlsFiles | None = None, port: int = 0) -> None:
        self.azurite_port = azurite_port
        self.latency = latency
        self.pending_copies = False
        # Set: copies from another "account" are pending at this pace (the stand-in's).
        self.pacing: Pacing | None = None
        # Set: each read of a source by Put Block/Blob From URL takes as long as this many
        # bytes a second allow (a bandwidth cap per request, so a copy takes measurable time).
        self.source_rate: float | None = None
        # Answer Find Blobs by Tags from the tag writes seen, paged as Azure does (see
        # LaggingIndex.answer); off: Azurite's own answer, through the lagging index.
        self.paged_index = True
        # Off: the account allows no public access (Azure's AllowBlobPublicAccess false), so a
        # source read with no authorization is refused PublicAccessNotPermitted.
        self.public_access = True
        self.log = RequestLog()
        # Copies started (pending or at once), by destination path: what "at most once" counts.
        self.started: Counter[str] = Counter()
        self._copies: dict[str, FakeCopy] = {}
        # The keys of paced copies still pending: what every request of the stand-in moves on.
        self._paced: set[str] = set()
        self._faults: list[Fault] = []
        # Copies from another account armed to end failed (fail_next).
        self.failures = Failures()
        self._lock = threading.Lock()
        # One keep-alive connection to Azurite per proxy thread (a thread serves one
        # client connection): a new TCP connection per request would dominate the
        # proxy's own cost in benchmarks.
        self._upstream = threading.local()
        # With TLS files, it serves HTTPS and talks HTTPS to an Azurite that does.
        self.tls = tls
        self.scheme = "https" if tls else "http"
        verify: dict[str, Any] = {"connection_verify": str(tls.ca)} if tls else {}
        self._direct = BlobServiceClient.from_connection_string(connection_string(azurite_port, self.scheme), **verify)
        self._sas, self._sas_renewed = account_sas(SAS_LIFETIME), time.monotonic()
        self.index = LaggingIndex()
        # A second proxy in front of Azurite's queue service, to count and fault queue requests.
        self.queue_proxy: PendingCopyProxy | None = None
        self._server = _Server(("127.0.0.1", port), self._handler_class())
        if tls is not None:
            # The handshake happens in each connection's own thread, on its first read.
            context = tls.server_context()
            self._server.socket = context.wrap_socket(
                self._server.socket, server_side=True, do_handshake_on_connect=False
            )
        self._thread = threading.Thread(target=self._server.serve_forever, name="pending-copy-proxy", daemon=True)

    # -- lifecycle ---------------------------------------------------------------

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def connection_string(self) -> str:
        """The account through this proxy; with ``queue_proxy`` set, its queues through that one."""
        queue_port = self.queue_proxy.port if self.queue_proxy is not None else None
        return connection_string(self.port, self.scheme, queue_port)

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def _connection(self, port: int) -> http.client.HTTPConnection:
        if self.tls is not None:
            return http.client.HTTPSConnection("127.0.0.1", port, timeout=60, context=self.tls.client_context())
        return http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def start(self) -> PendingCopyProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def wait(self) -> None:
        """Serve until the process is stopped."""
        self._thread.join()

    def reset(self) -> None:
        with self._lock:
            self._copies.clear()
            self._paced.clear()
            self._faults.clear()
            self.failures.clear()
            self.log = RequestLog()
            self.pending_copies = False
            self.pacing = None
            self.source_rate = None
            self.paged_index = True
            self.public_access = True
            self.started = Counter()
            self.latency = 0.0
        self.index.reset()
        if self.queue_proxy is not None:
            self.queue_proxy.reset()

    @property
    def direct(self) -> BlobServiceClient:
        """Azurite itself, behind no proxy: to arrange and inspect blobs, uncounted."""
        return self._direct

    # -- test hooks --------------------------------------------------------------

    def inject(
        self,
        kind: str,
        *,
        mode: str = "status",
        status: int = 503,
        times: int = 1,
        path_contains: str = "",
        after: int = 0,
        seconds: float = 0.0,
        code: str = "ServerBusy",
        answer: tuple[int, list[tuple[str, str]], bytes] | None = None,
        block_id: str = "",
        source_range: str = "",
    ) -> None:
        """Make ``times`` requests of ``kind`` fail (or wait ``seconds``, mode "delay"; or be
        answered with ``answer``, mode "answer": a recorded answer of Azure's), after letting
        ``after`` of them through (see :func:`classify` for the kinds). The kind
        ``source_read`` is the stand-in's own read of a copy's source (Copy Blob from
        another account, Put Blob/Block From URL; ``path_contains`` is the source's path):
        in mode "status" the source answers ``status`` and ``code``, and the copy is refused
        as Azure refuses a source it cannot read. ``block_id`` or ``source_range`` narrow
        a fault to one block of Put Block From URL."""
        fault = Fault(kind, mode, status, times, path_contains, after, seconds, code, answer, block_id, source_range)
        with self._lock:
            self._faults.append(fault)

    def fail_next(self, times: int = 1, after_bytes: int = 0, description: str = SOURCE_READS_FAILED) -> None:
        """The next ``times`` copies from another account end ``failed`` once ``after_bytes``
        are copied (:mod:`devkit.failures`): when paced that far, or at the next read of the
        destination's properties without a pace; each is held pending until then, whatever
        ``pending_copies`` says. The copies after them behave as usual."""
        self.failures.arm(times, after_bytes, description)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def copies(self) -> list[FakeCopy]:
        """Every pending copy the proxy has answered for since its last reset."""
        with self._lock:
            return list(self._copies.values())

    def copy_state(self, container: str, blob: str) -> FakeCopy | None:
        with self._lock:
            return self._copies.get(self._key(container, blob))

    def finish(self, container: str, blob: str) -> None:
        """Complete a pending copy for real: Azurite copies the data, the copy id stays ours."""
        key = self._key(container, blob)
        with self._lock:
            fake = self._copies[key]
        dest = self._direct.get_blob_client(container, blob)
        dest.start_copy_from_url(
            self._direct_source(fake.read_from or fake.source), metadata=fake.metadata, tags=fake.tags or None
        )
        with self._lock:
            fake.status, fake.copied, fake.ended = "success", fake.total, formatdate(usegmt=True)

    def fail(
        self, container: str, blob: str, description: str = SOURCE_READS_FAILED, copied: int | None = None
    ) -> None:
        """End a pending copy ``failed`` as Azure ends one, with ``copied`` bytes copied
        (default: as far as it got): the destination stays empty, its ETag moves."""
        self._end_failed(self._key(container, blob), description, copied)

    def abort_elsewhere(self, container: str, blob: str) -> None:
        with self._lock:
            fake = self._copies[self._key(container, blob)]
            fake.status, fake.ended = "aborted", formatdate(usegmt=True)

    def advance(self, container: str, blob: str, copied: int) -> None:
        with self._lock:
            self._copies[self._key(container, blob)].copied = copied

    # -- the stand-in's pace -------------------------------------------------------

    def pace(self, pacing: Pacing, tick: float = 0.5) -> None:
        """From now on, copies from another "account" are pending at ``pacing``'s rate and
        end by themselves, looked after every ``tick`` seconds (as Azure ends them whether
        anyone looks or not)."""
        self.pacing = pacing

        def ticking() -> None:
            while self.pacing is not None:
                self._advance()
                time.sleep(tick)

        threading.Thread(target=ticking, name="pending-copy-pace", daemon=True).start()

    def _advance(self) -> None:
        """Move every paced copy on; end those that have copied every byte, and those armed
        to fail that have copied as far as their failure (failed, there)."""
        now = time.monotonic()
        ending, failing = [], []
        with self._lock:
            for key in list(self._paced):
                fake = self._copies.get(key)
                if fake is None or fake.clock is None or fake.status != "pending":
                    self._paced.discard(key)  # replaced, aborted or ended meanwhile
                    continue
                fake.copied = fake.clock.copied(now)
                if fake.fail_at is not None and fake.copied >= fake.fail_at:
                    failing.append((key, fake.fail_description, fake.fail_at))
                elif fake.copied >= fake.total:
                    ending.append(key)
                else:
                    continue
                fake.clock = None  # claimed: only this call ends it
                self._paced.discard(key)
        for key, description, copied in failing:
            self._end_failed(key, description, copied)
        for key in ending:
            _, container, blob = key.lstrip("/").split("/", 2)
            self.finish(container, blob)

    def _end_failed(self, key: str, description: str, copied: int | None = None) -> None:
        """End the copy at ``key`` failed: the copy service writes the outcome to the
        destination, which stays empty (its ETag moves, as at every end of a copy)."""
        from azure.core.exceptions import HttpResponseError

        with self._lock:
            fake = self._copies[key]
            fake.clock, fake.fail_at = None, None  # claimed: nothing else ends it
        _, container, blob = key.lstrip("/").split("/", 2)
        # A lease the stand-in does not hold: failed all the same, its ETag kept.
        with contextlib.suppress(HttpResponseError):
            self._direct.get_blob_client(container, blob).set_blob_metadata(fake.metadata)
        with self._lock:
            fake.status, fake.description, fake.ended = "failed", description, formatdate(usegmt=True)
            if copied is not None:
                fake.copied = min(copied, fake.total)

    def seed_index(self) -> int:
        """Learn the tags of every blob Azurite already holds (a stand-in restarted over
        kept data answers tag queries completely); how many blobs have tags."""
        seeded = 0
        for container in self._direct.list_containers():
            for blob in self._direct.get_container_client(container.name).list_blobs(include=["tags"]):
                if blob.tag_count:
                    self.index.record(container.name, blob.name, dict(blob.tags or {}))
                    seeded += 1
        return seeded

    # -- internals ---------------------------------------------------------------

    @staticmethod
    def _key(container: str, blob: str) -> str:
        return f"/{DEV_ACCOUNT}/{container}/{blob}"

    def _direct_source(self, source: str) -> str:
        # The source was named through the proxy; Azurite itself must read it directly.
        parts = urlsplit(source)
        if parts.port == self.port:
            return source.replace(f":{self.port}/", f":{self.azurite_port}/", 1)
        return source

    def _own_sas(self) -> str:
        """The proxy's own SAS, minted again well before it expires (a proxy may run for days)."""
        with self._lock:
            if time.monotonic() - self._sas_renewed > SAS_LIFETIME.total_seconds() / 2:
                self._sas, self._sas_renewed = account_sas(SAS_LIFETIME), time.monotonic()
            return self._sas

    def _take_fault(
        self, kind: str, path: str, query: dict[str, list[str]] | None = None, headers: dict[str, str] | None = None
    ) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.matches(kind, path, query or {}, headers or {}):
                    if fault.after > 0:
                        fault.after -= 1
                        continue
                    fault.times -= 1
                    return fault
        return None

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out as two writes; with Nagle's algorithm on, the body
            # waits for the client's delayed ACK of the headers: about 40 ms a response.
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                proxy._handle(self)

            do_PUT = do_HEAD = do_DELETE = do_POST = do_GET

        return Handler

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length) if length else b""
        if request.path.startswith(CONTROL_PREFIX):
            self._send(request, *self._control(request.command, request.path[len(CONTROL_PREFIX) :], body))
            return
        parts = urlsplit(request.path)
        path = unquote(parts.path)
        query = parse_qs(parts.query)
        headers = {name.lower(): value for name, value in request.headers.items()}
        kind = classify(request.command, path, query, headers)
        with self._lock:
            self.log.counts[kind] += 1
            self.log.paths.append((kind, request.command, path))
            if "x-ms-copy-source" in headers:
                self.log.sources.append((kind, headers["x-ms-copy-source"]))
                scheme = headers.get("x-ms-copy-source-authorization", "").partition(" ")[0]
                self.log.source_authorizations.append((kind, scheme))
        if self.latency:
            time.sleep(self.latency)
        fault = self._take_fault(kind, path, query, headers)
        if fault is not None and fault.mode == "delay":
            time.sleep(fault.seconds)
            fault = None
        if fault is not None and fault.mode == "drop":
            request.close_connection = True
            request.connection.shutdown(2)  # the client sees the connection die: a timeout
            return
        if fault is not None and fault.mode == "status":
            self._error(request, fault.status, fault.code, MESSAGES.get(fault.code, "injected fault"))
            return
        if fault is not None and fault.mode == "answer" and fault.answer is not None:
            self._send(request, *fault.answer)
            return
        status, out_headers, out_body = self._respond(request.command, request.path, path, query, headers, body)
        out_body = self._index_view(kind, request.command, path, query, headers, body, status, out_body)
        if fault is not None and fault.mode == "lost_response":
            self._error(request, fault.status, "ServerBusy", "injected fault after the request took effect")
            return
        self._send(request, status, out_headers, out_body)

    def _index_view(
        self,
        kind: str,
        method: str,
        path: str,
        query: dict[str, list[str]],
        headers: dict[str, str],
        body: bytes,
        status: int,
        answer: bytes,
    ) -> bytes:
        """Tell the lagging index what storage accepted; answer tag queries through it."""
        parts = path.lstrip("/").split("/", 2)
        if kind == "find_by_tags" and status == 200:
            where = query.get("where", [""])[0]
            if self.paged_index:
                container = parts[1] if len(parts) > 1 and parts[1] else None
                marker, asked = query.get("marker", [None])[0], query.get("maxresults", [None])[0]
                most = min(int(asked or 5000), 5000)
                return self.index.answer(answer, where, container, marker, most, asked)
            return self.index.rewrite(answer, where, first_page="marker" not in query)
        if kind == "delete_container" and status == 202 and len(parts) > 1:
            self.index.forget_container(parts[1])  # its blobs are gone, and so are their tags
        if len(parts) < 3 or status >= 300:
            return answer
        container, blob = parts[1], parts[2]
        if kind in ("put_blob", "put_blob_from_url", "put_blocklist", "copy_blob"):
            # Each writes the whole blob, with the tags x-ms-tags gives (none: none).
            self.index.record(container, blob, tags_header(headers.get("x-ms-tags", "")))
        elif kind == "put_tags":
            self.index.record(container, blob, tags_body(body))
        elif kind == "delete_blob" and method == "DELETE" and "snapshot" not in query:
            self.index.record(container, blob, None)
        return answer

    def _respond(
        self, method: str, raw_path: str, path: str, query: dict[str, list[str]], headers: dict[str, str], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        if self.pacing is not None:
            self._advance()  # a copy whose time is up has ended, whether the tick saw it yet or not
        if method == "GET" and query.get("comp") == ["blobs"]:
            where = query.get("where", [""])[0]
            try:
                parse_query(where)
            except ValueError:  # a query the index cannot read is refused, never a dropped connection
                return self._error_parts(
                    400,
                    "InvalidQueryParameterValue",
                    "Value for one of the query parameters specified in the request URI is invalid.",
                    f"<QueryParameterName>where</QueryParameterName><QueryParameterValue>{escape(where)}"
                    "</QueryParameterValue><Reason />",
                )
        with self._lock:
            fake = self._copies.get(path)
        reading = method in ("HEAD", "GET") and not query.get("comp")
        if fake is not None and reading and _fails_when_read(fake):
            self._end_failed(path, fake.fail_description, fake.fail_at)
        if method == "PUT" and query.get("comp") == ["copy"]:
            return self._abort(path, query, headers)
        if fake is not None and fake.status == "pending" and method == "PUT":
            return self._error_parts(409, "PendingCopyOperation", "There is currently a pending copy operation.")
        if from_url.is_from_url(method, query, headers):
            return self._from_url(raw_path, path, query, headers)
        if method == "PUT" and "x-ms-copy-source" in headers and not query.get("comp"):
            source = headers["x-ms-copy-source"]
            account = path.lstrip("/").split("/", 1)[0]
            elsewhere = self._elsewhere(source, account)
            # Held pending only where Azure copies in the background: from another account or
            # host. A copy within one account ends at once on Azure, whatever the switches say.
            held = self.pending_copies or self.pacing is not None or self.failures.armed() > 0
            if elsewhere and held and "snapshot=" not in source:
                return self._start_pending(path, headers, self.pacing is not None)
            if elsewhere:
                # Azurite reads another account's blob as it pleases: storage reads it with
                # its SAS, or anonymously, and refuses the copy as Azure does.
                props = self._source_props(source, account)
                if props.status != 200:
                    return self._copy_refusal(props)
            with self._lock:
                self._copies.pop(path, None)
            return self._copy_now(raw_path, path, headers)
        if method in ("PUT", "DELETE") and not query.get("comp") and "snapshot" not in query:
            with self._lock:
                self._copies.pop(path, None)  # the blob was replaced or deleted: our copy is gone
        status, out_headers, out_body = self._forward(method, raw_path, headers, body)
        if fake is not None and method in ("HEAD", "GET") and status == 200 and not query.get("comp"):
            out_headers = self._overlay(out_headers, fake)
        return status, out_headers, out_body

    def _copy_now(self, raw_path: str, path: str, headers: dict[str, str]) -> tuple[int, list[tuple[str, str]], bytes]:
        """A pass-through Copy Blob. The source names the proxy's port, which Azurite would
        take for a foreign host, and the client's signature covers the source header, so
        the request goes on with the source pointed at Azurite and authorised by the
        proxy's own account SAS (a raw request: the SDK would cost the proxy more CPU than
        the client spends, which benchmarks would count against the app)."""
        forwarded = {name: value for name, value in headers.items() if name != "authorization"}
        forwarded["x-ms-copy-source"] = self._direct_source(headers["x-ms-copy-source"])
        # Copy Blob's only parameter is its timeout; the rest of a query is the client's SAS.
        parts = urlsplit(raw_path)
        timeout = [f"timeout={value}" for value in parse_qs(parts.query).get("timeout", [])]
        query = "&".join([*timeout, self._own_sas()])
        status, out_headers, out_body = self._forward("PUT", f"{parts.path}?{query}", forwarded, b"")
        if status == 202:
            with self._lock:
                self.started[path] += 1
        return status, out_headers, out_body

    def _from_url(
        self, raw_path: str, path: str, query: dict[str, list[str]], headers: dict[str, str]
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        """Put Block From URL or Put Blob From URL, as Azure does them (:mod:`devkit.from_url`)."""
        block, parts = query.get("comp") == ["block"], urlsplit(raw_path)
        if not block and not headers.get("x-ms-lease-id"):  # a lease on the destination first, as Azure
            _, found, _ = self._forward("HEAD", f"{parts.path}?{self._own_sas()}", {"x-ms-version": "2021-12-02"}, b"")
            leased = from_url.lease_refusal(headers, found)
            if leased is not None:
                return leased
        direct = self._direct_source(headers["x-ms-copy-source"])
        fault = self._source_fault(direct, query, headers)
        if fault is not None:
            read = from_url.SourceRead(fault.status, code=fault.code, message=MESSAGES.get(fault.code, ""))
        else:
            read = from_url.read_source(headers, direct, self._connection, public_access=self.public_access)
        if read.status >= 300:
            return from_url.refusal(read, headers)
        limit = from_url.BLOCK_FROM_URL_LIMIT if block else from_url.BLOB_FROM_URL_LIMIT
        if len(read.data) > limit:
            return from_url.too_large(limit)
        if self.source_rate:
            time.sleep(len(read.data) / self.source_rate)
        # The block's id and the timeout, as the client encoded them; the rest of a query is
        # the client's SAS, which signed a request without this body: the proxy's own goes.
        kept = [item for item in parts.query.split("&") if item.startswith(("blockid=", "timeout="))]
        target = f"{parts.path}?{'&'.join([*(['comp=block'] if block else []), *kept, self._own_sas()])}"
        out = from_url.block_headers(headers) if block else from_url.blob_headers(headers, read)
        status, answer_headers, body = self._forward("PUT", target, out, read.data)
        if status == 201 and not block:
            with self._lock:
                self._copies.pop(path, None)  # the blob was replaced: no copy of ours is on it
        return status, answer_headers, body

    def _start_pending(
        self, path: str, headers: dict[str, str], paced: bool = False
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        from azure.core.exceptions import HttpResponseError

        _, container, blob = path.lstrip("/").split("/", 2)
        dest = self._direct.get_blob_client(container, blob)
        if headers.get("if-none-match") == "*" and dest.exists():
            return self._error_parts(409, "BlobAlreadyExists", "The specified blob already exists.")
        source = headers["x-ms-copy-source"]
        props = self._source_props(source, container_account(path))
        if props.status != 200:
            return self._copy_refusal(props)
        metadata = {
            name[len("x-ms-meta-") :]: value for name, value in headers.items() if name.startswith("x-ms-meta-")
        }
        tags = tags_header(headers.get("x-ms-tags", ""))
        # As Azure shows it while the bytes come: empty, with the source's content headers
        # (set apart: Azurite checks a Put Blob's MD5 against its bytes, Set Blob Properties not).
        # The destination's conditions and lease are checked by Azurite as this write's own:
        # a failed copy's destination is replaced when they hold (If-Match on its ETag).
        try:
            dest.upload_blob(b"", overwrite=True, metadata=metadata, tags=tags or None, **_conditions(headers))
        except HttpResponseError as exc:
            code = getattr(exc, "error_code", None) or ""  # set by the storage SDK on what it raises (an enum)
            code = str(getattr(code, "value", code))
            said = (exc.message or "").splitlines()
            return self._error_parts(exc.status_code or 500, code, said[0] if said else "")
        result = dest.set_http_headers(_content_settings(props), lease=headers.get("x-ms-lease-id"))
        fake = FakeCopy(
            str(uuid.uuid4()), shown_source(source), metadata, total=props.size, read_from=source, tags=tags
        )
        failure = self.failures.take()
        if failure is not None:
            fake.fail_at, fake.fail_description = min(failure.after_bytes, props.size), failure.description
        if paced and self.pacing is not None:
            fake.clock = Clock(props.size, self.pacing.rate)
        with self._lock:
            self._copies[path] = fake
            self.started[path] += 1
            if fake.clock is not None:
                self._paced.add(path)
        return (
            202,
            [
                ("ETag", str(result["etag"])),
                ("Last-Modified", formatdate(usegmt=True)),
                ("x-ms-copy-id", fake.copy_id),
                ("x-ms-copy-status", "pending"),
                ("x-ms-request-id", str(uuid.uuid4())),
                ("x-ms-version", headers.get("x-ms-version", "2021-12-02")),
            ],
            b"",
        )

    def _elsewhere(self, source: str, account: str) -> bool:
        """Whether a copy source lies in another account than ``account``, or on another host
        than this stand-in (and its Azurite): a source storage reads as it reads a stranger's."""
        parts = urlsplit(source)
        home = {f"127.0.0.1:{self.port}", f"localhost:{self.port}"}
        home |= {f"127.0.0.1:{self.azurite_port}", f"localhost:{self.azurite_port}"}
        return parts.netloc not in home or unquote(parts.path).lstrip("/").split("/", 1)[0] != account

    def _source_props(self, source: str, account: str) -> SourceProps:
        """Read the source as storage does before a copy: with the SAS it carries, if any (a
        tampered one is refused); a source in the same account with the account's own
        authority; another account's or host's anonymously (a private blob is refused 401, as
        Azure refuses it; an account without public access 409)."""
        direct = urlsplit(self._direct_source(source))
        if direct.hostname not in ("127.0.0.1", "localhost"):
            return SourceProps(404, code="SourceUnreachable", message="The source could not be reached.")
        fault = self._source_fault(direct.geturl())
        if fault is not None:
            return SourceProps(fault.status, code=fault.code)
        anonymous = not from_url.has_sas(source) and self._elsewhere(source, account)
        if anonymous and not self.public_access:
            return SourceProps(409, code="PublicAccessNotPermitted", message=from_url.NO_PUBLIC_ACCESS)
        query = direct.query
        if not from_url.has_sas(source) and not anonymous:
            query = "&".join(part for part in (direct.query, self._own_sas()) if part)
        connection = self._connection(direct.port or 80)
        try:
            connection.request("HEAD", f"{direct.path}?{query}", headers={"x-ms-version": "2021-12-02"})
            response = connection.getresponse()
            response.read()
        except OSError:
            return SourceProps(404, code="SourceUnreachable", message="The source could not be reached.")
        finally:
            connection.close()
        if response.status == 200:
            content = {
                name: value for name in from_url.CONTENT_HEADERS if (value := response.getheader(name)) is not None
            }
            return SourceProps(200, int(response.getheader("Content-Length") or 0), content)
        if anonymous and response.status == 403:
            return SourceProps(401, code="NoAuthenticationInformation", message=from_url.NO_AUTHENTICATION)
        return SourceProps(response.status, code=response.getheader("x-ms-error-code") or "")

    def _source_fault(
        self, source: str, query: dict[str, list[str]] | None = None, headers: dict[str, str] | None = None
    ) -> Fault | None:
        """A fault armed on the read of a copy's source (``inject("source_read", ...)``): in
        mode "status", what the source answers instead; "delay" waits, then the read goes on."""
        fault = self._take_fault("source_read", unquote(urlsplit(source).path), query, headers)
        if fault is not None and fault.mode == "delay":
            time.sleep(fault.seconds)
        return fault if fault is not None and fault.mode == "status" else None

    def _copy_refusal(self, props: SourceProps) -> tuple[int, list[tuple[str, str]], bytes]:
        """Copy Blob refused for its source: the source's status, ``CannotVerifyCopySource``
        (recorded, service version 2021-08-06: no x-ms-copy-source-* headers)."""
        status = props.status if props.status in (400, 401, 403, 404, 409) else 500
        return self._error_parts(status, "CannotVerifyCopySource", props.message or "The source could not be read.")

    def _abort(
        self, path: str, query: dict[str, list[str]], headers: dict[str, str]
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        copy_id = query.get("copyid", [""])[0]
        if _GUID.fullmatch(copy_id) is None:  # as Azure answers it, before looking at the blob
            return self._error_parts(
                400,
                "InvalidQueryParameterValue",
                "Value for one of the query parameters specified in the request URI is invalid.",
                f"<QueryParameterName>copyid</QueryParameterName><QueryParameterValue>{escape(copy_id)}"
                "</QueryParameterValue><Reason />",
            )
        _, container, blob = path.lstrip("/").split("/", 2)
        with self._lock:
            fake = self._copies.get(path)
            aborting = fake is not None and fake.status == "pending"
            if fake is not None and aborting:
                if fake.copy_id != copy_id:
                    return self._error_parts(409, "CopyIdMismatch", "The specified copy ID did not match.")
                fake.status = "aborted"  # and no x-ms-copy-status-description, as on Azure
                fake.ended = formatdate(usegmt=True)
        if fake is not None and aborting:
            # Azure's abort changes the blob (its ETag moves); its metadata stays as it was.
            from azure.core.exceptions import HttpResponseError

            # A lease the abort did not name: aborted all the same, its ETag kept.
            with contextlib.suppress(HttpResponseError):
                self._direct.get_blob_client(container, blob).set_blob_metadata(
                    fake.metadata, lease=headers.get("x-ms-lease-id")
                )
            return (
                204,
                [("x-ms-request-id", str(uuid.uuid4())), ("x-ms-version", headers.get("x-ms-version", ""))],
                b"",
            )
        if not self._direct.get_blob_client(container, blob).exists():
            return self._error_parts(404, "BlobNotFound", "The specified blob does not exist.")
        return self._error_parts(409, "NoPendingCopyOperation", "There is currently no pending copy operation.")

    @staticmethod
    def _overlay(headers: list[tuple[str, str]], fake: FakeCopy) -> list[tuple[str, str]]:
        kept = [(n, v) for n, v in headers if not n.lower().startswith("x-ms-copy-")]
        kept += [
            ("x-ms-copy-id", fake.copy_id),
            ("x-ms-copy-status", fake.status),
            ("x-ms-copy-progress", f"{fake.copied}/{fake.total}"),
            ("x-ms-copy-source", fake.source),
        ]
        if fake.status != "pending":
            kept.append(("x-ms-copy-completion-time", fake.ended or formatdate(usegmt=True)))
        if fake.description:
            kept.append(("x-ms-copy-status-description", fake.description))
        return kept

    def _control(self, method: str, command: str, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        if method == "GET" and command == "counts":
            with self._lock:
                counts = dict(self.log.counts)
            return 200, [("Content-Type", "application/json")], json.dumps(counts).encode()
        if method == "POST" and command == "config":
            config = json.loads(body or b"{}")
            with self._lock:
                self.pending_copies = bool(config.get("pending", self.pending_copies))
                self.latency = float(config.get("latency", self.latency))
                self.index.lag = float(config.get("index_lag", self.index.lag))
                rate = config.get("source_rate", self.source_rate)
                self.source_rate = float(rate) if rate else None
                if "pace" in config:  # copies from another "account" pending at this many bytes/s
                    self.pacing = Pacing(rate=float(config["pace"])) if config["pace"] else None
            return 204, [], b""
        if method == "POST" and command == "reset":
            with self._lock:
                self.log = RequestLog()
            return 204, [], b""
        if method == "POST" and command in FAILING:
            try:
                FAILING[command](self, **json.loads(body or b"{}"))
            except (TypeError, ValueError) as exc:  # a field it does not take, or a bad value
                return self._error_parts(400, "InvalidProxyCommand", f"{command}: {exc}")
            return 204, [], b""
        return self._error_parts(404, "UnknownProxyCommand", f"no proxy command {method} {command}")

    def _forward(
        self, method: str, raw_path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        forwarded = {n: v for n, v in headers.items() if n not in ("host", "connection")}
        forwarded["host"] = f"127.0.0.1:{self.azurite_port}"
        for attempt in (1, 2):
            connection = getattr(self._upstream, "connection", None)
            if connection is None:
                connection = self._upstream.connection = self._connection(self.azurite_port)
            try:
                connection.request(method, raw_path, body=body or None, headers=forwarded)
                response = connection.getresponse()
                data = response.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                # Azurite closed an idle keep-alive connection: open a new one, once.
                connection.close()
                self._upstream.connection = None
                if attempt == 2:
                    raise
                continue
            if response.will_close:
                connection.close()
                self._upstream.connection = None
            out = [(n, v) for n, v in response.getheaders() if n.lower() not in ("transfer-encoding", "connection")]
            return response.status, out, data
        raise AssertionError("unreachable")

    def _error_parts(
        self, status: int, code: str, message: str, extra: str = ""
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        body = (
            f'<?xml version="1.0" encoding="utf-8"?><Error><Code>{code}</Code>'
            f"<Message>{escape(message)}</Message>{extra}</Error>"
        ).encode()
        return status, [("Content-Type", "application/xml"), ("x-ms-error-code", code)], body

    def _error(self, request: BaseHTTPRequestHandler, status: int, code: str, message: str) -> None:
        self._send(request, *self._error_parts(status, code, message))

    @staticmethod
    def _send(request: BaseHTTPRequestHandler, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        request.send_response(status)
        for name, value in headers:
            if name.lower() != "content-length":
                request.send_header(name, value)
        if request.command == "HEAD":
            length = next((v for n, v in headers if n.lower() == "content-length"), "0")
            request.send_header("Content-Length", length)
            request.end_headers()
            return
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        request.wfile.write(body)


def _clear_failures(proxy: PendingCopyProxy) -> None:
    proxy.clear_faults()
    proxy.failures.clear()


FAILING: dict[str, Callable[..., None]] = {
    "inject": PendingCopyProxy.inject,
    "fail-next": PendingCopyProxy.fail_next,
    "clear-faults": _clear_failures,
}

_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def _fails_when_read(fake: FakeCopy) -> bool:
    """An armed copy without a pace: it fails when its destination's properties are read."""
    return fake.status == "pending" and fake.clock is None and fake.fail_at is not None


def container_account(path: str) -> str:
    """The account a request's path (``/account/container/blob``) addresses."""
    return path.lstrip("/").split("/", 1)[0]


def shown_source(source: str) -> str:
    """A copy source as Azure shows it in ``x-ms-copy-source``: its SAS without the signature."""
    base, _, query = source.partition("?")
    kept = [item for item in query.split("&") if item and not item.startswith("sig=")]
    return f"{base}?{'&'.join(kept)}" if kept else base


def _conditions(headers: dict[str, str]) -> dict[str, Any]:
    """A Copy Blob's conditions on its destination (and its lease), as the SDK's keywords."""
    from email.utils import parsedate_to_datetime

    from azure.core import MatchConditions

    out: dict[str, Any] = {}
    match, none_match = headers.get("if-match"), headers.get("if-none-match", "*")
    if match is not None:
        out["etag"] = match
        out["match_condition"] = MatchConditions.IfPresent if match == "*" else MatchConditions.IfNotModified
    elif none_match != "*":  # If-None-Match: * is answered before the source is read
        out["etag"], out["match_condition"] = none_match, MatchConditions.IfModified
    for name, keyword in (("if-modified-since", "if_modified_since"), ("if-unmodified-since", "if_unmodified_since")):
        if name in headers:
            out[keyword] = parsedate_to_datetime(headers[name])
    if "x-ms-lease-id" in headers:
        out["lease"] = headers["x-ms-lease-id"]
    return out


def _content_settings(props: SourceProps) -> Any:
    from azure.storage.blob import ContentSettings

    md5 = props.content.get("content-md5")
    return ContentSettings(
        content_type=props.content.get("content-type"),
        content_encoding=props.content.get("content-encoding"),
        content_language=props.content.get("content-language"),
        content_disposition=props.content.get("content-disposition"),
        cache_control=props.content.get("cache-control"),
        content_md5=bytearray(base64.b64decode(md5)) if md5 else None,
    )


def serve(
    azurite_port: int, latency: float = 0.0, pending: bool = False, tls: TlsFiles | None = None
) -> PendingCopyProxy:
    proxy = PendingCopyProxy(azurite_port, latency, tls).start()
    proxy.pending_copies = pending
    return proxy

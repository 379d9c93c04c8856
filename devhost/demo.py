"""python -m devhost.demo: watch copy-ops work, start to finish, in about 10 seconds.

Starts Azurite with a second account (a partner's), the pending-copy proxy in front of
it (so a copy from the partner's account stays pending, as a copy from another account
does in Azure; one within an account ends at once, there and here), and the development
host with a sweep every two seconds. Then starts two copies from the partner's account,
each named by a URL with the partner's SAS: one finishes while we watch; the other is
still pending at its 6-second deadline and the sweep aborts it. Prints what happens as it
happens. Everything stops at the end, or on Ctrl-C.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.storage.blob import BlobServiceClient, ContainerSasPermissions, generate_container_sas

from devkit import (
    DEV_ACCOUNT,
    DEV_KEY,
    PARTNER_ACCOUNT,
    PARTNER_KEY,
    Azurite,
    PendingCopyProxy,
    free_port,
    http_call,
    serve,
)

SWEEP_EVERY_TWO_SECONDS = "*/2 * * * * *"
# name, timeout in seconds, on_abort
COPIES = (("report.csv", 60, "keep"), ("stuck.bin", 6, "delete"))
STARTED = time.monotonic()


def say(text: str) -> None:
    print(f"[{time.monotonic() - STARTED:5.1f}s] {text}", flush=True)


def describe(op: dict[str, Any]) -> str:
    progress = op.get("progress") or {}
    text = str(op["state"])
    if progress:
        text += f" ({progress['bytes_copied']}/{progress['bytes_total']} bytes)"
    if op.get("abort_reason"):
        text += f", abort_reason={op['abort_reason']}"
    if op.get("error"):
        text += f", error={op['error']['code']}"
    return text


class _SweepsWithWork(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("sweep_summary due=0")


def show_sweeps() -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("         %(name)s: %(message)s"))
    handler.addFilter(_SweepsWithWork())
    sweep_log = logging.getLogger("copy_ops.background.sweep")
    sweep_log.addHandler(handler)
    sweep_log.setLevel(logging.INFO)


def start_host(proxy: PendingCopyProxy) -> tuple[Any, str]:
    os.environ.update(
        {
            "COPY_STORAGE": proxy.connection_string,
            "COPY_SWEEP_SCHEDULE": SWEEP_EVERY_TWO_SECONDS,
            "COPY_FIRST_CHECK_SECONDS": "1",
            "COPY_ALLOWED_SOURCE_HOSTS": "127.0.0.1:*",
            "COPY_LEDGER_CONTAINER": "copy-operations",
        }
    )
    from devhost.host import DevHost  # after the settings are in the environment

    host = DevHost()
    port = free_port()
    server = host.serve("127.0.0.1", port)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return host, f"http://127.0.0.1:{port}"


def partner_container(proxy: PendingCopyProxy, name: str) -> tuple[BlobServiceClient, str]:
    """A container of the partner's account, made in Azurite itself; the SAS that reads it,
    as a partner hands one out."""
    partner = BlobServiceClient(
        f"http://127.0.0.1:{proxy.azurite_port}/{PARTNER_ACCOUNT}",
        credential={"account_name": PARTNER_ACCOUNT, "account_key": PARTNER_KEY},
    )
    partner.create_container(name)
    sas = generate_container_sas(
        PARTNER_ACCOUNT,
        name,
        account_key=PARTNER_KEY,
        permission=ContainerSasPermissions(read=True),
        expiry=datetime.now(UTC) + timedelta(hours=1),
    )
    return partner, sas


def start_copies(base: str, proxy: PendingCopyProxy, src: str, dst: str) -> dict[str, str]:
    proxy.direct.create_container(dst)  # Azurite itself, to arrange the demo's blobs
    partner, sas = partner_container(proxy, src)
    copies = {}
    for name, timeout, on_abort in COPIES:
        partner.get_blob_client(src, name).upload_blob(os.urandom(1 << 20))
        body = {
            "source": f"{proxy.url}/{PARTNER_ACCOUNT}/{src}/{name}?{sas}",
            "destination": {"container": dst, "blob": name},
            "timeout_seconds": timeout,
            "on_abort": on_abort,
            # Azure's Copy Blob from another account, held pending by the proxy: what the
            # deadline guard is for (auto would take the block engine for another account).
            "engine": "async",
        }
        reply = http_call(base + "/api/copies", "POST", body)
        say(f"POST /api/copies {name}: {reply.status}, deadline in {timeout}s, on_abort={on_abort}")
        copies[name] = reply.json()["id"]
    return copies


def watch(base: str, proxy: PendingCopyProxy, dst: str, copies: dict[str, str]) -> bool:
    """Print each change of state until every copy has ended; the storage side of
    report.csv progresses and finishes on a script."""
    script = [(3.0, "half", "report.csv: storage reports half of it copied"), (5.0, "finish", "report.csv: done")]
    seen: dict[str, str] = {}
    while any(text.startswith("pending") for text in seen.values()) or len(seen) < len(copies):
        if time.monotonic() - STARTED > 60:
            say("giving up after 60 s")
            return False
        while script and time.monotonic() - STARTED > script[0][0]:
            _, step, text = script.pop(0)
            if step == "half":
                proxy.advance(dst, "report.csv", 1 << 19)
            else:
                proxy.finish(dst, "report.csv")
            say(f"storage: {text}")
        for name, operation_id in copies.items():
            text = describe(http_call(f"{base}/api/copies/{operation_id}", "GET").json())
            if seen.get(name) != text:
                seen[name] = text
                say(f"GET {name}: {text}")
        time.sleep(0.5)
    return True


def main() -> int:
    show_sweeps()
    with Azurite(accounts={DEV_ACCOUNT: DEV_KEY, PARTNER_ACCOUNT: PARTNER_KEY}) as azurite:
        proxy = serve(azurite.port, pending=True)
        host, base = start_host(proxy)
        try:
            say(
                f"Azurite on {azurite.port} (the sources in its second account, {PARTNER_ACCOUNT}), "
                f"pending-copy proxy on {proxy.port}, copy-ops on {base}"
            )
            say(f"the sweep runs on {SWEEP_EVERY_TWO_SECONDS!r} (every two seconds)")
            suffix = uuid.uuid4().hex[:6]
            src, dst = f"exports-{suffix}", f"backups-{suffix}"
            copies = start_copies(base, proxy, src, dst)
            if not watch(base, proxy, dst, copies):
                return 1
            exists = proxy.direct.get_blob_client(dst, "stuck.bin").exists()
            say(f"stuck.bin destination exists after the abort: {exists} (on_abort=delete)")
            say("done: one copy succeeded, the other was aborted at its deadline by the sweep")
        finally:
            host.stop()
            proxy.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The sources of the benchmarks' pending copies: blobs of another account.

On Azure, and in the stand-in (devkit/proxy.py), only a copy from another account or host
runs in the background; one within an account ends at once. So every benchmark that needs
copies still pending (a deadline abort, a check, a pending item of a job) takes its source
from the second account of the harness's Azurite (``partner``, in ``AZURITE_ACCOUNTS``),
named to the app as a partner hands it out: by URL through the proxy, with a SAS, as
tests/support/partner.py does for the suite (both over devkit/partner.py).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import quote

from devkit import DEV_ACCOUNT, DEV_KEY, PARTNER_ACCOUNT, PARTNER_KEY
from devkit.partner import partner_container

# The harness's Azurite serves both: the app's account and the partner's.
ACCOUNTS = {DEV_ACCOUNT: DEV_KEY, PARTNER_ACCOUNT: PARTNER_KEY}
# Copy Blob for a source in another account: ``auto`` would take the block engine there
# (copy_ops.copies.engines.engine_for), whose copies wait on no copy of Azure's: none
# would stay pending.
ENGINE = "async"
# Longer than any benchmark runs: a copy still pending at the end reads its source with it.
SAS_LIFETIME = timedelta(hours=12)


class Partner:
    """One container of the partner's account, written in Azurite itself (set-up, uncounted
    by the proxy), and its blobs' URLs through the proxy with a SAS that reads and lists it."""

    def __init__(self, azurite_port: int, proxy_port: int, container: str) -> None:
        self.container = container
        self.base = f"http://127.0.0.1:{proxy_port}/{PARTNER_ACCOUNT}/{container}"
        self.service, self.sas = partner_container(f"http://127.0.0.1:{azurite_port}", container, SAS_LIFETIME)

    def put(self, name: str, data: bytes, max_concurrency: int = 1) -> str:
        """Put the blob ``name``; its URL, as a copy's source."""
        client = self.service.get_blob_client(self.container, name)
        client.upload_blob(data, overwrite=True, max_concurrency=max_concurrency)
        return self.url(name)

    def url(self, name: str) -> str:
        return f"{self.base}/{quote(name)}?{self.sas}"

    def listing(self, prefix: str) -> dict[str, str]:
        """A job's source: every blob under ``prefix``, listed with the SAS."""
        return {"url": f"{self.base}/{quote(prefix)}?{self.sas}"}

    def body(self, dst: str, blob: str, timeout: int, name: str = "a.bin", **fields: Any) -> dict[str, Any]:
        """A pending copy's start body: the blob ``name`` of this container to ``dst``."""
        return {
            "source": self.url(name),
            "destination": {"container": dst, "blob": blob},
            "timeout_seconds": timeout,
            "engine": ENGINE,
            **fields,
        }

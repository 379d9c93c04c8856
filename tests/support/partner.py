"""Blobs of another account: the second account on the suite's Azurite (``partner``, in
``AZURITE_ACCOUNTS``), named to the app as a partner hands them out, by URL with a SAS.

On Azure only a copy from another account (or another host) runs in the background; one
within an account ends at once. The stand-in holds pending only the former, so a test
that needs a pending copy takes its source from here (``proxy.pending_copies`` on); a
test of a copy within the app's account takes it from its own containers (``Blobs``).
The URLs go through the proxy (path style, ``/partner/<container>/<blob>``), as the
app's own requests do, so the proxy sees the copy's source as another account's."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import quote

from azure.storage.blob import BlobClient

from devkit import PARTNER_ACCOUNT, PendingCopyProxy
from devkit.partner import partner_container

# Longer than any test runs: a copy still pending at the end reads its source with it.
SAS_LIFETIME = timedelta(hours=2)


class Partner:
    """One container of the partner's account, arranged in Azurite itself (uncounted by
    the proxy), and its blobs' URLs through the proxy with a SAS that reads and lists it."""

    def __init__(self, proxy: PendingCopyProxy, container: str) -> None:
        self.proxy = proxy
        self.container = container
        azurite = f"{proxy.scheme}://127.0.0.1:{proxy.azurite_port}"
        self.service, self.sas = partner_container(azurite, container, SAS_LIFETIME)

    def blob(self, name: str) -> BlobClient:
        return self.service.get_blob_client(self.container, name)

    def put(self, name: str, data: bytes, metadata: dict[str, str] | None = None) -> str:
        """Put the blob ``name``; its URL, as a copy's source."""
        self.blob(name).upload_blob(data, overwrite=True, metadata=metadata)
        return self.url(name)

    def url(self, name: str) -> str:
        return f"{self.proxy.url}/{PARTNER_ACCOUNT}/{self.container}/{quote(name)}?{self.sas}"

    def listing(self, prefix: str = "") -> dict[str, str]:
        """A job's source: every blob under ``prefix``, listed with the SAS."""
        return {"url": f"{self.proxy.url}/{PARTNER_ACCOUNT}/{self.container}/{quote(prefix)}?{self.sas}"}

    def body(self, dst: str, name: str = "a.bin", dest_name: str | None = None, **fields: Any) -> dict[str, Any]:
        """A copy's start body: the blob ``name`` of this container to ``dst``."""
        return {"source": self.url(name), "destination": {"container": dst, "blob": dest_name or name}, **fields}

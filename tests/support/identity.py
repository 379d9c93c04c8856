"""Identity mode, for real: Azurite with bearer tokens over HTTPS and two accounts, the
pending-copy proxy over TLS in front of it, and a stand-in of the managed-identity
endpoint, so that the app's unchanged DefaultAzureCredential takes its real path."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from azure.storage.blob import BlobServiceClient

from devkit import DEV_ACCOUNT, DEV_KEY, PARTNER_ACCOUNT, PARTNER_KEY, Azurite, PendingCopyProxy, serve
from devkit.identity import ManagedIdentityEndpoint
from devkit.tls import TlsFiles, make_tls
from tests.support.devhost_process import DevHostProcess

PARTNER = PARTNER_ACCOUNT
CLIENT_ID = "a3b1c2d4-0000-4000-8000-00000000c0de"


@dataclass
class IdentityWorld:
    tls: TlsFiles
    azurite: Azurite
    proxy: PendingCopyProxy
    identity: ManagedIdentityEndpoint

    def client(self, account: str = DEV_ACCOUNT) -> BlobServiceClient:
        """Azurite itself, with the account's key: to arrange and inspect, uncounted."""
        key = PARTNER_KEY if account == PARTNER else DEV_KEY
        return BlobServiceClient(
            f"https://127.0.0.1:{self.azurite.port}/{account}",
            credential={"account_name": account, "account_key": key},
            connection_verify=str(self.tls.ca),
        )

    @property
    def endpoint(self) -> str:
        """The app's own blob endpoint: through the proxy."""
        return f"{self.proxy.url}/{DEV_ACCOUNT}"

    def template_settings(self) -> dict[str, str]:
        """What Azure's Flex Consumption templates give an app, and nothing else: the host's
        storage by identity (a user-assigned one), the identity endpoint, and the CA the
        test's TLS needs (an operator's private CA would be set the same way)."""
        return {
            "AzureWebJobsStorage__blobServiceUri": self.endpoint,
            "AzureWebJobsStorage__credential": "managedidentity",
            "AzureWebJobsStorage__clientId": CLIENT_ID,
            "SSL_CERT_FILE": str(self.tls.ca),
            **self.identity.env,
        }

    def host(self, verbose: bool = False, **settings: str) -> DevHostProcess:
        env = {**self.template_settings(), "COPY_LEDGER_CONTAINER": f"ledger-{uuid.uuid4().hex[:10]}", **settings}
        return DevHostProcess(env=env, verbose=verbose)


@contextmanager
def identity_world(directory: Path) -> Iterator[IdentityWorld]:
    tls = make_tls(directory)
    with Azurite(tls=tls, oauth=True, accounts={DEV_ACCOUNT: DEV_KEY, PARTNER: PARTNER_KEY}) as azurite:
        proxy = serve(azurite.port, tls=tls)
        identity = ManagedIdentityEndpoint().start()
        try:
            yield IdentityWorld(tls, azurite, proxy, identity)
        finally:
            identity.stop()
            proxy.stop()

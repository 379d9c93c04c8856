"""A container of the second account (``partner``) on Azurite, made ready for copies from it:
its client (written in Azurite itself, not through the stand-in) and a SAS that reads and
lists it. The suite's helper (tests/support/partner.py) and the benchmarks' (bench/partner.py)
both take theirs from here."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta

from azure.core.exceptions import ResourceExistsError
from azure.storage.blob import BlobServiceClient, ContainerSasPermissions, generate_container_sas

from devkit.proxy import PARTNER_ACCOUNT, PARTNER_KEY


def partner_container(azurite: str, container: str, lifetime: timedelta) -> tuple[BlobServiceClient, str]:
    """The partner account's service on ``azurite`` (``scheme://host:port``), with
    ``container`` made if missing, and a SAS that reads and lists it for ``lifetime``."""
    service = BlobServiceClient(
        f"{azurite}/{PARTNER_ACCOUNT}", credential={"account_name": PARTNER_ACCOUNT, "account_key": PARTNER_KEY}
    )
    with contextlib.suppress(ResourceExistsError):
        service.create_container(container)
    sas = generate_container_sas(
        PARTNER_ACCOUNT,
        container,
        account_key=PARTNER_KEY,
        permission=ContainerSasPermissions(read=True, list=True),
        expiry=datetime.now(UTC) + lifetime,
    )
    return service, sas

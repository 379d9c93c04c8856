"""The source of a copy: a URL, a blob of the app's account, or a blob of another account.

Pure, like :mod:`copy_ops.copies.request`, which calls it: a source URL is taken apart
(:mod:`copy_ops.core.urls`), held to the naming rules (:mod:`copy_ops.core.names`) and to the
allowed hosts, and recognised as the app's own account however it is spelt. With an
identity, a blob of another account (``{"account", "container", "blob"}``, or a URL
without a SAS) is read through a user delegation SAS the app mints, whose key limits
the deadline (:data:`~copy_ops.copies.model.MINTED_SAS_LONGEST_TIMEOUT`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, NamedTuple

from copy_ops.copies.model import MINTED_SAS_LONGEST_TIMEOUT, BlobRef, ForeignBlob
from copy_ops.core import names, urls
from copy_ops.core.problems import Problems
from copy_ops.core.settings import Settings

NOT_OWN_SOURCE = (  # why a lease cannot be held on a source elsewhere
    "a lease can be held only on a source in the app's own storage account "
    "(its SAS is not kept, so the lease could not be released later)"
)


def blob_ref(value: Any, field: str, problems: Problems) -> BlobRef | None:
    """``{"container", "blob"}``, both names acceptable, or None with the problems noted."""
    if not isinstance(value, Mapping):
        problems.bad(field, "must be an object with container and blob")
        return None
    extra = sorted(set(value) - {"container", "blob"})
    for name in extra:
        problems.bad(f"{field}.{name}", "unknown field")
    container, blob = value.get("container"), value.get("blob")
    container_problem, blob_problem = names.container_problem(container), names.blob_problem(blob)
    if container_problem is not None:
        problems.bad(f"{field}.container", container_problem)
    if blob_problem is not None:
        problems.bad(f"{field}.blob", blob_problem)
    if extra or not isinstance(container, str) or not isinstance(blob, str) or container_problem or blob_problem:
        return None
    return BlobRef(container, blob)


class Source(NamedTuple):
    url: str | None = None
    blob: BlobRef | None = None
    foreign: ForeignBlob | None = None


def read_source(value: Any, settings: Settings, problems: Problems, field: str = "source") -> Source:
    """The source of one copy (``field`` names it in problems: ``source``, ``source.blobs[3]``)."""
    if value is None:
        problems.bad(field, "is required")
        return Source()
    if isinstance(value, Mapping):
        if "account" in value:
            return _account_source(value, settings, problems, field)
        ref = blob_ref(value, field, problems)
        if ref is not None and ref.container == settings.ledger_container:
            problems.deny(f"{field}.container", "is the ledger's own container")
        return Source(blob=ref)
    if not isinstance(value, str):
        problems.bad(field, "must be a blob URL or an object with container and blob")
        return Source()
    try:
        url = urls.parse_blob_url(value)
    except ValueError as exc:
        problems.bad(field, str(exc))
        return Source()
    if not urls.host_allowed(url, settings.allowed_source_hosts):
        problems.deny(field, f"host {url.host}:{url.port} is not in COPY_ALLOWED_SOURCE_HOSTS")
        return Source()
    own = settings.storage.account
    if not url.account.is_same(own):
        # No SAS, another account of the same cloud, and the app has an identity: it mints the SAS.
        if mintable(url, settings) and names.container_problem(url.container) is None:
            return Source(foreign=ForeignBlob(url.account.name, url.container, url.blob))
        return Source(url=value)
    # The app's own account, however the URL spells it: the same rules as {container, blob}.
    if url.container == settings.ledger_container:
        problems.deny(field, "names the ledger's own container")
        return Source()
    if names.container_problem(url.container) is not None:
        problems.bad(field, f"its container {names.CONTAINER_RULE}")
        return Source()
    return Source(url=value, blob=BlobRef(url.container, url.blob))


def mintable(url: urls.BlobUrl, settings: Settings) -> bool:
    """A URL of another account that the app reads with a SAS it mints: no SAS of the
    caller's, an account of the same cloud, and an identity to mint with."""
    own = settings.storage.account
    return settings.storage.uses_identity and not url.has_query and url.account.same_cloud(own)


def _account_source(value: Mapping[str, Any], settings: Settings, problems: Problems, field: str) -> Source:
    """``{"account", "container", "blob"}``: a blob of another account, read with the app's identity."""
    account = value.get("account")
    problem = names.account_problem(account)
    ref = blob_ref({key: item for key, item in value.items() if key != "account"}, field, problems)
    if problem is not None:
        problems.bad(f"{field}.account", problem)
        return Source()
    if account == settings.storage.account.name:
        if ref is not None and ref.container == settings.ledger_container:
            problems.deny(f"{field}.container", "is the ledger's own container")
            return Source()
        return Source(blob=ref)
    if not account_readable(str(account), settings, problems, f"{field}.account"):
        return Source()
    return Source(foreign=ForeignBlob(str(account), ref.container, ref.blob)) if ref is not None else Source()


def account_readable(account: str, settings: Settings, problems: Problems, field: str) -> bool:
    """Whether the app may read another account with its identity; the problems noted if not."""
    if not settings.storage.uses_identity:
        problems.bad(
            field,
            "another account is read through the app's identity: connect with COPY_STORAGE__blobServiceUri "
            "(or AzureWebJobsStorage__blobServiceUri), or give the source as a URL with a SAS",
        )
        return False
    endpoint = urls.parse_blob_url(f"{urls.account_endpoint(settings.storage.blob_endpoint, account)}/c/b")
    if not urls.host_allowed(endpoint, settings.allowed_source_hosts):
        problems.deny(field, f"host {endpoint.host}:{endpoint.port} is not in COPY_ALLOWED_SOURCE_HOSTS")
        return False
    return True


def reads_minted_sas(source: Source, settings: Settings) -> bool:
    """Whether the app reads this source through a user delegation SAS it mints."""
    own_blob = source.url is None and source.blob is not None
    return source.foreign is not None or (own_blob and settings.storage.uses_identity)


def minted_deadline_problem(source: Source, deadline: datetime, now: datetime, settings: Settings) -> str | None:
    """Why ``deadline`` is too far for a source read through a SAS the app mints (it cannot
    outlive the key that signs it), or None."""
    return too_far_for_minted_sas(deadline, now) if reads_minted_sas(source, settings) else None


def too_far_for_minted_sas(deadline: datetime, now: datetime) -> str | None:
    longest = MINTED_SAS_LONGEST_TIMEOUT.total_seconds()
    if (deadline - now).total_seconds() > longest:
        return (
            f"must be at most {int(longest)} s from now for a source the app reads through a user "
            "delegation SAS (a delegation key lives at most 7 days)"
        )
    return None

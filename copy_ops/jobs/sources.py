"""A job's source, read from its request: a prefix (by URL, by name, or in another
account by name) or a manifest of single sources. Pure, like :mod:`copy_ops.copies.sources`,
whose rules each source of a manifest follows.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from copy_ops.copies.model import BlobRef, ForeignBlob, ManifestEntry
from copy_ops.copies.sources import Source, account_readable, mintable, read_source, reads_minted_sas
from copy_ops.core import names, urls
from copy_ops.core.problems import Problems
from copy_ops.core.redaction import strip_query
from copy_ops.core.settings import Settings
from copy_ops.jobs.model import Listing, PrefixSource


class SourceReader:
    """Reads ``source``: a prefix (``url``; ``container`` and ``prefix``; with ``account``) or a manifest."""

    def __init__(self, settings: Settings, problems: Problems) -> None:
        self._settings = settings
        self._problems = problems
        self.prefix: PrefixSource | None = None
        self.manifest: list[tuple[ManifestEntry, Source, int]] = []
        self.sas: str | None = None

    @property
    def minted(self) -> bool:
        """Whether some item is read through a SAS the app mints (its key limits the deadline)."""
        identity = self._settings.storage.uses_identity
        if self.prefix is not None:
            return self.prefix.listing is Listing.IDENTITY or (identity and self.prefix.listing is Listing.OWN)
        return any(reads_minted_sas(source, self._settings) for _, source, _ in self.manifest)

    @property
    def all_own(self) -> bool:
        if self.prefix is not None:
            return self.prefix.listing is Listing.OWN
        return all(source.blob is not None for _, source, _ in self.manifest)

    def source(self, value: Any) -> None:
        if not isinstance(value, Mapping):
            self._problems.bad("source", "must be an object: {url}, {container, prefix}, {account, ...} or {blobs}")
        elif "blobs" in value:
            self._manifest(value)
        elif "url" in value:
            self._url(value)
        else:
            self._named(value)

    def _unknown(self, value: Mapping[str, Any], known: set[str]) -> None:
        for name in sorted(set(value) - known):
            self._problems.bad(f"source.{name}", "unknown field")

    def _url(self, value: Mapping[str, Any]) -> None:
        self._unknown(value, {"url"})
        text = value["url"]
        try:
            url = urls.parse_container_url(text) if isinstance(text, str) else None
        except ValueError as exc:
            self._problems.bad("source.url", str(exc))
            return
        if url is None:
            self._problems.bad("source.url", "must be a container URL, optionally with a prefix and a SAS")
            return
        if not urls.host_allowed(url, self._settings.allowed_source_hosts):
            self._problems.deny("source.url", f"host {url.host}:{url.port} is not in COPY_ALLOWED_SOURCE_HOSTS")
            return
        if names.container_problem(url.container) is not None:
            self._problems.bad("source.url", f"its container {names.CONTAINER_RULE}")
            return
        if url.account.is_same(self._settings.storage.account):
            self._own(url.container, url.blob, "source.url")
            return
        base = _container_url(text, url.account.path_style)
        if mintable(url, self._settings):
            self.prefix = PrefixSource(Listing.IDENTITY, url.container, url.blob, base, url.account.name)
            return
        self.sas = text.partition("?")[2] or None
        self.prefix = PrefixSource(Listing.URL, url.container, url.blob, base, needs_sas=self.sas is not None)

    def _named(self, value: Mapping[str, Any]) -> None:
        self._unknown(value, {"account", "container", "prefix"})
        container, prefix, account = value.get("container"), value.get("prefix", ""), value.get("account")
        bad = False
        for field, problem in (
            ("source.container", names.container_problem(container)),
            ("source.prefix", names.prefix_problem(prefix)),
            ("source.account", names.account_problem(account) if account is not None else None),
        ):
            if problem is not None:
                self._problems.bad(field, problem)
                bad = True
        if bad:
            return
        own = self._settings.storage.account.name
        if account is None or account == own:
            self._own(str(container), str(prefix), "source.container")
        elif account_readable(str(account), self._settings, self._problems, "source.account"):
            endpoint = urls.account_endpoint(self._settings.storage.blob_endpoint, str(account))
            url = f"{endpoint}/{container}"
            self.prefix = PrefixSource(Listing.IDENTITY, str(container), str(prefix), url, str(account))

    def _own(self, container: str, prefix: str, field: str) -> None:
        if container == self._settings.ledger_container:
            self._problems.deny(field, "is the ledger's own container")
            return
        url = f"{self._settings.storage.blob_endpoint.rstrip('/')}/{container}"
        self.prefix = PrefixSource(Listing.OWN, container, prefix, strip_query(url))

    def _manifest(self, value: Mapping[str, Any]) -> None:
        self._unknown(value, {"blobs"})
        blobs = value["blobs"]
        most = self._settings.job_manifest_max
        if not isinstance(blobs, list) or not 1 <= len(blobs) <= most:
            self._problems.bad("source.blobs", f"must be a list of 1 to {most} sources")
            return
        for index, item in enumerate(blobs):
            field = f"source.blobs[{index}]"
            source = read_source(item, self._settings, self._problems, field)
            name = _blob_name(source)
            if name is not None:
                self.manifest.append((ManifestEntry(_what_is_read(source), name), source, index))


def _blob_name(source: Source) -> str | None:
    if source.blob is not None:
        return source.blob.blob
    if source.foreign is not None:
        return source.foreign.blob
    return urls.parse_blob_url(source.url).blob if source.url is not None else None


def _what_is_read(source: Source) -> str | BlobRef | ForeignBlob:
    if source.url is not None and source.blob is None:
        return source.url
    if source.foreign is not None:
        return source.foreign
    assert source.blob is not None
    return source.blob


def _container_url(text: str, path_style: bool) -> str:
    """The container's URL alone: no prefix after it, no query."""
    parts = urlsplit(text)
    segments = parts.path.lstrip("/").split("/")
    return f"{parts.scheme}://{parts.netloc}/" + "/".join(segments[: 2 if path_style else 1])

"""Blob URLs: which account, container and blob a URL names, and which hosts may be sources.

Azure names an account in the host (``acct.blob.core.windows.net/container/blob``);
the emulator, and any IP address, in the first path segment
(``127.0.0.1:10000/devstoreaccount1/container/blob``), as the storage SDK reads them.
Pure: no network, no settings.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from fnmatch import fnmatchcase
from urllib.parse import SplitResult, unquote, urlsplit

from copy_ops.core import names

DEFAULT_PORTS = {"https": 443, "http": 80}
# Copy Blob takes the source in a header, URL-encoded: no spaces, controls or raw non-ASCII.
HEADER_SAFE = re.compile(r"[\x21-\x7e]+")
_HOST_PATTERN = re.compile(r"(?P<host>\[[0-9a-f:.*?]+\]|[^\[\]:/@\s]+)(?::(?P<port>[0-9]{1,5}|\*))?")
# Azure's read-only secondary endpoint of an account: ``acct-secondary.blob...``.
_SECONDARY = "-secondary"


def is_path_style(host: str) -> bool:
    """True where the account is the first path segment: the emulator and IP addresses."""
    if host == "localhost":
        return True
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Account:
    """A storage account as an endpoint names it."""

    name: str
    host: str
    path_style: bool

    @property
    def domain(self) -> str:
        """The host without the account's own label (``blob.core.windows.net``); path-style: the host."""
        return self.host if self.path_style else self.host.partition(".")[2]

    def same_cloud(self, other: Account) -> bool:
        """Reached the same way: both on path-style endpoints, or under the same blob domain."""
        return self.path_style == other.path_style and (self.path_style or self.domain == other.domain)

    def is_same(self, other: Account) -> bool:
        """The same account, reached by another alias (secondary, private link, other port)."""
        if self.name != other.name or self.path_style != other.path_style:
            return False
        return self.path_style or self.domain.endswith(other.domain) or other.domain.endswith(self.domain)


def account_of(parts: SplitResult) -> tuple[Account, list[str]]:
    """The account a URL names, and the path segments after it (still percent-encoded)."""
    host = (parts.hostname or "").lower()
    segments = parts.path.lstrip("/").split("/")
    if is_path_style(host):
        return Account(unquote(segments[0]), host, True), segments[1:]
    label = host.partition(".")[0]
    name = label[: -len(_SECONDARY)] if label.endswith(_SECONDARY) else label
    return Account(name, host, False), segments


def endpoint_account(endpoint: str) -> Account:
    return account_of(urlsplit(endpoint))[0]


def account_endpoint(endpoint: str, account: str) -> str:
    """The blob endpoint of ``account`` in the same cloud as ``endpoint`` (the app's own):
    ``https://<account>.blob.core.windows.net``, or on the emulator ``http://host:port/<account>``."""
    parts = urlsplit(endpoint)
    own = endpoint_account(endpoint)
    if own.path_style:
        return f"{parts.scheme}://{parts.netloc}/{account}"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{account}.{own.domain}{port}"


@dataclass(frozen=True)
class BlobUrl:
    """A source URL taken apart. ``url`` still carries its SAS: never store or show it."""

    url: str
    scheme: str
    host: str
    port: int
    account: Account
    container: str
    blob: str

    @property
    def has_query(self) -> bool:
        return "?" in self.url


def parse_blob_url(url: str) -> BlobUrl:
    """The URL's parts; ValueError with the reason when it is not a usable blob URL."""
    return _parse(url, container_only=False)


def parse_container_url(url: str) -> BlobUrl:
    """A container URL, optionally with a name prefix after it (``.../container/2026/``):
    its parts, ``blob`` holding the prefix (perhaps empty); ValueError with the reason."""
    return _parse(url, container_only=True)


def _parse(url: str, *, container_only: bool) -> BlobUrl:
    what = "a container" if container_only else "a blob"
    if not HEADER_SAFE.fullmatch(url):
        raise ValueError("must be URL-encoded: no spaces, control or non-ASCII characters")
    try:
        parts = urlsplit(url)
    except ValueError:  # an unclosed IPv6 bracket
        raise ValueError(f"must be an absolute https URL of {what}") from None
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        raise ValueError(f"must be an absolute https URL of {what}")
    if "@" in parts.netloc:
        raise ValueError("must not carry user info (a name or password before @)")
    host = parts.hostname.lower()
    if parts.scheme == "http" and not is_loopback(host):
        raise ValueError("must use https (http only for the local emulator on loopback)")
    try:
        port = parts.port or DEFAULT_PORTS[parts.scheme]
    except ValueError:
        raise ValueError("its port must be a number from 1 to 65535") from None
    if parts.fragment:
        raise ValueError("must not have a fragment (#)")
    if not names.path_is_stable(parts.path):
        raise ValueError(f"its path: {names.SEGMENT_RULE}")
    account, rest = account_of(parts)
    if container_only:
        if not rest or not rest[0]:
            raise ValueError("must name a container in its path")
        container, prefix = unquote(rest[0]), unquote("/".join(rest[1:]))
        problem = names.prefix_problem(prefix)
        if problem is not None:
            raise ValueError(f"its name prefix {problem}")
        return BlobUrl(url, parts.scheme, host, port, account, container, prefix)
    if len(rest) < 2 or not rest[0] or not rest[-1]:
        raise ValueError("must name a container and a blob in its path")
    container, blob = unquote(rest[0]), unquote("/".join(rest[1:]))
    problem = names.blob_problem(blob)
    if problem is not None:
        raise ValueError(f"its blob name {problem}")
    return BlobUrl(url, parts.scheme, host, port, account, container, blob)


def check_host_pattern(pattern: str) -> None:
    """ValueError unless ``pattern`` is ``host``, ``host:port`` or ``host:*`` (fnmatch on the host)."""
    if not _HOST_PATTERN.fullmatch(pattern):
        raise ValueError(f"{pattern!r} is not a host pattern (host, host:port or host:*)")


def host_allowed(url: BlobUrl, patterns: tuple[str, ...]) -> bool:
    """Whether one of ``patterns`` admits the URL's host and port.

    A pattern without a port admits only the scheme's default port (443, or 80 for
    http): ``acct.blob.core.windows.net`` does not admit ``:8443``. ``host:*`` admits any.
    """
    for pattern in patterns:
        match = _HOST_PATTERN.fullmatch(pattern)
        if match is None:
            continue
        port = match["port"] or str(DEFAULT_PORTS[url.scheme])
        if fnmatchcase(url.host, match["host"].strip("[]")) and port in ("*", str(url.port)):
            return True
    return False

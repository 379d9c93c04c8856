"""Copies that take as long as Azure's between accounts: the local stand-in's pace.

On Azure, Copy Blob within one account ends at once, and from another account or an
outside URL it runs in the background, best effort, for as long as Azure takes. Azurite
ends every copy at once, so nothing a developer tries by hand is ever pending. With a
:class:`Pacing` set, the pending-copy proxy answers a copy whose source is "remote" as
pending and moves its progress at ``rate`` bytes a second, ending it for real (Azurite
copies the data) when every byte is "copied"; a copy within the account still ends at once.

A source is remote when its URL names another host or another account than the
destination's, or when it lies in one of ``remote_containers`` (``partner`` by default:
the name the README gives, so a copy can be watched pending with one account).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

# Slow enough to watch a blob of a few MiB move, fast enough to finish while one watches.
DEFAULT_RATE = 256 * 1024
DEFAULT_REMOTE_CONTAINERS = ("partner",)


@dataclass(frozen=True)
class Pacing:
    rate: float = DEFAULT_RATE
    remote_containers: tuple[str, ...] = DEFAULT_REMOTE_CONTAINERS

    def is_remote(self, source: str, proxy_netloc: str, destination_account: str) -> bool:
        """Would Azure copy from ``source`` in the background (not at once)?"""
        parts = urlsplit(source)
        segments = unquote(parts.path).lstrip("/").split("/")
        account = segments[0] if segments else ""
        container = segments[1] if len(segments) > 1 else ""
        return (
            _loopback(parts.netloc) != _loopback(proxy_netloc)
            or account != destination_account
            or container in self.remote_containers
        )


def _loopback(netloc: str) -> str:
    """``localhost:N`` and ``127.0.0.1:N`` are one server."""
    return netloc.replace("localhost:", "127.0.0.1:", 1) if netloc.startswith("localhost:") else netloc


@dataclass
class Clock:
    """When a paced copy started, and how far it has got at a given moment."""

    total: int
    rate: float
    started: float = field(default_factory=time.monotonic)

    def copied(self, now: float | None = None) -> int:
        elapsed = (time.monotonic() if now is None else now) - self.started
        return min(self.total, int(elapsed * self.rate))

    def done(self, now: float | None = None) -> bool:
        return self.copied(now) >= self.total

"""Copies that take as long as Azure's between accounts: the local stand-in's pace.

On Azure, Copy Blob within one account ends at once, and from another account or an
outside URL it runs in the background, best effort, for as long as Azure takes. Azurite
ends every copy at once, so nothing a developer tries by hand is ever pending. With a
:class:`Pacing` set, the pending-copy proxy answers a copy whose source lies in another
account (``partner``, the second account of ``AZURITE_ACCOUNTS``) or on another host as
pending and moves its progress at ``rate`` bytes a second, ending it for real (Azurite
copies the data) when every byte is "copied"; a copy within one account ends at once,
whatever its container is called (the proxy's rule: ``PendingCopyProxy._elsewhere``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

# Slow enough to watch a blob of a few MiB move, fast enough to finish while one watches.
DEFAULT_RATE = 256 * 1024


@dataclass(frozen=True)
class Pacing:
    rate: float = DEFAULT_RATE


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

"""The port the jobs add to the copies' (:mod:`copy_ops.copies.ports`): listing a source. Pure.

Jobs use copies, never the reverse: this lives beside the jobs, and the storage adapter
implements it beside the copies' ports.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from copy_ops.copies.ports import Storage
from copy_ops.jobs.model import PrefixSource


@dataclass(frozen=True)
class Listed:
    """A blob of a job's source: its name and size."""

    name: str
    size: int


class Sources(Protocol):
    async def list_source(
        self, source: PrefixSource, sas: str | None, marker: str | None, page_size: int
    ) -> tuple[list[Listed], str | None]:
        """One page of the blobs under the source's prefix, in name order, and the next
        page's marker (None after the last). ``sas``: the caller's, for a source given by URL."""


class JobStorage(Storage, Sources, Protocol):
    """Every side, as one client of one account provides them: copies' and jobs'."""

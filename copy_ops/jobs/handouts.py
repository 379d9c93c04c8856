"""A page's handout: the token its batches and their marks carry, four hex digits of the
handler that listed it, kept in the checkpoint (``Enumeration.handouts``, one a page)
**before** the page's batches are sent. Pure.

* A batch is the app's only if its handout is the one the checkpoint keeps for its page: a
  batch nobody listed (whoever can put a message on the work queue wrote it) starts
  nothing, and a poisoned one records nothing (issue 28).
* A page listed twice (its first handler died after sending its batches) keeps the second
  listing's handout: the first's batches taken after that are refused, those taken before
  start their items (they are the job's) but their marks do not count for the second's.
* A batch's mark counts only if its handout is its page's and the checkpoint has moved past
  that page (the page's batches are counted in ``Enumeration.batches`` once it moves).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from copy_ops.jobs.model import Enumeration

HANDOUT_DIGITS = 4
# A page listed before handouts were kept has this in its place: no batch's handout.
NONE_KEPT = "-"
STOPPED = "stopped"


class Handed(StrEnum):
    """A batch's handout, as the checkpoint sees it."""

    OURS = "ours"  # its page's, as kept: the app handed it out
    # Its page is being listed and keeps no handout yet: an instance of the version before
    # this one writes it only after sending its batches (a rolling deployment). Delivered again.
    EARLY = "early"
    FOREIGN = "foreign"  # any other: not a batch of the app's


def handout_of(attempt: str) -> str:
    """The token a page's batches and their marks carry: its handler's, shortened (a job
    record keeps one a page)."""
    return attempt[:HANDOUT_DIGITS]


def handout_at(handouts: str, page: int) -> str | None:
    """The handout the checkpoint keeps for ``page``, or None (none written yet)."""
    kept = handouts[page * HANDOUT_DIGITS : (page + 1) * HANDOUT_DIGITS]
    return kept if len(kept) == HANDOUT_DIGITS and NONE_KEPT not in kept else None


def with_handout(handouts: str, page: int, handout: str) -> str:
    """``handouts`` with ``handout`` as page ``page``'s (pages before it without one padded)."""
    start = page * HANDOUT_DIGITS
    return handouts[:start].ljust(start, NONE_KEPT) + handout + handouts[start + HANDOUT_DIGITS :]


def handed(enumeration: Enumeration, page: int, handout: str) -> Handed:
    """Whether a batch of ``page`` carrying ``handout`` is one the app handed out."""
    kept = handout_at(enumeration.handouts, page)
    if kept is not None:
        return Handed.OURS if kept == handout else Handed.FOREIGN
    if page == enumeration.page and not enumeration.done and len(handout) == HANDOUT_DIGITS:
        return Handed.EARLY
    return Handed.FOREIGN


@dataclass(frozen=True)
class Marks:
    """A job's batches as their marks say, of the handouts its checkpoint counts."""

    done: int = 0  # done: every item started or recorded, or stopped
    stopped: int = 0  # of those, stopped (an abort, the deadline) with items not started


def mark_name(page: int, index: int, handout: str, *, stopped: bool = False) -> str:
    """A batch's mark. A stopped batch's ends ``-stopped``: an instance of the version before
    counts no such mark (it waits a minute for the batches in flight, as it did)."""
    name = f"{page:06d}-{index:04d}-{handout}"
    return f"{name}-{STOPPED}" if stopped else name


def marks_counted(marks: list[str], enumeration: Enumeration) -> Marks:
    """How many of a job's batches are done, by their marks of the handout its checkpoint
    counts for their page, of pages it has moved past (a page listed twice has its first
    handout's batches started too, but not counted: the second may hold other items, if the
    source changed in between; and a page whose handler has not moved the checkpoint counts
    no batch yet); and how many of them were stopped."""
    done: set[str] = set()
    stopped: set[str] = set()
    for name in marks:
        parts = name.split("-")
        if not 3 <= len(parts) <= 4 or not parts[0].isdigit() or len(parts[2]) != HANDOUT_DIGITS:
            continue
        if len(parts) == 4 and parts[3] != STOPPED:
            continue
        page = int(parts[0])
        if page < enumeration.page and handout_at(enumeration.handouts, page) == parts[2]:
            batch = "-".join(parts[:3])
            done.add(batch)
            if len(parts) == 4:
                stopped.add(batch)
    return Marks(len(done), len(stopped))

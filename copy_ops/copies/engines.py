"""Which engine a copy starts on: the request's ``engine`` read, and ``auto`` resolved.
Pure, as the request parsing that calls it (and a job's items, which use the same rule)."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

from copy_ops.copies.model import Engine, Terms
from copy_ops.core.problems import Problems


def engine_of(value: Any, problems: Problems) -> Engine | None:
    """The ``engine`` field, or None with its problem noted."""
    try:
        return Engine(value)
    except (ValueError, TypeError):
        problems.bad("engine", "must be one of auto, async, blocks")
        return None


def escalation_at(now: datetime, deadline: datetime, share: float) -> datetime:
    """When ``share`` (``COPY_ESCALATE_AT``) of the time from ``now`` to ``deadline`` is gone."""
    return now + (deadline - now) * share


def engine_for(terms: Terms, own_account: bool) -> Terms:
    """``terms`` with the engine a copy starts on, and when ``auto`` hands it to the blocks
    if still pending (``escalate_at`` kept for it alone).

    ``auto``: Copy Blob where Azure copies at once (a source in the app's own account, which
    the app can also read itself, so it can escalate), the block engine for anything else
    (another account, a caller's URL: Azure's async copy between accounts is best effort,
    with no bound). A named engine is kept, and never escalates."""
    if terms.engine is not Engine.AUTO:
        return dataclasses.replace(terms, escalate_at=None)
    engine = Engine.ASYNC if own_account else Engine.BLOCKS
    return dataclasses.replace(terms, engine=engine, escalate_at=terms.escalate_at if own_account else None)

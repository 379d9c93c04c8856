"""The block engine's hand-out as work messages: one ``stage`` message per batch of blocks."""

from __future__ import annotations

from collections.abc import Sequence

from copy_ops.copies.ports import WorkQueue
from copy_ops.work.messages import Stage, encode


class StageMessages:
    """:class:`copy_ops.copies.ports.BlockQueue` on the work queue."""

    def __init__(self, work: WorkQueue) -> None:
        self._work = work

    async def hand_out(
        self, operation_id: str, batches: Sequence[str], sas: str | None, delay_seconds: int = 0
    ) -> None:
        await self._work.send([encode(Stage(operation_id, batch, sas)) for batch in batches], delay_seconds)

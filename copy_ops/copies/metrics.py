"""An operation's end, told to the telemetry hooks (which take plain values only)."""

from __future__ import annotations

from copy_ops.copies.model import AbortReason, Operation
from copy_ops.observability.telemetry import Telemetry


def operation_ended(telemetry: Telemetry, op: Operation) -> None:
    """Count an operation's end (just recorded), and a deadline abort's lateness."""
    reason = op.abort_reason.value if op.abort_reason else op.error.code.value if op.error else ""
    telemetry.copy_ended(op.state.value, reason)
    telemetry.copy_attempts(op.attempt)
    if op.abort_reason is AbortReason.DEADLINE and op.finished_at is not None:
        telemetry.abort_lateness((op.finished_at - op.terms.deadline).total_seconds())

"""An operation's end, and an attempt of it that failed, told to the telemetry hooks (which
take plain values only) and the log, once each."""

from __future__ import annotations

import logging

from copy_ops.copies.model import AbortReason, Operation
from copy_ops.observability.telemetry import Telemetry

logger = logging.getLogger(__name__)


def operation_ended(telemetry: Telemetry, op: Operation) -> None:
    """Count an operation's end (just recorded), and a deadline abort's lateness."""
    reason = op.abort_reason.value if op.abort_reason else op.error.code.value if op.error else ""
    telemetry.copy_ended(op.state.value, reason)
    telemetry.copy_attempts(op.attempt)
    if op.abort_reason is AbortReason.DEADLINE and op.finished_at is not None:
        telemetry.abort_lateness((op.finished_at - op.terms.deadline).total_seconds())


def attempt_failed(telemetry: Telemetry, op: Operation) -> None:
    """Count an attempt that failed for a cause that may pass (``op``: its record, just written
    ``retrying``, the failure its latest failed attempt), and say when the next one is due."""
    failed = op.failed_attempts[-1]
    telemetry.copy_retried(failed.cause.value)
    logger.info(
        "copy_attempt_failed op=%s attempt=%s of=%s cause=%s code=%s next_at=%s",
        op.id,
        failed.number,
        op.terms.retry_attempts,
        failed.cause,
        failed.error.code,
        op.next_check_at,
    )

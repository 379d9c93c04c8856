"""Adapter for the triggers other than HTTP: the sweep's timer (and, later, queues).

Like :mod:`copy_ops.http`, each function takes the trigger's input as the Functions
host gives it and hands the work to the package.
"""

from __future__ import annotations

import logging

import azure.functions as func

from copy_ops import runtime

logger = logging.getLogger(__name__)


def sweep_schedule() -> str:
    """The sweep's NCRONTAB schedule, from the settings object: an unset
    COPY_SWEEP_SCHEDULE means the documented default, not a host indexing error."""
    return runtime.settings().sweep_schedule


def sweep(timer: func.TimerRequest) -> None:
    if timer.past_due:
        logger.warning("sweep_past_due")
    runtime.run_sweep()

"""Adapter for the triggers other than HTTP: the sweep's timer (and, later, queues).

Like :mod:`copy_ops.http`, each function takes the trigger's input as the Functions
host gives it and hands the work to the package.
"""

from __future__ import annotations

import logging

import azure.functions as func

from copy_ops import runtime
from copy_ops.errors import ConfigurationError

logger = logging.getLogger(__name__)


def sweep_schedule() -> str:
    """The sweep's NCRONTAB schedule, through the settings: an unset COPY_SWEEP_SCHEDULE
    means the documented default, and no setting can make indexing fail."""
    return runtime.sweep_schedule()


def sweep(timer: func.TimerRequest) -> None:
    if timer.past_due:
        logger.warning("sweep_past_due")
    try:
        runtime.run_sweep()
    except ConfigurationError as error:
        # One line a run, not a traceback: the timer has no caller to answer.
        logger.error("configuration_error setting=%s detail=%s", error.code, error.detail)

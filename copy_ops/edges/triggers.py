"""Adapter for the triggers other than HTTP: the sweep's timer and the work queue.

Like :mod:`copy_ops.edges.http`, each function takes the trigger's input as the Functions
host gives it and hands the work to the package.
"""

from __future__ import annotations

import logging

import azure.functions as func

from copy_ops.core.errors import ConfigurationError, CopyOpsError, InvalidRequest, NotOurs
from copy_ops.core.logtext import counts_text
from copy_ops.edges import runtime

logger = logging.getLogger(__name__)


def sweep_schedule() -> str:
    """The sweep's NCRONTAB schedule, through the settings: an unset COPY_SWEEP_SCHEDULE
    means the documented default, and no setting can make indexing fail."""
    return runtime.sweep_schedule()


async def sweep(timer: func.TimerRequest) -> None:
    if timer.past_due:
        logger.warning("sweep_past_due")
    try:
        await runtime.run_sweep()
    except ConfigurationError as error:
        # One line a run, not a traceback: the timer has no caller to answer.
        logger.error("configuration_error setting=%s detail=%s", error.code, error.detail)


def work_queue() -> str:
    """The work queue's name, through the settings (an unset COPY_WORK_QUEUE: the default)."""
    return runtime.work_queue()


def work_connection() -> str:
    """The queue trigger's connection: the setting family the app's own storage comes from."""
    return runtime.work_connection()


async def work(message: func.QueueMessage) -> None:
    """One message of the work queue. A message that is not ours is logged and dropped; a
    failure raises, so the host retries it and, after maxDequeueCount, moves it to the
    poison queue (whatever it held stays due in the ledger: nothing is lost)."""
    try:
        kind, outcomes = await runtime.run_work(
            message.get_body().decode("utf-8", errors="replace"), message.insertion_time
        )
    except NotOurs as error:
        logger.error("work_message_refused id=%s queue=work code=%s", message.id, error.code)
        return
    except InvalidRequest as error:
        logger.error("work_message_invalid id=%s detail=%s", message.id, error.detail)
        return
    except ConfigurationError as error:
        logger.error("configuration_error setting=%s detail=%s", error.code, error.detail)
        raise
    except CopyOpsError as error:
        logger.warning("work_failed id=%s dequeue_count=%s code=%s", message.id, message.dequeue_count, error.code)
        raise
    counts = counts_text(outcomes)
    logger.info("work_done id=%s kind=%s dequeue_count=%s %s", message.id, kind, message.dequeue_count, counts)


def poison_queue() -> str:
    """The work queue's poison queue, where the host moves a message after maxDequeueCount."""
    return runtime.poison_queue()


async def poisoned(message: func.QueueMessage) -> None:
    """A message of the poison queue: a job's batch (or manifest chunk) has its items not
    yet recorded recorded as failed; every other kind is logged (its work stays findable).
    A failure raises: the host delivers it again, then moves it to ``<queue>-poison-poison``."""
    try:
        _, outcomes = await runtime.run_poisoned(
            message.get_body().decode("utf-8", errors="replace"), message.insertion_time
        )
    except NotOurs as error:
        logger.error("work_message_refused id=%s queue=poison code=%s", message.id, error.code)
        return
    except InvalidRequest as error:
        logger.error("work_poisoned_invalid id=%s detail=%s", message.id, error.detail)
        return
    except CopyOpsError as error:
        logger.warning(
            "work_poisoned_failed id=%s dequeue_count=%s code=%s", message.id, message.dequeue_count, error.code
        )
        raise
    logger.warning("work_poisoned id=%s %s", message.id, counts_text(outcomes))

"""The composition root: settings from the process environment, and the service built once.

This is the one place that reads ``os.environ``. The service (and with it the storage
SDK) is built on first use, not at import, to keep the function app's cold start short.
Concurrent first requests share one build (an asyncio lock: the functions are coroutines
on the worker's one event loop, so the async SDK's clients are built on it and used only
there), and the service's connections are closed when the host stops (:func:`close`).
"""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime
from functools import lru_cache
from typing import TYPE_CHECKING

from copy_ops.core.connection import binding_connection
from copy_ops.core.settings import Settings

if TYPE_CHECKING:
    from collections import Counter

    from copy_ops.app_service import AppService
    from copy_ops.background.sweep import SweepSummary
    from copy_ops.observability.telemetry import Telemetry

# Application Insights' connection string: set by the platform when the app has one.
APPINSIGHTS = "APPLICATIONINSIGHTS_CONNECTION_STRING"
APPINSIGHTS_AUTH = "APPLICATIONINSIGHTS_AUTHENTICATION_STRING"
# The process environment, live: the one reference to it in the product (ruff's banned-api
# rule for os.environ, pyproject.toml, holds everywhere else).
ENVIRONMENT = os.environ  # noqa: TID251
_built: list[AppService] = []
_building: list[asyncio.Lock] = []


@lru_cache(maxsize=1)
def settings() -> Settings:
    """The settings; :class:`~copy_ops.core.errors.ConfigurationError` on every call while one is
    wrong (an error is not cached: fixing the setting and restarting is enough)."""
    return Settings.from_env(ENVIRONMENT)


def work_queue() -> str:
    """The work queue's name at indexing time; never fails."""
    return Settings.work_queue_from_env(ENVIRONMENT)


def poison_queue() -> str:
    """The work queue's poison queue (the host moves a message there after maxDequeueCount)."""
    return f"{work_queue()}-poison"


def work_connection() -> str:
    """The connection setting of the work queue's trigger, at indexing time."""
    return binding_connection(lambda name: ENVIRONMENT.get(name) or None)


def sweep_schedule() -> str:
    """The timer's schedule at indexing time; never fails (see Settings.schedule_from_env)."""
    return Settings.schedule_from_env(ENVIRONMENT)


def auth_mode() -> str:
    """COPY_AUTH at indexing time; never fails (see Settings.auth_from_env)."""
    return Settings.auth_from_env(ENVIRONMENT)


def _lock() -> asyncio.Lock:
    # Made on first use, so it belongs to the loop that runs the functions.
    if not _building:
        _building.append(asyncio.Lock())
    return _building[0]


async def service() -> AppService:
    if _built:
        return _built[0]
    async with _lock():
        if not _built:
            from copy_ops.app_service import AppService
            from copy_ops.storage import BlobStorage
            from copy_ops.storage.queues import QueueStorage

            current = settings()
            storage = await BlobStorage.connect(
                current.storage, pool_size=current.sweep_concurrency, blocks_in_flight=current.blocks_in_flight
            )
            telemetry = _telemetry()
            queue = QueueStorage(current.storage, current.work_queue, credential=storage.credential)
            announcer = None
            if current.announces:
                from copy_ops.storage.event_targets import EventTargets

                announcer = EventTargets(current, credential=storage.credential)
            _built.append(AppService(current, storage, queue, announcer, telemetry))
        return _built[0]


def _telemetry() -> Telemetry:
    """OpenTelemetry to Application Insights when APPLICATIONINSIGHTS_CONNECTION_STRING is
    set (:mod:`copy_ops.observability.monitor`); else the no-op, and nothing of OpenTelemetry is imported."""
    from copy_ops.observability.telemetry import OFF

    if not ENVIRONMENT.get(APPINSIGHTS):
        return OFF
    from copy_ops.observability import monitor

    return monitor.configure(ENVIRONMENT.get(APPINSIGHTS_AUTH, ""))


def built() -> AppService:
    """The service, built already by the invocation that asks (to render a view)."""
    if not _built:
        raise RuntimeError("the service is built by the first function that needs it")
    return _built[0]


async def close() -> None:
    """Close the service's connections, if it was built. Safe to call more than once.
    The development host calls it when it stops; the worker gives Python functions no
    shutdown hook, so on Azure the process's exit ends the connections."""
    while _built:
        await _built.pop().close()


async def reset() -> None:
    """Forget the settings and close the service's connections: for tests and tools
    that change the environment between uses."""
    await close()
    _building.clear()
    settings.cache_clear()


def utc_now() -> datetime:
    return datetime.now(UTC)


async def run_sweep() -> SweepSummary:
    from copy_ops.background.sweep import sweep

    return await sweep(await service(), utc_now())


async def run_work(text: str, sent_at: datetime | None = None) -> tuple[str, Counter[str]]:
    """One message of the work queue, done: its kind and outcomes, counted. ``sent_at``:
    when the queue took the message in, as the trigger says."""
    from copy_ops.background.dispatch import do_work

    return await do_work(await service(), text, utc_now(), sent_at)


async def run_poisoned(text: str, sent_at: datetime | None = None) -> tuple[str, Counter[str]]:
    """One message the host gave up on, handled (see dispatch.do_poisoned)."""
    from copy_ops.background.dispatch import do_poisoned

    return await do_poisoned(await service(), text, utc_now(), sent_at)

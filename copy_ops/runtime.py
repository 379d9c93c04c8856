"""The composition root: settings from the process environment, and the service built once.

This is the one place that reads ``os.environ``. The service (and with it the storage
SDK) is built on first use, not at import, to keep the function app's cold start short.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from functools import lru_cache
from typing import TYPE_CHECKING

from copy_ops.settings import Settings

if TYPE_CHECKING:
    from copy_ops.service import CopyService
    from copy_ops.sweep import SweepSummary


@lru_cache(maxsize=1)
def settings() -> Settings:
    return Settings.from_env(os.environ)


@lru_cache(maxsize=1)
def service() -> CopyService:
    from copy_ops.service import CopyService
    from copy_ops.storage import BlobStorage

    current = settings()
    return CopyService(current, BlobStorage.connect(current.storage, pool_size=current.sweep_concurrency))


def reset() -> None:
    """Forget the settings and close the service's connections: for tests and tools
    that change the environment between uses."""
    if service.cache_info().currsize:
        service().storage.close()
    service.cache_clear()
    settings.cache_clear()


def utc_now() -> datetime:
    return datetime.now(UTC)


def run_sweep() -> SweepSummary:
    from copy_ops.sweep import sweep

    return sweep(service(), utc_now())

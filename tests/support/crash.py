"""Processes that die in tests: between two storage steps of a start or a sweep
(``Crash``, ``dying_at``), or an instance of a job killed right after a chosen call
(``Killed``, ``KillSwitch``). Both are ``BaseException``: no handler of copy_ops sees them."""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable
from typing import Any

import pytest

from copy_ops.app_service import AppService
from copy_ops.core.settings import Settings
from copy_ops.storage import BlobStorage
from tests.conftest import connect


class Crash(BaseException):
    """The process dies here: not an Exception, so no handler in copy_ops sees it."""


def crash_before(method: str) -> Callable[..., Any]:
    def die(*args: Any, **kwargs: Any) -> Any:
        raise Crash(method)

    return die


def crash_after(original: Callable[..., Any]) -> Callable[..., Any]:
    async def run_then_die(*args: Any, **kwargs: Any) -> Any:
        await original(*args, **kwargs)
        raise Crash(original.__name__)

    return run_then_die


def dying_at(settings: Settings, monkeypatch: pytest.MonkeyPatch, step: str, when: str) -> AppService:
    """A service whose process dies just before or just after one storage step."""
    dying = connect(settings)
    original = getattr(dying.storage, step)
    monkeypatch.setattr(dying.storage, step, crash_before(step) if when == "before" else crash_after(original))
    return dying


class Killed(BaseException):
    """The process died: nothing of it catches this, and nothing of it runs after."""


class KillSwitch:
    """An instance's storage that dies right after a chosen call: that call took effect,
    and every later call of the instance (on any of its threads) raises Killed."""

    def __init__(self, storage: BlobStorage, method: str, matches: Callable[[tuple[Any, ...]], bool]) -> None:
        self._storage = storage
        self._method = method
        self._matches = matches
        self.killed = threading.Event()

    def __getattr__(self, name: str) -> Any:
        real = getattr(self._storage, name)
        if not callable(real):
            return real

        def check(args: tuple[Any, ...]) -> None:
            if name == self._method and self._matches(args):
                self.killed.set()
                raise Killed(name)

        if not inspect.iscoroutinefunction(real):  # public_url, a listing's async iterator

            def call(*args: Any, **kwargs: Any) -> Any:
                if self.killed.is_set():
                    raise Killed(name)
                result = real(*args, **kwargs)
                check(args)
                return result

            return call

        async def call_async(*args: Any, **kwargs: Any) -> Any:
            if self.killed.is_set():
                raise Killed(name)
            result = await real(*args, **kwargs)
            check(args)
            return result

        return call_async

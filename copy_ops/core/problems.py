"""Collecting what is wrong with a request: every problem at once, each naming its field."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from copy_ops.core.errors import FieldError, Forbidden, InvalidRequest

T = TypeVar("T")


class Problems:
    """The violations found so far: bad input (400) and input the settings forbid (403)."""

    def __init__(self) -> None:
        self.invalid: list[FieldError] = []
        self.forbidden: list[FieldError] = []

    def bad(self, field: str, message: str) -> None:
        self.invalid.append(FieldError(field, message))

    def deny(self, field: str, message: str) -> None:
        self.forbidden.append(FieldError(field, message))

    def raise_any(self) -> None:
        if self.invalid:
            raise InvalidRequest.of(*self.invalid)
        if self.forbidden:
            raise Forbidden.of(*self.forbidden)


def guarded(field: str, problems: Problems, read: Callable[[], T]) -> T | None:
    try:
        return read()
    except (ValueError, TypeError, OverflowError, RecursionError, UnicodeError):
        problems.bad(field, "is not valid")
        return None

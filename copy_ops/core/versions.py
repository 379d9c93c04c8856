"""Records read across versions of the app. Pure.

During a rolling deployment two versions share the ledger: a record written by the later
one may carry fields the earlier one does not know. Each record type reads only the fields
it has, and leaves the rest aside (the later version, which writes them, keeps them). A
record's flat parts (an operation's terms, its block state...) are written and read by their
fields' names alone: a field added with a default needs no code here or in the record.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable, Mapping
from datetime import datetime
from enum import Enum
from typing import Any, TypeVar

from copy_ops.core.times import parse_time

T = TypeVar("T")


def known(kind: type, data: dict[str, Any]) -> dict[str, Any]:
    """``data``'s fields that the dataclass ``kind`` has."""
    names = {field.name for field in dataclasses.fields(kind)}
    return {name: value for name, value in data.items() if name in names}


def fields_of(value: Any) -> dict[str, Any]:
    """A flat dataclass's fields by name, each value as it is (the record's JSON encoder
    writes times and enumerations): what a record stores of a part it carries."""
    return {name: getattr(value, name) for name, _, _ in _readers(type(value))}


def read_fields(kind: type[T], data: Mapping[str, Any]) -> T:
    """The flat dataclass ``kind`` read from ``data`` by its fields' names, each by its type
    (a time, an enumeration; anything else as JSON has it). A field absent or null takes its
    default, so a record written before the field existed reads; one with no default must be
    there (KeyError)."""
    values: dict[str, Any] = {}
    for name, read, required in _readers(kind):
        value = data.get(name)
        if value is None:
            if required:
                raise KeyError(name)
            continue
        values[name] = value if read is None else read(value)
    return kind(**values)


_Readers = tuple[tuple[str, Callable[[Any], Any] | None, bool], ...]
# Each kind's readers, worked out at its first use (a record is read on the sweep's path).
_READERS: dict[type, _Readers] = {}


def _readers(kind: type) -> _Readers:
    """Each field of ``kind``: its name, how its stored value is read, whether it must be there."""
    found = _READERS.get(kind)
    if found is None:
        hints = typing.get_type_hints(kind)
        found = _READERS[kind] = tuple(
            (
                field.name,
                _reader(hints[field.name]),
                field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING,
            )
            for field in dataclasses.fields(kind)
        )
    return found


def _reader(hint: Any) -> Callable[[Any], Any] | None:
    """How a stored value of a field typed ``hint`` is read: one type, or one type or None."""
    if type(None) in typing.get_args(hint):
        (hint,) = (arg for arg in typing.get_args(hint) if arg is not type(None))
    if hint is datetime:
        return parse_time
    if isinstance(hint, type) and issubclass(hint, Enum):
        return hint
    return None  # a string, a number, a boolean, a mapping of strings: as JSON has it


def absent_fields(kind: type) -> dict[str, Any]:
    """What a record stores of a part it does not carry: each field's default, else None (as
    the record wrote those fields before they were a part); shared, so never changed."""
    found = _ABSENT.get(kind)
    if found is None:
        found = _ABSENT[kind] = {
            field.name: (
                field.default_factory()
                if field.default_factory is not dataclasses.MISSING
                else None
                if field.default is dataclasses.MISSING
                else field.default
            )
            for field in dataclasses.fields(kind)
        }
    return found


_ABSENT: dict[type, dict[str, Any]] = {}

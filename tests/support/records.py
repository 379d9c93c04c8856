"""Records for the tests, by the flat names a record is stored under: ``changed(op,
deadline=..., on_abort=...)`` puts each field where it lives (the record's own, or its
terms'), so a table of situations names fields as the ledger's JSON does."""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

from copy_ops.copies.model import Terms

T = TypeVar("T")
TERMS = frozenset(field.name for field in dataclasses.fields(Terms))


def changed(record: T, **fields: Any) -> T:
    """``record`` (an operation, a request or a job) with ``fields`` changed where each lives."""
    terms = {name: fields.pop(name) for name in TERMS & set(fields)}
    if terms:
        fields["terms"] = dataclasses.replace(record.terms, **terms)  # type: ignore[attr-defined]
    return dataclasses.replace(record, **fields)  # type: ignore[type-var]

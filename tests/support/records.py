"""Records for the tests, by the flat names a record is stored under: ``changed(op,
deadline=..., staged=..., snapshot=...)`` puts each field where it lives (the record's own
core, its terms, or one of its parts, begun if it was absent), so that a table of
situations names fields as the ledger's JSON does."""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

from copy_ops.copies.model import BlockState, ItemClaim, Restore, Terms

T = TypeVar("T")
# Where each flat name lives: the part's field on the record, and the part's kind.
PARTS: dict[str, type] = {"terms": Terms, "blocks": BlockState, "claim": ItemClaim, "restore": Restore}
HOME = {field.name: part for part, kind in PARTS.items() for field in dataclasses.fields(kind)}


def changed(record: T, **fields: Any) -> T:
    """``record`` (an operation, a request or a job) with ``fields`` changed where each lives.
    A part that was absent is begun with them (a claim or a restore needs all its fields given)."""
    for part in {HOME[name] for name in fields if name in HOME}:
        given = {name: fields.pop(name) for name in list(fields) if HOME.get(name) == part}
        current = getattr(record, part)
        fields[part] = dataclasses.replace(current, **given) if current is not None else PARTS[part](**given)
    return dataclasses.replace(record, **fields)  # type: ignore[type-var]

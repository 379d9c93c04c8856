"""Records read across versions of the app. Pure.

During a rolling deployment two versions share the ledger: a record written by the later
one may carry fields the earlier one does not know. Each record type reads only the fields
it has, and leaves the rest aside (the later version, which writes them, keeps them).
"""

from __future__ import annotations

import dataclasses
from typing import Any


def known(kind: type, data: dict[str, Any]) -> dict[str, Any]:
    """``data``'s fields that the dataclass ``kind`` has."""
    names = {field.name for field in dataclasses.fields(kind)}
    return {name: value for name, value in data.items() if name in names}

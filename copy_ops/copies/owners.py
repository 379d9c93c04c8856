"""Whose an operation or a job is: its caller, as its record keeps it, and who may see it. Pure.

A record carries the caller that started it (:class:`Owner`: an object id of Microsoft Entra
ID, and the name its token gave, if any), or none: a key names nobody (docs/callers.md), and
records written before callers were recorded name nobody either. A caller sees, reads and
aborts only the records it owns; an admin (``Copies.Admin``, or a key's holder) every one,
those that name nobody too. A record another caller owns is answered as one that does not
exist (404), never 403: an id guessed says nothing of what is there.

The ledger lists a caller's own by the blob index, as it lists by state: the tag ``caller``
holds the owner's object id, a GUID (Azure's tag values allow its digits, letters and
hyphens); the name never goes into a tag.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from copy_ops.core.callers import GUID, Caller, KnownBy

# The index tag of a record's owner, on operations and jobs alike.
CALLER_TAG = "caller"


@dataclass(frozen=True)
class Owner:
    """The caller a record belongs to: its object id and the name its token gave (a label
    only, never compared)."""

    id: str
    name: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        return {"id": self.id, "name": self.name}


def owner_of(caller: Caller) -> Owner | None:
    """What a record started by ``caller`` keeps of it: none for a key's holder."""
    if caller.known_by is KnownBy.KEY or caller.object_id is None:
        return None
    return Owner(caller.object_id, caller.name)


def sees(caller: Caller, owner: Owner | None) -> bool:
    """Whether ``caller`` may see, read and abort a record owned by ``owner``."""
    return caller.admin or (owner is not None and owner.id == caller.object_id)


def by_of(caller: Caller) -> str | None:
    """Who a move a caller asked for was made by, as a record's history keeps it."""
    owner = owner_of(caller)
    return owner.id if owner is not None else None


def owner_tags(owner: Owner | None) -> dict[str, str]:
    """The record's ``caller`` tag: the owner's object id, when it is one (a GUID)."""
    return {CALLER_TAG: owner.id} if owner is not None and GUID.fullmatch(owner.id) else {}


def owner_query(caller: Caller) -> str | None:
    """The tag query condition that names the records ``caller`` owns; None for an admin,
    who sees every record, and the index need not narrow them."""
    if caller.admin:
        return None
    if caller.object_id is None or not GUID.fullmatch(caller.object_id):
        # A caller of Entra ID always has one (callers.principal_caller checks it); one
        # without would see nothing, so it is never listed for.
        raise ValueError("a caller who is not an admin has an object id")
    return f"\"{CALLER_TAG}\" = '{caller.object_id}'"


def read_owner(stored: Any) -> Owner | None:
    """The owner as a record stored it (``{"id", "name"}``); none for a record written before
    owners were recorded, or one whose owner is not an object id."""
    if not isinstance(stored, Mapping) or not isinstance(stored.get("id"), str) or not GUID.fullmatch(stored["id"]):
        return None
    name = stored.get("name")
    return Owner(stored["id"], name if isinstance(name, str) else None)

"""Who calls the API: a caller signed in with Microsoft Entra ID, or the holder of a function key.

App Service Authentication validates a caller's bearer token in front of the app and passes
the caller on in headers that the platform sets and strips from what clients send
(docs/callers.md): ``X-MS-CLIENT-PRINCIPAL``, the token's claims as base64 JSON
(``{"auth_typ", "name_typ", "role_typ", "claims": [{"typ", "val"}]}``), and
``X-MS-CLIENT-PRINCIPAL-IDP``, ``aad``. :func:`principal_caller` reads them into a
:class:`Caller`, or None when they are absent or not what the platform sends: a malformed
header never raises. :func:`caller_of` applies ``COPY_AUTH``: whether the app takes a
principal, a key (checked by the Functions host before the app sees the request), or either.

Pure: no I/O.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from copy_ops.core.errors import Unauthenticated

# COPY_AUTH's values: keys alone (as before issue 31), Entra ID alone, or either.
AUTH_MODES = ("keys", "entra", "both")
# The app role that sees and may do everything (issue 31: Copies.Start, Copies.Read, Copies.Admin).
ADMIN_ROLE = "Copies.Admin"
PRINCIPAL = "x-ms-client-principal"
PRINCIPAL_IDP = "x-ms-client-principal-idp"
ENTRA_IDP = "aad"
# The claim types App Service Authentication passes for a token of Microsoft Entra ID: the
# long forms are .NET's inbound mapping of oid and tid; roles and groups keep their JWT names,
# one claim per value (Azure/azure-functions-host#3898, AzureAD/microsoft-identity-web#2166).
OBJECT_ID_CLAIMS = ("http://schemas.microsoft.com/identity/claims/objectidentifier", "oid")
TENANT_CLAIMS = ("http://schemas.microsoft.com/identity/claims/tenantid", "tid")
ROLE_CLAIMS = ("roles", "http://schemas.microsoft.com/ws/2008/06/identity/claims/role")
GROUP_CLAIMS = ("groups", "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups")
NAME_CLAIMS = (
    "name",
    "preferred_username",
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name",
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn",
)
# Far above a token with Entra ID's 200 groups (about 20 KB encoded); a header beyond it is
# not one the platform made.
MAX_PRINCIPAL_CHARS = 64 * 1024
MAX_CLAIMS = 1000
MAX_VALUE_CHARS = 256
GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


class KnownBy(StrEnum):
    """How the app knows its caller: a principal of Microsoft Entra ID, or a function key."""

    ENTRA = "entra"
    KEY = "key"


@dataclass(frozen=True)
class Caller:
    """Who calls. A key names nobody: whoever holds one administers the app, as before issue
    31 (docs/callers.md, "A key names nobody"); a caller of Entra ID is known by its object id."""

    known_by: KnownBy
    object_id: str | None = None
    tenant_id: str | None = None
    name: str | None = None
    roles: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()

    @property
    def admin(self) -> bool:
        return self.known_by is KnownBy.KEY or ADMIN_ROLE in self.roles


KEY_CALLER = Caller(KnownBy.KEY)


def caller_of(mode: str, headers: Mapping[str, str]) -> Caller:
    """The caller of a request under ``COPY_AUTH`` = ``mode``; :class:`Unauthenticated` when
    the mode asks for a principal and the request has none the platform would send.

    ``keys``: the key's holder, and principal headers are not read at all (nothing in front
    of the app is known to strip them). ``both``: the principal when there is one, else the
    key's holder. ``entra``: the principal, or nobody."""
    if mode == "keys":
        return KEY_CALLER
    if not _values(headers, PRINCIPAL):
        if mode == "both":
            return KEY_CALLER
        raise Unauthenticated(
            "sign in with Microsoft Entra ID: the request came with no caller (COPY_AUTH is entra)",
            code="no_principal",
        )
    caller = principal_caller(headers)
    if caller is None:
        raise Unauthenticated(
            "the request's X-MS-CLIENT-PRINCIPAL is not one App Service Authentication sends for Microsoft Entra ID",
            code="malformed_principal",
        )
    return caller


def principal_caller(headers: Mapping[str, str]) -> Caller | None:
    """The caller the principal headers name, or None when they are absent or malformed."""
    encoded, idps = _values(headers, PRINCIPAL), _values(headers, PRINCIPAL_IDP)
    if len(encoded) != 1 or len(idps) != 1 or idps[0].strip().lower() != ENTRA_IDP:
        return None
    try:
        return _caller(_payload(encoded[0]))
    except (ValueError, TypeError, RecursionError):
        return None


def _values(headers: Mapping[str, str], name: str) -> list[str]:
    """Every value of the header ``name``, whatever the case of its spelling (a plain mapping
    may hold two spellings; the Functions request's headers hold one)."""
    return [value for key, value in headers.items() if key.lower() == name]


def _payload(encoded: str) -> dict[str, Any]:
    if not 0 < len(encoded) <= MAX_PRINCIPAL_CHARS:
        raise ValueError("not a principal the platform sends")
    payload = json.loads(base64.b64decode(encoded.strip(), validate=True).decode("utf-8"))
    if not isinstance(payload, dict):
        raise ValueError("not a principal the platform sends")
    return payload


def _caller(payload: dict[str, Any]) -> Caller:
    auth_type, claims = payload.get("auth_typ"), payload.get("claims")
    if not isinstance(auth_type, str) or auth_type.lower() != ENTRA_IDP:
        raise ValueError("not a principal of Microsoft Entra ID")
    if not isinstance(claims, list) or len(claims) > MAX_CLAIMS:
        raise ValueError("no claims")
    pairs = [_claim(claim) for claim in claims]
    # Roles are read from the claim types App Service sends them as, whatever role_typ says:
    # a role_typ naming another claim (groups) must not turn that claim into roles.
    _optional_text(payload, "role_typ")
    name_types = [*_optional_text(payload, "name_typ"), *NAME_CLAIMS]
    object_id = _one_guid(pairs, OBJECT_ID_CLAIMS)
    if object_id is None:
        raise ValueError("no object id")
    # A name only labels the caller: one that is no short printable text is left out.
    names = [value for kind in name_types for typ, value in pairs if typ == kind and _text_ok(value)]
    return Caller(
        KnownBy.ENTRA,
        object_id=object_id,
        tenant_id=_one_guid(pairs, TENANT_CLAIMS),
        name=names[0] if names else None,
        roles=frozenset(_granting(value) for typ, value in pairs if typ in ROLE_CLAIMS),
        groups=frozenset(_group(_granting(value)) for typ, value in pairs if typ in GROUP_CLAIMS),
    )


def _claim(claim: Any) -> tuple[str, str]:
    # Claims the app does not read may be long (an overage's JSON); only their shape is checked.
    if not isinstance(claim, dict) or not isinstance(claim.get("typ"), str) or not isinstance(claim.get("val"), str):
        raise ValueError("a claim is not two strings, typ and val")
    return claim["typ"], claim["val"]


def _text_ok(text: str) -> bool:
    return 0 < len(text) <= MAX_VALUE_CHARS and text.isprintable()


def _granting(value: str) -> str:
    """A role or group value: it grants rights, so one that is not short printable text
    makes the whole principal one the platform did not send."""
    if not _text_ok(value):
        raise ValueError("a role or group is not short printable text")
    return value


def _optional_text(payload: dict[str, Any], key: str) -> list[str]:
    value = payload.get(key)
    if value is None:
        return []
    if not isinstance(value, str):
        raise ValueError(f"{key} is not text")
    return [value]


def _one_guid(pairs: list[tuple[str, str]], kinds: tuple[str, ...]) -> str | None:
    """The one GUID the claims of ``kinds`` carry, lower case; ValueError when they disagree
    or one is no GUID."""
    found = {value.lower() for typ, value in pairs if typ in kinds}
    if len(found) > 1 or not all(GUID.fullmatch(value) for value in found):
        raise ValueError("claims disagree, or are not GUIDs")
    return next(iter(found), None)


def _group(value: str) -> str:
    # A group is named by its object id (a GUID, compared in lower case); a group configured
    # to be sent by name keeps its spelling.
    return value.lower() if GUID.fullmatch(value.lower()) else value

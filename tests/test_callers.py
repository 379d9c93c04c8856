"""Callers from App Service Authentication's principal headers, as tables and as properties:
the headers the platform sends name their caller; anything else names nobody, and never
raises. COPY_AUTH decides whether a principal, a key, or either is taken."""

from __future__ import annotations

import base64
import contextlib
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from copy_ops.core.callers import KEY_CALLER, Caller, KnownBy, caller_of, principal_caller
from copy_ops.core.errors import Unauthenticated
from copy_ops_cli import display
from devhost.auth import principal_headers

OID = "5b5450db-eb26-4c1a-981c-ba1d25f0483d"
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
GROUP = "f08bbbea-b793-4a36-a5fc-136c18d8aa8f"
OBJECT_ID = "http://schemas.microsoft.com/identity/claims/objectidentifier"
ROLE_TYPE = "http://schemas.microsoft.com/ws/2008/06/identity/claims/role"


def encoded(payload: Any) -> str:
    return base64.b64encode(json.dumps(payload).encode()).decode()


def principal(*claims: tuple[str, str], **fields: Any) -> dict[str, Any]:
    """A principal as App Service Authentication writes one for a token of Entra ID."""
    return {
        "auth_typ": "aad",
        "claims": [{"typ": typ, "val": val} for typ, val in claims],
        "name_typ": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress",
        "role_typ": ROLE_TYPE,
        **fields,
    }


def headers(payload: Any, idp: str = "aad") -> dict[str, str]:
    return {"X-MS-CLIENT-PRINCIPAL": encoded(payload), "X-MS-CLIENT-PRINCIPAL-IDP": idp}


ALICE = principal(
    (OBJECT_ID, OID),
    ("http://schemas.microsoft.com/identity/claims/tenantid", TENANT),
    ("name", "Alice"),
    ("preferred_username", "alice@example.com"),
    ("roles", "Copies.Start"),
    ("roles", "Copies.Read"),
    ("groups", GROUP.upper()),
    ("groups", "14a87ffa-0801-49bf-a515-3d259a2a9f8f"),
    ("aud", "api://copy-ops"),
)


def test_the_platforms_principal_names_its_caller() -> None:
    caller = principal_caller(headers(ALICE))
    assert caller == Caller(
        KnownBy.ENTRA,
        object_id=OID,
        tenant_id=TENANT,
        name="Alice",
        roles=frozenset({"Copies.Start", "Copies.Read"}),
        groups=frozenset({GROUP, "14a87ffa-0801-49bf-a515-3d259a2a9f8f"}),
    )
    assert not caller.admin


@pytest.mark.parametrize(
    ("claims", "expected"),
    [
        # Each spelling of a claim the platform is seen to use.
        (
            [("oid", OID.upper()), ("http://schemas.microsoft.com/ws/2008/06/identity/claims/role", "Copies.Admin")],
            {"object_id": OID, "roles": frozenset({"Copies.Admin"}), "admin": True},
        ),
        (
            [(OBJECT_ID, OID), ("http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress", "a@x.example")],
            {"name": "a@x.example"},
        ),
        ([(OBJECT_ID, OID), ("preferred_username", "a@x.example"), ("name", "A")], {"name": "A"}),
        ([(OBJECT_ID, OID), ("name", "\x00bad"), ("preferred_username", "a@x.example")], {"name": "a@x.example"}),
        ([(OBJECT_ID, OID), (OBJECT_ID, OID.upper())], {"object_id": OID}),
        ([(OBJECT_ID, OID), ("groups", "Team A")], {"groups": frozenset({"Team A"})}),
        ([(OBJECT_ID, OID), ("_claim_sources", json.dumps({"src1": {"endpoint": "x" * 400}}))], {"object_id": OID}),
    ],
)
def test_claims_as_the_platform_spells_them(claims: list[tuple[str, str]], expected: dict[str, Any]) -> None:
    caller = principal_caller(headers(principal(*claims)))
    assert caller is not None
    for name, value in expected.items():
        assert getattr(caller, name) == value


@pytest.mark.parametrize(
    "given",
    [
        {},
        {"X-MS-CLIENT-PRINCIPAL": encoded(ALICE)},  # no provider
        headers(ALICE, idp="github"),
        headers({**ALICE, "auth_typ": "github"}),
        headers(principal(("name", "no object id"))),
        headers(principal((OBJECT_ID, "not-a-guid"))),
        headers(principal((OBJECT_ID, OID), ("oid", "14a87ffa-0801-49bf-a515-3d259a2a9f8f"))),  # two callers
        headers(principal((OBJECT_ID, OID), ("roles", "Copies.Admin\n"))),
        headers(principal((OBJECT_ID, OID), ("roles", ""))),
        headers(principal((OBJECT_ID, OID), ("groups", "x" * 257))),
        headers({**ALICE, "claims": [{"typ": OBJECT_ID, "val": 1}]}),
        headers({**ALICE, "claims": [{"typ": OBJECT_ID}]}),
        headers({**ALICE, "claims": [[OBJECT_ID, OID]]}),
        headers({**ALICE, "claims": {"typ": OBJECT_ID, "val": OID}}),
        headers({**ALICE, "role_typ": 7}),
        headers({**ALICE, "claims": [{"typ": OBJECT_ID, "val": OID}] * 1001}),
        headers([ALICE]),
        {"X-MS-CLIENT-PRINCIPAL": "not base64!", "X-MS-CLIENT-PRINCIPAL-IDP": "aad"},
        {"X-MS-CLIENT-PRINCIPAL": encoded(ALICE)[:-3], "X-MS-CLIENT-PRINCIPAL-IDP": "aad"},
        {"X-MS-CLIENT-PRINCIPAL": base64.b64encode(b"\xff\xfe").decode(), "X-MS-CLIENT-PRINCIPAL-IDP": "aad"},
        {"X-MS-CLIENT-PRINCIPAL": base64.b64encode(b"[" * 100_000).decode(), "X-MS-CLIENT-PRINCIPAL-IDP": "aad"},
        {"X-MS-CLIENT-PRINCIPAL": base64.b64encode(b"[" * 20_000).decode(), "X-MS-CLIENT-PRINCIPAL-IDP": "aad"},
        # Two principals in one request (two spellings in a plain mapping): neither is taken.
        {**headers(ALICE), "x-ms-client-principal": encoded(ALICE)},
    ],
)
def test_anything_else_names_nobody(given: dict[str, str]) -> None:
    assert principal_caller(given) is None


def test_a_role_typ_naming_another_claim_does_not_make_roles_of_it() -> None:
    forged = principal((OBJECT_ID, OID), ("groups", "Copies.Admin"), role_typ="groups")
    caller = principal_caller(headers(forged))
    assert caller is not None and not caller.admin and caller.roles == frozenset()


def test_header_names_in_any_case() -> None:
    lower = {name.lower(): value for name, value in headers(ALICE).items()}
    caller = principal_caller(lower)
    assert caller is not None and caller.object_id == OID


# -- COPY_AUTH ----------------------------------------------------------------------


def test_keys_never_reads_a_principal() -> None:
    assert caller_of("keys", headers(ALICE)) is KEY_CALLER
    assert KEY_CALLER.admin and KEY_CALLER.object_id is None


def test_both_takes_a_principal_or_a_key() -> None:
    caller = caller_of("both", headers(ALICE))
    assert caller.known_by is KnownBy.ENTRA and caller.object_id == OID
    assert caller_of("both", {"x-functions-key": "k"}) is KEY_CALLER


@pytest.mark.parametrize("mode", ["entra", "both"])
def test_a_malformed_principal_is_refused_not_taken_for_a_key(mode: str) -> None:
    with pytest.raises(Unauthenticated) as refused:
        caller_of(mode, headers(principal(("name", "no object id"))))
    assert refused.value.code == "malformed_principal"


def test_entra_refuses_a_request_without_a_principal_whatever_key_it_carries() -> None:
    with pytest.raises(Unauthenticated) as refused:
        caller_of("entra", {"x-functions-key": "the master key", "X-MS-CLIENT-PRINCIPAL-IDP": "aad"})
    assert refused.value.code == "no_principal"


# -- properties ---------------------------------------------------------------------

header_names = st.sampled_from(
    ["X-MS-CLIENT-PRINCIPAL", "x-ms-client-principal", "X-MS-CLIENT-PRINCIPAL-IDP", "x-ms-client-principal-idp"]
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
claim_types = st.sampled_from([OBJECT_ID, "oid", "roles", "groups", "name", ROLE_TYPE]) | st.text(max_size=12)
claims = st.fixed_dictionaries({"typ": claim_types, "val": st.text(max_size=40) | json_values})
payloads = st.fixed_dictionaries(
    {"auth_typ": st.sampled_from(["aad", "AAD", "github"]) | json_values, "claims": st.lists(claims, max_size=6)},
    optional={"name_typ": claim_types | json_values, "role_typ": claim_types | json_values},
)
header_values = (
    st.text(max_size=80)
    | st.binary(max_size=80).map(lambda raw: base64.b64encode(raw).decode())
    | json_values.map(encoded)
    | payloads.map(encoded)
)


@settings(max_examples=600, deadline=None)
@given(st.dictionaries(header_names, header_values | st.just("aad"), max_size=4), st.sampled_from(["entra", "both"]))
def test_no_header_crashes_the_parser(given: dict[str, str], mode: str) -> None:
    """Whatever the headers hold, there is a caller or None (caller_of: or a 401), never another error."""
    caller = principal_caller(given)
    assert caller is None or (caller.known_by is KnownBy.ENTRA and caller.object_id is not None)
    with contextlib.suppress(Unauthenticated):
        caller_of(mode, given)


guids = st.uuids().map(str)
printable = st.text(st.characters(categories=["L", "N", "P", "S"]), min_size=1, max_size=30)


@settings(max_examples=200, deadline=None)
@given(guids, st.lists(printable, max_size=5), st.lists(guids, max_size=5), printable)
def test_the_development_hosts_principal_names_the_tokens_caller(
    oid: str, roles: list[str], groups: list[str], name: str
) -> None:
    """The headers the development host sets from a token's claims (devhost/auth.py, as the
    platform does) read back as the token's caller."""
    claims = {"oid": oid, "tid": TENANT, "name": name, "roles": roles, "groups": groups, "exp": 1, "aud": "x"}
    caller = principal_caller(principal_headers(claims))
    assert caller == Caller(
        KnownBy.ENTRA, object_id=oid, tenant_id=TENANT, name=name, roles=frozenset(roles), groups=frozenset(groups)
    )


# -- what copy-ops whoami prints ----------------------------------------------------


def test_whoami_prints_who_and_how() -> None:
    key: dict[str, Any] = {
        "known_by": "key",
        "object_id": None,
        "tenant_id": None,
        "name": None,
        "roles": [],
        "groups": [],
    }
    assert display.caller_details({**key, "admin": True, "auth": "both"}) == [
        "the holder of a function key (an admin)",
        "  roles   none",
        "  groups  none",
        "  admin   yes",
        "  auth    both (COPY_AUTH)",
    ]
    signed = {**key, "known_by": "entra", "object_id": OID, "roles": ["Copies.Read"], "admin": False, "auth": "entra"}
    assert display.caller_details(signed)[:2] == [f"{OID}, signed in with Microsoft Entra ID", f"  object id  {OID}"]
    assert display.caller_details({**signed, "name": "Alice"})[0] == "Alice, signed in with Microsoft Entra ID"

"""COPY_POLICY: the document read or refused entry by entry, and the one decision, as tables
and as properties. No name slips past a prefix: a name the policy admits is filed by
storage, however a URL client reads it, under the prefix the rule names."""

from __future__ import annotations

import json
import unicodedata
from typing import Any
from urllib.parse import unquote

import pytest
import yarl
from azure.storage.blob import BlobServiceClient
from hypothesis import given, settings
from hypothesis import strategies as st

from copy_ops.core import names, urls
from copy_ops.core.callers import KEY_CALLER, Caller, KnownBy
from copy_ops.core.errors import ConfigurationError, Forbidden
from copy_ops.core.policy import Place, Policy, check, decide, place_of_url
from copy_ops.core.policy_document import parse_policy
from copy_ops.core.settings import Settings

OWN = "acct"
ENDPOINT = f"https://{OWN}.blob.core.windows.net"
RESERVED = frozenset({"copy-operations", "copy-ops-work", "copy-ops-work-poison"})
TEAM_A = "f08bbbea-b793-4a36-a5fc-136c18d8aa8f"
ROBOT = "5b5450db-eb26-4c1a-981c-ba1d25f0483d"
DOCUMENT = {
    "rules": [
        {
            "name": "ingest",
            "role": "Copies.Start",
            "read": [
                {"container": "incoming", "prefix": "drop/"},
                {"account": "partner", "container": "exports"},
                {"host": "data.example.com", "container": "public"},
            ],
            "write": [{"container": "backups", "prefix": "ingest/"}],
        },
        {
            "name": "team-a",
            "group": TEAM_A.upper(),
            "read": [{"container": "team-a"}],
            "write": [{"container": "team-a-out"}],
        },
        {
            "name": "robot",
            "principal": ROBOT,
            "read": [{"container": "incoming", "prefix": "manifest.txt"}],
            "write": [{"container": "backups", "prefix": "robot/latest.txt"}],
        },
    ]
}
POLICY = parse_policy(json.dumps(DOCUMENT), OWN, RESERVED)


def entra(*roles: str, groups: tuple[str, ...] = (), object_id: str = "14a87ffa-0801-49bf-a515-3d259a2a9f8f") -> Caller:
    return Caller(KnownBy.ENTRA, object_id=object_id, roles=frozenset(roles), groups=frozenset(groups))


def own(container: str, name: str, prefix: bool = False) -> Place:
    return Place(container, name, account=OWN, prefix=prefix)


STARTER = entra("Copies.Start", "Copies.Read")
ADMIN = entra("Copies.Admin")
OUT = own("backups", "ingest/a.bin")

# -- the document -------------------------------------------------------------------


def test_no_policy_is_no_rules_so_only_admins_copy() -> None:
    policy = parse_policy(None, OWN, RESERVED)
    assert policy.rules == ()
    assert decide(policy, ADMIN, own("incoming", "a"), OUT).allowed
    verdict = decide(policy, STARTER, own("incoming", "a"), OUT)
    assert (verdict.allowed, verdict.rule, verdict.field) == (False, None, "source")


def test_the_document_is_read_into_rules() -> None:
    ingest, team_a, robot = POLICY.rules
    assert (ingest.name, ingest.subject.kind, ingest.subject.value) == ("ingest", "role", "Copies.Start")
    assert [scope.text() for scope in ingest.read] == [
        "acct/incoming/drop/",
        "partner/exports/",
        "data.example.com:443/public/",
    ]
    assert [scope.text() for scope in ingest.write] == ["acct/backups/ingest/"]
    assert team_a.subject.value == TEAM_A  # object ids compare in lower case
    assert robot.subject.kind == "principal"


def rule(**fields: Any) -> dict[str, Any]:
    return {
        "name": "r",
        "role": "Copies.Start",
        "read": [{"container": "inbox"}],
        "write": [{"container": "outbox"}],
        **fields,
    }


def scoped(entry: dict[str, Any], side: str = "read") -> str:
    return json.dumps({"rules": [rule(**{side: [entry]})]})


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("not json", "is not a JSON document"),
        ("[]", "the document: must be an object"),
        ('{"rules": {}}', "rules: must be a list"),
        ('{"rules": [], "roles": []}', "the document.roles: unknown field"),
        ('{"rules": [], "rules": []}', "rules: is given twice"),
        (json.dumps({"rules": [{"role": "x", "read": [], "write": []}]}), "rules[0].name: is required"),
        (json.dumps({"rules": [rule(name="a b")]}), "rules[0].name: must be"),
        (json.dumps({"rules": [rule(name="admin")]}), "rules[0].name: must be"),
        (json.dumps({"rules": [rule(), rule()]}), "rules[1].name: 'r' names another rule too"),
        (json.dumps({"rules": [rule(group=TEAM_A)]}), "rules[0] (r): must name its callers by exactly one"),
        (json.dumps({"rules": [{k: v for k, v in rule().items() if k != "role"}]}), "rules[0] (r): must name"),
        (json.dumps({"rules": [rule(role="Copies Start")]}), "rules[0] (r).role: must be an app role's value"),
        (json.dumps({"rules": [rule(role=["Copies.Start"])]}), "rules[0] (r).role: must be text"),
        (json.dumps({"rules": [{**rule(), "role": None, "group": "team-a"}]}), "rules[0] (r)"),
        (json.dumps({"rules": [{**rule(principal="not-a-guid"), "role": None}]}), "rules[0] (r)"),
        (json.dumps({"rules": [rule(read=[])]}), "rules[0] (r).read: must list at least one entry"),
        (json.dumps({"rules": [rule(write={"container": "outbox"})]}), "rules[0] (r).write: must list at least one"),
        (json.dumps({"rules": [rule(extra=1)]}), "rules[0].extra: unknown field"),
        (scoped({"account": "partner", "host": "x.example"}), ".read[0]: names an account or a host, not both"),
        (scoped({"prefix": "drop/"}), ".read[0]: a prefix needs its container"),
        (scoped({"account": "Partner"}), ".read[0].account: must be a storage account name"),
        (scoped({"container": "Incoming"}), ".read[0].container: must be a container name"),
        (scoped({"container": "inbox", "prefix": "a/../b/"}), ".read[0].prefix: segments must not"),
        (scoped({"container": "inbox", "prefix": "%2e%2e/"}), ".read[0].prefix: segments must not"),
        (scoped({"container": "inbox", "prefix": "a\uff0e\uff0e/"}), ".read[0].prefix"),
        (scoped({"container": "inbox", "prefix": "a."}), ".read[0].prefix"),
        (scoped({"container": "inbox", "prefix": 5}), ".read[0].prefix: must be text"),
        (scoped({"host": "*.example.com"}), ".read[0].host: must be a host"),
        (scoped({"host": "user@example.com"}), ".read[0].host: must be a host"),
        (scoped({"host": "example.com:99999"}), ".read[0].host: must be a host"),
        (
            scoped({"container": "azure-webjobs-secrets"}),
            ".read[0].container: container azure-webjobs-secrets is the Functions host's own",
        ),
        (scoped({"container": "app-package-copyops-1a2b3c"}), "is the Functions host's own"),
        (
            scoped({"container": "copy-operations"}, "write"),
            ".write[0].container: container copy-operations is copy-ops' own",
        ),
        (scoped({"container": "copy-ops-work-poison"}, "write"), "is copy-ops' own"),
        (scoped({"account": "partner", "container": "x"}, "write"), ".write[0].account: unknown field"),
        (scoped({"prefix": "a/"}, "write"), ".write[0].container: is required"),
    ],
)
def test_a_malformed_policy_is_refused_naming_the_entry(text: str, said: str) -> None:
    with pytest.raises(ConfigurationError) as refused:
        parse_policy(text, OWN, RESERVED)
    assert refused.value.code == "COPY_POLICY"
    assert said in refused.value.detail, refused.value.detail


def test_a_container_named_like_the_apps_own_in_another_account_may_be_read() -> None:
    policy = parse_policy(scoped({"account": "partner", "container": "copy-operations"}), OWN, RESERVED)
    assert decide(policy, STARTER, Place("copy-operations", "x", account="partner"), own("outbox", "x")).allowed


# -- the decision -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("caller", "source", "destination", "expected"),
    [
        (STARTER, own("incoming", "drop/a.bin"), OUT, (True, "ingest", None)),
        (STARTER, Place("exports", "2026/a.bin", account="partner"), OUT, (True, "ingest", None)),
        (STARTER, Place("public", "a.bin", host="data.example.com:443"), OUT, (True, "ingest", None)),
        (
            STARTER,
            own("incoming", "drop/2026/", prefix=True),
            own("backups", "ingest/", prefix=True),
            (True, "ingest", None),
        ),
        (STARTER, own("incoming", "drop/a.bin"), own("backups", "other/a.bin"), (False, "ingest", "destination")),
        (
            STARTER,
            own("incoming", "drop/a.bin"),
            own("backups", "ingest", prefix=True),
            (False, "ingest", "destination"),
        ),
        (STARTER, own("incoming", "other/a.bin"), OUT, (False, "ingest", "source")),
        (STARTER, own("incoming", "", prefix=True), OUT, (False, "ingest", "source")),
        (STARTER, own("incoming", "dro", prefix=True), OUT, (False, "ingest", "source")),
        (STARTER, own("incoming", "Drop/a.bin"), OUT, (False, "ingest", "source")),  # blob names keep their case
        (STARTER, own("exports", "a.bin"), OUT, (False, "ingest", "source")),  # exports of partner, not ours
        (STARTER, Place("exports", "a", account="partner2"), OUT, (False, "ingest", "source")),
        (STARTER, Place("public", "a.bin", host="data.example.com:8443"), OUT, (False, "ingest", "source")),
        (STARTER, Place("public", "a.bin", host="partner.example:443"), OUT, (False, "ingest", "source")),
        (entra("Copies.Read"), own("incoming", "drop/a.bin"), OUT, (False, None, "source")),
        (KEY_CALLER, own("anything", "x"), own("anywhere", "y"), (True, "admin", None)),
        (ADMIN, Place("copy-operations", "x", account="partner"), own("anywhere", "y"), (True, "admin", None)),
        # The host's and the app's own containers, whoever asks.
        (ADMIN, own("azure-webjobs-secrets", "host.json"), OUT, (False, "reserved", "source")),
        (
            KEY_CALLER,
            own("incoming", "x"),
            Place("azure-webjobs-hosts", "x", account="partner"),
            (False, "reserved", "destination"),
        ),
        (ADMIN, own("incoming", "x"), own("copy-operations", "ops/x"), (False, "reserved", "destination")),
        (ADMIN, own("scm-releases", "x.zip"), OUT, (False, "reserved", "source")),
        # Names the copies refuse are refused before any prefix is compared.
        (ADMIN, own("incoming", "drop/../secret"), OUT, (False, None, "source")),
        (STARTER, own("incoming", "drop/%2e%2e/secret"), OUT, (False, None, "source")),
        (STARTER, own("incoming", "drop/\uff0e\uff0e/secret"), OUT, (False, None, "source")),
        (STARTER, own("incoming", "drop/a."), OUT, (False, None, "source")),
        (STARTER, own("Incoming", "drop/a.bin"), OUT, (False, None, "source")),
        (STARTER, Place("exports", "a", account="Partner"), OUT, (False, None, "source")),
        (STARTER, own("incoming", "drop/a.bin"), own("backups", "ingest/../../x"), (False, None, "destination")),
        # One blob's name covers that blob only.
        (
            entra(object_id=ROBOT),
            own("incoming", "manifest.txt"),
            own("backups", "robot/latest.txt"),
            (True, "robot", None),
        ),
        (
            entra(object_id=ROBOT),
            own("incoming", "manifest.txt.bak"),
            own("backups", "robot/latest.txt"),
            (False, "robot", "source"),
        ),
        (entra(object_id=ROBOT), own("incoming", "manifest.txt", prefix=True), OUT, (False, "robot", "source")),
        # One rule covers both sides: a caller in two rules does not mix them.
        (entra("Copies.Start", groups=(TEAM_A,)), own("team-a", "x"), own("team-a-out", "x"), (True, "team-a", None)),
        (
            entra("Copies.Start", groups=(TEAM_A,)),
            own("incoming", "drop/x"),
            own("team-a-out", "x"),
            (False, "ingest", "destination"),
        ),
        (entra("Copies.Start", groups=(TEAM_A,)), own("team-a", "x"), OUT, (False, "team-a", "destination")),
        (entra("copies.start"), own("incoming", "drop/a.bin"), OUT, (False, None, "source")),  # roles keep their case
    ],
)
def test_the_decision(caller: Caller, source: Place, destination: Place, expected: tuple[Any, ...]) -> None:
    verdict = decide(POLICY, caller, source, destination)
    assert (verdict.allowed, verdict.rule, verdict.field) == expected, verdict.reason
    assert bool(verdict.reason) is not verdict.allowed


def test_check_is_the_403_naming_the_field_and_the_rule() -> None:
    assert check(POLICY, STARTER, own("incoming", "drop/a"), OUT) == "ingest"
    with pytest.raises(Forbidden) as refused:
        check(POLICY, STARTER, own("incoming", "drop/a"), own("backups", "x"), destination_field="destination.blob")
    error = refused.value
    assert error.code == "ingest"
    assert [item.field for item in error.errors] == ["destination.blob"]
    assert "acct/backups/x is outside what rule ingest let write" in error.detail


@pytest.mark.parametrize(
    ("endpoint", "url", "expected"),
    [
        (ENDPOINT, "https://partner.blob.core.windows.net/exports/a", Place("exports", "a", account="partner")),
        (ENDPOINT, "https://acct-secondary.blob.core.windows.net/c/a", Place("c", "a", account="acct")),
        (ENDPOINT, "https://p.privatelink.blob.core.windows.net/c/a", Place("c", "a", account="p")),
        (
            ENDPOINT,
            "https://partner.blob.core.windows.net.evil.example/c/a",
            Place("c", "a", host="partner.blob.core.windows.net.evil.example:443"),
        ),
        (
            ENDPOINT,
            "https://partnerblob.core.windows.net/c/a",
            Place("c", "a", host="partnerblob.core.windows.net:443"),
        ),
        (ENDPOINT, "https://x.evilblob.core.windows.net/c/a", Place("c", "a", host="x.evilblob.core.windows.net:443")),
        (ENDPOINT, "https://data.example.com:8443/public/a", Place("public", "a", host="data.example.com:8443")),
        (
            "http://127.0.0.1:10000/devstoreaccount1",
            "http://127.0.0.1:10000/partner/c/a",
            Place("c", "a", account="partner"),
        ),
        (
            "http://127.0.0.1:10000/devstoreaccount1",
            "http://127.0.0.1:10010/devstoreaccount1/c/a",
            Place("c", "a", host="127.0.0.1:10010"),
        ),
        (
            "http://127.0.0.1:10000/devstoreaccount1",
            "http://localhost:10000/partner/c/a",
            Place("c", "a", host="localhost:10000"),
        ),
    ],
)
def test_a_url_is_an_account_only_in_the_apps_cloud(endpoint: str, url: str, expected: Place) -> None:
    assert place_of_url(urls.parse_blob_url(url), endpoint) == expected


def test_a_job_prefix_url_is_a_prefix_place() -> None:
    place = place_of_url(
        urls.parse_container_url("https://partner.blob.core.windows.net/exports/2026/"), ENDPOINT, prefix=True
    )
    assert place == Place("exports", "2026/", account="partner", prefix=True)
    assert decide(POLICY, STARTER, place, own("backups", "ingest/", prefix=True)).allowed


# -- the settings -------------------------------------------------------------------


def test_the_settings_hold_the_policy_with_the_apps_own_names() -> None:
    env = {
        "COPY_STORAGE": "UseDevelopmentStorage=true",
        "COPY_LEDGER_CONTAINER": "ledger-x",
        "COPY_EVENTS_QUEUE": "events-x",
        "COPY_POLICY": json.dumps(DOCUMENT),
    }
    policy = Settings.from_env(env).policy
    assert [rule.name for rule in policy.rules] == ["ingest", "team-a", "robot"]
    assert policy.account == "devstoreaccount1"
    assert policy.reserved == {"ledger-x", "copy-ops-work", "copy-ops-work-poison", "events-x", "events-x-poison"}
    assert Settings.from_env({"COPY_STORAGE": "UseDevelopmentStorage=true"}).policy == Policy(
        account="devstoreaccount1", reserved=frozenset({"copy-operations", "copy-ops-work", "copy-ops-work-poison"})
    )
    with pytest.raises(ConfigurationError) as refused:
        Settings.from_env({**env, "COPY_POLICY": scoped({"container": "events-x-poison"}, "write")})
    assert refused.value.code == "COPY_POLICY" and "copy-ops' own" in refused.value.detail


# -- properties ---------------------------------------------------------------------

path_alphabet = st.sampled_from(
    [*"./\\%;?#", "%2e", "%2E", "%2f", "%5c", "%25", "\uff0e", "\uff0f", "\u2024", "..", "drop", "drop/", "a"]
)
blob_names = st.lists(path_alphabet | st.text(min_size=1, max_size=3), min_size=1, max_size=8).map("".join)
SERVICE = BlobServiceClient(ENDPOINT)


def readings(path: str) -> list[str]:
    """What URL clients could make of a path: decoded once, twice, under NFKC; backslashes as slashes."""
    forms = [path, unquote(path), unquote(unquote(path)), unicodedata.normalize("NFKC", unquote(path))]
    return [names.remove_dot_segments(form.replace("\\", "/")) for form in forms]


@settings(max_examples=1000, deadline=None)
@given(blob_names | blob_names.map(lambda tail: f"drop/{tail}"), st.booleans())
def test_a_name_the_policy_admits_is_filed_under_the_rules_prefix(name: str, prefix: bool) -> None:
    place = own("incoming", name, prefix=prefix)
    if not decide(POLICY, STARTER, place, OUT).allowed:
        return
    assert name.startswith("drop/")
    if prefix:
        return
    # The path the SDK sends for it is that very name, and no reading of it leaves drop/.
    path = yarl.URL(SERVICE.get_blob_client("incoming", name).url).raw_path
    assert unquote(path) == f"/incoming/{name}"
    assert all(reading.startswith("/incoming/drop/") for reading in readings(path))


containers = st.sampled_from(
    ["incoming", "Incoming", "incoming ", "incom1ng", "\u0456ncoming", "incoming-", "INCOMING"]
)


@settings(max_examples=300, deadline=None)
@given(containers | st.text(max_size=12), st.sampled_from(["acct", "Acct", "acct2", "\u0430cct"]) | st.text(max_size=6))
def test_a_container_or_account_is_itself_or_nothing(container: str, account: str) -> None:
    """Look-alikes and other cases are other containers and accounts: never the one a rule names."""
    verdict = decide(POLICY, STARTER, Place(container, "drop/a.bin", account=account), OUT)
    assert verdict.allowed is (container == "incoming" and account == OWN)


callers = st.builds(
    Caller,
    st.sampled_from(list(KnownBy)),
    object_id=st.sampled_from([None, ROBOT]),
    roles=st.frozensets(st.sampled_from(["Copies.Start", "Copies.Read", "Copies.Admin"])),
    groups=st.frozensets(st.sampled_from([TEAM_A])),
)
places = st.builds(
    Place,
    st.sampled_from(
        ["incoming", "backups", "team-a", "team-a-out", "azure-webjobs-hosts", "copy-operations", "exports"]
    ),
    blob_names | st.sampled_from(["drop/a", "ingest/a", "manifest.txt", "robot/latest.txt", "x"]),
    account=st.sampled_from([OWN, "partner", None]),
    prefix=st.booleans(),
)


@settings(max_examples=400, deadline=None)
@given(callers, places, places)
def test_every_verdict_is_reasoned_and_the_reserved_are_never_used(
    caller: Caller, source: Place, destination: Place
) -> None:
    verdict = decide(POLICY, caller, source, destination)
    if verdict.allowed:
        assert verdict.field is None and verdict.rule is not None
        for place in (source, destination):
            assert not place.container.startswith("azure-webjobs-")
            assert not (place.account == OWN and place.container in RESERVED)
            assert names.container_problem(place.container) is None
    else:
        assert verdict.field in ("source", "destination") and verdict.reason
        with pytest.raises(Forbidden) as refused:
            check(POLICY, caller, source, destination)
        assert refused.value.code == verdict.rule and refused.value.errors[0].field == verdict.field

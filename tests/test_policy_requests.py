"""COPY_POLICY on parsed requests, as the edge applies it before the service sees them: a
copy's source and destination, a job's prefixes, every entry of a manifest (a job refused
whole, naming each entry outside). Tables, and properties over odd names: whatever a
request spells (``a.``, ``%2e%2e``, look-alike dots, another case), what the policy lets
through is a name under the rule's prefix, or the request is refused."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from copy_ops.copies.permits import permit_copy
from copy_ops.copies.request import parse_copy_request
from copy_ops.core import names
from copy_ops.core.callers import KEY_CALLER, Caller, KnownBy
from copy_ops.core.errors import Forbidden, InvalidRequest
from copy_ops.core.settings import Settings
from copy_ops.jobs.permits import permit_job
from copy_ops.jobs.request import parse_job_request
from devkit.__main__ import main as devkit_main
from devkit.issuer import CALLERS, LOCAL_POLICY, TEAM_A, TEAM_B

NOW = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
APP = "http://127.0.0.1:10000/devstoreaccount1"
PARTNER = "http://127.0.0.1:10000/partner"
POLICY = {
    "rules": [
        {
            "name": "team-a",
            "group": TEAM_A,
            "read": [{"container": "incoming", "prefix": "drop/"}, {"account": "partner", "container": "exports"}],
            "write": [{"container": "backups", "prefix": "alice/"}],
        },
        {
            "name": "team-b",
            "group": TEAM_B,
            "read": [{"host": "data.example.com", "container": "public"}],
            "write": [{"container": "backups", "prefix": "bob/"}],
        },
    ]
}
LOCAL = {
    "COPY_STORAGE": "UseDevelopmentStorage=true",
    "COPY_ALLOWED_SOURCE_HOSTS": "127.0.0.1:10000,data.example.com:*",
    "COPY_POLICY": json.dumps(POLICY),
}
DEV = Settings.from_env(LOCAL)
# The app's account on Azure, with an identity: another account is read as {account, ...}.
CLOUD = Settings.from_env(
    {
        "COPY_STORAGE__blobServiceUri": "https://acct.blob.core.windows.net",
        "COPY_ALLOWED_SOURCE_HOSTS": "*.blob.core.windows.net",
        "COPY_POLICY": json.dumps(POLICY),
    }
)


OID = "14a87ffa-0801-49bf-a515-3d259a2a9f8f"


def entra(*roles: str, groups: tuple[str, ...] = ()) -> Caller:
    return Caller(KnownBy.ENTRA, object_id=OID, roles=frozenset(roles), groups=frozenset(groups))


ALICE = entra("Copies.Start", groups=(TEAM_A,))
BOB = entra("Copies.Start", groups=(TEAM_B,))
ADMIN = entra("Copies.Admin")
NOBODY = entra("Copies.Start", "Copies.Read")


def blob(container: str, name: str) -> dict[str, str]:
    return {"container": container, "blob": name}


def copy(source: Any, destination: Any, caller: Caller, where: Settings = DEV) -> str:
    return permit_copy(parse_copy_request({"source": source, "destination": destination}, where, NOW), caller, where)


def refusal(run: Any) -> tuple[str | None, list[str], str]:
    with pytest.raises(Forbidden) as refused:
        run()
    error = refused.value
    return error.code, [item.field for item in error.errors], error.detail


# -- one copy ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("caller", "source", "destination", "rule"),
    [
        (ALICE, blob("incoming", "drop/a.bin"), blob("backups", "alice/a.bin"), "team-a"),
        (ALICE, f"{APP}/incoming/drop/a.bin", blob("backups", "alice/a.bin"), "team-a"),  # the app's, by URL
        (ALICE, f"{PARTNER}/exports/2026/a.bin", blob("backups", "alice/2026/a.bin"), "team-a"),
        (BOB, "https://data.example.com/public/a.bin?sv=2024&sig=x", blob("backups", "bob/a.bin"), "team-b"),
        (ADMIN, blob("anything", "x"), blob("anywhere", "y"), "admin"),
        (KEY_CALLER, blob("anything", "x"), blob("anywhere", "y"), "admin"),
    ],
)
def test_a_copy_inside_its_callers_rule_is_allowed_by_it(
    caller: Caller, source: Any, destination: Any, rule: str
) -> None:
    assert copy(source, destination, caller) == rule


@pytest.mark.parametrize(
    ("caller", "source", "destination", "expected"),
    [
        (ALICE, blob("incoming", "drop/a.bin"), blob("backups", "bob/a.bin"), ("team-a", ["destination"])),
        (ALICE, blob("incoming", "drop/a.bin"), blob("backups", "alice"), ("team-a", ["destination"])),
        (ALICE, blob("incoming", "other/a.bin"), blob("backups", "alice/a.bin"), ("team-a", ["source"])),
        (ALICE, blob("incoming", "Drop/a.bin"), blob("backups", "alice/a.bin"), ("team-a", ["source"])),
        (ALICE, f"{PARTNER}/imports/a.bin", blob("backups", "alice/a.bin"), ("team-a", ["source"])),
        # Another account's container of the same name is another container.
        (ALICE, blob("exports", "a.bin"), blob("backups", "alice/a.bin"), ("team-a", ["source"])),
        (BOB, "https://data.example.com:8443/public/a.bin", blob("backups", "bob/a.bin"), ("team-b", ["source"])),
        (BOB, blob("incoming", "drop/a.bin"), blob("backups", "bob/a.bin"), ("team-b", ["source"])),
        (NOBODY, blob("incoming", "drop/a.bin"), blob("backups", "alice/a.bin"), (None, ["source"])),
        # The host's containers and the app's own, whoever asks.
        (ADMIN, blob("azure-webjobs-hosts", "locks/x"), blob("backups", "x"), ("reserved", ["source"])),
        (KEY_CALLER, blob("incoming", "x"), blob("azure-webjobs-secrets", "host.json"), ("reserved", ["destination"])),
        (KEY_CALLER, blob("incoming", "x"), blob("copy-ops-work-poison", "x"), ("reserved", ["destination"])),
        (ADMIN, blob("app-package-copyops-1a2b", "released.zip"), blob("backups", "x"), ("reserved", ["source"])),
    ],
)
def test_a_copy_outside_is_the_403_naming_the_field_and_the_rule(
    caller: Caller, source: Any, destination: Any, expected: tuple[str | None, list[str]]
) -> None:
    code, fields, detail = refusal(lambda: copy(source, destination, caller))
    assert (code, fields) == expected, detail


def test_no_policy_lets_only_admins_copy() -> None:
    plain = Settings.from_env({"COPY_STORAGE": "UseDevelopmentStorage=true"})
    source, destination = blob("incoming", "a.bin"), blob("backups", "a.bin")
    assert copy(source, destination, KEY_CALLER, plain) == "admin"
    assert copy(source, destination, ADMIN, plain) == "admin"
    code, fields, detail = refusal(lambda: copy(source, destination, ALICE, plain))
    assert (code, fields) == (None, ["source"]) and "only admins may copy" in detail


def test_another_account_read_with_the_apps_identity_is_that_account() -> None:
    source = {"account": "partner", "container": "exports", "blob": "a.bin"}
    assert copy(source, blob("backups", "alice/a.bin"), ALICE, CLOUD) == "team-a"
    assert copy("https://partner.blob.core.windows.net/exports/a.bin", blob("backups", "alice/a"), ALICE, CLOUD)
    outside = {"account": "partner2", "container": "exports", "blob": "a.bin"}
    assert refusal(lambda: copy(outside, blob("backups", "alice/a.bin"), ALICE, CLOUD))[:2] == ("team-a", ["source"])


# -- jobs ---------------------------------------------------------------------------


def job(source: Any, destination: Any, caller: Caller, where: Settings = DEV) -> str:
    request = parse_job_request({"source": source, "destination": destination}, where, NOW)
    return permit_job(request, caller, where)


def into(prefix: str) -> dict[str, str]:
    return {"container": "backups", "prefix": prefix}


@pytest.mark.parametrize(
    ("caller", "source", "prefix", "expected"),
    [
        (ALICE, {"container": "incoming", "prefix": "drop/"}, "alice/", "team-a"),
        (ALICE, {"container": "incoming", "prefix": "drop/2026/"}, "alice/2026/", "team-a"),
        (ALICE, {"url": f"{PARTNER}/exports/2026/"}, "alice/", "team-a"),
        (ALICE, {"container": "incoming", "prefix": ""}, "alice/", ("team-a", ["source"])),  # the whole container
        (ALICE, {"container": "incoming", "prefix": "dro"}, "alice/", ("team-a", ["source"])),
        (ALICE, {"container": "incoming", "prefix": "drop/"}, "alice", ("team-a", ["destination"])),
        (ALICE, {"container": "incoming", "prefix": "drop/"}, "", ("team-a", ["destination"])),
        (BOB, {"url": "https://data.example.com/public/?sv=2024&sig=x"}, "bob/", "team-b"),
        (BOB, {"url": "https://data.example.com/public/2026/"}, "alice/", ("team-b", ["destination"])),
        (KEY_CALLER, {"container": "azure-webjobs-secrets"}, "x/", ("reserved", ["source"])),
        (ADMIN, {"container": "incoming"}, "x/", "admin"),
    ],
)
def test_a_prefix_job_is_checked_by_its_source_prefix_and_its_destination_prefix(
    caller: Caller, source: Any, prefix: str, expected: Any
) -> None:
    if isinstance(expected, str):
        assert job(source, into(prefix), caller) == expected
    else:
        code, fields, detail = refusal(lambda: job(source, into(prefix), caller))
        assert (code, fields) == expected, detail


def test_a_job_of_another_accounts_prefix_read_with_the_apps_identity() -> None:
    source = {"account": "partner", "container": "exports", "prefix": "2026/"}
    assert job(source, into("alice/"), ALICE, CLOUD) == "team-a"
    whole = {"account": "partner", "container": "imports"}
    assert refusal(lambda: job(whole, into("alice/"), ALICE, CLOUD))[:2] == ("team-a", ["source"])


def manifest(*sources: Any) -> dict[str, Any]:
    return {"blobs": list(sources)}


def test_a_manifest_with_one_entry_outside_is_refused_whole_naming_that_entry() -> None:
    inside = [blob("incoming", "drop/a.bin"), f"{PARTNER}/exports/b.bin", blob("incoming", "drop/c.bin")]
    assert job(manifest(*inside), into("alice/"), ALICE) == "team-a"
    one_outside = manifest(*inside, blob("incoming", "secret.bin"))
    code, fields, detail = refusal(lambda: job(one_outside, into("alice/"), ALICE))
    assert (code, fields) == ("team-a", ["source.blobs[3]"])
    assert "devstoreaccount1/incoming/secret.bin is outside what rule team-a let read" in detail


def test_each_entry_outside_is_named_and_a_destination_outside_once() -> None:
    sources = [blob("incoming", "x.bin"), blob("incoming", "drop/a.bin"), f"{PARTNER}/imports/y.bin"]
    assert refusal(lambda: job(manifest(*sources), into("alice/"), ALICE))[1] == ["source.blobs[0]", "source.blobs[2]"]
    inside = [blob("incoming", f"drop/{n}.bin") for n in range(50)]
    code, fields, _ = refusal(lambda: job(manifest(*inside), into("bob/"), ALICE))
    assert (code, fields) == ("team-a", ["destination"])
    # A caller no rule names: said once, at the first entry.
    assert refusal(lambda: job(manifest(*inside), into("alice/"), NOBODY))[:2] == (None, ["source.blobs[0]"])


def test_a_manifest_entry_in_the_hosts_containers_is_refused_even_for_an_admin() -> None:
    sources = [blob("incoming", "a.bin"), blob("azure-webjobs-hosts", "locks/b"), blob("scm-releases", "c.zip")]
    code, fields, _ = refusal(lambda: job(manifest(*sources), into("x/"), ADMIN))
    assert (code, fields) == ("reserved", ["source.blobs[1]", "source.blobs[2]"])


def test_make_runs_policy_gives_the_named_callers_different_rights() -> None:
    """The COPY_POLICY make run sets (devkit.issuer.LOCAL_POLICY), for the callers whose
    tokens it prints: the refusal its banner shows, and what each may do."""
    local = Settings.from_env({**LOCAL, "COPY_POLICY": json.dumps(LOCAL_POLICY)})

    def named(name: str) -> Caller:
        who = CALLERS[name]
        return Caller(KnownBy.ENTRA, object_id=who.object_id, roles=frozenset(who.roles), groups=frozenset(who.groups))

    hello = blob("incoming", "hello.txt")
    assert copy(hello, blob("backups", "alice/hello.txt"), named("alice"), local) == "team-a"
    assert copy(f"{PARTNER}/exports/big.bin", blob("backups", "bob/big.bin"), named("bob"), local) == "team-b"
    assert copy(hello, blob("backups", "hello.txt"), named("carol"), local) == "admin"
    code, fields, detail = refusal(lambda: copy(hello, blob("backups", "bob/hello.txt"), named("bob"), local))
    assert (code, fields) == ("team-b", ["source"])
    assert detail == "source: devstoreaccount1/incoming/hello.txt is outside what rule team-b let read"
    assert refusal(lambda: copy(hello, blob("backups", "bob/hello.txt"), named("alice"), local))[:2] == (
        "team-a",
        ["destination"],
    )


# -- properties ---------------------------------------------------------------------

odd = st.sampled_from(
    [*"./\\%", "%2e", "%2E", "%2f", "%5c", "%25", "\uff0e", "\uff0f", "\u2024", "..", "a.", "drop", "Drop", "drop/"]
)
plain = st.text(alphabet="abz09-_ ", min_size=1, max_size=4)
tails = st.lists(odd | plain | plain | plain | st.text(min_size=1, max_size=3), min_size=1, max_size=6).map("".join)
odd_names = tails | tails.map(lambda tail: f"drop/{tail}")
# The rule's container half the time; else a look-alike, another case, another container.
containers = st.just("incoming") | st.sampled_from(["Incoming", "INCOMING", "\u0456ncoming", "incom1ng", "incoming-"])


def spelt(container: str, name: str, form: str) -> Any:
    """The source as a request may spell it: an object, or a URL of the app's account with
    the name percent-encoded, or as it is."""
    if form == "object":
        return blob(container, name)
    path = quote(name, safe="/%") if form == "url" else quote(name, safe="/")
    return f"{APP}/{quote(container, safe='')}/{path}"


def outcome(run: Any) -> str | None:
    """The rule that allowed it, or None when refused (400 or 403)."""
    try:
        return str(run())
    except (InvalidRequest, Forbidden):
        return None


@settings(max_examples=600, deadline=None)
@given(containers, odd_names, st.sampled_from(["object", "url", "encoded"]), plain | odd_names)
def test_an_odd_name_is_refused_or_lies_under_the_rules_prefix(
    container: str, name: str, form: str, landing: str
) -> None:
    source, destination = spelt(container, name, form), blob("backups", f"alice/{landing}")
    try:
        request = parse_copy_request({"source": source, "destination": destination}, DEV, NOW)
    except (InvalidRequest, Forbidden):
        return
    if outcome(lambda: permit_copy(request, ALICE, DEV)) is None:
        return
    assert request.source_blob is not None and request.source_blob.container == "incoming"
    assert request.source_blob.blob.startswith("drop/") and names.blob_problem(request.source_blob.blob) is None
    assert request.destination.blob.startswith("alice/")


@settings(max_examples=400, deadline=None)
@given(odd_names, odd_names)
def test_a_job_prefix_odd_or_not_is_refused_or_under_the_rules_prefixes(source_prefix: str, prefix: str) -> None:
    body = {"source": {"container": "incoming", "prefix": source_prefix}, "destination": into(prefix)}
    try:
        request = parse_job_request(body, DEV, NOW)
    except (InvalidRequest, Forbidden):
        return
    if outcome(lambda: permit_job(request, ALICE, DEV)) is None:
        return
    assert request.source is not None and request.source.prefix.startswith("drop/")
    assert request.destination_prefix.startswith("alice/")


def test_the_development_kit_prints_make_runs_policy(capsys: pytest.CaptureFixture[str]) -> None:
    """``python -m devkit policy``: the document make run sets, as COPY_POLICY reads it."""
    assert devkit_main(["policy"]) == 0
    printed = capsys.readouterr().out
    assert json.loads(printed) == LOCAL_POLICY
    assert [rule.name for rule in Settings.from_env({**LOCAL, "COPY_POLICY": printed}).policy.rules] == [
        "team-a",
        "team-b",
    ]

"""Who may copy what: the policy (``COPY_POLICY``) and its one decision.

A policy is rules, each naming its callers (an app role, a group or a principal) and what
they may read (an account, a container, a name prefix; or a host, for a URL outside the
app's cloud) and write (a container of the app's account, a name prefix). A copy is
allowed when one rule of its caller covers both its source and its destination; an admin
(``Copies.Admin``, or a key's holder) may copy anything. Whatever the policy, the Functions
host's containers and the app's own (the ledger, and the names of its queues and their
poison queues) are never a source or a destination. :func:`decide` gives the verdict, and
:func:`check` raises it as the 403 that names the field and the rule. The document's format
and its parsing: :mod:`copy_ops.core.policy_document`; docs/callers.md, "The policy".

A name the copies would refuse (``a/../b``, ``%2e%2e``, look-alike dots) is refused here
too, before any prefix is compared: the prefix a name starts with is then the prefix storage
files it under. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from urllib.parse import urlsplit

from copy_ops.core import names, urls
from copy_ops.core.callers import Caller
from copy_ops.core.errors import FieldError, Forbidden, summary

# The Functions host's containers, in any account: its state (azure-webjobs-hosts, -secrets),
# and where deployments keep the app's package (Flex Consumption's app-package, as the template
# and the portal name it; run-from-package's scm-releases and function-releases).
HOST_CONTAINERS = ("azure-webjobs-*", "app-package", "app-package-*", "scm-releases", "function-releases")
ADMIN = "admin"
RESERVED = "reserved"


@dataclass(frozen=True)
class Place:
    """A source or a destination as the policy sees it: a container and a blob name, or a
    name prefix (a job's); in a storage account of the app's cloud (``account``) or, for a
    URL elsewhere, on a host (``host``, as ``name:port``)."""

    container: str
    name: str
    account: str | None = None
    host: str | None = None
    prefix: bool = False

    def text(self) -> str:
        where = self.account if self.account is not None else self.host
        return f"{where}/{self.container}/{self.name}" + ("*" if self.prefix else "")


def place_of_url(url: urls.BlobUrl, endpoint: str, prefix: bool = False) -> Place:
    """The place a URL names: an account when it is a storage account of the app's cloud
    (``endpoint`` is the app's blob endpoint), else its host."""
    own = urls.endpoint_account(endpoint)
    if own.path_style:
        parts = urlsplit(endpoint)
        port = parts.port or urls.DEFAULT_PORTS.get(parts.scheme, 0)
        in_cloud = url.account.path_style and (url.host, url.port) == (own.host, port)
    else:
        domain = url.account.domain
        in_cloud = not url.account.path_style and (domain == own.domain or domain.endswith("." + own.domain))
    if in_cloud:
        return Place(url.container, url.blob, account=url.account.name, prefix=prefix)
    return Place(url.container, url.blob, host=f"{url.host}:{url.port}", prefix=prefix)


@dataclass(frozen=True)
class Scope:
    """What one entry of a rule covers: an account or a host; a container or every one; a
    name prefix ending in ``/``, one blob's name, or every name (empty)."""

    account: str | None = None
    host: str | None = None
    container: str | None = None
    prefix: str = ""

    def covers(self, place: Place) -> bool:
        if (self.account, self.host) != (place.account, place.host):
            return False
        if self.container is not None and self.container != place.container:
            return False
        if not self.prefix:
            return True
        if self.prefix.endswith("/"):
            return place.name.startswith(self.prefix)
        return not place.prefix and place.name == self.prefix

    def text(self) -> str:
        where = self.account if self.account is not None else self.host
        return f"{where}/{self.container or '*'}/{self.prefix}"


@dataclass(frozen=True)
class Subject:
    """Whom a rule is for: ``role`` (an app role's value), ``group`` or ``principal`` (object ids)."""

    kind: str
    value: str

    def names(self, caller: Caller) -> bool:
        if self.kind == "role":
            return self.value in caller.roles
        if self.kind == "group":
            return self.value in caller.groups
        return caller.object_id == self.value


@dataclass(frozen=True)
class Rule:
    name: str
    subject: Subject
    read: tuple[Scope, ...]
    write: tuple[Scope, ...]


@dataclass(frozen=True)
class Policy:
    """The rules, and the app's own container names that are never used (the ledger's, and
    its queues' names with their poison queues'), in the app's ``account``."""

    rules: tuple[Rule, ...] = ()
    account: str = ""
    reserved: frozenset[str] = frozenset()

    def reserved_problem(self, place: Place) -> str | None:
        if any(fnmatchcase(place.container, pattern) for pattern in HOST_CONTAINERS):
            return f"container {place.container} is the Functions host's own: never copied from or to"
        if place.account == self.account and place.container in self.reserved:
            return f"container {place.container} is copy-ops' own: never copied from or to"
        return None


@dataclass(frozen=True)
class Verdict:
    """Allowed, by ``rule``; or refused by ``rule`` (the caller's rules that came closest;
    None when no rule names the caller), with ``field`` and the reason."""

    allowed: bool
    rule: str | None
    field: str | None = None
    reason: str = ""


def decide(
    policy: Policy,
    caller: Caller,
    source: Place,
    destination: Place,
    *,
    source_field: str = "source",
    destination_field: str = "destination",
) -> Verdict:
    for field, place in ((source_field, source), (destination_field, destination)):
        problem = policy.reserved_problem(place)
        if problem is not None:
            return Verdict(False, RESERVED, field, problem)
        problem = _name_problem(place)
        if problem is not None:
            return Verdict(False, None, field, problem)
    if caller.admin:
        return Verdict(True, ADMIN)
    mine = [rule for rule in policy.rules if rule.subject.names(caller)]
    if not mine:
        return Verdict(False, None, source_field, "no rule of COPY_POLICY names this caller: only admins may copy")
    reading = [rule for rule in mine if any(scope.covers(source) for scope in rule.read)]
    if not reading:
        return Verdict(False, _names(mine), source_field, f"{source.text()} is outside what {_rules(mine)} let read")
    for rule in reading:
        if any(scope.covers(destination) for scope in rule.write):
            return Verdict(True, rule.name)
    reason = f"{destination.text()} is outside what {_rules(reading)} let write from that source"
    return Verdict(False, _names(reading), destination_field, reason)


def check(
    policy: Policy,
    caller: Caller,
    source: Place,
    destination: Place,
    *,
    source_field: str = "source",
    destination_field: str = "destination",
) -> str:
    """The name of the rule that allows the copy; :class:`Forbidden` (403) naming the field
    and the rule when none does."""
    verdict = decide(
        policy, caller, source, destination, source_field=source_field, destination_field=destination_field
    )
    refusal = forbidden([verdict])
    if refusal is not None:
        raise refusal
    return str(verdict.rule)


def forbidden(verdicts: Iterable[Verdict]) -> Forbidden | None:
    """The 403 of the verdicts that refuse, or None when none does: each field and each
    reason said once (a job's destination outside the caller's rules is one error, not one
    per source), the first refusal's rule as its ``code``. A job is refused whole by one
    such answer however many of its sources are outside."""
    refused = [verdict for verdict in verdicts if not verdict.allowed]
    if not refused:
        return None
    errors: list[FieldError] = []
    fields: set[str] = set()
    reasons: set[str] = set()
    for verdict in refused:
        field = str(verdict.field)
        if field not in fields and verdict.reason not in reasons:
            errors.append(FieldError(field, verdict.reason))
            fields.add(field)
            reasons.add(verdict.reason)
    return Forbidden(summary(errors), code=refused[0].rule, errors=tuple(errors))


def _name_problem(place: Place) -> str | None:
    """Why the copies would refuse the place's names (checked here again, so no name the
    policy compares can be read by storage as another path), or None."""
    if place.account is not None and names.account_problem(place.account) is not None:
        return f"account {place.account!r} {names.ACCOUNT_RULE}"
    if names.container_problem(place.container) is not None:
        return f"container {place.container!r} {names.CONTAINER_RULE}"
    problem = names.prefix_problem(place.name) if place.prefix else names.blob_problem(place.name)
    return None if problem is None else f"name {place.name!r} {problem}"


def _names(rules: list[Rule]) -> str:
    return ", ".join(rule.name for rule in rules)


def _rules(rules: list[Rule]) -> str:
    return ("rule " if len(rules) == 1 else "rules ") + _names(rules)

"""``COPY_POLICY``, the JSON document, parsed into a frozen :class:`~copy_ops.core.policy.Policy`.

One setting holds the whole document (docs/callers.md, "The policy", says why not a blob)::

    {"rules": [{"name": "ingest", "role": "Copies.Start",
                "read": [{"container": "incoming", "prefix": "drop/"},
                         {"account": "partnerdata", "container": "exports"},
                         {"host": "data.example.com", "container": "public"}],
                "write": [{"container": "backups", "prefix": "ingest/"}]}]}

A rule names its callers by exactly one of ``role`` (an app role's value), ``group`` or
``principal`` (object ids). A ``read`` entry without ``account`` or ``host`` is the app's
own account; ``write`` entries always are. A prefix ends in ``/`` (every name under it) or
is one blob's name. Anything else, an unknown field, a key given twice, or a container the
app never copies from or to, is a :class:`~copy_ops.core.errors.ConfigurationError` naming
the entry (``rules[1] (ingest).read[0].container``): a policy that cannot be read never runs
open. Pure: no I/O.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlsplit

from copy_ops.core import names
from copy_ops.core.callers import GUID
from copy_ops.core.errors import ConfigurationError
from copy_ops.core.policy import ADMIN, RESERVED, Place, Policy, Rule, Scope, Subject

SETTING = "COPY_POLICY"
RULE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
SUBJECTS = ("role", "group", "principal")
# A DNS name or an IPv4 address; an IPv6 address as urlsplit gives it, without brackets.
HOST = re.compile(r"[a-z0-9]([a-z0-9.-]*[a-z0-9])?|[0-9a-f:.]+")


class _Wrong(Exception):
    """An entry of the document that is not right: where it is, and what is wrong."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}")


def parse_policy(text: str | None, account: str, reserved: frozenset[str]) -> Policy:
    """The policy of ``text`` (None: no rules, so only admins copy), for the app's own
    ``account`` and its own containers ``reserved``; ConfigurationError naming the entry."""
    empty = Policy(account=account, reserved=reserved)
    if text is None:
        return empty
    try:
        document = json.loads(text, object_pairs_hook=_unique)
    except _Wrong as error:
        raise ConfigurationError(f"{SETTING} {error}", code=SETTING) from None
    except (ValueError, RecursionError) as error:
        raise ConfigurationError(f"{SETTING} is not a JSON document: {error}", code=SETTING) from None
    try:
        rules = _rules(document, empty)
    except _Wrong as error:
        raise ConfigurationError(f"{SETTING} {error}", code=SETTING) from None
    return Policy(rules, account, reserved)


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise _Wrong(key, "is given twice in one object")
        seen[key] = value
    return seen


def _rules(document: Any, empty: Policy) -> tuple[Rule, ...]:
    _fields(document, "the document", {"rules"}, {"rules"})
    items = document["rules"]
    if not isinstance(items, list):
        raise _Wrong("rules", "must be a list of rules")
    rules = tuple(_rule(item, f"rules[{at}]", empty) for at, item in enumerate(items))
    seen: set[str] = set()
    for at, rule in enumerate(rules):
        if rule.name in seen:
            raise _Wrong(f"rules[{at}].name", f"{rule.name!r} names another rule too")
        seen.add(rule.name)
    return rules


def _rule(item: Any, where: str, empty: Policy) -> Rule:
    _fields(item, where, {"name", "read", "write", *SUBJECTS}, {"name", "read", "write"})
    name = item["name"]
    if not isinstance(name, str) or not RULE_NAME.fullmatch(name) or name in (ADMIN, RESERVED):
        raise _Wrong(f"{where}.name", f"must be 1-64 letters, digits, '.', '_' or '-', and not {ADMIN} or {RESERVED}")
    where = f"{where} ({name})"
    given = [kind for kind in SUBJECTS if kind in item]
    if len(given) != 1:
        raise _Wrong(where, "must name its callers by exactly one of role, group or principal")
    read = _scopes(item["read"], f"{where}.read", empty, writes=False)
    write = _scopes(item["write"], f"{where}.write", empty, writes=True)
    return Rule(name, _subject(given[0], item[given[0]], f"{where}.{given[0]}"), read, write)


def _subject(kind: str, value: Any, where: str) -> Subject:
    if not isinstance(value, str):
        raise _Wrong(where, "must be text")
    if kind == "role":
        if not 0 < len(value) <= 256 or not value.isprintable() or any(char.isspace() for char in value):
            raise _Wrong(where, "must be an app role's value: 1-256 printable characters, no spaces")
        return Subject(kind, value)
    if not GUID.fullmatch(value.lower()):
        raise _Wrong(where, "must be an object id (a GUID)")
    return Subject(kind, value.lower())


def _scopes(items: Any, where: str, empty: Policy, writes: bool) -> tuple[Scope, ...]:
    if not isinstance(items, list) or not items:
        raise _Wrong(where, "must list at least one entry")
    return tuple(_scope(item, f"{where}[{at}]", empty, writes) for at, item in enumerate(items))


def _scope(item: Any, where: str, empty: Policy, writes: bool) -> Scope:
    allowed = {"container", "prefix"} if writes else {"account", "host", "container", "prefix"}
    _fields(item, where, allowed, {"container"} if writes else set())
    if "account" in item and "host" in item:
        raise _Wrong(where, "names an account or a host, not both")
    if "prefix" in item and "container" not in item:
        raise _Wrong(where, "a prefix needs its container")
    account = _account(item["account"], f"{where}.account") if "account" in item else None
    host = _host(item["host"], f"{where}.host") if "host" in item else None
    if account is None and host is None:
        account = empty.account
    container = _container(item["container"], f"{where}.container", account, empty) if "container" in item else None
    prefix = _prefix(item.get("prefix", ""), f"{where}.prefix")
    return Scope(account=account, host=host, container=container, prefix=prefix)


def _account(value: Any, where: str) -> str:
    if names.account_problem(value) is not None:
        raise _Wrong(where, names.ACCOUNT_RULE)
    return str(value)


def _host(value: Any, where: str) -> str:
    """``name`` (port 443, as a URL without one) or ``name:port``, lower case; no pattern."""
    if not isinstance(value, str) or not value.isascii() or any(char in value for char in "/@?#*\\ "):
        raise _Wrong(where, "must be a host, name or name:port, with no pattern")
    try:
        parts = urlsplit(f"https://{value}/")
        port = parts.port or 443
    except ValueError:
        raise _Wrong(where, "must be a host, name or name:port (port 1-65535)") from None
    host = (parts.hostname or "").lower()
    if not HOST.fullmatch(host) or not 0 < port < 65536:
        raise _Wrong(where, "must be a host, name or name:port, with no pattern")
    return f"{host}:{port}"


def _container(value: Any, where: str, account: str | None, empty: Policy) -> str:
    if names.container_problem(value) is not None:
        raise _Wrong(where, names.CONTAINER_RULE)
    problem = empty.reserved_problem(Place(str(value), "x", account=account))
    if problem is not None:
        raise _Wrong(where, problem)
    return str(value)


def _prefix(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise _Wrong(where, "must be text: a name prefix ending in '/', or one blob's name")
    problem = names.prefix_problem(value) if value == "" or value.endswith("/") else names.blob_problem(value)
    if problem is not None:
        raise _Wrong(where, problem)
    return value


def _fields(item: Any, where: str, allowed: set[str], required: set[str]) -> None:
    if not isinstance(item, dict):
        raise _Wrong(where, "must be an object")
    unknown, missing = sorted(set(item) - allowed), sorted(required - set(item))
    if unknown:
        raise _Wrong(f"{where}.{unknown[0]}", "unknown field")
    if missing:
        raise _Wrong(f"{where}.{missing[0]}", "is required")

"""App settings, read once from the environment into a frozen object.

:meth:`Settings.from_env` reads every setting it knows on every call, so a test can
record exactly which names the code reads and check that ``local.settings.sample.json``
carries each of them. A missing or malformed setting raises one
:class:`~copy_ops.core.errors.ConfigurationError` naming it.

Size: about 330 lines: every setting is read here and nowhere else, by design.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit

from copy_ops.core import names, urls
from copy_ops.core.callers import AUTH_MODES
from copy_ops.core.connection import StorageConnection, read_connection
from copy_ops.core.errors import ConfigurationError
from copy_ops.core.ncrontab import Schedule, ScheduleError
from copy_ops.core.policy import Policy
from copy_ops.core.policy_document import parse_policy
from copy_ops.core.times import parse_time

T = TypeVar("T")

# The copy engines a request or COPY_ENGINE may name (copy_ops.copies.model.Engine's values).
ENGINES = ("auto", "async", "blocks")
# Azure fails a copy still pending after two weeks; deadlines stay well below that.
AZURE_COPY_LIMIT_SECONDS = 14 * 24 * 3600


# The most attempts a copy may be given, and the longest first backoff (seconds) between
# them: a request (or a setting) asking more is refused (copy_ops.copies.retry says why).
MOST_ATTEMPTS = 10
LONGEST_BACKOFF_SECONDS = 600


@dataclass(frozen=True)
class Settings:
    """Every app setting, parsed. The defaults here are the only ones: :meth:`from_env`
    reads them from these fields."""

    storage: StorageConnection
    sweep_schedule: str = "0 */1 * * * *"
    default_timeout_seconds: int = 3600
    max_timeout_seconds: int = 604800
    # Empty: the app's own account only (from_env puts its host here).
    allowed_source_hosts: tuple[str, ...] = ()
    allowed_destination_containers: tuple[str, ...] = ("*",)
    ledger_container: str = "copy-operations"
    # The measured best (docs/performance.md).
    sweep_concurrency: int = 32
    # Consumption's default functionTimeout is 5 minutes; host.json sets it to 5 minutes
    # too, so the default budget leaves a minute to finish in-flight work.
    sweep_budget_seconds: int = 240
    first_check_seconds: int = 15
    max_check_interval_seconds: int = 300
    start_grace_seconds: int = 300
    # The queue of the sweep's fan-out and of job enumeration.
    work_queue: str = "copy-ops-work"
    # Due operations one sweep settles itself; the rest go to the work queue, in batches,
    # for every instance to share (docs/sweep.md, "Fan-out", says why this number).
    fanout_threshold: int = 1000
    # The most sources one manifest job may list (a request body stays under 2 MiB).
    job_manifest_max: int = 1000
    # Blobs listed per page of a prefix job (a page is handed out as batches of 200 to start).
    job_page_size: int = 1000
    # Items per part of a job's report, about: a larger job's report is written in parts.
    job_report_part: int = 5000
    # How long a start attempt holds a job's item it recorded before another delivery may
    # take it over (copy_ops.jobs.progress.ITEM_CLAIM says why 10 to 30 seconds).
    job_item_claim_seconds: int = 30
    # Where the CloudEvents of final states go: a queue of the app's account, an Event
    # Grid topic (with the app's identity, or this access key), both, or neither (off).
    events_queue: str | None = None
    events_topic_endpoint: str | None = None
    events_topic_key: str | None = field(default=None, repr=False)
    # The engine of a request that names none: auto, async or blocks (docs/engines.md).
    engine: str = "auto"
    # With auto: the share of an async copy's time after which, still pending, it is
    # finished by the block engine. One half leaves the blocks as long as Azure had.
    escalate_at: float = 0.5
    # A request that names no ``retry``: how many attempts a copy is given at most, and the
    # first wait between them (docs/retry.md: why three, and why 30 seconds).
    retry_attempts: int = 3
    retry_backoff_seconds: int = 30
    # The block engine's requests in flight in one process (each moves one 8 MiB block):
    # the measured knee of a copy's speed (docs/performance.md, "Block engine").
    blocks_in_flight: int = 32
    # Work messages without the app's seal are taken if the queue took them in before this
    # (None: never). Set for a rolling upgrade from the version before seals, whose
    # instances send none (docs/trust.md, "The work queue, a trust boundary (issue 28)").
    work_unsealed_until: datetime | None = None
    # How callers are known (docs/callers.md): keys, the default, because the template's
    # deployment puts no App Service Authentication in front of the app, and without it nothing
    # strips a principal header a client sends; entra, or both, where the platform (or the
    # development host, playing it) authenticates callers.
    auth: str = "keys"
    # Who may copy what (COPY_POLICY); no rules: only admins copy.
    policy: Policy = field(default_factory=Policy)

    @property
    def announces(self) -> bool:
        """Whether final states are announced (an event target is configured)."""
        return self.events_queue is not None or self.events_topic_endpoint is not None

    @classmethod
    def work_queue_from_env(cls, env: Mapping[str, str]) -> str:
        """The work queue's name at indexing time, never failing (as the schedule)."""
        name = _Reader(env).text("COPY_WORK_QUEUE", "work_queue")
        return name if names.container_problem(name) is None else str(_DEFAULTS["work_queue"])

    @classmethod
    def schedule_from_env(cls, env: Mapping[str, str]) -> str:
        """The sweep's schedule alone, never failing: the timer is registered when the
        app is indexed, and a bad setting must not make every function vanish. A bad
        COPY_SWEEP_SCHEDULE is reported by :meth:`from_env` on every use instead."""
        try:
            return _schedule(_Reader(env).text("COPY_SWEEP_SCHEDULE", "sweep_schedule"))
        except ConfigurationError:
            return str(_DEFAULTS["sweep_schedule"])

    @classmethod
    def auth_from_env(cls, env: Mapping[str, str]) -> str:
        """COPY_AUTH at indexing time, never failing: a bad value is keys, whose function
        keys the host checks, and :meth:`from_env` reports it on every use."""
        mode = _Reader(env).text("COPY_AUTH", "auth").lower()
        return mode if mode in AUTH_MODES else str(_DEFAULTS["auth"])

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        reader = _Reader(env)
        storage = read_connection(reader.raw)
        limit = AZURE_COPY_LIMIT_SECONDS
        default_timeout = reader.integer("COPY_DEFAULT_TIMEOUT_SECONDS", "default_timeout_seconds", 1, limit)
        max_timeout = reader.integer("COPY_MAX_TIMEOUT_SECONDS", "max_timeout_seconds", 1, limit - 3600)
        if default_timeout > max_timeout:
            raise ConfigurationError(
                "COPY_DEFAULT_TIMEOUT_SECONDS must not exceed COPY_MAX_TIMEOUT_SECONDS",
                code="COPY_DEFAULT_TIMEOUT_SECONDS",
            )
        ledger = reader.text("COPY_LEDGER_CONTAINER", "ledger_container")
        if names.container_problem(ledger) is not None:
            raise ConfigurationError(
                f"COPY_LEDGER_CONTAINER {ledger!r} is not a valid container name",
                code="COPY_LEDGER_CONTAINER",
            )
        first_check = reader.integer("COPY_FIRST_CHECK_SECONDS", "first_check_seconds", 1, 86400)
        own_host = urlsplit(storage.blob_endpoint).netloc.lower()
        work_queue = _queue_name(reader.text("COPY_WORK_QUEUE", "work_queue"), "COPY_WORK_QUEUE")
        events_queue = _optional(reader.raw("COPY_EVENTS_QUEUE"), lambda name: _queue_name(name, "COPY_EVENTS_QUEUE"))
        # The app's own names, never a copy's container whatever the policy: the ledger, and
        # its queues' names with their poison queues' (a container so named would be mistaken for them).
        queues = [queue for queue in (work_queue, events_queue) if queue]
        own = frozenset({ledger, *queues, *(f"{queue}-poison" for queue in queues)})
        return cls(
            storage=storage,
            sweep_schedule=_schedule(reader.text("COPY_SWEEP_SCHEDULE", "sweep_schedule")),
            default_timeout_seconds=default_timeout,
            max_timeout_seconds=max_timeout,
            allowed_source_hosts=reader.host_patterns("COPY_ALLOWED_SOURCE_HOSTS", (own_host,)),
            allowed_destination_containers=reader.patterns(
                "COPY_ALLOWED_DESTINATION_CONTAINERS", "allowed_destination_containers"
            ),
            ledger_container=ledger,
            sweep_concurrency=reader.integer("COPY_SWEEP_CONCURRENCY", "sweep_concurrency", 1, 256),
            sweep_budget_seconds=reader.integer("COPY_SWEEP_BUDGET_SECONDS", "sweep_budget_seconds", 1, 3600),
            first_check_seconds=first_check,
            max_check_interval_seconds=reader.integer(
                "COPY_MAX_CHECK_INTERVAL_SECONDS", "max_check_interval_seconds", first_check, 86400
            ),
            start_grace_seconds=reader.integer("COPY_START_GRACE_SECONDS", "start_grace_seconds", 1, 3600),
            work_queue=work_queue,
            fanout_threshold=reader.integer("COPY_FANOUT_THRESHOLD", "fanout_threshold", 1, 1_000_000),
            job_manifest_max=reader.integer("COPY_JOB_MANIFEST_MAX", "job_manifest_max", 1, 5000),
            job_page_size=reader.integer("COPY_JOB_PAGE_SIZE", "job_page_size", 1, 5000),
            job_report_part=reader.integer("COPY_JOB_REPORT_PART", "job_report_part", 100, 20000),
            job_item_claim_seconds=reader.integer("COPY_JOB_ITEM_CLAIM_SECONDS", "job_item_claim_seconds", 10, 30),
            events_queue=events_queue,
            events_topic_endpoint=_optional(reader.raw("COPY_EVENTS_TOPIC_ENDPOINT"), _topic_endpoint),
            events_topic_key=_topic_key(reader.raw("COPY_EVENTS_TOPIC_KEY"), reader.raw("COPY_EVENTS_TOPIC_ENDPOINT")),
            engine=reader.choice("COPY_ENGINE", "engine", ENGINES),
            escalate_at=reader.share("COPY_ESCALATE_AT", "escalate_at"),
            blocks_in_flight=reader.integer("COPY_BLOCKS_IN_FLIGHT", "blocks_in_flight", 1, 256),
            retry_attempts=reader.integer("COPY_RETRY_ATTEMPTS", "retry_attempts", 1, MOST_ATTEMPTS),
            retry_backoff_seconds=reader.integer(
                "COPY_RETRY_BACKOFF_SECONDS", "retry_backoff_seconds", 0, LONGEST_BACKOFF_SECONDS
            ),
            work_unsealed_until=_optional(reader.raw("COPY_WORK_UNSEALED_UNTIL"), _unsealed_until),
            auth=_auth(reader.choice("COPY_AUTH", "auth", AUTH_MODES), reader.raw("WEBSITE_AUTH_ENABLED")),
            policy=parse_policy(reader.raw("COPY_POLICY"), storage.account.name, own),
        )


_DEFAULTS: dict[str, Any] = {item.name: item.default for item in fields(Settings)}


class _Reader:
    """Reads one setting at a time; an unset or blank setting is its field's default."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def raw(self, name: str) -> str | None:
        value = self._env.get(name)
        if value is None or not value.strip():
            return None
        return value.strip()

    def text(self, name: str, field: str) -> str:
        return self.raw(name) or str(_DEFAULTS[field])

    def integer(self, name: str, field: str, low: int, high: int) -> int:
        value = self.raw(name)
        if value is None:
            return int(_DEFAULTS[field])
        if not (value.isascii() and value.lstrip("-").isdigit()):
            raise ConfigurationError(f"{name} must be a whole number, not {value!r}", code=name)
        number = int(value)
        if not low <= number <= high:
            raise ConfigurationError(f"{name} must be between {low} and {high}, not {number}", code=name)
        return number

    def choice(self, name: str, field: str, allowed: tuple[str, ...]) -> str:
        value = self.text(name, field).lower()
        if value not in allowed:
            raise ConfigurationError(f"{name} must be one of {', '.join(allowed)}, not {value!r}", code=name)
        return value

    def share(self, name: str, field: str) -> float:
        """A share of a whole, strictly between 0 and 1 (0.5, or 50%)."""
        value = self.raw(name)
        if value is None:
            return float(_DEFAULTS[field])
        text = value[:-1].strip() if value.endswith("%") else value
        try:
            number = float(text) / (100 if value.endswith("%") else 1)
        except ValueError:
            number = -1.0
        if not 0 < number < 1:  # also refuses nan and inf
            raise ConfigurationError(
                f"{name} must be a share between 0 and 1 (such as 0.5 or 50%), not {value!r}", code=name
            )
        return number

    def patterns(self, name: str, field: str) -> tuple[str, ...]:
        return self._patterns(name, tuple(_DEFAULTS[field]))

    def _patterns(self, name: str, default: tuple[str, ...]) -> tuple[str, ...]:
        value = self.raw(name)
        if value is None:
            return default
        items = tuple(item.strip().lower() for item in value.split(",") if item.strip())
        if not items:
            raise ConfigurationError(f"{name} lists no pattern", code=name)
        return items

    def host_patterns(self, name: str, default: tuple[str, ...]) -> tuple[str, ...]:
        items = self._patterns(name, default)
        for item in items:
            try:
                urls.check_host_pattern(item)
            except ValueError as exc:
                raise ConfigurationError(f"{name}: {exc}", code=name) from None
        return items


def _queue_name(name: str, setting: str) -> str:
    # Queue names follow the container rule: 3-63 lowercase letters, digits, single hyphens.
    if names.container_problem(name) is not None:
        raise ConfigurationError(f"{setting} {name!r} is not a valid queue name", code=setting)
    return name


def _optional(value: str | None, parse: Callable[[str], T]) -> T | None:
    return None if value is None else parse(value)


def _topic_endpoint(value: str) -> str:
    """An Event Grid topic's endpoint: https (plain http only on this machine, for tests
    and local receivers), no user info, no query (a key goes in COPY_EVENTS_TOPIC_KEY)."""
    parts = urlsplit(value)
    local = (parts.hostname or "") in ("127.0.0.1", "localhost", "::1")
    if parts.scheme != "https" and not (parts.scheme == "http" and local):
        raise ConfigurationError(
            "COPY_EVENTS_TOPIC_ENDPOINT must be an https URL (http only on localhost)",
            code="COPY_EVENTS_TOPIC_ENDPOINT",
        )
    if parts.username or parts.password or parts.query or not parts.hostname:
        raise ConfigurationError(
            "COPY_EVENTS_TOPIC_ENDPOINT must be a plain endpoint URL: no user info, no query string",
            code="COPY_EVENTS_TOPIC_ENDPOINT",
        )
    return value


def _topic_key(key: str | None, endpoint: str | None) -> str | None:
    if key is not None and endpoint is None:
        raise ConfigurationError(
            "COPY_EVENTS_TOPIC_KEY is set but COPY_EVENTS_TOPIC_ENDPOINT is not: events would go nowhere",
            code="COPY_EVENTS_TOPIC_KEY",
        )
    return key


def _auth(mode: str, platform: str | None) -> str:
    """COPY_AUTH, held to what is in front of the app: a principal is taken only where App
    Service Authentication sets its headers and strips a client's (the platform says so in
    WEBSITE_AUTH_ENABLED; the development host, when it plays it)."""
    if mode != "keys" and (platform or "").lower() != "true":
        raise ConfigurationError(
            f"COPY_AUTH is {mode}, but App Service Authentication is not on in front of the app "
            "(WEBSITE_AUTH_ENABLED is not True): without it anyone can send the principal headers. "
            "Turn it on (docs/callers.md), or run locally with the development host, which plays it",
            code="COPY_AUTH",
        )
    return mode


def _schedule(expression: str) -> str:
    try:
        Schedule.parse(expression)
    except ScheduleError as exc:
        raise ConfigurationError(
            f"COPY_SWEEP_SCHEDULE is not a six-field NCRONTAB expression: {exc}", code="COPY_SWEEP_SCHEDULE"
        ) from None
    return expression


def _unsealed_until(text: str) -> datetime:
    try:
        return parse_time(text)
    except (ValueError, OverflowError):
        raise ConfigurationError(
            "COPY_WORK_UNSEALED_UNTIL must be an RFC 3339 time with an offset, such as 2026-12-06T06:00:00Z",
            code="COPY_WORK_UNSEALED_UNTIL",
        ) from None

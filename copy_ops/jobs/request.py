"""Validation of a job request: every violation found, each naming its field. Pure.

The rules of one copy apply to a job (:mod:`copy_ops.copies.request`: deadline, metadata,
``on_abort``, the allowed hosts and containers); a job adds its source (a prefix, by URL
or by name, or a manifest of single sources) and its destination (a container and a
prefix), and refuses a destination inside its own source (the job would copy its copies).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from copy_ops.copies.engines import engine_of
from copy_ops.copies.model import Engine, ManifestEntry
from copy_ops.copies.request import check_destination_container, fingerprint, opened, terms_of
from copy_ops.copies.retry import SAS_TRIED_ONCE
from copy_ops.copies.sources import (
    Source,
    too_far_for_minted_sas,
)
from copy_ops.core import names
from copy_ops.core.problems import Problems, guarded
from copy_ops.core.settings import Settings
from copy_ops.jobs.model import JobRequest, Listing, PrefixSource
from copy_ops.jobs.sources import SourceReader


def parse_job_request(body: Any, settings: Settings, now: datetime) -> JobRequest:
    """The validated request, or :class:`InvalidRequest`/:class:`Forbidden` listing every problem."""
    body, problems = opened(body)
    destination = guarded("destination", problems, lambda: _destination(body.get("destination"), problems))
    container, prefix = destination or (None, "")
    if container is not None:
        check_destination_container(container, settings, problems)
    read = SourceReader(settings, problems)
    guarded("source", problems, lambda: read.source(body.get("source")))
    # The block engine reads with the app's token, not a SAS it mints: no key's lifetime
    # limits its deadline. (auto may still copy some items with Copy Blob: the limit stays.)
    minted = read.minted and engine_of(body.get("engine", settings.engine), Problems()) is not Engine.BLOCKS
    no_lease = None if read.all_own else "a lease can be held only on sources in the app's own storage account"
    terms = terms_of(
        body,
        settings,
        now,
        problems,
        too_far=lambda deadline: too_far_for_minted_sas(deadline, now) if minted else None,
        no_lease=no_lease,
        no_retry=SAS_TRIED_ONCE if read.sas else None,
    )
    if container is not None and read.prefix is not None:
        _check_overlap(read.prefix, container, prefix, problems)
        _check_room(prefix, problems)
    if container is not None:
        _check_manifest_names(read.manifest, prefix, problems)
    _check_collisions(read.manifest, problems)

    problems.raise_any()
    assert container is not None and terms is not None
    return JobRequest(
        source=read.prefix,
        manifest=tuple(entry for entry, _, _ in read.manifest),
        sas=read.sas,
        destination_container=container,
        destination_prefix=prefix,
        terms=terms,
        fingerprint=fingerprint(body),
    )


def _destination(value: Any, problems: Problems) -> tuple[str | None, str]:
    if not isinstance(value, Mapping):
        problems.bad("destination", "must be an object with container and, optionally, prefix")
        return None, ""
    for name in sorted(set(value) - {"container", "prefix"}):
        problems.bad(f"destination.{name}", "unknown field")
    container, prefix = value.get("container"), value.get("prefix", "")
    container_problem, prefix_problem = names.container_problem(container), names.prefix_problem(prefix)
    if container_problem is not None:
        problems.bad("destination.container", container_problem)
    if prefix_problem is not None:
        problems.bad("destination.prefix", prefix_problem)
    if container_problem or prefix_problem:
        return None, ""
    return str(container), str(prefix)


def _check_overlap(source: PrefixSource, container: str, prefix: str, problems: Problems) -> None:
    """A destination whose names can fall under the source's prefix: a later page would
    list the job's own copies and copy them again. In one container that is so whenever
    one prefix begins the other: a destination ``a`` under a source ``ab/`` lands a blob
    ``b/x`` at ``ab/x``. Refused rather than filtered out of the listing: a filter would
    also hide the caller's own blobs that happen to lie there, and say nothing."""
    if source.listing is not Listing.OWN or source.container != container:
        return
    if prefix.startswith(source.prefix) or source.prefix.startswith(prefix):
        problems.bad(
            "destination.prefix",
            f"overlaps the source prefix {source.prefix!r} in the same container: "
            "the job would copy its own copies; choose a prefix neither begins nor is begun by it",
        )


def _check_room(prefix: str, problems: Problems) -> None:
    """The destination prefix must leave room for a name: an item's name is the prefix and
    at least one character of the blob's name below the source's prefix. (Which names a
    listing will bring is not known here: an item whose name does not fit is recorded as
    failed, ``unsafe_name``, and the job goes on.)"""
    if len(prefix) >= names.BLOB_NAME_MAX:
        problems.bad(
            "destination.prefix",
            f"leaves no room for a blob name: prefix and name together are at most {names.BLOB_NAME_MAX} characters",
        )


def _check_manifest_names(manifest: list[tuple[ManifestEntry, Source, int]], prefix: str, problems: Problems) -> None:
    """Each manifest entry's destination, the prefix and its name, must be a name copy-ops
    accepts: known at the request, so refused there, not found out item by item."""
    for entry, _, index in manifest:
        problem = names.blob_problem(prefix + entry.name)
        if problem is not None:
            problems.bad(f"source.blobs[{index}]", f"its destination, destination.prefix + its name, {problem}")


def _check_collisions(manifest: list[tuple[ManifestEntry, Source, int]], problems: Problems) -> None:
    seen: dict[str, int] = {}
    for entry, _, index in manifest:
        if entry.name in seen:
            problems.bad(
                f"source.blobs[{index}]",
                f"lands on the same destination as source.blobs[{seen[entry.name]}] (the blob names are the same)",
            )
        seen.setdefault(entry.name, index)

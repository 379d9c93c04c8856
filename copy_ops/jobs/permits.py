"""Whether the caller may start a parsed job request: ``COPY_POLICY`` applied to its source
prefix (or container) and its destination prefix, or to every entry of its manifest, as
:mod:`copy_ops.copies.permits` applies it to one copy (docs/callers.md, "The policy").

A job is refused whole when one of its sources is outside the caller's policy: nothing is
recorded, listed or started, and the 403 names each entry outside (``source.blobs[3]``).
A manifest entry is checked as the copy it becomes: its source, to the destination prefix
and its name. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import replace

from copy_ops.copies.permits import place_of
from copy_ops.core import urls
from copy_ops.core.callers import Caller
from copy_ops.core.policy import Place, check, decide, forbidden, place_of_url
from copy_ops.core.settings import Settings
from copy_ops.jobs.model import JobRequest, Listing, PrefixSource


def permit_job(request: JobRequest, caller: Caller, settings: Settings) -> str:
    """The rules that let ``caller`` start the job (a manifest's, each once, in order);
    :class:`~copy_ops.core.errors.Forbidden` (403) naming ``source``, ``destination`` or each
    manifest entry outside (``source.blobs[3]``), and the rule, when one does not."""
    policy, own = settings.policy, settings.policy.account
    destination = Place(request.destination_container, request.destination_prefix, account=own, prefix=True)
    if request.source is not None:
        return check(policy, caller, _prefix_place(request.source, settings), destination)
    verdicts = [
        decide(
            policy,
            caller,
            place_of(entry.source, settings),
            replace(destination, name=request.destination_prefix + entry.name, prefix=False),
            source_field=f"source.blobs[{index}]",
        )
        for index, entry in enumerate(request.manifest)
    ]
    refusal = forbidden(verdicts)
    if refusal is not None:
        raise refusal
    return ", ".join(dict.fromkeys(str(verdict.rule) for verdict in verdicts))


def _prefix_place(source: PrefixSource, settings: Settings) -> Place:
    """Every name under the source's prefix, in its container, as the policy sees it."""
    if source.listing is Listing.OWN:
        return Place(source.container, source.prefix, account=settings.policy.account, prefix=True)
    if source.listing is Listing.IDENTITY:
        return Place(source.container, source.prefix, account=source.account, prefix=True)
    container = place_of_url(urls.parse_container_url(source.url), settings.storage.blob_endpoint, prefix=True)
    return replace(container, name=source.prefix)

"""Whether the caller may make a parsed copy request: ``COPY_POLICY`` applied to its source
and its destination (:mod:`copy_ops.core.policy`; docs/callers.md, "The policy").

The edge calls :func:`permit_copy` after the request is parsed and before the service sees
it: a refused request reaches no storage, records nothing (not its idempotency key either)
and starts nothing. The places are read from the typed request, so the policy compares the
very names the copy would address. Pure: no I/O.
"""

from __future__ import annotations

from copy_ops.copies.model import BlobRef, CopyRequest, ForeignBlob
from copy_ops.core import urls
from copy_ops.core.callers import Caller
from copy_ops.core.policy import Place, check, place_of_url
from copy_ops.core.settings import Settings


def place_of(what: str | BlobRef | ForeignBlob, settings: Settings) -> Place:
    """Where a copy reads or writes, as the policy sees it: a blob of the app's account, of
    another account the app reads with its identity, or a URL's (an account only when the
    URL is one of the app's cloud, else its host)."""
    if isinstance(what, BlobRef):
        return Place(what.container, what.blob, account=settings.policy.account)
    if isinstance(what, ForeignBlob):
        return Place(what.container, what.blob, account=what.account)
    return place_of_url(urls.parse_blob_url(what), settings.storage.blob_endpoint)


def permit_copy(request: CopyRequest, caller: Caller, settings: Settings) -> str:
    """The rule that lets ``caller`` make the copy; :class:`~copy_ops.core.errors.Forbidden`
    (403) naming ``source`` or ``destination`` and the rule when none does."""
    # A source in the app's account given as a URL is read as that blob: the same place.
    source = request.source_blob or request.source
    return check(settings.policy, caller, place_of(source, settings), place_of(request.destination, settings))

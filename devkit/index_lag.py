"""A blob index that lags, as Azure's does: Find Blobs by Tags answered as of N seconds ago.

Azure's blob index is eventually consistent: a tag written now shows up in queries
after a lag, and a blob deleted or re-tagged can still be returned for a while.
Azurite's index is always current. The pending-copy proxy records every tag write
and delete that passes through it here, and rewrites Find Blobs by Tags answers so
that each blob touched in the last ``lag`` seconds appears as it was ``lag`` seconds
ago (or as of the moment the index was frozen): a new record is missing, a deleted one
still appears (a ghost), a re-tagged one matches by its old tags. Blobs untouched for
longer are as Azurite says.

It understands the tag queries copy-ops sends: comparisons ``"key" op 'value'``
(``=``, ``<``, ``<=``, ``>``, ``>=``) joined by ``AND``, optionally ``@container``; a key of
letters, digits and underscores may go unquoted (``key2='default'``), as Azure's own
recordings send it.
Ghosts are added to the first page of an answer only (enough for the ledger's
queries, which read every page).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qsl
from xml.etree import ElementTree as ET

_CONDITION = re.compile(r"\s*(\"[^\"]+\"|@container|[A-Za-z0-9_]+)\s*(=|<=|>=|<|>)\s*'([^']*)'\s*")
_COMPARE: dict[str, Callable[[str, str], bool]] = {
    "=": lambda a, b: a == b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


@dataclass(frozen=True)
class Condition:
    key: str  # a tag name, or "@container"
    op: str
    value: str


def parse_query(query: str) -> list[Condition]:
    conditions = []
    for part in re.split(r"\s+AND\s+", query.strip(), flags=re.IGNORECASE):
        match = _CONDITION.fullmatch(part)
        if match is None:
            raise ValueError(f"unsupported tag query part {part!r}")
        conditions.append(Condition(match[1].strip('"'), match[2], match[3]))
    return conditions


def matches(conditions: list[Condition], container: str, tags: dict[str, str]) -> bool:
    for condition in conditions:
        actual = container if condition.key == "@container" else tags.get(condition.key)
        if actual is None or not _COMPARE[condition.op](actual, condition.value):
            return False
    return True


def tags_header(value: str) -> dict[str, str]:
    """``x-ms-tags``: URL-encoded ``k=v&k2=v2``."""
    return dict(parse_qsl(value, keep_blank_values=True))


def tags_body(body: bytes) -> dict[str, str]:
    """Set Blob Tags' XML body."""
    root = ET.fromstring(body)
    return {tag.findtext("Key") or "": tag.findtext("Value") or "" for tag in root.iter("Tag")}


class LaggingIndex:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.lag = 0.0
        # When set, the index shows everything as of this moment, however long ago:
        # a lag that lasts exactly as long as a test needs, with no timing involved.
        self.frozen_at: float | None = None
        self._clock = clock
        # False (the stand-in's, which runs for days): only each blob's latest tags are
        # kept, so the index holds what Azurite holds and no more; it cannot lag then.
        self.keep_history = True
        self._lock = threading.Lock()
        # (container, blob) -> [(when, tags or None for deleted)], oldest first
        self._history: dict[tuple[str, str], list[tuple[float, dict[str, str] | None]]] = {}

    def reset(self) -> None:
        with self._lock:
            self.lag = 0.0
            self.frozen_at = None
            self._history.clear()

    def freeze(self) -> None:
        """From now on, answer every query as the index stands at this moment."""
        self.frozen_at = self._clock()

    def record(self, container: str, blob: str, tags: dict[str, str] | None) -> None:
        """A write of ``tags`` (None: the blob was deleted) that storage accepted just now."""
        with self._lock:
            if not self.keep_history:
                if tags is None:
                    self._history.pop((container, blob), None)
                else:
                    self._history[(container, blob)] = [(self._clock(), tags)]
                return
            self._history.setdefault((container, blob), []).append((self._clock(), tags))

    def forget_container(self, container: str) -> None:
        """The container was deleted: each of its blobs is, now."""
        with self._lock:
            names = [blob for (where, blob), events in self._history.items() if where == container and events[-1][1]]
        for blob in names:
            self.record(container, blob, None)

    def answer(
        self,
        answer: bytes,
        query: str,
        container: str | None,
        marker: str | None,
        most: int,
        asked_most: str | None = None,
    ) -> bytes:
        """Find Blobs by Tags answered from every tag write the proxy saw, paged as Azure
        pages it (``most`` a page, ``NextMarker`` after each but the last), as of ``lag``
        seconds ago, in Azure's elements: ``Marker`` (the one asked with), ``Where``,
        ``MaxResults`` (``asked_most``, as asked), ``Blobs``, ``NextMarker``. Azurite itself
        looks only at the first ``maxresults`` blobs of the container, gives no marker after a
        page it filtered short (docs/ledger.md), and echoes neither marker nor maxresults."""
        conditions = parse_query(query)
        keys = [c.key for c in conditions if c.key != "@container"]
        horizon = self._clock() - self.lag if self.frozen_at is None else self.frozen_at
        with self._lock:
            then = {key: _as_of(events, horizon) for key, events in self._history.items()}
        found = sorted(
            (name if container else f"{where}/{name}", where, name, tags)
            for (where, name), tags in then.items()
            if tags is not None and container in (None, where) and matches(conditions, where, tags)
        )
        if marker:
            found = [item for item in found if item[0] > marker]
        root = ET.fromstring(answer)
        blobs = root.find("Blobs")
        assert blobs is not None
        for element in list(blobs):
            blobs.remove(element)
        for _, where, name, tags in found[:most]:
            blobs.append(_blob_element(where, name, {k: tags[k] for k in keys if k in tags}))
        next_marker = ET.Element("NextMarker")
        next_marker.text = found[most - 1][0] if len(found) > most else None
        echo = root.find("Where")
        if echo is None:
            echo = ET.Element("Where")
            echo.text = query
        for element in list(root):
            root.remove(element)
        if marker:
            ET.SubElement(root, "Marker").text = marker
        root.append(echo)
        if asked_most:
            ET.SubElement(root, "MaxResults").text = asked_most
        root.extend((blobs, next_marker))
        return b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>' + ET.tostring(root)

    def rewrite(self, answer: bytes, query: str, first_page: bool) -> bytes:
        """Azurite's Find Blobs by Tags answer, as an index ``lag`` seconds behind would give it."""
        if self.lag <= 0 and self.frozen_at is None:
            return answer
        conditions = parse_query(query)
        keys = [c.key for c in conditions if c.key != "@container"]
        horizon = self._clock() - self.lag if self.frozen_at is None else self.frozen_at
        root = ET.fromstring(answer)
        blobs = root.find("Blobs")
        assert blobs is not None
        with self._lock:
            recent = {key: events for key, events in self._history.items() if events[-1][0] > horizon}
            then = {key: _as_of(events, horizon) for key, events in recent.items()}
        for element in list(blobs):
            key = (element.findtext("ContainerName") or "", element.findtext("Name") or "")
            if key in recent:
                blobs.remove(element)  # as Azurite says now: too new for a lagging index
        if first_page:
            for (container, name), tags in sorted(then.items()):
                if tags is not None and matches(conditions, container, tags):
                    blobs.append(_blob_element(container, name, {k: tags[k] for k in keys if k in tags}))
        return b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>' + ET.tostring(root)


def _as_of(events: list[tuple[float, dict[str, str] | None]], moment: float) -> dict[str, str] | None:
    tags = None
    for when, value in events:
        if when > moment:
            break
        tags = value
    return tags


def _blob_element(container: str, name: str, tags: dict[str, str]) -> ET.Element:
    blob = ET.Element("Blob")
    ET.SubElement(blob, "Name").text = name
    ET.SubElement(blob, "ContainerName").text = container
    tag_set = ET.SubElement(ET.SubElement(blob, "Tags"), "TagSet")
    for key, value in tags.items():
        tag = ET.SubElement(tag_set, "Tag")
        ET.SubElement(tag, "Key").text = key
        ET.SubElement(tag, "Value").text = value
    return blob

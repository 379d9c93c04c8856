"""Container, blob and prefix names: which ones copy-ops accepts, decided in one place.

A blob name travels as a URL path, and URL clients rewrite paths before they send
them: ``..`` and ``.`` segments are removed (yarl, under aiohttp, does it), some treat
``\\`` as ``/``, some decode percent-escapes once more, some apply Unicode NFKC
(two U+FF0E become ``..``), old .NET strips trailing dots from segments, servlet-style
servers drop ``;params``, and a naive client cuts the path at ``?`` or ``#``. With a
bearer token or a SAS (neither signs the path) such a rewrite can address another
container than the one validated. So a name is accepted only if none of those
readings of it can change its segments: every check here looks at all of them.

Everything is pure. :func:`path_is_stable` is the storage adapter's last check on
the URL it is about to send.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import unquote

CONTAINER_NAME = re.compile(r"(?!.*--)[a-z0-9][a-z0-9-]{1,61}[a-z0-9]")
ACCOUNT_NAME = re.compile(r"[a-z0-9]{3,24}")
ACCOUNT_RULE = "must be a storage account name: 3-24 lowercase letters and digits"
BLOB_NAME_MAX = 1024
CONTAINER_RULE = "must be a container name: 3-63 lowercase letters, digits and single hyphens"
SEGMENT_RULE = (
    "segments must not be empty, '.' or '..', or end with '.'; no backslashes, "
    "and no percent-encoded or look-alike '.', '/' or '\\'"
)
# Percent-decoding is applied this many times at most: enough for any client chain
# seen in practice (double encoding), bounded for a hostile name.
_DECODE_ROUNDS = 3


def container_problem(name: object) -> str | None:
    """Why ``name`` is not an acceptable container name, or None."""
    if isinstance(name, str) and CONTAINER_NAME.fullmatch(name):
        return None
    return CONTAINER_RULE


def account_problem(name: object) -> str | None:
    """Why ``name`` is not an acceptable storage account name, or None."""
    if isinstance(name, str) and ACCOUNT_NAME.fullmatch(name):
        return None
    return ACCOUNT_RULE


def blob_problem(name: object) -> str | None:
    """Why ``name`` is not an acceptable blob name, or None."""
    if not isinstance(name, str) or not 0 < len(name) <= BLOB_NAME_MAX:
        return f"must be a blob name of 1-{BLOB_NAME_MAX} characters"
    return _path_problem(name)


def prefix_problem(prefix: object) -> str | None:
    """Why ``prefix`` is not an acceptable name prefix (empty, or ending in ``/``), or None."""
    if not isinstance(prefix, str) or len(prefix) > BLOB_NAME_MAX:
        return f"must be a name prefix of at most {BLOB_NAME_MAX} characters"
    if prefix == "":
        return None
    return _path_problem(prefix[:-1] if prefix.endswith("/") else prefix)


def _path_problem(name: str) -> str | None:
    if "\\" in name:
        return "must not contain a backslash"
    raw_segments = len(name.split("/"))
    for form in _readings(name):
        if not form.isprintable():
            return "must be printable: no control or format characters, also when percent-decoded"
        segments = form.replace("\\", "/").split("/")
        if len(segments) != raw_segments or not all(_segment_ok(segment) for segment in segments):
            return SEGMENT_RULE
        # A naive client cuts the path at the first ? or #: what is left must be sound too.
        cut = re.split(r"[?#]", form, maxsplit=1)[0].replace("\\", "/").split("/")
        if cut != segments and not all(_segment_ok(segment) for segment in [*cut[:-1], cut[-1] or "x"]):
            return SEGMENT_RULE
    return None


def _segment_ok(segment: str) -> bool:
    core = segment.split(";", 1)[0]  # servlet-style path parameters are dropped by some servers
    return bool(segment) and core.strip(".") != "" and not core.endswith(".")


def _readings(name: str) -> list[str]:
    """The name as different URL clients could read it: as given, percent-decoded once or
    more, and each of those under Unicode NFKC."""
    forms = [name]
    for _ in range(_DECODE_ROUNDS):
        decoded = unquote(forms[-1], errors="replace")
        if decoded == forms[-1]:
            break
        forms.append(decoded)
    return forms + [unicodedata.normalize("NFKC", form) for form in forms]


def remove_dot_segments(path: str) -> str:
    """RFC 3986, section 5.2.4: what a conforming URL client makes of ``path``."""
    output: list[str] = []
    for segment in path.split("/"):
        if segment == "..":
            if output and output[-1] != "":
                output.pop()
        elif segment != ".":
            output.append(segment)
    if path.endswith(("/.", "/..")):
        output.append("")
    return "/".join(output)


def path_is_stable(path: str) -> bool:
    """True when no URL client would send ``path`` (raw, percent-encoded) as another path."""
    lowered = path.lower()
    if "\\" in path or "%5c" in lowered or "//" in path:
        return False
    return all(remove_dot_segments(form) == form for form in (path, unquote(path)))

"""Start-request bodies for tests, naming blobs of the test's own containers."""

from __future__ import annotations

from typing import Any


def copy_body(src: str, dst: str, name: str = "a.bin", dest_name: str | None = None, **fields: Any) -> dict[str, Any]:
    return {
        "source": {"container": src, "blob": name},
        "destination": {"container": dst, "blob": dest_name or name},
        **fields,
    }

"""The documents side of the adapter (:class:`copy_ops.copies.ports.Documents`): the ledger's
JSON blobs, written with ETags and index tags, found by tag and listed by name."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from azure.core import MatchConditions

from copy_ops.copies.model import BlobRef
from copy_ops.copies.ports import StoredDocument, Tagged
from copy_ops.storage.account import Account
from copy_ops.storage.errors import ignoring

NOT_FOUND = 404
CONFLICT = 409


class DocumentSide(Account):
    async def ensure_container(self, container: str) -> None:
        await self._run(ignoring(self._container(container).create_container(), CONFLICT))

    async def create_document(self, container: str, name: str, data: bytes, tags: dict[str, str]) -> str:
        upload = self._blob(BlobRef(container, name)).upload_blob(
            data, overwrite=False, tags=tags, match_condition=MatchConditions.IfMissing
        )
        return str((await self._run(upload))["etag"])

    async def replace_document(self, container: str, name: str, data: bytes, tags: dict[str, str], etag: str) -> str:
        upload = self._blob(BlobRef(container, name)).upload_blob(
            data, overwrite=True, tags=tags, etag=etag, match_condition=MatchConditions.IfNotModified
        )
        return str((await self._run(upload))["etag"])

    async def read_document(self, container: str, name: str) -> StoredDocument:
        blob = self._blob(BlobRef(container, name))

        async def call() -> StoredDocument:
            download = await blob.download_blob()
            return StoredDocument(await download.readall(), str(download.properties.etag))

        return await self._run(call())

    async def delete_document(self, container: str, name: str) -> None:
        await self._run(ignoring(self._blob(BlobRef(container, name)).delete_blob(), NOT_FOUND))

    async def find_by_tags(self, container: str, query: str, page_size: int) -> AsyncIterator[str]:
        pages = self._container(container).find_blobs_by_tags(query, results_per_page=page_size).by_page()
        while (found := await self._run(_next_page(pages))) is not None:
            for name in found:
                yield name

    async def find_tagged(
        self, container: str, query: str, limit: int, continuation: str | None
    ) -> tuple[list[Tagged], str | None]:
        pages = self._container(container).find_blobs_by_tags(query, results_per_page=limit).by_page(continuation)

        async def page() -> list[Tagged]:
            try:
                found = await pages.__anext__()
            except StopAsyncIteration:
                return []
            return [Tagged(str(item.name), dict(item.tags or {})) async for item in found]

        items = await self._run(page())
        return items, getattr(pages, "continuation_token", None) or None

    async def put_document(self, container: str, name: str, data: bytes, content_type: str) -> None:
        from azure.storage.blob import ContentSettings

        upload = self._blob(BlobRef(container, name)).upload_blob(
            data, overwrite=True, content_settings=ContentSettings(content_type=content_type)
        )
        await self._run(upload)

    async def list_names(
        self, container: str, prefix: str, limit: int, continuation: str | None
    ) -> tuple[list[str], str | None]:
        pages = self._container(container).list_blobs(name_starts_with=prefix, results_per_page=limit)
        by_page = pages.by_page(continuation)
        found = await self._run(_next_page(by_page))
        return found or [], getattr(by_page, "continuation_token", None)


async def _next_page(pages: AsyncIterator[AsyncIterator[Any]]) -> list[str] | None:
    """The names on the next page, or None after the last."""
    try:
        page = await pages.__anext__()
    except StopAsyncIteration:
        return None
    return [str(item.name) async for item in page]

"""The sources side of the adapter (:class:`copy_ops.jobs.ports.Sources`): a page of a job's
source listed, in the app's account, in another through the app's identity, or by the
container URL the caller gave (with its SAS, which goes into this one request only)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from copy_ops.core import names
from copy_ops.core.errors import UnsafeName
from copy_ops.jobs.model import Listing, PrefixSource
from copy_ops.jobs.ports import Listed
from copy_ops.storage.account import Account

if TYPE_CHECKING:
    from azure.storage.blob.aio import ContainerClient


class SourceSide(Account):
    async def list_source(
        self, source: PrefixSource, sas: str | None, marker: str | None, page_size: int
    ) -> tuple[list[Listed], str | None]:
        problem = names.container_problem(source.container) or names.prefix_problem(source.prefix)
        if problem is not None:
            raise UnsafeName(f"refused to list {source.container!r}/{source.prefix!r}: {problem}", code="UnsafeName")

        async def call() -> tuple[list[Listed], str | None]:
            if source.listing is Listing.OWN:
                return await _page(self._container(source.container), source.prefix, marker, page_size)
            if source.listing is Listing.IDENTITY:
                if self._delegation is None or source.account is None:
                    raise UnsafeName(
                        "a source in another account needs an identity-based connection", code="NoIdentity"
                    )
                client = self._delegation.client(source.account).get_container_client(source.container)
                return await _page(client, source.prefix, marker, page_size)
            from azure.storage.blob.aio import ContainerClient

            url = f"{source.url}?{sas}" if sas else source.url
            async with ContainerClient.from_container_url(url, **self._client_options()) as client:
                return await _page(client, source.prefix, marker, page_size)

        return await self._run(call(), callers=True)


async def _page(
    client: ContainerClient, prefix: str, marker: str | None, page_size: int
) -> tuple[list[Listed], str | None]:
    pages = client.list_blobs(name_starts_with=prefix or None, results_per_page=page_size).by_page(marker)
    try:
        page = await pages.__anext__()
    except StopAsyncIteration:
        return [], None
    items = [Listed(str(item.name), int(item.size or 0)) async for item in page]
    return items, getattr(pages, "continuation_token", None) or None

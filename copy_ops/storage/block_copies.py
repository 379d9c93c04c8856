"""The block engine's side of the adapter (:class:`copy_ops.copies.ports.BlockCopies`):
Put Blob From URL, Put Block From URL and Put Block List on the async SDK.

How the source is authorized, per request, never kept:

* a blob of another account (``ForeignBlob``): the app's own bearer token, as
  ``x-ms-copy-source-authorization`` (the SDK's ``source_authorization``): **no SAS**;
* a blob of the app's account: the bearer token too with an identity; with a connection
  string, its SAS, or a read-only SAS of that one blob signed with its key, for an hour;
* a URL the caller gave: as given (its SAS, or none for a public blob).

The source's properties are read by the app itself (Azure has no call that reads another
URL's properties for it; AzCopy reads them too): only from a host that
``COPY_ALLOWED_SOURCE_HOSTS`` admits, and a host that cannot be reached is the caller's 400.

The source is pinned by ETag on every request (``x-ms-source-if-match``); Azure answers a
moved ETag with 412 (and a source gone with 404), which is
:class:`~copy_ops.core.errors.SourceChanged`. A commit is sent once (no retry by the SDK: a
retry could land after the deadline), only while a second or more is left before the last
moment it is given, with a server and a client timeout of what is left.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ServiceRequestError

from copy_ops.copies.blocks import Block
from copy_ops.copies.model import BlobRef, DestinationCondition, ForeignBlob, SourceFacts
from copy_ops.copies.ports import BlockSource, Commit
from copy_ops.core.errors import FieldError, InvalidRequest, NotSent, UnsafeName
from copy_ops.core.redaction import redact, strip_query
from copy_ops.storage.account import Account
from copy_ops.storage.delegation import FORBIDDEN, READER_ROLE, UNAUTHORIZED, missing_role
from copy_ops.storage.documents import NOT_FOUND
from copy_ops.storage.errors import block_refusal, bounded_wait, ignoring, source_refusal

if TYPE_CHECKING:
    from azure.storage.blob import ContentSettings
    from azure.storage.blob.aio import BlobClient

T = TypeVar("T")

# Azure Storage's audience for a bearer token.
STORAGE_SCOPE = "https://storage.azure.com/.default"
# A block of 8 MiB read from a slow source may take a while: the client waits this long.
BLOCK_READ_SECONDS = 300
# The SAS the app signs with its account key for a source of its own account.
OWN_SAS_LIFETIME = timedelta(hours=1)
# The content headers Copy Blob carries over, as the SDK's ContentSettings names them.
_CONTENT_FIELDS = {
    "content-type": "content_type",
    "content-encoding": "content_encoding",
    "content-language": "content_language",
    "content-disposition": "content_disposition",
    "cache-control": "cache_control",
}


class BlockSide(Account):
    async def source_facts(self, source: BlockSource) -> SourceFacts:
        async def call() -> SourceFacts:
            if isinstance(source, str):
                from azure.storage.blob.aio import BlobClient

                async with BlobClient.from_blob_url(source, **self._client_options()) as client:
                    try:
                        return _facts(await client.get_blob_properties())
                    except ServiceRequestError as exc:
                        # The caller's host, not storage: nothing was sent (no name, no route).
                        problem = f"could not be reached: {redact(str(exc).splitlines()[0] if str(exc) else '')}"
                        raise InvalidRequest.of(FieldError("source", problem)) from None
            return _facts(await self._reader(source).get_blob_properties())

        return await self._run(self._read_refusals(call(), source), callers=True)

    async def copy_whole(self, ref: BlobRef, source: BlockSource, source_etag: str, commit: Commit) -> None:
        async def call(seconds: int) -> None:
            url, authorization = await self._copy_source(source)
            await self._blob(ref).upload_blob_from_url(
                url,
                overwrite=commit.condition is DestinationCondition.ANY,
                source_authorization=authorization,
                source_etag=source_etag,
                source_match_condition=MatchConditions.IfNotModified,
                metadata=commit.metadata,
                # The source's content headers and MD5 are carried by Azure itself
                # (x-ms-copy-source-blob-properties, the SDK's default), as Copy Blob carries them.
                include_source_blob_properties=True,
                **_destination_condition(commit),
                **_once(seconds),
            )

        await self._sent_once(call, commit, pinned=True)

    async def stage_block(
        self, ref: BlobRef, source: BlockSource, source_etag: str, block: Block, go: Callable[[], bool]
    ) -> None:
        async def call() -> None:
            url, authorization = await self._copy_source(source)
            await self._blob(ref).stage_block_from_url(
                block.id,
                url,
                source_offset=block.offset,
                source_length=block.length,
                source_authorization=authorization,
                # The SDK takes no source condition here: the header, as Azure documents it.
                headers={"x-ms-source-if-match": source_etag},
                read_timeout=BLOCK_READ_SECONDS,
            )

        async with self._block_slots:
            if not go():  # asked once the slot is held: the caller's time may have run out meanwhile
                raise NotSent(f"block {block.index} not sent: its staging stopped", code="NotSent")
            await bounded_wait(self._refusals(call(), pinned=True), BLOCK_READ_SECONDS * 2, callers=True)

    async def commit_blocks(self, ref: BlobRef, block_ids: Sequence[str], commit: Commit) -> None:
        async def call(seconds: int) -> None:
            await self._blob(ref).commit_block_list(
                list(block_ids),  # type: ignore[arg-type]  # the SDK takes ids as well as BlobBlocks
                content_settings=_content_settings(commit.content),
                metadata=commit.metadata,
                **_destination_condition(commit),
                **_once(seconds),
            )

        await self._sent_once(call, commit)

    async def uncommitted_blocks(self, ref: BlobRef) -> frozenset[str]:
        found = await self._run(ignoring(self._blob(ref).get_block_list("uncommitted"), NOT_FOUND))
        return frozenset(str(block.id) for block in found[1]) if found is not None else frozenset()

    async def _sent_once(self, call: Callable[[int], Awaitable[None]], commit: Commit, *, pinned: bool = False) -> None:
        """A commit, sent once if a second or more is left before its last moment once its
        turn comes, with timeouts of what is left: it lands by then, or not at all."""
        async with self._slots:
            left = int(commit.last_moment - time.monotonic())
            if left < 1:
                raise NotSent("the commit's moment passed before it could be sent", code="NotSent")
            await bounded_wait(self._refusals(call(left), pinned=pinned), left + 1, callers=True)

    async def _refusals(self, call: Awaitable[T], *, pinned: bool = False) -> T:
        try:
            return await call
        except HttpResponseError as exc:
            meaning = block_refusal(exc, pinned=pinned)
            if meaning is not None:
                raise meaning from None
            raise

    async def _read_refusals(self, call: Awaitable[T], source: BlockSource) -> T:
        """The source's own refusal of the plan's read (its status is the source's): the
        caller's source, a 4xx naming ``source``; for another account read with the app's
        token, 401 or 403 says the identity lacks its role there (as Copy Blob's engine says)."""
        try:
            return await call
        except HttpResponseError as exc:
            if isinstance(source, ForeignBlob) and exc.status_code in (UNAUTHORIZED, FORBIDDEN):
                raise missing_role(source.account, READER_ROLE, "read the source") from None
            meaning = source_refusal(exc)
            if meaning is not None:
                raise meaning from None
            raise

    def _reader(self, source: BlobRef | ForeignBlob) -> BlobClient:
        """A client that reads a source blob with the app's own authorization."""
        if isinstance(source, BlobRef):
            return self._blob(source)
        self._foreign_url(source)  # its names checked, as every address is
        if self._delegation is None:
            raise UnsafeName("a blob of another account needs an identity-based connection", code="NoIdentity")
        return self._delegation.client(source.account).get_blob_client(source.container, source.blob)

    async def _copy_source(self, source: BlockSource) -> tuple[str, str | None]:
        """The source URL and the authorization that goes with it (see the module's notes)."""
        if isinstance(source, str):
            return source, None
        if isinstance(source, ForeignBlob):
            if self._delegation is None:
                raise UnsafeName("a blob of another account needs an identity-based connection", code="NoIdentity")
            return self._foreign_url(source), await self._bearer()
        url = strip_query(str(self._blob(source).url))
        if self._connection.uses_identity:
            return url, await self._bearer()
        sas = self._connection.shared_access_signature
        if sas is not None:
            return f"{url}?{sas}", None
        return f"{url}?{self._own_sas(source)}", None

    async def _bearer(self) -> str:
        token = await self._service.credential.get_token(STORAGE_SCOPE)
        return f"Bearer {token.token}"

    def _own_sas(self, source: BlobRef) -> str:
        from azure.storage.blob import BlobSasPermissions, generate_blob_sas

        return generate_blob_sas(
            self._connection.account.name,
            source.container,
            source.blob,
            account_key=self._service.credential.account_key,
            permission=BlobSasPermissions(read=True),
            expiry=datetime.now(UTC) + OWN_SAS_LIFETIME,
        )


def _facts(props: Any) -> SourceFacts:
    settings = props.content_settings
    content = {name: getattr(settings, field) for name, field in _CONTENT_FIELDS.items() if getattr(settings, field)}
    md5 = settings.content_md5
    if md5:
        import base64

        content["content-md5"] = base64.b64encode(bytes(md5)).decode()
    return SourceFacts(
        size=int(props.size or 0), etag=str(props.etag), content=content, metadata=dict(props.metadata or {})
    )


def _content_settings(content: dict[str, str]) -> ContentSettings:
    import base64

    from azure.storage.blob import ContentSettings

    md5 = content.get("content-md5")
    return ContentSettings(
        **{field: content.get(name) for name, field in _CONTENT_FIELDS.items()},
        content_md5=bytearray(base64.b64decode(md5)) if md5 else None,
    )


def _destination_condition(commit: Commit) -> dict[str, Any]:
    if commit.condition is DestinationCondition.ETAG:
        return {"etag": commit.etag, "match_condition": MatchConditions.IfNotModified}
    if commit.condition is DestinationCondition.ABSENT:
        return {"match_condition": MatchConditions.IfMissing}
    return {}


def _once(seconds: int) -> dict[str, Any]:
    """Sent once, never retried by the SDK, bounded on both sides."""
    return {"timeout": seconds, "retry_total": 0, "read_timeout": seconds}

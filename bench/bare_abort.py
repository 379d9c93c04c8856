"""The obvious peer of the sweep, in a process of its own: a bare loop of the async SDK
doing exactly the three requests a deadline abort needs, 32 at once on one event loop:
read the small JSON record (with its ETag), Abort Copy with the record's copy id, write
the record back under that ETag. No ledger, no lifecycle, no logging: the floor that
copy-ops' own code is measured against.

python -m bench.bare_abort CONNECTION_STRING LEDGER_CONTAINER < names (one record per line)
prints {"aborted": n, "cpu_seconds": s} (the process's CPU for the loop alone).
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys

CONCURRENCY = 32


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def abort_all(connection: str, ledger: str, names: list[str]) -> int:
    from azure.core import MatchConditions
    from azure.storage.blob.aio import BlobServiceClient

    slots = asyncio.Semaphore(CONCURRENCY)
    async with BlobServiceClient.from_connection_string(connection) as service:

        async def one(name: str) -> int:
            async with slots:
                record = service.get_blob_client(ledger, name)
                download = await record.download_blob()
                data = json.loads(await download.readall())
                destination = data["destination"]
                await service.get_blob_client(destination["container"], destination["blob"]).abort_copy(data["copy_id"])
                data["state"] = "aborted"
                await record.upload_blob(
                    json.dumps(data).encode(),
                    overwrite=True,
                    etag=download.properties.etag,
                    match_condition=MatchConditions.IfNotModified,
                )
                return 1

        # The clients are built above: what is measured is the three requests an abort.
        return sum(await asyncio.gather(*(one(name) for name in names)))


def main() -> int:
    connection, ledger = sys.argv[1], sys.argv[2]
    names = [line.strip() for line in sys.stdin if line.strip()]
    import azure.storage.blob.aio  # noqa: F401  (imported before the clock starts: not an abort's cost)

    began = cpu_seconds()
    aborted = asyncio.run(abort_all(connection, ledger, names))
    print(json.dumps({"aborted": aborted, "cpu_seconds": cpu_seconds() - began}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

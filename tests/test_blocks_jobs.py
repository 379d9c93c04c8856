"""Jobs on the block engine: every item by the job's engine, on Azurite behind the stand-in,
with Azurite's queue service (blocks made small, as in tests/test_blocks_engine.py)."""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from copy_ops.background.sweep import sweep
from copy_ops.copies import block_lifecycle, blocks
from copy_ops.copies.model import BlobRef, Engine, ForeignBlob, State, Terms
from copy_ops.jobs.items import item_request
from copy_ops.jobs.model import Job, JobState
from devkit import PendingCopyProxy
from devkit.worker import run
from tests.conftest import Blobs, SettingsFactory
from tests.support.jobs import JobWorld

NOW = datetime.now(UTC).replace(microsecond=0)
BLOCK = 64 * 1024


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(blocks, "BLOCK_SIZE", BLOCK)
    monkeypatch.setattr(block_lifecycle, "STAGE_BATCH", 8)


@pytest.fixture
def world(make_settings: SettingsFactory, proxy: PendingCopyProxy) -> Iterator[JobWorld]:
    made = JobWorld(make_settings, proxy, COPY_JOB_PAGE_SIZE="100")
    yield made
    made.close()


def test_a_prefix_job_of_mixed_sizes_lands_every_blob_whole_on_the_block_engine(
    world: JobWorld, blobs: Blobs, proxy: PendingCopyProxy
) -> None:
    sizes = {f"in/{i:03d}.bin": 10 + i for i in range(240)}  # one request each
    sizes |= {f"in/big-{i}.bin": 20 * BLOCK + (i + 1) * 1000 for i in range(4)}  # 21 blocks each
    sizes["in/empty.bin"] = 0
    data = {name: os.urandom(size) for name, size in sizes.items()}
    for name, content in data.items():
        blobs.put(blobs.src, name, content)
    body = {
        "source": {"container": blobs.src, "prefix": "in/"},
        "destination": {"container": blobs.dst, "prefix": "out/"},
        "timeout_seconds": 600,
        "engine": "blocks",
    }
    job = world.start(body, NOW).job
    assert job.terms.engine is Engine.BLOCKS
    delivered = world.deliver(NOW)
    assert not delivered.failures
    assert delivered.kinds["page"] == 3 and delivered.kinds["stage"] == 4 * 3  # 21 blocks: 8 + 8 + 5
    # Items that ended at their start ask nothing of the job (its pages' end does), as on Copy Blob.
    assert delivered.kinds["check"] <= 4 + 3

    ended = world.job(job.id, NOW)
    assert ended.state is JobState.SUCCEEDED, ended.counts
    assert ended.counts.of(State.SUCCEEDED) == len(data)
    assert ended.counts.bytes_copied == sum(sizes.values())
    for name, content in data.items():
        assert blobs.read(blobs.dst, "out/" + name[3:]) == content, name
    # Each item once: a Put Blob From URL per small blob, the big ones by blocks and one commit.
    assert proxy.log.counts["copy_blob"] == 0
    assert proxy.log.counts["put_blob_from_url"] == 241
    assert proxy.log.counts["put_block_from_url"] == 4 * 21
    assert proxy.log.counts["put_blocklist"] == 4
    lines = [json.loads(line) for line in run(world.service.jobs.report(job.id)).lines.decode().splitlines()]
    assert Counter(line["state"] for line in lines) == Counter(succeeded=len(data))


def test_a_job_on_the_block_engine_missing_its_deadline_commits_nothing_more(
    world: JobWorld, blobs: Blobs, proxy: PendingCopyProxy
) -> None:
    for i in range(3):
        blobs.put(blobs.src, f"in/big-{i}.bin", os.urandom(10 * BLOCK))
    body = {
        "source": {"container": blobs.src, "prefix": "in/"},
        "destination": {"container": blobs.dst, "prefix": "out/"},
        "timeout_seconds": 60,
        "engine": "blocks",
    }
    job = world.start(body, NOW).job
    world.deliver(NOW, rounds=2)  # listed, its batch started: planned; blocks not staged yet
    late = NOW + timedelta(seconds=61)
    world.deliver(late)  # every staging message arrives after the deadline: stopped
    for step in range(3):  # sweeps a minute apart, as the timer runs them
        run(sweep(world.service, late + timedelta(minutes=step)))
        world.deliver(late + timedelta(minutes=step))
    ended = world.job(job.id, late + timedelta(minutes=3))
    # Every item aborted at the deadline: a job that did not succeed (not asked to abort).
    assert ended.state is JobState.FAILED and ended.counts.of(State.ABORTED) == 3
    assert proxy.log.counts["put_blocklist"] == 0
    assert proxy.log.counts["put_block_from_url"] == 0
    for i in range(3):
        assert not blobs.exists(blobs.dst, f"out/big-{i}.bin")


def _job(engine: Engine) -> Job:
    return Job(
        id="j",
        state=JobState.RUNNING,
        source=None,
        manifest_size=0,
        destination_container="landing",
        destination_prefix="p/",
        terms=Terms(
            NOW + timedelta(seconds=100),
            engine=engine,
            escalate_at=NOW + timedelta(seconds=50) if engine is Engine.AUTO else None,
        ),
        created_at=NOW,
        fingerprint="f",
    )


@pytest.mark.parametrize(
    ("engine", "source", "expected"),
    [
        (Engine.AUTO, BlobRef("data", "a"), (Engine.ASYNC, NOW + timedelta(seconds=50))),
        (Engine.AUTO, ForeignBlob("partner", "data", "a"), (Engine.BLOCKS, None)),
        (Engine.AUTO, "https://partner.blob.core.windows.net/data/a?sig=x", (Engine.BLOCKS, None)),
        (Engine.ASYNC, ForeignBlob("partner", "data", "a"), (Engine.ASYNC, None)),
        (Engine.BLOCKS, BlobRef("data", "a"), (Engine.BLOCKS, None)),
    ],
)
def test_each_item_starts_on_the_jobs_engine(
    engine: Engine, source: str | BlobRef | ForeignBlob, expected: tuple[Engine, datetime | None]
) -> None:
    request = item_request(_job(engine), "a", source, 1)
    assert (request.terms.engine, request.terms.escalate_at) == expected

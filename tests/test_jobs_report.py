"""A job's report in parts (copy_ops/jobs/report.py): how many parts, written on the work
queue by any instance (a part twice, a part's message lost), the end decided first and
shown, the final state once every part is there, and the parts served in order. In memory;
the wire's proof: tests/test_jobs_scale.py (two development hosts) and tests/test_cli.py."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from copy_ops.app_service import AppService
from copy_ops.background.dispatch import do_work
from copy_ops.copies.model import BlobRef
from copy_ops.core.errors import Conflict, NotFound
from copy_ops.core.settings import Settings
from copy_ops.jobs.model import JobState
from copy_ops.jobs.report import part_of, report_digits, report_parts
from copy_ops.jobs.request import parse_job_request
from copy_ops.jobs.settle import REPORT_RESEND
from copy_ops.jobs.views import job_view
from copy_ops.work.messages import ReportPart, decode
from devkit.worker import run
from tests.support.memory import MemoryQueue, MemoryStorage, sealed_by

T0 = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
SETTINGS = Settings.from_env(
    {
        "COPY_STORAGE": "UseDevelopmentStorage=true",
        "COPY_JOB_REPORT_PART": "100",
        "COPY_JOB_PAGE_SIZE": "500",
        "COPY_ENGINE": "async",
    }
)
ITEMS = 150


@pytest.mark.parametrize(
    ("items", "per_part", "digits"),
    [
        (0, 5000, 0),
        (5000, 5000, 0),
        (5001, 5000, 1),
        (80_000, 5000, 1),
        (80_001, 5000, 2),
        (1_000_000, 5000, 2),
        (1_280_001, 5000, 3),
        (10**12, 5000, 4),  # at most 65,536 parts
        (101, 100, 1),
    ],
)
def test_how_many_parts_a_report_has(items: int, per_part: int, digits: int) -> None:
    assert report_digits(items, per_part) == digits


def test_parts_are_named_by_hex_prefix_in_order() -> None:
    assert report_parts(0) == [""]
    assert report_parts(1) == list("0123456789abcdef")
    assert report_parts(2)[:3] == ["00", "01", "02"] and len(report_parts(2)) == 256
    assert (part_of(1, 0), part_of(1, 15), part_of(1, 16), part_of(1, -1), part_of(0, 0), part_of(0, 1)) == (
        "0",
        "f",
        None,
        None,
        "",
        None,
    )


def drain(service: AppService, sent: MemoryQueue, now: datetime, drop: str | None = None) -> Counter[str]:
    kinds: Counter[str] = Counter()
    for _ in range(100):
        messages = sent.take()
        if not messages:
            return kinds
        for text in messages:
            work = decode(text)
            if isinstance(work, ReportPart) and work.part == drop:
                drop = None  # lost, once
                continue
            kinds[run(do_work(service, text, now))[0]] += 1
    raise AssertionError("the queue never drained")


def test_a_large_jobs_report_is_written_in_parts_and_served_in_order() -> None:
    storage, sent = MemoryStorage(), MemoryQueue()
    service = AppService(SETTINGS, storage, sent)
    for number in range(ITEMS):
        storage.put(BlobRef("src", f"in/{number:03d}.bin"), b"x")
    body = {"source": {"container": "src", "prefix": "in/"}, "destination": {"container": "dst"}}
    job_id = run(service.jobs.start(parse_job_request(body, SETTINGS, T0), T0)).job.id
    # Every item started and ended; the look that finds so decides the end and sends a part
    # message each (16: 150 items, 100 a part); one of them is lost.
    kinds = drain(service, sent, T0, drop="7")
    assert kinds["report"] == 15, kinds
    closing = run(service.jobs.get(job_id, T0))
    assert (closing.state, closing.closing, closing.report_digits) == (JobState.RUNNING, JobState.SUCCEEDED, 1)
    assert job_view(closing)["closing"] == "succeeded" and job_view(closing)["report"] is None
    with pytest.raises(Conflict):
        run(service.jobs.report(job_id))  # not written whole yet
    with pytest.raises(Conflict):
        run(service.jobs.abort(job_id, T0))  # its end is decided: succeeded
    # A part delivered twice is written once, and ends nothing while one is missing.
    assert run(do_work(service, _part(service, job_id, "3"), T0)) == ("report", Counter(["report"]))
    seen = T0 + timedelta(seconds=30)
    assert run(service.jobs.check(job_id, seen, asked=True)).value == "reporting"
    assert not sent.take()  # parts were written since the last look: the missing one is likely queued
    assert run(service.jobs.check(job_id, seen + REPORT_RESEND / 2, asked=True)).value == "reporting"
    assert not sent.take()  # no part since, but not for long
    later = seen + REPORT_RESEND
    assert run(service.jobs.check(job_id, later, asked=True)).value == "reporting"
    assert [decode(text) for text in sent.messages] == [ReportPart(job_id, "7")]
    drain(service, sent, later)  # the last part asks for the look that ends the job
    job = run(service.jobs.get(job_id, later))
    assert job.state is JobState.SUCCEEDED and job.closing is None, job
    assert job_view(job)["report_parts"] == 16
    lines: list[dict[str, object]] = []
    index: int | None = 0
    served = 0
    while index is not None:
        page = run(service.jobs.report(job_id, index))
        lines += [json.loads(line) for line in page.lines.decode().splitlines()]
        served += 1
        index = page.next
    assert served == 16
    assert sorted(str(line["destination"]) for line in lines) == sorted(
        str({"container": "dst", "blob": f"{number:03d}.bin"}) for number in range(ITEMS)
    )
    # Each part holds the items whose id's hash begins with its digit.
    assert all(str(line["id"])[len(job_id) + 1] in "0123456789abcdef" for line in lines)
    with pytest.raises(NotFound):
        run(service.jobs.report(job_id, 16))
    # A part's message after the end: nothing happens.
    assert run(do_work(service, _part(service, job_id, "0"), later)) == ("report", Counter(["stale"]))


def _part(service: AppService, job_id: str, part: str) -> str:
    from copy_ops.work.messages import encode

    return sealed_by(service, encode(ReportPart(job_id, part)))

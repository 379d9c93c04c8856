"""Copy Blob's retries driven end to end (issue 32): Azurite behind the stand-in, which fails
copies on purpose as Azure fails them (docs/standin.md), the real SDK, and the sweep run with
``now`` moved by hand past each backoff and the start grace.

The source is a public blob of the partner's account, named by URL without a SAS: a copy
from another account runs in the background as on Azure, and the app can read it again for
a later attempt (a source given with a SAS is tried once, docs/retry.md). The retry rules
on the in-memory storage are tests/test_retry_logic.py's."""

from __future__ import annotations

from datetime import timedelta

import pytest

from copy_ops.app_service import AppService
from copy_ops.background.sweep import sweep
from copy_ops.copies.model import Cause, ErrorCode, State
from copy_ops.copies.phases import Event, Phase
from copy_ops.copies.views import operation_view
from devkit import PendingCopyProxy
from devkit.failures import SOURCE_GONE, SOURCE_READS_FAILED
from devkit.worker import run
from tests.conftest import Blobs
from tests.support.retries import DATA, NOW, Public, begin, due, seen, stored


@pytest.fixture
def public(proxy: PendingCopyProxy) -> Public:
    return Public(proxy)


def test_a_copy_azure_failed_after_progress_is_copied_again_by_a_new_copy_blob_and_lands(
    service: AppService, blobs: Blobs, public: Public, proxy: PendingCopyProxy
) -> None:
    source = public.put("a.bin", DATA)
    proxy.fail_next(after_bytes=3000)  # Azure's own description: the copy service's 500
    op = begin(service, source, blobs.dst, retry={"attempts": 3, "backoff_seconds": 30})
    assert (op.state, op.attempt, op.terms.retry_attempts) == (State.PENDING, 1, 3)
    first = op.copy_id
    run(sweep(service, due(service, op)))  # the sweep finds it failed
    waiting = stored(service, op)
    assert (waiting.state, waiting.phase, waiting.attempt) == (State.PENDING, Phase.RETRYING, 1)
    [failed] = waiting.failed_attempts
    assert (failed.cause, failed.copy_id, failed.error.code, failed.error.message) == (
        Cause.COPY_FAILED,
        first,
        ErrorCode.COPY_FAILED,
        SOURCE_READS_FAILED,
    )
    assert failed.bytes_copied == 3000
    leftover = seen(proxy, blobs.dst)
    assert leftover.size == 0 and leftover.copy.status == "failed"
    proxy.pending_copies = True  # the next attempt's copy runs in the background, as on Azure
    run(sweep(service, due(service, op)))
    copying = stored(service, op)
    assert (copying.state, copying.phase, copying.attempt) == (State.PENDING, Phase.COPYING, 2)
    assert copying.copy_id not in (None, first)
    assert seen(proxy, blobs.dst).copy.id == copying.copy_id  # the leftover replaced by a new copy
    proxy.finish(blobs.dst, "a.bin")
    run(sweep(service, due(service, op)))
    done = stored(service, op)
    assert (done.state, done.error, done.attempt, done.copy_id) == (State.SUCCEEDED, None, 2, copying.copy_id)
    assert [move.event for move in done.history] == [
        Event.STARTED,
        Event.ATTEMPT_FAILED,
        Event.RETRIED,
        Event.STARTED,
        Event.FINISHED,
    ]
    view = operation_view(done, None)["attempt"]
    assert (view["number"], view["of"]) == (2, 3)
    assert view["last_error"] == {"code": "copy_failed", "message": SOURCE_READS_FAILED}
    assert proxy.log.counts["copy_blob"] == 2
    assert proxy.log.counts["abort_copy"] == 0  # the failed copy is never aborted
    assert blobs.read(blobs.dst, "a.bin") == DATA
    landed = seen(proxy, blobs.dst).copy
    assert (landed.status, landed.id) == ("success", done.copy_id)


def test_a_copy_azure_failed_reading_a_source_gone_ends_at_once(
    service: AppService, blobs: Blobs, public: Public, proxy: PendingCopyProxy
) -> None:
    source = public.put("a.bin", DATA)
    proxy.fail_next(after_bytes=100, description=SOURCE_GONE)
    op = begin(service, source, blobs.dst, retry={"attempts": 3, "backoff_seconds": 0})
    run(sweep(service, due(service, op)))
    ended = stored(service, op)
    assert (ended.state, ended.attempt, ended.failed_attempts) == (State.FAILED, 1, ())
    assert ended.error is not None and (ended.error.code, ended.error.message) == (ErrorCode.COPY_FAILED, SOURCE_GONE)
    run(sweep(service, NOW + timedelta(seconds=600)))
    assert proxy.log.counts["copy_blob"] == 1


def test_every_attempt_failing_ends_failed_keeping_each_error_and_on_abort_deletes_the_leftover(
    service: AppService, blobs: Blobs, public: Public, proxy: PendingCopyProxy
) -> None:
    source = public.put("a.bin", DATA)
    proxy.fail_next(times=3, after_bytes=500)
    op = begin(service, source, blobs.dst, retry={"attempts": 3, "backoff_seconds": 5}, on_abort="delete")
    moment = due(service, op)
    for _ in range(10):
        run(sweep(service, moment))
        current = stored(service, op)
        if current.is_final:
            break
        moment = max(moment + timedelta(seconds=1), due(service, op))
    ended = stored(service, op)
    assert (ended.state, ended.attempt) == (State.FAILED, 3), ended
    assert ended.error is not None and (ended.error.code, ended.error.message) == (
        ErrorCode.COPY_FAILED,
        SOURCE_READS_FAILED,
    )
    assert [(a.number, a.error.code) for a in ended.failed_attempts] == [
        (1, ErrorCode.COPY_FAILED),
        (2, ErrorCode.COPY_FAILED),
    ]
    assert len({a.copy_id for a in ended.failed_attempts} | {ended.copy_id}) == 3  # a new copy each time
    assert proxy.log.counts["copy_blob"] == 3
    assert proxy.log.counts["abort_copy"] == 0
    assert ended.cleanup == ()
    assert not blobs.exists(blobs.dst, "a.bin")  # on_abort delete: the last leftover, deleted


def test_a_source_busy_at_copy_blobs_start_is_answered_pending_and_the_next_attempt_copies(
    service: AppService, blobs: Blobs, public: Public, proxy: PendingCopyProxy
) -> None:
    """The stand-in's read of the source answers 503 three times: Copy Blob is refused 500
    CannotVerifyCopySource as often as the SDK tries it (three). The caller is answered
    pending: the attempt failed, the next one waits out the start grace (its Copy Blob's
    outcome unknown), then finds no copy of its own and sends one, which lands."""
    source = public.put("a.bin", DATA)
    proxy.inject("source_read", status=503, code="ServerBusy", times=3, path_contains="/a.bin")
    op = begin(service, source, blobs.dst, retry={"attempts": 3, "backoff_seconds": 1})
    assert (op.state, op.phase, op.attempt, op.copy_id) == (State.PENDING, Phase.RETRYING, 1, None), op
    [failed] = op.failed_attempts
    assert (failed.cause, failed.error.code) == (Cause.STORAGE_BUSY, ErrorCode.STORAGE_UNAVAILABLE)
    assert proxy.log.counts["copy_blob"] == 3
    assert due(service, op) >= NOW + timedelta(seconds=service.settings.start_grace_seconds)
    run(sweep(service, due(service, op) - timedelta(seconds=1)))
    assert stored(service, op).phase is Phase.RETRYING  # not before the grace
    run(sweep(service, due(service, op)))
    done = stored(service, op)
    assert (done.state, done.attempt, len(done.failed_attempts)) == (State.SUCCEEDED, 2, 1), done
    assert proxy.log.counts["copy_blob"] == 4
    assert blobs.read(blobs.dst, "a.bin") == DATA

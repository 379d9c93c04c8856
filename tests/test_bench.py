"""The benchmarks measure what docs/performance.md says they measure: the copies they start
to abort are pending (from another account: bench/partner.py), and the request counts the
document quotes come out of them exactly. The benchmarks' figures are not asserted here
(they come from ``python -m bench``); their counts are, since a count that moves means the
benchmark, or the code, no longer does what the document says."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench import cost, retries, retry_side
from bench.harness import Harness, after
from copy_ops.background.sweep import sweep
from copy_ops.copies.model import State
from devkit.worker import run

PERFORMANCE = Path(__file__).resolve().parents[1] / "docs" / "performance.md"
# The same code with no added latency: counts do not depend on it, and the tests run fast.
NO_LATENCY = 0.0

pytestmark = pytest.mark.system


@pytest.fixture(scope="module")
def harness() -> Iterator[Harness]:
    with Harness(latency=NO_LATENCY) as started:
        yield started


def test_the_copies_a_benchmark_aborts_are_pending_and_cost_three_requests_each(harness: Harness) -> None:
    src, dst = harness.containers()
    service = harness.service()
    ids = harness.start_many(service, src, dst, 5, timeout=1)
    assert {run(service.ledger.get(i)).state for i in ids} == {State.PENDING}

    before = harness.counts()
    summary = run(sweep(service, after(3600)))
    spent = harness.counts() - before

    assert summary.outcomes["aborted"] == 5, summary
    assert {run(service.ledger.get(i)).state for i in ids} == {State.ABORTED}
    # docs/performance.md: "3 requests an item inline (the lower bound)", and the due query.
    assert spent == {"get_blob": 5, "abort_copy": 5, "put_blob": 5, "find_by_tags": 1}, spent


def test_the_cost_benchmark_prints_the_counts_the_document_quotes(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    cost.run(harness, not_due=20)
    printed = capsys.readouterr().out.splitlines()
    quoted = PERFORMANCE.read_text().splitlines()
    for line in printed:
        if line.startswith(("(a) ", "(b) ")):
            assert line in quoted, line
    assert any(line.startswith("(b) ") and "(aborted)" in line for line in printed), printed
    crowd = next(line for line in printed if line.startswith("a sweep with 1 due"))
    assert re.fullmatch(
        r"a sweep with 1 due \(aborted\) and 20 not-due operations: 4 requests; "
        r"the same sweep with the 1 due alone: 4 requests",
        crowd,
    ), crowd


@pytest.fixture
def quick_pace(monkeypatch: pytest.MonkeyPatch) -> None:
    # Without latency the start and its checks take a fraction of a second: a shorter pace
    # still ends each copy after them, and the test waits less.
    monkeypatch.setattr(retry_side, "PACED_SECONDS", 2.0)


@pytest.mark.usefixtures("quick_pace")
def test_a_copy_that_succeeds_at_its_first_attempt_costs_what_the_document_quotes_before_and_now(
    harness: Harness,
) -> None:
    now = {
        "instant": {"kinds": retry_side.instant_copy(harness)},
        "async": retry_side.async_copy(harness),
        "blocks": {"kinds": retry_side.block_copy(harness)},
    }
    assert now["async"]["checks"] == [4] * retry_side.CHECKS, now["async"]
    quoted = PERFORMANCE.read_text().splitlines()
    # The document's rows say before and now cost the same: the code now must cost what they say.
    for row in retries.count_rows(now, now):
        assert row in quoted, row


@pytest.mark.usefixtures("quick_pace")
def test_a_retried_attempt_costs_what_the_document_quotes(harness: Harness) -> None:
    figures = retry_side.retried_copy(harness)
    assert figures["attempts"] == 2, figures
    quoted = PERFORMANCE.read_text().splitlines()
    for row in retries.retry_rows(figures):
        assert row in quoted, row

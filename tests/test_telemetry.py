"""OpenTelemetry: a deadline abort on Azurite, through the pending-copy proxy, seen in the
counters, the lateness histogram, the overdue gauge and the spans (the OpenTelemetry
SDK's in-memory reader and exporter); and nothing of it imported when it is off."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from copy_ops.app_service import AppService
from copy_ops.background.sweep import sweep
from copy_ops.core.settings import Settings
from copy_ops.observability.telemetry import OPERATION_ID, OpenTelemetry
from devkit import PROJECT_ROOT, PendingCopyProxy
from devkit.worker import run
from tests.conftest import Blobs, open_storage
from tests.support.partner import Partner
from tests.support.requests import copy_body, start
from tests.support.telemetry import points

NOW = datetime.now(UTC).replace(microsecond=0)


def test_a_deadline_abort_is_counted_timed_and_traced(
    settings: Settings, blobs: Blobs, partner: Partner, proxy: PendingCopyProxy
) -> None:
    reader = InMemoryMetricReader()
    spans = InMemorySpanExporter()
    tracers = TracerProvider()
    tracers.add_span_processor(SimpleSpanProcessor(spans))
    telemetry = OpenTelemetry(MeterProvider(metric_readers=[reader]).get_meter("test"), tracers.get_tracer("test"))
    service = AppService(settings, open_storage(settings), telemetry=telemetry)
    partner.put("a.bin", b"x")
    blobs.put(blobs.src, "b.bin", b"y")
    proxy.pending_copies = True
    start(service, copy_body(blobs.src, blobs.dst, "b.bin"), NOW)  # within the account: finishes at once
    op = start(service, partner.body(blobs.dst, timeout_seconds=60), NOW).operation  # another's: pending

    run(sweep(service, NOW + timedelta(seconds=67)))  # 7 s late

    found = points(reader)
    started = {point.attributes["state"]: point.value for point in found["copyops.operations.started"]}
    assert started == {"succeeded": 1, "pending": 1}
    ended = {(p.attributes["state"], p.attributes["reason"]): p.value for p in found["copyops.operations.ended"]}
    assert ended == {("succeeded", ""): 1, ("aborted", "deadline"): 1}
    [lateness] = found["copyops.abort.lateness"]
    # 7 s late, and the moments the sweep took to reach it (each operation on the time of its turn)
    assert lateness.count == 1 and 7.0 <= lateness.sum < 8.0
    [duration] = found["copyops.sweep.duration"]
    [due] = found["copyops.sweep.due"]
    assert duration.count == 1 and (due.count, due.sum) == (1, 1)
    [oldest] = found["copyops.overdue.oldest_age"]
    assert 7.0 <= oldest.value < 8.0
    names = {(span.name, (span.attributes or {}).get(OPERATION_ID)) for span in spans.get_finished_spans()}
    assert ("copyops.settle", op.id) in names and ("copyops.start", op.id) in names


def _telemetry_in_a_fresh_process(extra: dict[str, str]) -> dict[str, Any]:
    script = (
        "import json, sys\n"
        "import function_app\n"
        "from copy_ops.edges import runtime\n"
        "kind = type(runtime._telemetry()).__name__\n"
        "print(json.dumps({'kind': kind, 'imported': 'opentelemetry' in sys.modules}))\n"
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith("APPLICATIONINSIGHTS_")}
    answer = subprocess.run(
        [sys.executable, "-c", script],
        cwd=PROJECT_ROOT,
        env={**clean, **extra},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return dict(json.loads(answer.stdout.strip().splitlines()[-1]))


@pytest.mark.system
def test_without_application_insights_nothing_of_opentelemetry_is_imported() -> None:
    assert _telemetry_in_a_fresh_process({}) == {"kind": "Telemetry", "imported": False}


@pytest.mark.system
def test_with_application_insights_the_distro_is_configured() -> None:
    connection = "InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint=http://127.0.0.1:9/"
    answer = _telemetry_in_a_fresh_process({"APPLICATIONINSIGHTS_CONNECTION_STRING": connection})
    assert answer == {"kind": "OpenTelemetry", "imported": True}
    # As azd deploys it: Entra ID ingestion with the app's user-assigned identity.
    entra = {
        "APPLICATIONINSIGHTS_CONNECTION_STRING": connection,
        "APPLICATIONINSIGHTS_AUTHENTICATION_STRING": "ClientId=11111111-2222-3333-4444-555555555555;Authorization=AAD",
    }
    assert _telemetry_in_a_fresh_process(entra) == {"kind": "OpenTelemetry", "imported": True}


@pytest.mark.system
def test_the_ingestion_credential_follows_the_authentication_string() -> None:
    from copy_ops.observability.monitor import insights_credential

    assert insights_credential("") == {}
    assert insights_credential("Authorization=key") == {}
    credential = insights_credential("ClientId=abc;Authorization=AAD")["credential"]
    assert type(credential).__name__ == "ManagedIdentityCredential"

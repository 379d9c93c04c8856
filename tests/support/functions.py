"""The HTTP functions of the app as the host must index them: name, route and methods
(tests/test_app_shape.py reads the decorators, tests/test_worker.py the real worker's index)."""

from __future__ import annotations

EXPECTED = {
    "start_copy": ("copies", ["POST"]),
    "list_copies": ("copies", ["GET"]),
    "get_copy": ("copies/{id}", ["GET"]),
    "abort_copy": ("copies/{id}/abort", ["POST"]),
    "openapi": ("openapi.json", ["GET"]),
    "whoami": ("whoami", ["GET"]),
    "start_job": ("jobs", ["POST"]),
    "list_jobs": ("jobs", ["GET"]),
    "get_job": ("jobs/{id}", ["GET"]),
    "job_items": ("jobs/{id}/items", ["GET"]),
    "abort_job": ("jobs/{id}/abort", ["POST"]),
    "job_report": ("jobs/{id}/report", ["GET"]),
    "retry_job": ("jobs/{id}/retry", ["POST"]),
}

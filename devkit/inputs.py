"""Trigger inputs built as the Python worker builds them: through the ``azure.functions``
library's own converters, from the data the host sends (``meta.Datum`` values).

The development host and the handler tests both use these, so that what a handler
receives locally is what the worker would give it in Azure (header names as sent,
query and route parameters as strings, the body as bytes, the timer's status).
"""

from __future__ import annotations

import json
from datetime import datetime

import azure.functions as func
from azure.functions.http import HttpRequestConverter
from azure.functions.meta import Datum
from azure.functions.queue import QueueMessageInConverter
from azure.functions.timer import TimerRequestConverter


def _string(value: str) -> Datum:
    return Datum(value, "string")


def http_request(
    method: str, url: str, headers: dict[str, str], query: dict[str, str], route_params: dict[str, str], body: bytes
) -> func.HttpRequest:
    data = Datum(
        {
            "method": _string(method),
            "url": _string(url),
            "headers": {name: _string(value) for name, value in headers.items()},
            "query": {name: _string(value) for name, value in query.items()},
            "params": {name: _string(value) for name, value in route_params.items()},
            # The worker asks the host for raw body bytes (its RawHttpBodyBytes capability).
            "body": Datum(body, "bytes"),
        },
        "http",
    )
    request: func.HttpRequest = HttpRequestConverter.decode(data, trigger_metadata=None)
    return request


def timer_request(past_due: bool, last: datetime | None, following: datetime) -> func.TimerRequest:
    status = {
        "Last": (last or following).isoformat(),
        "Next": following.isoformat(),
        "LastUpdated": (last or following).isoformat(),
    }
    payload = {"Schedule": {"AdjustForDST": True}, "ScheduleStatus": status, "IsPastDue": past_due}
    timer: func.TimerRequest = TimerRequestConverter.decode(Datum(json.dumps(payload), "json"), trigger_metadata=None)
    return timer


def queue_message(
    body: bytes, message_id: str, dequeue_count: int, inserted: datetime, pop_receipt: str
) -> func.QueueMessage:
    """A queue trigger's input, as the worker builds it from the host's message and metadata."""
    when = inserted.strftime("%Y-%m-%dT%H:%M:%S+00:00")
    metadata = {
        "Id": _string(message_id),
        "DequeueCount": Datum(dequeue_count, "int"),
        "InsertionTime": _string(when),
        "ExpirationTime": _string(when),
        "NextVisibleTime": _string(when),
        "PopReceipt": _string(pop_receipt),
    }
    message: func.QueueMessage = QueueMessageInConverter.decode(Datum(body, "bytes"), trigger_metadata=metadata)
    return message
